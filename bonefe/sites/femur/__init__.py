"""The femur site: frame and patches (`anatomy`), hip activities (`loads`), named lesion sites
(`lesions`), phantoms (`phantom`, `surface_phantom`), Mirels and axial involvement (`scores`), the
sideways fall with its own supports (`fall`), its model and envelope (`assessment`); `site.FEMUR`
is its `bonefe.sites.base.Site`."""

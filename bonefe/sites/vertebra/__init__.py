"""The vertebra site: frame (`anatomy`), the read stage's crop and neighbours (`reading`), endplate
layers (`loading`), spinal activities (`activities`), its model and envelope (`assessment`), SINS
(`sins`), named lesion sites (`lesions`) and a procedural phantom (`phantom`); `site.VERTEBRA` is
its `bonefe.sites.base.Site`."""

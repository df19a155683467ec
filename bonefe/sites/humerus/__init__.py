"""The humerus site: frame and patches (`anatomy`), glenohumeral activities and walking aids
(`loads`), named lesion sites (`lesions`), the procedural phantom (`phantom`), Mirels with the
upper-limb site (`scores`), its model (`assessment`) and torsion/bending strength (`strength`);
`site.HUMERUS` is its `bonefe.sites.base.Site`."""

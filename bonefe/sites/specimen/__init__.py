"""The specimen site: any bone (a whole bone, a vertebral body, a trabecular core, a micro-CT cube)
in a virtual test machine, with no anatomical frame. The case names the rig (`case`): the fixed
region, the loaded region moved as a rigid plate by a displacement or a force, and the material
(a grey-value power law or bonefe's density laws). `reading` builds the volume (TIFF stacks,
any image SimpleITK reads, or a generated block), `rig` the plate motions, reactions and strain
basis, `site` the site interface, `run` the `bonefe run` chain, `fit` the material and failure
parameters fitted to a table of experiments (`bonefe calibrate --specimens`)."""

"""The bone-site interface: what differs between bones, in one place per bone.

A site brings (DESIGN.md, "Bone sites"):
- frame:        the anatomical frame from the segmentation, with overridable landmarks;
- loading:      its support and load patches, or its own operator where a scenario needs other
                supports (the femur's fixed distal cut + head/trochanter patches; the vertebra's
                endplate layers, `bonefe.sites.vertebra.loading`);
- activities:   its cited activity library (peak loads in the site's frame);
- evaluation:   which cells are read for failure (femur: away from patches; vertebra: all bone);
- lesion sites: named places for phantoms and inserted lesions, and a procedural phantom;
- scores:       its clinical scores (Mirels for long bones, SINS for the spine);
- report:       its wording and the pictures' camera.
Everything else (image → mesh → material, the elasticity operator, nonlocal strain and the strain
criterion, verdicts, outputs) is shared and knows no bone by name.

`Site` is the protocol each site object satisfies; `site_of(name)` returns it. The CLI's
`bonefe phantom --site` and the case file's `site:` go through it.
"""

from pathlib import Path
from typing import Protocol

from bonefe.errors import BonefeError


class Site(Protocol):
    """One bone site. lesion_sites: names for `--lesion-site`; scores: the clinical scores'
    names; camera: the view of the report's pictures ("anterior", "lateral", ...)."""

    name: str
    lesion_sites: tuple[str, ...]
    scores: tuple[str, ...]
    camera: str

    def write_phantom(self, options: dict, out_dir: Path, fmt: str) -> dict[str, Path]:
        """Write the site's procedural phantom (ct, labels, json) from CLI options; returns the paths."""


def site_of(name: str) -> Site:
    """The site object of a site name (`bonefe.sites.SITES`)."""
    if name == "femur":
        from bonefe.sites.femur import FEMUR

        return FEMUR
    if name == "vertebra":
        from bonefe.sites.vertebra import VERTEBRA

        return VERTEBRA
    raise BonefeError(f"unknown bone site '{name}': choose femur or vertebra")

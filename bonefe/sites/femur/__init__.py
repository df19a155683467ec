"""The femur site: today its pieces live in the generic modules it grew up in (frame
`bonefe.anatomy`, patches `bonefe.anatomy.boundary_tags`, activities `bonefe.loads`, lesion sites
`bonefe.lesions`, phantom `bonefe.phantom`, scores `bonefe.scores`); this object is its `Site`."""

from dataclasses import dataclass
from pathlib import Path

from bonefe.lesions import SITE_NAMES


@dataclass(frozen=True)
class FemurSite:
    name: str = "femur"
    lesion_sites: tuple[str, ...] = tuple(SITE_NAMES)
    scores: tuple[str, ...] = ("mirels", "axial_involvement")
    camera: str = "anterior"

    def write_phantom(self, options: dict, out_dir: Path, fmt: str) -> dict[str, Path]:
        from bonefe.phantom import PhantomSpec, write_phantom
        from bonefe.schema import build

        return write_phantom(build(PhantomSpec, options, "phantom"), out_dir, fmt=fmt)


FEMUR = FemurSite()

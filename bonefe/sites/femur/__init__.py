"""The femur site: frame and patches (`anatomy`), hip activities (`loads`), named lesion sites
(`lesions`), phantoms (`phantom`, `surface_phantom`), Mirels and axial involvement (`scores`) and
the sideways fall with its own supports (`fall`); this object is its `Site`."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FemurSite:
    name: str = "femur"
    scores: tuple[str, ...] = ("mirels", "axial_involvement")
    camera: str = "anterior"

    @property
    def lesion_sites(self) -> tuple[str, ...]:
        from bonefe.sites.femur.lesions import SITE_NAMES

        return tuple(SITE_NAMES)

    def write_phantom(self, options: dict, out_dir: Path, fmt: str) -> dict[str, Path]:
        from bonefe.schema import build
        from bonefe.sites.femur.phantom import PhantomSpec, write_phantom

        return write_phantom(build(PhantomSpec, options, "phantom"), out_dir, fmt=fmt)


FEMUR = FemurSite()

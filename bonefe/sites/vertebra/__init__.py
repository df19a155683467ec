"""The vertebra site: frame (`anatomy`), endplate layers (`loading`), spinal activities
(`activities`), SINS (`sins`), named lesion sites (`lesions`) and a procedural phantom (`phantom`)."""

from dataclasses import dataclass
from pathlib import Path

from bonefe.sites.vertebra.lesions import SITES


@dataclass(frozen=True)
class VertebraSite:
    name: str = "vertebra"
    lesion_sites: tuple[str, ...] = SITES
    scores: tuple[str, ...] = ("sins",)
    camera: str = "anterior"

    def write_phantom(self, options: dict, out_dir: Path, fmt: str) -> dict[str, Path]:
        from bonefe.schema import build
        from bonefe.sites.vertebra.phantom import VertebraPhantomSpec, write_vertebra_phantom

        return write_vertebra_phantom(build(VertebraPhantomSpec, options, "phantom"), out_dir, fmt=fmt)


VERTEBRA = VertebraSite()

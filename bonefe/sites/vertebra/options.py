"""The case file's `spine` section (with `site: vertebra` and `level:`)."""

from dataclasses import dataclass
from typing import Literal

from bonefe.sites.vertebra.lesions import SITES


@dataclass(frozen=True)
class LesionInsertion:
    """A lesion ball inserted into the CT and labels at a named site before meshing (real vertebrae
    without a segmented lesion, `bonefe.sites.vertebra.lesions`)."""

    site: str
    diameter_mm: float = 15.0
    type: Literal["lytic", "blastic"] = "lytic"

    def __post_init__(self):
        if self.site not in SITES:
            raise ValueError(f"insert_lesion.site must be one of {', '.join(SITES)} (got {self.site!r})")
        if not 2.0 <= self.diameter_mm <= 40.0:
            raise ValueError(f"insert_lesion.diameter_mm must lie in [2, 40] mm (got {self.diameter_mm})")


@dataclass(frozen=True)
class SpineOptions:
    """layer: endplate layer, "disc" (in vivo) or "pmma" (as ex-vivo tests); pain, alignment: the
    SINS components the CT cannot give; cranial, anterior, posterior_wall_point: overrides of
    the frame (world LPS) (None: unknown, scored as a range); neighbour_values: label
    values of the cranial and caudal neighbours (default: the TotalSegmentator values when the bone
    value is the level's TotalSegmentator value); insert_lesion: see LesionInsertion."""

    layer: Literal["disc", "pmma"] = "disc"
    pain: Literal["mechanical", "occasional", "none"] | None = None
    alignment: Literal["subluxation", "deformity", "normal"] | None = None
    neighbour_values: tuple[int, int] | None = None
    insert_lesion: LesionInsertion | None = None
    cranial: tuple[float, float, float] | None = None
    anterior: tuple[float, float, float] | None = None
    posterior_wall_point: tuple[float, float, float] | None = None

    def landmarks(self) -> dict:
        """The frame overrides given (`bonefe.sites.vertebra.anatomy.OVERRIDES`), world LPS mm."""
        return {k: getattr(self, k) for k in ("cranial", "anterior", "posterior_wall_point")
                if getattr(self, k) is not None}

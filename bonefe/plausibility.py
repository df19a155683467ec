"""Plausibility of a CT and its label map, checked before anything is meshed.

A CT whose values are not Hounsfield units (a missing rescale intercept adds +1024 to every voxel;
a wrong slope scales them) or a label map that does not describe one bone gives a confident but
meaningless failure load (issue 15: the demo CT + 1024 HU reported "24.98 kN, low risk"). Three
simple statistics, each with its window (docs/real-data.md gives the measured values on real CTs):

- **Soft tissue near the bone**: the median HU of the voxels 2–6 mm outside the bone and lesion
  labels lies in SOFT_TISSUE_HU. Muscle is +35…+55 HU and fat −120…−90 HU (Hounsfield scale,
  e.g. Kalender, Computed Tomography, 3rd ed. 2011, fig. 1.7; Buzug, Computed Tomography, 2008,
  tab. 7.1); measured medians on four real bones 21–48 HU, on the phantom 40 HU.
- **Air where present**: the 1st percentile of the voxels above the image minimum (scanners fill
  the area outside the reconstruction circle with one padding value, e.g. −2048 or −3024 HU) —
  the image's air — lies in AIR_HU when it is below AIR_PRESENT_HU; air is −1000 HU by definition
  of the scale (Hounsfield 1980). Measured −1024 and −1013 HU on two real scans.
- **Bone brighter than soft tissue**: the 95th percentile of bone-label HU exceeds the soft-tissue
  median by BONE_CONTRAST_HU (measured 435–674 HU on four real bones at 0.7–3 mm voxels, cortex
  blurred by 2.5 mm slices; 1660 HU on the phantom), and the median of the label's surface layer
  (labelled voxels with an unlabelled face neighbour: the cortex) exceeds it by SURFACE_CONTRAST_HU
  (measured 120–242 HU on the four real bones, 1460 HU on the phantom; the same label maps mirrored
  or flipped along an axis give −42…84 HU). A label map on the wrong voxels fails this.

Label maps: the bone and its lesions must form one face-connected piece (the mesher would otherwise
drop all but the largest); with `keep_largest_bone` the other pieces are removed and the run says so.
A case that names lesion classes in `label_values` must have lesion voxels.

The calibration rods are checked by `bonefe.calibration` (`checks.calibration_fit`).
Every check can be turned off in the case (section `checks`); the run then prints a warning, the
report's assumptions name the check, and the case parameters in report.json record it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields, replace

import numpy as np
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.volume import BONE, LESION_LABELS, Volume, distance_to

SOFT_TISSUE_HU = (-200.0, 150.0)
"""Window of the median HU 2–6 mm outside the bone (fat −120…−90 HU to muscle +35…+55 HU, with margin)."""

SHELL_MM = (2.0, 6.0)
"""Distances (mm) from the bone label between which voxels count as the soft tissue around the bone."""

AIR_PRESENT_HU = -300.0
"""Air counts as present when the image's low end (1st percentile above padding) lies below this (HU)."""

AIR_HU = (-1100.0, -850.0)
"""Window of the image's low end when air is present (air = −1000 HU by definition)."""

BONE_CONTRAST_HU = 250.0
"""Least difference (HU) between the bone label's 95th percentile and the soft-tissue median."""

SURFACE_CONTRAST_HU = 100.0
"""Least difference (HU) between the median of the label's surface layer (cortex) and the soft-tissue median."""

MIN_SHELL_VOXELS = 100
"""Fewer soft-tissue voxels than this (bone touching the image border all round): that check is skipped."""


@dataclass(frozen=True)
class InputChecks:
    """The case section `checks`: every input check is on unless the case turns it off.

    soft_tissue, air, bone_contrast: the HU checks of `bonefe.plausibility` (module docstring);
    calibration_fit: the consistency of the calibration rods (`bonefe.calibration`); false skips
    one, with a warning and a line in the report's assumptions.
    keep_largest_bone: when the label map holds several separate bone pieces, keep the largest
    (default false: refuse, because the other pieces may be the part that matters).
    """

    soft_tissue: bool = True
    air: bool = True
    bone_contrast: bool = True
    calibration_fit: bool = True
    keep_largest_bone: bool = False

    def overrides(self) -> list[str]:
        """One sentence per check the case turned off or relaxed (for warnings and the report)."""
        off = [f.name for f in fields(self) if f.type in ("bool", bool) and f.name != "keep_largest_bone"
               and not getattr(self, f.name)]
        text = [f"Input check '{name}' turned off by the case (checks.{name}: false): "
                + ("the calibration rods' order, slope and scatter were not verified." if name == "calibration_fit"
                   else "the CT's Hounsfield scale was not verified by it.") for name in off]
        if self.keep_largest_bone:
            text.append("Only the largest connected bone piece of the label map is modelled "
                        "(checks.keep_largest_bone: true).")
        return text


def _soft_tissue(volume: Volume) -> np.ndarray:
    """HU of the voxels SHELL_MM outside every label."""
    distance = distance_to(volume.labels != 0, volume.spacing, SHELL_MM[1])
    return volume.hu[(distance > SHELL_MM[0]) & (distance <= SHELL_MM[1])]


def _air_level(hu: np.ndarray) -> float | None:
    """1st percentile of the voxels above the image minimum (padding), None if there are none."""
    above = hu[hu > hu.min()]
    return float(np.percentile(above, 1)) if above.size else None


def _fix(check: str) -> str:
    return (f"is the rescale slope/intercept applied? (checks.{check}: false skips this check, "
            "only for a scan known to be in HU)")


def check_hu(volume: Volume, checks: InputChecks, where: str) -> None:
    """Refuse a CT whose values do not behave like Hounsfield units (module docstring)."""
    soft = _soft_tissue(volume)
    soft_median = float(np.median(soft)) if soft.size >= MIN_SHELL_VOXELS else None
    if checks.soft_tissue and soft_median is not None and not SOFT_TISSUE_HU[0] <= soft_median <= SOFT_TISSUE_HU[1]:
        raise BonefeError(f"{where}: soft tissue 2–6 mm outside the bone has median {soft_median:.0f} HU, "
                          f"outside the {SOFT_TISSUE_HU[0]:.0f}…{SOFT_TISSUE_HU[1]:.0f} HU of fat to muscle; " + _fix("soft_tissue"))
    air = _air_level(volume.hu)
    if checks.air and air is not None and air < AIR_PRESENT_HU and not AIR_HU[0] <= air <= AIR_HU[1]:
        raise BonefeError(f"{where}: the air in the image reads {air:.0f} HU (1st percentile), not near −1000 HU "
                          f"({AIR_HU[0]:.0f}…{AIR_HU[1]:.0f}); " + _fix("air"))
    if checks.bone_contrast and soft_median is not None:
        bone = float(np.percentile(volume.hu[volume.labels == BONE], 95))
        labelled = volume.labels > 0
        surface = float(np.median(volume.hu[labelled & ~ndimage.binary_erosion(labelled)]))
        if bone - soft_median < BONE_CONTRAST_HU or surface - soft_median < SURFACE_CONTRAST_HU:
            raise BonefeError(f"{where}: the bone label is barely brighter than the soft tissue around it "
                              f"(95th percentile {bone:.0f} HU, surface median {surface:.0f} HU, soft tissue "
                              f"{soft_median:.0f} HU; need +{BONE_CONTRAST_HU:.0f} and +{SURFACE_CONTRAST_HU:.0f}): "
                              "is the label map on this CT, with the right axes? (checks.bone_contrast: false "
                              "skips this)")


def check_labels(volume: Volume, checks: InputChecks, lesion_named: bool, where: str) -> Volume:
    """The volume with one bone piece: refuse several face-connected pieces of bone and lesion unless
    checks.keep_largest_bone (then the others are removed); refuse a case that names lesion classes
    but whose label map has no lesion voxel."""
    if lesion_named and not np.isin(volume.labels, LESION_LABELS).any():
        raise BonefeError(f"{where}: the case names lesion label values but the label map has no lesion "
                          "voxel; fix the label map, or remove lytic/blastic from label_values for a bone "
                          "without lesion")
    pieces, count = ndimage.label(volume.labels > 0)
    if count <= 1:
        return volume
    sizes = np.bincount(pieces.ravel())[1:]
    largest = int(np.argmax(sizes)) + 1
    if not checks.keep_largest_bone:
        others = np.sort(np.delete(sizes, largest - 1))[::-1] * volume.voxel_volume
        raise BonefeError(f"{where}: the bone label is in {count} separate pieces (largest "
                          f"{sizes.max() * volume.voxel_volume:.0f} mm³, next {others[0]:.0f} mm³); "
                          "fix the segmentation, or set checks.keep_largest_bone: true to model the largest only")
    return replace(volume, labels=np.where(pieces == largest, volume.labels, 0).astype(volume.labels.dtype))


def check_volume(volume: Volume, checks: InputChecks, lesion_named: bool, where: str, warn: bool = True) -> Volume:
    """All checks of this module (labels first, then HU); with `warn`, one stderr line per override."""
    for text in checks.overrides() if warn else []:
        print(f"bonefe: warning: {text}", file=sys.stderr, flush=True)
    volume = check_labels(volume, checks, lesion_named, where)
    check_hu(volume, checks, where)
    return volume

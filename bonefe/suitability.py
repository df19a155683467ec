"""Is this scan fit for CT-based FE? Checks run before meshing, each with an override.

A scan that fails a check is refused with one line saying what is wrong and which key of the
case's `suitability` section overrides it; an overridden failure is recorded in report.json.

- slices: the largest voxel spacing, and for a DICOM series the SliceThickness, must not exceed
  `max_slice_mm` (3 mm by default, for every site; thicker slices average the 1–4 mm femoral-neck cortex with
  marrow and soft tissue). The clinical biomechanical-CT service (BCT, VirtuOst) states ≤ 3 mm
  for the spine and ≤ 5 mm for the hip (O.N. Diagnostics, "CT Scans Suitable for VirtuOst",
  ondiagnostics.com, read 2026-12-01), so for the femur 3 mm is stricter than BCT. The BCT
  review (Keaveny TM et al. 2020, Osteoporos Int 31(6):1025–1048, doi:10.1007/s00198-020-05384-2)
  is not the source of the limit: its abstract and Table 1, the parts read, give no slice limit.
  Override: `allow_thick_slices`.
- kernel: for a DICOM series whose header names its reconstruction kernel (0018,1210), a bone,
  lung, edge or otherwise sharp kernel is refused. The same vendor page asks for a soft to standard
  kernel: "sharp" or "bone" kernels are not suitable, because they may distort the attenuation data.
  The kernel changes the density estimated from CT: Giambini H, Dragomir-Daescu D, Huddleston PM,
  Camp JJ, An KN, Nassr A 2015, "The effect of quantitative computed tomography acquisition
  protocols on bone mineral density estimation", J Biomech Eng, issue 11, article 114502. In that
  study (a rabbit femur and a calibration phantom, abstract), the cortical and cancellous vBMD
  depended on voltage and kernel, not on current. The abstract does not say which way a sharp
  kernel moves the density. The name is classified by `is_sharp_kernel` and never written out:
  only the verdict is. Override: `allow_sharp_kernel`.
- metal: voxels of at least `metal_hu` (2500 HU; cortical bone stays below ~2000 HU at 120 kVp,
  `bonefe.tissues`: 1559 HU at 70 keV) forming a 26-connected cluster of at least `min_metal_mm3`
  within `metal_distance_mm` (20 mm) of the bone: streaks and beam hardening around an implant
  corrupt the bone's HU. Override: `allow_metal`.
- field of view (femur): the bone must not touch the image's superior face or any in-plane face
  (head or side cut off; only the distal cut of the shaft is expected) nor a voxel outside the
  reconstruction circle (below −1100 HU, `bonefe.tissues.FOV_HU`), and must span at least
  `min_length_mm` superior–inferior (120 mm: head (≈ 45 mm), neck and trochanters (≈ 60 mm) and
  the subtrochanteric shaft below them, so the distal support sits away from the neck). Override:
  `allow_cut_bone`.
- IV contrast is refused by the internal calibration itself when it relies on blood
  (`bonefe.internal_calibration`: blood above its plausible range).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.tissues import FOV_HU
from bonefe.volume import Volume, voxel_spacing

SHARP_WORDS = ("BONE", "LUNG", "SHARP", "EDGE", "DETAIL", "HIGH", "ULTRA")
"""Words of GE, Canon and generic kernel names that mean a sharp (bone/lung) kernel."""
SHARP_NUMBERED = ((re.compile(r"^(?:B|BR|BV|BL|I|HR|Q|BF)(\d{2})"), 50), (re.compile(r"^FC(\d{2})"), 30))
"""Siemens kernels (B30f smooth … B70f sharp; Br36 … Br64) are sharp from 50; Canon FC30 and up
are bone kernels."""
SHARP_LETTERS = ("C", "D", "E", "L", "YC", "YD", "YE")
"""Philips kernels: A/B standard, C/D/E sharper, L lung, YC–YE bone."""


@dataclass(frozen=True)
class SuitabilityOptions:
    """Case-file section `suitability`: the limits of the scan checks and their overrides (see the
    module docstring for each limit's source)."""

    max_slice_mm: float = 3.0
    allow_thick_slices: bool = False
    allow_sharp_kernel: bool = False
    metal_hu: float = 2500.0
    min_metal_mm3: float = 10.0
    metal_distance_mm: float = 20.0
    allow_metal: bool = False
    min_length_mm: float = 120.0
    allow_cut_bone: bool = False


@dataclass(frozen=True)
class Verdict:
    """One check: its name, whether it passed, and what was found (no header values)."""

    check: str
    passed: bool
    finding: str
    override: str


def is_sharp_kernel(name: str) -> bool:
    """Whether a reconstruction kernel name denotes a sharp (bone, lung, edge) kernel."""
    upper = name.strip().upper()
    if any(word in upper for word in SHARP_WORDS):
        return True
    for pattern, limit in SHARP_NUMBERED:
        match = pattern.match(upper.replace(" ", ""))
        if match:
            return int(match.group(1)) >= limit
    return upper in SHARP_LETTERS


def dicom_header(ct_path: Path) -> tuple[str | None, float | None]:
    """Reconstruction kernel name and slice thickness (mm) of a DICOM series' first file, or
    (None, None) for an image file; for the verdicts only — never write them out."""
    if not Path(ct_path).is_dir():
        return None, None
    import SimpleITK as sitk

    files = sorted(p for p in Path(ct_path).iterdir() if p.is_file())
    for file in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(file))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            continue
        kernel = reader.GetMetaData("0018|1210") if reader.HasMetaDataKey("0018|1210") else None
        thickness = reader.GetMetaData("0018|0050") if reader.HasMetaDataKey("0018|0050") else None
        try:
            thickness = float(thickness) if thickness else None
        except ValueError:
            thickness = None
        return kernel, thickness
    return None, None


def check_slices(volume: Volume, thickness: float | None, options: SuitabilityOptions) -> Verdict:
    spacing = float(voxel_spacing(volume.affine).max())
    worst = max(spacing, thickness or 0.0)
    passed = worst <= options.max_slice_mm + 1e-6
    return Verdict("slices", passed, f"slices {worst:.2g} mm (limit {options.max_slice_mm:g} mm)",
                   "allow_thick_slices")


def check_kernel(kernel: str | None) -> Verdict:
    if kernel is None:
        return Verdict("kernel", True, "no kernel named in the header", "allow_sharp_kernel")
    sharp = is_sharp_kernel(kernel)
    return Verdict("kernel", not sharp, "a sharp or bone reconstruction kernel" if sharp else "a soft kernel",
                   "allow_sharp_kernel")


def check_metal(volume: Volume, options: SuitabilityOptions) -> Verdict:
    """Metal clusters near the bone (see the module docstring)."""
    spacing = voxel_spacing(volume.affine)
    metal = volume.hu >= options.metal_hu
    clusters, count = ndimage.label(metal, structure=np.ones((3, 3, 3), bool))
    nearest = np.inf
    big = 0.0
    if count:
        sizes = np.bincount(clusters.ravel())[1:] * float(np.prod(spacing))
        keep = np.isin(clusters, 1 + np.nonzero(sizes >= options.min_metal_mm3)[0])
        big = float(sizes[sizes >= options.min_metal_mm3].sum())
        if keep.any():
            reach = np.ceil(options.metal_distance_mm / spacing).astype(int) + 1
            idx = np.nonzero(keep)
            box = tuple(slice(max(int(i.min()) - r, 0), int(i.max()) + r + 1) for i, r in zip(idx, reach))
            bone = volume.labels[box] > 0
            if bone.any():
                distance = ndimage.distance_transform_edt(~bone, sampling=spacing)
                nearest = float(distance[keep[box]].min())
    near = nearest <= options.metal_distance_mm
    finding = (f"{big:.0f} mm³ of metal (≥ {options.metal_hu:g} HU) {nearest:.0f} mm from the bone" if near else
               f"no metal within {options.metal_distance_mm:g} mm of the bone"
               + (f" ({big:.0f} mm³ farther away)" if big else ""))
    return Verdict("metal", not near, finding, "allow_metal")


def check_field_of_view(volume: Volume, options: SuitabilityOptions) -> Verdict:
    """Femur: not cut superiorly or in-plane, and long enough (see the module docstring)."""
    bone = volume.labels > 0
    axes = volume.affine[:3, :3]
    superior = np.argmax(np.abs(axes[2]))
    up = np.sign(axes[2, superior])
    cut = []
    for axis in range(3):
        for end, face in ((0, "low"), (-1, "high")):
            touches = np.take(bone, end, axis=axis).any()
            inferior = axis == superior and (end == 0) == (up > 0)
            if touches and not inferior:
                cut.append("superior (head)" if axis == superior else "in-plane")
    if (ndimage.binary_dilation(volume.hu < FOV_HU) & bone).any():
        cut.append("reconstruction-circle")
    length = float(np.ptp(np.nonzero(bone.any(axis=tuple(a for a in range(3) if a != superior)))[0])
                   + 1) * float(np.linalg.norm(axes[:, superior]))
    short = length < options.min_length_mm
    finding = (f"bone cut at the {' and '.join(sorted(set(cut)))} edge of the field of view; " if cut else "") + \
        f"{length:.0f} mm long (at least {options.min_length_mm:g} mm)"
    return Verdict("field_of_view", not cut and not short, finding, "allow_cut_bone")


def check_scan(volume: Volume, ct_path: Path, options: SuitabilityOptions) -> list[Verdict]:
    """Run every check; raise BonefeError on the first failure that is not overridden."""
    kernel, thickness = dicom_header(ct_path)
    verdicts = [check_slices(volume, thickness, options), check_kernel(kernel), check_metal(volume, options),
                check_field_of_view(volume, options)]
    for verdict in verdicts:
        if not verdict.passed and not getattr(options, verdict.override):
            raise BonefeError(f"scan unsuitable for FE ({verdict.check}): {verdict.finding}; "
                              f"set suitability.{verdict.override}: true to run anyway")
    return verdicts


def verdict_summary(verdicts: list[Verdict]) -> dict[str, str]:
    """The verdicts for report.json: "pass" or "overridden: <finding>" per check."""
    return {v.check: "pass" if v.passed else f"overridden: {v.finding}" for v in verdicts}

"""Choose and vet one CT series in a DICOM folder before its pixels are read.

A folder exported from a PACS often holds several series (thin and thick reconstructions,
localizers/scouts, dose reports), and a series may be unsuitable for a voxel grid. Checked here,
from the headers read by pydicom (DICOM PS3.3 sections named):

- one series is chosen: the folder's only CT series, or the one the case names (`ct_series`:
  SeriesNumber or SeriesInstanceUID); otherwise the error lists the series by number, modality,
  slice count and slice thickness — never a UID, a free-text field such as SeriesDescription (it
  may hold a name) or any patient attribute;
- localizer/scout images (ImageType value 3 LOCALIZER, C.8.2.1.1.1) are left out;
- Modality CT (C.7.3.1); RescaleSlope and RescaleIntercept present on every slice (C.11.1.1.2:
  without them the stored values are not HU); not an Enhanced CT multi-frame object (SOP class
  1.2.840.10008.5.1.4.1.1.2.1 or NumberOfFrames > 1, C.8.15: not supported, refused);
- one voxel grid: the same Rows, Columns, PixelSpacing and ImageOrientationPatient on every slice,
  its row and column direction cosines unit vectors at right angles (C.7.6.2.1.1; within
  ORTHONORMAL_TOL),
  slice positions along the slice normal (no gantry tilt, C.8.2.1 GantryDetectorTilt, and no
  shear: the grid would not be orthogonal, refused rather than resampled), evenly spaced slices
  (a gap means missing slices), the same SliceThickness
  (varying thickness means mixed reconstructions);
- every uncompressed slice's pixel data as long as its header declares (`bonefe.integrity`).

Messages name the folder and slice positions only (file names may be UIDs).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from bonefe.errors import BonefeError
from bonefe.integrity import check_dicom_pixel_length

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
"""SOP Class UID of Enhanced CT Image Storage (multi-frame)."""

GEOMETRY_ATOL = 1e-3
"""Tolerance of orientation cosines and of PixelSpacing (mm) between slices."""

ORTHONORMAL_TOL = 1e-3
"""Largest deviation of |row|, |column| from 1 and of row·column from 0 (ImageOrientationPatient);
headers store the cosines to about 6 decimals."""

TILT_TOL = 1e-3
"""Largest sine of the angle between the slice stacking direction and the slice normal."""

SLICE_SPACING_RTOL = 0.01
"""Largest deviation between slice gaps, relative to their median, accepted as one evenly spaced series
(ITK would otherwise assume one spacing and stretch the volume)."""

THICKNESS_RTOL = 0.01
"""Largest relative difference between slice thicknesses of one series."""

def _headers(folder: Path) -> list[tuple[Path, pydicom.Dataset]]:
    """(file, header without pixels) of every DICOM file in `folder`; other files are skipped."""
    headers = []
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            headers.append((file, pydicom.dcmread(file, stop_before_pixels=True)))
        except (InvalidDicomError, EOFError, OSError, ValueError):
            continue
    return headers


def _is_localizer(header) -> bool:
    image_type = [str(v).upper() for v in np.atleast_1d(header.get("ImageType", []) or [])]
    return "LOCALIZER" in image_type


def _choose(folder: Path, series: dict[str, list], choice: str | int | None) -> list:
    """The headers of the chosen series (module docstring)."""
    if choice is not None:
        chosen = [uid for uid, items in series.items()
                  if str(choice) == uid or str(choice) == str(items[0][1].get("SeriesNumber", ""))]
        if len(chosen) != 1:
            raise BonefeError(f"{folder}: ct_series {choice!r} " + ("matches several series; give its "
                              "SeriesInstanceUID" if chosen else "is not a series of this folder")
                              + f" ({_listing(series)})")
        return series[chosen[0]]
    ct = {uid: items for uid, items in series.items() if items[0][1].get("Modality") == "CT"}
    if len(ct) == 1:
        return next(iter(ct.values()))
    if len(series) == 1:
        return next(iter(series.values()))
    raise BonefeError(f"{folder}: the folder holds {len(series)} DICOM series ({_listing(series)}); "
                      "name one in the case with `ct_series:` (its number or SeriesInstanceUID)")


def _listing(series: dict[str, list]) -> str:
    """Series in ascending number, with modality, slice count and thickness: nothing free-text or identifying."""
    def thickness(header) -> str:
        value = header.get("SliceThickness")
        return f" of {float(value):g} mm" if value not in (None, "") else ""
    def number(items) -> str:
        return str(items[0][1].get("SeriesNumber") or "?")
    ordered = sorted(series.values(), key=lambda items: (len(number(items)), number(items)))
    return "; ".join(f"number {number(items)}: {items[0][1].get('Modality') or '?'}, "
                     f"{len(items)} slice(s){thickness(items[0][1])}" for items in ordered)


def _vet(folder: Path, items: list) -> list[Path]:
    """Refuse a series that is not one plain CT voxel grid; its files in slice order."""
    first = items[0][1]
    if first.get("Modality") != "CT":
        raise BonefeError(f"{folder}: the series is modality {first.get('Modality', 'unknown')}, not CT; "
                          "give a CT series")
    if str(first.get("SOPClassUID", "")) == ENHANCED_CT or any(int(h.get("NumberOfFrames", 1) or 1) > 1
                                                                for _, h in items):
        raise BonefeError(f"{folder}: an enhanced (multi-frame) CT object is not supported; export the series "
                          "as single-frame CT images (e.g. from the PACS, or dcm2niix to NIfTI)")
    if any("RescaleSlope" not in h or "RescaleIntercept" not in h for _, h in items):
        raise BonefeError(f"{folder}: slices without RescaleSlope/RescaleIntercept: their values are not "
                          "Hounsfield units; export the series with its rescale tags")
    for key in ("Rows", "Columns"):
        if len({int(h.get(key, 0)) for _, h in items}) > 1:
            raise BonefeError(f"{folder}: slices of different sizes ({key}) in one series; export one series")
    geometry = np.array([[float(v) for v in (*h.get("ImageOrientationPatient", [0] * 6),
                                             *h.get("PixelSpacing", [0, 0]))] for _, h in items])
    if np.ptp(geometry, axis=0).max() > GEOMETRY_ATOL:
        raise BonefeError(f"{folder}: slices with different orientation or pixel spacing in one series; "
                          "export one series")
    row, column = geometry[0, :3], geometry[0, 3:6]
    deviation = max(abs(np.linalg.norm(row) - 1), abs(np.linalg.norm(column) - 1), abs(row @ column))
    if deviation > ORTHONORMAL_TOL:
        raise BonefeError(f"{folder}: ImageOrientationPatient's row and column directions are not unit vectors "
                          f"at right angles (|row| {np.linalg.norm(row):.4g}, |column| {np.linalg.norm(column):.4g}, "
                          f"row·column {row @ column:.4g}); fix the header or export the series again")
    normal = np.cross(row, column)
    positions = np.array([[float(v) for v in h.get("ImagePositionPatient", [0, 0, 0])] for _, h in items])
    order = np.argsort(positions @ normal)
    tilt = float(first.get("GantryDetectorTilt", 0) or 0)
    if len(items) > 1:
        step = positions[order[-1]] - positions[order[0]]
        sine = np.linalg.norm(np.cross(step / max(np.linalg.norm(step), 1e-12), normal))
        if abs(tilt) > 0 or sine > TILT_TOL:
            angle = np.degrees(np.arcsin(min(sine, 1.0))) if sine > TILT_TOL else abs(tilt)
            raise BonefeError(f"{folder}: the slices are sheared (gantry tilt {angle:.1f}°), so the voxel grid is "
                              "not orthogonal; reconstruct without tilt or resample to an orthogonal grid first")
    gaps = np.diff(np.sort(positions @ normal))
    if len(gaps) > 1 and np.ptp(gaps) > SLICE_SPACING_RTOL * abs(np.median(gaps)):
        raise BonefeError(f"{folder}: DICOM slices are unevenly spaced (gaps {gaps.min():.3g}–{gaps.max():.3g} mm: "
                          "missing slices?); export the complete series")
    thickness = [float(h.get("SliceThickness", 0) or 0) for _, h in items]
    if max(thickness) - min(thickness) > THICKNESS_RTOL * max(thickness):
        raise BonefeError(f"{folder}: slice thickness varies within the series ({min(thickness):g}–"
                          f"{max(thickness):g} mm: mixed reconstructions?); export one reconstruction")
    files = [items[n][0] for n in order]
    for index, file in enumerate(files):
        check_dicom_pixel_length(folder, index, file)
    return files


def series_files(folder: str | Path, choice: str | int | None = None) -> list[str]:
    """The files of the one CT series to read from `folder`, in slice order, after the checks of
    the module docstring; `choice`: the case's `ct_series` (SeriesNumber or SeriesInstanceUID)."""
    folder = Path(folder)
    series: dict[str, list] = defaultdict(list)
    for file, header in _headers(folder):
        if not _is_localizer(header):
            series[str(header.get("SeriesInstanceUID", ""))].append((file, header))
    if not series:
        raise BonefeError(f"{folder}: no DICOM series found in this folder (localizers aside); "
                          "give a folder of DICOM slice files or an image file")
    return [str(f) for f in _vet(folder, _choose(folder, dict(series), choice))]

"""Read and write CT images and label maps: DICOM series, NIfTI, NRRD, MetaImage.

Every reader returns an array indexed [i, j, k] and a 4×4 affine from voxel index to world
coordinates in the ITK/DICOM LPS patient frame (mm), whatever the file's own convention
(SimpleITK converts NIfTI's RAS+ to LPS on reading and back on writing). Only pixel data and
geometry leave this module: nothing from DICOM headers (names, IDs, dates) is kept or returned.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.integrity import check_image_file
from bonefe.outputs import atomic_path
from bonefe.volume import BACKGROUND, BLASTIC, BONE, LYTIC, Volume, voxel_spacing

IMAGE_IO = {
    ".nii.gz": "NiftiImageIO", ".nii": "NiftiImageIO",
    ".nrrd": "NrrdImageIO", ".nhdr": "NrrdImageIO",
    ".mha": "MetaImageIO", ".mhd": "MetaImageIO",
}
"""File endings read, and the ITK reader used for each; a folder is read as a DICOM series."""

WRITABLE = (".nii.gz", ".nii", ".mha", ".nrrd")
"""File endings written (single-file formats, so that a write can be atomic)."""

SUPPORTED = "a DICOM series folder, NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd)"

CANONICAL = {"bone": BONE, "lytic": LYTIC, "blastic": BLASTIC}
DEFAULT_LABEL_VALUES = {"bone": 1, "lytic": 2, "blastic": 3}


def _suffix(path: Path) -> str:
    """The recognised file ending of `path` (".nii.gz" counts as one), lower case."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _read_dicom_series(folder: Path, series: str | int | None = None) -> sitk.Image:
    """Read the CT series of `folder` chosen and vetted by `bonefe.dicom_series.series_files` (GDCM
    decodes compressed transfer syntaxes and rescales to HU)."""
    from bonefe.dicom_series import series_files  # pydicom: imported for DICOM input only

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(series_files(folder, series))
    try:
        image = reader.Execute()
    except RuntimeError:
        raise BonefeError(f"{folder}: cannot decode this DICOM series (unsupported compression or damaged files); "
                          "export it uncompressed") from None
    return image


def _read_file(path: Path) -> sitk.Image:
    """Read one image file with the ITK reader its ending names."""
    suffix = _suffix(path)
    if suffix not in IMAGE_IO:
        raise BonefeError(f"{path}: unsupported image format '{suffix or path.name}'; give {SUPPORTED}")
    check_image_file(path, suffix)
    reader = sitk.ImageFileReader()
    reader.SetImageIO(IMAGE_IO[suffix])
    reader.SetFileName(str(path))
    try:
        return reader.Execute()
    except RuntimeError:
        raise BonefeError(f"{path}: cannot read this file as {IMAGE_IO[suffix].removesuffix('ImageIO')} "
                          "(damaged or not that format); check the file") from None


def read_sitk(path: str | Path, series: str | int | None = None) -> sitk.Image:
    """Read a 3-D scalar image (file or DICOM series folder) as a SimpleITK image; `series` chooses
    the series of a folder that holds several (SeriesNumber or SeriesInstanceUID)."""
    path = Path(path)
    if not path.exists():
        raise BonefeError(f"{path}: no such file or folder; check the path")
    if series is not None and not path.is_dir():
        raise BonefeError(f"{path}: ct_series names a DICOM series, but this is a file; remove ct_series")
    image = _read_dicom_series(path, series) if path.is_dir() else _read_file(path)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise BonefeError(f"{path}: expected a 3-D single-channel image, found {image.GetDimension()}-D with "
                          f"{image.GetNumberOfComponentsPerPixel()} channel(s); give a 3-D CT or label map")
    return image


def sitk_affine(image: sitk.Image) -> np.ndarray:
    """4×4 voxel-index → world (LPS, mm) map: x = origin + direction · diag(spacing) · (i, j, k)."""
    affine = np.eye(4)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    affine[:3, :3] = direction * np.array(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    return affine


def sitk_array(image: sitk.Image) -> np.ndarray:
    """The pixel array indexed [i, j, k] (SimpleITK's numpy view is [k, j, i])."""
    return np.ascontiguousarray(sitk.GetArrayFromImage(image).transpose(2, 1, 0))


def read_image(path: str | Path, series: str | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read an image: (array [i, j, k] in its stored type, rescaled to HU for DICOM; 4×4 affine to LPS mm);
    `series` as in read_sitk."""
    image = read_sitk(path, series)
    return sitk_array(image), sitk_affine(image)


def to_sitk(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A SimpleITK image from an [i, j, k] array and an affine whose columns are orthogonal."""
    affine = np.asarray(affine, float)
    spacing = voxel_spacing(affine)
    direction = affine[:3, :3] / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-6):
        raise BonefeError("image affine has sheared (non-orthogonal) axes, which image files cannot store; "
                          "resample onto an orthogonal grid first")
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    image.SetSpacing(spacing.tolist())
    image.SetDirection(direction.ravel().tolist())
    image.SetOrigin(affine[:3, 3].tolist())
    return image


def write_image(path: str | Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write an [i, j, k] array with its LPS affine to .nii.gz, .nii, .mha or .nrrd, atomically."""
    path = Path(path)
    if _suffix(path) not in WRITABLE:
        raise BonefeError(f"{path}: cannot write '{_suffix(path) or path.name}'; use one of {', '.join(WRITABLE)}")
    image = to_sitk(array, affine)
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    return path


def _label_lookup(label_values: Mapping[str, int | list[int]] | None) -> dict[int, int]:
    """Map each user label value to its canonical label; refuse unknown names and values claimed twice."""
    label_values = DEFAULT_LABEL_VALUES if label_values is None else label_values
    lookup: dict[int, int] = {}
    for name, values in label_values.items():
        if name not in CANONICAL:
            raise BonefeError(f"label_values: unknown class '{name}' (allowed: {', '.join(CANONICAL)})")
        for value in np.atleast_1d(values).tolist():
            if not isinstance(value, int) or isinstance(value, bool):
                raise BonefeError(f"label_values.{name}: {value!r} is not an integer label value")
            if value in lookup:
                raise BonefeError(f"label_values: value {value} is given for two classes; give each value once")
            lookup[value] = CANONICAL[name]
    return lookup


def _grid_difference(image: sitk.Image, reference: sitk.Image) -> str | None:
    """Name what differs between two voxel grids (size, spacing, origin, direction), or None if they match."""
    spacing = np.array(reference.GetSpacing())
    checks = {
        "size": image.GetSize() == reference.GetSize(),
        "spacing": np.allclose(image.GetSpacing(), spacing, rtol=1e-4, atol=0),
        "origin": np.allclose(image.GetOrigin(), reference.GetOrigin(), rtol=0, atol=1e-3 * spacing.min()),
        "direction": np.allclose(image.GetDirection(), reference.GetDirection(), rtol=0, atol=1e-4),
    }
    different = [name for name, same in checks.items() if not same]
    return ", ".join(different) or None


def _canonical_labels(values: np.ndarray, lookup: dict[int, int], where: Path) -> np.ndarray:
    """Canonical uint8 labels from the user's label values; unmapped values become background."""
    if not np.issubdtype(values.dtype, np.integer):
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise BonefeError(f"{where}: the label map holds non-integer values; give an integer label map")
    labels = np.full(values.shape, BACKGROUND, np.uint8)
    for value, canonical in lookup.items():
        labels[values == value] = canonical
    return labels


def _check_known_values(values: np.ndarray, lookup: dict[int, int], where: Path, other: Sequence[int]) -> None:
    """Under the bonefe convention (bone 1, lytic 2, blastic 3) refuse any other nonzero value not named
    elsewhere in the case (`other`: label_values.other, calibration rods and tissues): it is a damaged
    or foreign label map. Named label_values of another convention leave others as background."""
    if lookup != _label_lookup(None):
        return
    unknown = np.setdiff1d(np.unique(values), [0, *lookup, *other])
    if unknown.size:
        raise BonefeError(f"{where}: label value(s) {_present_values(unknown)} are not bone (1), lytic (2) or "
                          "blastic (3); fix the label map, or name them in label_values (e.g. label_values.other)")


def _present_values(values: np.ndarray, limit: int = 20) -> str:
    """The nonzero values present in a label array, as short text."""
    present = np.unique(values)
    present = present[present != 0]
    text = ", ".join(str(int(v)) for v in present[:limit])
    return (text + ", …" if len(present) > limit else text) or "none (all 0)"


def _check_lesions_touch_bone(labels: np.ndarray, affine: np.ndarray, where: Path) -> None:
    """Refuse a lesion region (26-connected) that has no bone voxel among its 26 neighbours."""
    lesion = (labels == LYTIC) | (labels == BLASTIC)
    if not lesion.any():
        return
    cube = np.ones((3, 3, 3), bool)
    regions, count = ndimage.label(lesion, structure=cube)
    near_bone = ndimage.binary_dilation(labels == BONE, structure=cube)
    touching = np.unique(regions[near_bone & lesion])
    outside = np.setdiff1d(np.arange(1, count + 1), touching)
    if outside.size:
        ijk = np.argwhere(regions == outside[0]).mean(axis=0)
        xyz = affine[:3, :3] @ ijk + affine[:3, 3]
        raise BonefeError(f"{where}: lesion label outside the bone: {outside.size} lesion region(s) "
                          "touch no bone voxel "
                          f"(one near LPS ({xyz[0]:.1f}, {xyz[1]:.1f}, {xyz[2]:.1f}) mm); fix the segmentation")


def read_volume(ct_path: str | Path, labels_path: str | Path,
                label_values: Mapping[str, int | list[int]] | None = None,
                resample_labels: bool = False, series: str | int | None = None,
                other_values: Sequence[int] = ()) -> Volume:
    """Read a CT (HU) and its label map into one Volume on the CT's grid.

    label_values maps "bone", "lytic", "blastic" to the label map's values (an int or a list); None means
    bone=1, lytic=2, blastic=3, and any other nonzero value is refused. Under another mapping, classes
    not named are absent and unmapped values are background, so a multi-label map (e.g.
    TotalSegmentator) works by naming its bone's value. With resample_labels the
    label map is resampled onto the CT grid by nearest neighbour; otherwise the grids must match.
    series: which series of a DICOM folder is the CT (`bonefe.dicom_series.series_files`).
    other_values: label values the case names for other purposes (label_values.other, calibration
    rods and tissues): known, read as background.
    """
    lookup = _label_lookup(label_values)
    ct_image, label_image = read_sitk(ct_path, series), read_sitk(labels_path)
    difference = _grid_difference(label_image, ct_image)
    if difference and not resample_labels:
        raise BonefeError(f"{labels_path}: the label map is not on the CT's voxel grid ({difference} differ); "
                          "set `resample_labels: true` to resample it onto the CT")
    if difference:
        label_image = sitk.Resample(label_image, ct_image, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    hu = sitk_array(ct_image).astype(np.float32)
    if not np.all(np.isfinite(hu)):
        raise BonefeError(f"{ct_path}: the CT holds {np.count_nonzero(~np.isfinite(hu))} NaN or infinite values; "
                          "give a CT in finite Hounsfield units")
    values = sitk_array(label_image)
    labels = _canonical_labels(values, lookup, Path(labels_path))
    _check_known_values(values, lookup, Path(labels_path), other_values)
    if not (labels == BONE).any():
        bone = sorted(v for v, c in lookup.items() if c == BONE)
        raise BonefeError(f"{labels_path}: no bone voxels for bone label value(s) {bone or 'none given'}; "
                          f"values present: {_present_values(values)}; set label_values.bone")
    affine = sitk_affine(ct_image)
    _check_lesions_touch_bone(labels, affine, Path(labels_path))
    return Volume(hu=hu, labels=labels, affine=affine)

"""The specimen's volume: the image (a TIFF stack, any image SimpleITK reads, or a generated block),
downsampled, and which of its voxels are the specimen.

The image values stay as they are (grey values of a micro-CT, HU of a clinical CT) in
`Volume.hu`; the material law reads them (`bonefe.sites.specimen.case.SpecimenMaterial`). Labels:
1 (bone) on the specimen's voxels, 0 elsewhere; a box specimen is every voxel of the image.

TIFF stacks are read with Pillow, which the environment already has (tifffile is not installed):
slices in file-name order are k, a slice's columns i and rows j. Every specimen lives in its image
box's frame (mm, no patient orientation): voxel (i, j, k) is centred at ((i, j, k) + ½) · voxel
size, so the box spans [0, n · voxel size] along each axis (after downsampling too); an image
file's own origin and orientation are not used (oblique images are refused).
"""

from pathlib import Path

import numpy as np
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.sites.specimen.case import BlockPhantom, ImageOptions, Segmentation
from bonefe.volume import BONE, Volume

TIFF_SUFFIXES = (".tif", ".tiff")


def _tiff_pages(path: Path) -> list[np.ndarray]:
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        return [np.asarray(page) for page in ImageSequence.Iterator(image)]


def _read_tiff(path: Path) -> np.ndarray:
    """Array [i, j, k] of a folder of TIFF slices (name order) or a multi-page TIFF."""
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in TIFF_SUFFIXES) if path.is_dir() else [path]
    if not files:
        raise BonefeError(f"image.path {path} holds no .tif/.tiff slices: give the folder of the stack")
    try:
        slices = [page for f in files for page in _tiff_pages(f)]
    except OSError as error:
        raise BonefeError(f"cannot read the TIFF stack {path.name}: {error}") from None
    shapes = {s.shape for s in slices}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise BonefeError(f"the TIFF stack {path.name} mixes slice sizes or holds colour slices {sorted(shapes)}: "
                          "give single-channel slices of one size")
    return np.stack(slices, axis=-1).transpose(1, 0, 2)  # slices [row j, column i] -> [i, j, k]


def _read(options: ImageOptions) -> tuple[np.ndarray, np.ndarray]:
    """Image values [i, j, k] and the voxel size (mm, 3) before downsampling."""
    path = options.path
    if not path.exists():
        raise BonefeError(f"image.path {path} not found")
    if path.is_dir() or path.suffix.lower() in TIFF_SUFFIXES:
        if options.voxel_mm is None:
            raise BonefeError("image.voxel_mm is required for a TIFF stack (its header rarely holds it): "
                              "give the voxel size in mm")
        values = _read_tiff(path)
        spacing = np.broadcast_to(np.asarray(options.voxel_mm, float), (3,)).copy()
        return values, spacing
    from bonefe.imaging import read_image

    values, affine = read_image(path)
    if not np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3]))):
        raise BonefeError(f"{path.name} has oblique or permuted axes: resample it to axis-aligned voxels for a specimen")
    spacing = np.abs(np.diag(affine[:3, :3])) if options.voxel_mm is None else \
        np.broadcast_to(np.asarray(options.voxel_mm, float), (3,)).copy()
    return values, spacing


def downsample(values: np.ndarray, factor: int) -> np.ndarray:
    """Means of factor³ blocks (partial blocks at the far faces dropped)."""
    if factor == 1:
        return values.astype(np.float32)
    shape = np.array(values.shape) // factor
    if np.any(shape < 3):
        raise BonefeError(f"image.downsample {factor} leaves fewer than 3 voxels along an axis: use a smaller factor")
    cut = values[: shape[0] * factor, : shape[1] * factor, : shape[2] * factor].astype(np.float32)
    return cut.reshape(shape[0], factor, shape[1], factor, shape[2], factor).mean(axis=(1, 3, 5))


def block_phantom(spec: BlockPhantom) -> Volume:
    """The generated block: uniform grey `spec.grey` over size_mm / voxel_mm voxels (rounded)."""
    shape = np.maximum(np.rint(np.asarray(spec.size_mm) / spec.voxel_mm).astype(int), 3)
    return Volume(np.full(shape, spec.grey, np.float32), np.full(shape, BONE, np.uint8), box_affine([spec.voxel_mm] * 3))


def _segment(values: np.ndarray, segmentation: Segmentation, factor: int) -> np.ndarray:
    """Labels (1 on the specimen) from a threshold (largest face-connected part) or a label map."""
    if segmentation.threshold is not None:
        mask = values >= segmentation.threshold
        parts, count = ndimage.label(mask)
        if count > 1:
            mask = parts == 1 + int(np.argmax(np.bincount(parts.ravel())[1:]))
    else:
        raw = region_labels(segmentation, factor, values.shape)
        mask = raw == segmentation.value
    if not mask.any():
        raise BonefeError("the specimen holds no voxel: lower specimen.threshold or check specimen.labels and value")
    return mask.astype(np.uint8) * BONE


def region_labels(segmentation: Segmentation, factor: int, shape) -> np.ndarray:
    """The segmentation's label map on the (downsampled) image grid: every factor-th voxel."""
    from bonefe.imaging import read_image

    if not segmentation.labels.exists():
        raise BonefeError(f"specimen.labels {segmentation.labels} not found")
    raw, _ = read_image(segmentation.labels)
    raw = np.asarray(raw)[::factor, ::factor, ::factor][: shape[0], : shape[1], : shape[2]]
    if raw.shape != tuple(shape):
        raise BonefeError(f"specimen.labels has {raw.shape} voxels, the image {tuple(shape)}: give a label map on the image's grid")
    return raw


def read_specimen(image: ImageOptions, specimen) -> Volume:
    """The specimen's volume (module docstring): image values, labels and the voxel → world map."""
    if image.phantom is not None:
        return block_phantom(image.phantom)
    values, spacing = _read(image)
    values = downsample(values, image.downsample)
    labels = np.full(values.shape, BONE, np.uint8) if specimen == "box" else _segment(values, specimen, image.downsample)
    return Volume(values, labels, box_affine(spacing * image.downsample))


def box_affine(spacing) -> np.ndarray:
    """Voxel → world map of the image box frame: voxel (i, j, k) centred at ((i, j, k) + ½) · spacing,
    so the image box spans [0, n · spacing] along each axis (mm)."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = np.asarray(spacing, float) / 2
    return affine

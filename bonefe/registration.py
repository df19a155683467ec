"""Rigid (or affine) registration of a later CT of the same bone to the baseline CT.

SimpleITK's registration framework (Lowekamp et al. 2013, Front Neuroinform 7:45): mean-squares
HU metric evaluated in the baseline's bone envelope dilated by MASK_MARGIN_MM (bone-masked, so soft
tissue and table positions do not pull the bone), Euler 3-D transform (affine as an option)
started from the bone centroids, regular-step gradient descent over three resolution levels
(shrink 4, 2, 1; smoothing 2, 1, 0 voxels), linear interpolation; affine refines the rigid result.

The transform T maps baseline world points (LPS mm) to later world points, as ITK's registration
does: the later scan's voxel at T(x) shows the tissue the baseline shows at x.

The residual reported is the bone-surface distance after registration: the mean, over the surface
voxels of either bone envelope, of the distance (mm) to the other envelope's surface, with the
later envelope resampled into the baseline grid; and the Dice overlap of the two envelopes.
A registration fails (BonefeError) when the optimiser stops at its iteration limit on any level (the
first such level ends it, so a different bone is refused at the coarse level: 0.6 s against 18 s
for the test phantoms), the residual exceeds MAX_SURFACE_RESIDUAL_MM, or the Dice overlap is below
MIN_DICE; before any of this, two scans whose bone volumes differ by more than
MAX_BONE_VOLUME_RATIO do not show the same bone.
"""

from dataclasses import dataclass, replace

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.imaging import sitk_array, to_sitk
from bonefe.volume import BACKGROUND, Volume

MASK_MARGIN_MM = 3.0
"""Soft tissue kept around the baseline bone in the metric mask (mm): the periosteal edge carries the
strongest gradient of the metric, so it must lie inside the mask."""
MAX_SURFACE_RESIDUAL_MM = 2.0
"""Largest accepted mean bone-surface distance after registration (mm): two voxels of a 1 mm scan,
well above the sub-voxel residual of a registration of the same bone (0.3–0.6 mm in tests)."""
MIN_DICE = 0.90
"""Smallest accepted Dice overlap of the bone envelopes after registration."""
MAX_BONE_VOLUME_RATIO = 1.25
"""Largest accepted ratio of the two scans' bone volumes: a lesion changes the bone envelope by a few
per cent, a different bone or field of view by much more."""
ITERATIONS = 500
"""Iteration limit per resolution level; stopping there counts as not converged."""
RIGID_MIN_STEP = 1e-5
"""Smallest step of the rigid optimiser (scaled units: mm of largest physical shift)."""
LEVELS = ((4, 2.0), (2, 1.0), (1, 0.0))
"""Resolution levels, coarse to fine: (shrink factor, smoothing sigma)."""
AFFINE_MIN_STEP = 1e-4
"""Smallest step of the affine refinement, at full resolution only (1e-3 stopped 1° and 0.7 mm off a
known rigid motion on the phantom, 1e-4 within 0.01° and 0.05 mm)."""


@dataclass(frozen=True)
class Registration:
    """A registration of a later scan to the baseline.

    matrix: 4×4 map from baseline world (LPS mm) to later world; kind: "rigid" or "affine";
    rotation_deg: rotation angle of its linear part (deg, the polar rotation for affine);
    translation_mm: displacement of the baseline bone centroid (mm);
    surface_residual_mm, dice: the residual (module docstring); metric: final mean-squares value (HU²).
    """

    matrix: np.ndarray
    kind: str
    rotation_deg: float
    translation_mm: float
    surface_residual_mm: float
    dice: float
    metric: float

    def to_baseline(self, points: np.ndarray) -> np.ndarray:
        """Baseline world coordinates (n, 3) of later-scan world points (n, 3), mm."""
        inverse = np.linalg.inv(self.matrix)
        return np.asarray(points, float) @ inverse[:3, :3].T + inverse[:3, 3]

    def as_dict(self) -> dict:
        return {"kind": self.kind, "matrix": self.matrix.tolist(), "rotation_deg": self.rotation_deg,
                "translation_mm": self.translation_mm, "surface_residual_mm": self.surface_residual_mm,
                "dice": self.dice, "metric_hu2": self.metric}


def _bone_centroid(volume: Volume) -> np.ndarray:
    return volume.to_world(np.argwhere(volume.labels != BACKGROUND).mean(axis=0)[None])[0]


def _check_same_bone(fixed: Volume, moving: Volume) -> None:
    volumes = [np.count_nonzero(v.labels != BACKGROUND) * v.voxel_volume / 1000.0 for v in (fixed, moving)]
    if min(volumes) == 0 or max(volumes) / min(volumes) > MAX_BONE_VOLUME_RATIO:
        raise BonefeError(f"the scans hold {volumes[0]:.0f} and {volumes[1]:.0f} cm³ of bone: they do not show the "
                          "same bone over the same extent (different bone or field of view); give scans of one bone")


def _initial_rigid(fixed: Volume, moving: Volume) -> sitk.Euler3DTransform:
    """Identity rotation about the baseline bone centroid, translated onto the later bone centroid."""
    centre = _bone_centroid(fixed)
    transform = sitk.Euler3DTransform()
    transform.SetCenter(centre.tolist())
    transform.SetTranslation((_bone_centroid(moving) - centre).tolist())
    return transform


def _matrix(transform: sitk.Transform) -> np.ndarray:
    """4×4 matrix of a centred ITK transform: x ↦ A(x − c) + c + t."""
    A = np.array(transform.GetMatrix()).reshape(3, 3)
    c, t = np.array(transform.GetCenter()), np.array(transform.GetTranslation())
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = A, c + t - A @ c
    return matrix


def _rotation_deg(linear: np.ndarray) -> float:
    u, _, vt = np.linalg.svd(linear)
    rotation = u @ vt
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))))


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def surface_residual(a: np.ndarray, b: np.ndarray, spacing) -> tuple[float, float]:
    """Mean symmetric surface distance (mm) and Dice of two masks on one grid of voxel size `spacing`."""
    sa, sb = _surface(a), _surface(b)
    to_b = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    to_a = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    dice = 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)
    return float(np.concatenate([to_b, to_a]).mean()), float(dice)


def resample_to_baseline(moving: Volume, fixed: Volume, registration: Registration) -> Volume:
    """The later volume on the baseline grid: HU linear (−1000 HU outside its field of view), labels nearest."""
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(registration.matrix[:3, :3].ravel().tolist())
    transform.SetTranslation(registration.matrix[:3, 3].tolist())
    reference = to_sitk(np.zeros(fixed.hu.shape, np.uint8), fixed.affine)

    def resample(array, interpolator, default):
        image = sitk.Resample(to_sitk(array, moving.affine), reference, transform, interpolator, default)
        return sitk_array(image)

    return Volume(hu=resample(moving.hu.astype(np.float32), sitk.sitkLinear, -1000.0).astype(np.float32),
                  labels=resample(moving.labels, sitk.sitkNearestNeighbor, 0).astype(np.uint8),
                  affine=fixed.affine)


def _optimise_level(fixed_image, moving_image, mask, transform: sitk.Transform, min_step: float, shrink: int,
                    sigma: float) -> float:
    """One resolution level of the optimisation (module docstring), updating `transform` in place;
    the final metric. BonefeError when the level stops at its iteration limit."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=min_step, numberOfIterations=ITERATIONS,
                                                     relaxationFactor=0.7, gradientMagnitudeTolerance=1e-10)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([shrink])
    method.SetSmoothingSigmasPerLevel([sigma])
    method.SetInitialTransform(transform, inPlace=True)
    try:
        method.Execute(fixed_image, moving_image)
    except RuntimeError as error:
        raise BonefeError(f"registration failed ({str(error).strip().splitlines()[-1][:120]}): the scans do not "
                          "overlap enough to register; check that both show the same bone") from None
    if "Maximum number of iterations" in method.GetOptimizerStopConditionDescription():
        raise BonefeError(f"registration did not converge in {ITERATIONS} iterations: the scans differ too much "
                          "in position or content; check that both show the same bone")
    return float(method.GetMetricValue())


def _optimise(fixed_image, moving_image, mask, initial: sitk.Transform, min_step: float = RIGID_MIN_STEP,
              levels: int = 3) -> tuple[sitk.Transform, float]:
    """One optimisation (module docstring) from `initial` over the last `levels` resolution levels,
    coarse to fine, each level its own optimiser run (the same steps as ITK's multi-resolution run),
    so that scans which cannot be registered are refused at the coarsest level that fails: the
    transform and final metric."""
    for shrink, sigma in LEVELS[-levels:]:
        metric = _optimise_level(fixed_image, moving_image, mask, initial, min_step, shrink, sigma)
    return initial, metric


def register(fixed: Volume, moving: Volume, kind: str = "rigid") -> Registration:
    """Register the later scan `moving` to the baseline `fixed` (module docstring); affine starts from
    the rigid result. BonefeError when the scans do not show the same bone or registration fails."""
    if kind not in ("rigid", "affine"):
        raise BonefeError(f"registration must be rigid or affine (got {kind!r})")
    _check_same_bone(fixed, moving)
    bone = fixed.labels != BACKGROUND
    margin = max(1, int(round(MASK_MARGIN_MM / fixed.spacing.min())))
    mask = to_sitk(ndimage.binary_dilation(bone, iterations=margin).astype(np.uint8), fixed.affine)
    clip = (-200.0, 2000.0)  # air and metal would dominate squared HU differences
    images = [to_sitk(np.clip(v.hu, *clip).astype(np.float32), v.affine) for v in (fixed, moving)]
    transform, metric = _optimise(*images, mask, _initial_rigid(fixed, moving))
    if kind == "affine":
        affine = sitk.AffineTransform(3)
        affine.SetCenter(transform.GetCenter())
        affine.SetMatrix(transform.GetMatrix())
        affine.SetTranslation(transform.GetTranslation())
        transform, metric = _optimise(*images, mask, affine, AFFINE_MIN_STEP, levels=1)
    matrix = _matrix(transform)
    centroid = _bone_centroid(fixed)
    registration = Registration(matrix, kind, _rotation_deg(matrix[:3, :3]),
                                float(np.linalg.norm(matrix[:3, :3] @ centroid + matrix[:3, 3] - centroid)),
                                0.0, 0.0, metric)
    moved = resample_to_baseline(moving, fixed, registration).labels != BACKGROUND
    residual, dice = surface_residual(bone, moved, fixed.spacing)
    if residual > MAX_SURFACE_RESIDUAL_MM or dice < MIN_DICE:
        raise BonefeError(f"registration failed: bone surfaces {residual:.1f} mm apart after registration "
                          f"(limit {MAX_SURFACE_RESIDUAL_MM:g} mm), overlap (Dice) {dice:.2f}; the scans do not "
                          "show the same bone in overlapping fields of view")
    return replace(registration, surface_residual_mm=residual, dice=dice)

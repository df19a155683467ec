"""A CT-like volume and label map from a real bone surface (STL, VTK, PLY, OBJ; mm).

`bonefe phantom --surface OUTER.stl [--inner INNER.stl]` turns a segmented femur surface into what
a CT and its segmentation would give, so the whole pipeline runs on real anatomy:

1. Surfaces are read with pyvista, triangulated and cleaned (duplicate STL corners merged); a
   surface left open (e.g. a proximal femur cut through the shaft) has its holes capped and must
   then be closed. Coordinates are taken as world LPS mm (the frame of `bonefe.volume`).
2. Voxelisation: a voxel belongs to a surface's inside when its centre does (VTK's
   vtkPolyDataToImageStencil, a scan-line fill); the voxel count × voxel volume estimates the
   enclosed volume without bias (the staircase errors cancel). The periosteal envelope (outer
   surface) is label BONE, as clinical segmentations are; soft tissue (HU_SOFT_TISSUE) fills a
   margin of MARGIN_MM around it.
3. Cortex. With an inner (endosteal) surface: the voxels inside the outer and not inside the inner
   one. Where the inner surface comes closer than MIN_CORTEX_MM to the outer one or pokes through
   it (coarse segmentations do), it is clipped: inner voxels less than MIN_CORTEX_MM deep below the
   periosteal surface count as cortex, so the cortex is nowhere thinner than MIN_CORTEX_MM. Without
   an inner surface, the procedural phantom's thickness model (`bonefe.sites.femur.phantom`): cortex = depth
   below the periosteal surface < t, t = CORTEX_DIAPHYSIS_MM in the diaphysis and
   CORTEX_PROXIMAL_MM in the proximal femur (from 65 mm below the head centre up) and, when the
   knee is in the scan, in the distal metaphysis and condyles (below DISTAL_METAPHYSIS_MM[0] above
   the knee centre), joined by smoothsteps. Depth is the exact Euclidean distance transform.
4. CT values (HU), the procedural phantom's documented ranges (cortex 1500–1700, trabecular
   150–380, marrow 45, soft tissue 40; `bonefe.sites.femur.phantom`): cortex 1700 HU in the diaphysis, 1500 HU
   in the epiphyses; inside, trabecular bone in the proximal femur and (with the knee) the distal
   metaphysis, marrow in the diaphysis, blended like the cortex. Trabecular HU =
   190 + 130·exp(−|p − head centre|²/R²) + 150·exp(−(d/(0.31 R))²) + ENDOSTEAL_HU·exp(−e/3 mm),
   clipped to TRABECULAR_HU_RANGE, with d the distance to the principal compressive group (a
   segment from 0.5 R above the head centre to the calcar: the medial endosteum 2.2 R below the
   head centre, 0.58 R medial of the shaft axis, the procedural phantom's 50 mm and 13 mm for
   R = 22.5 mm) and e the depth below the endosteal surface: denser in the head, along the
   compressive group and next to the cortex, as QCT of the proximal femur shows.
5. Landmarks: `bonefe.sites.femur.anatomy.femur_frame` on the lesion-free label map; lesions
   (`bonefe.sites.femur.lesions`) are placed through that frame on the voxel surface, then noise is added.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage

from bonefe.sites.femur.anatomy import FemurFrame, femur_frame
from bonefe.errors import BonefeError, require_within
from bonefe.imaging import write_image
from bonefe.sites.femur.lesions import canonical_site, place_lesion
from bonefe.outputs import atomic_write_json
from bonefe.sites.femur.phantom import CORTEX_DIAPHYSIS_MM, CORTEX_PROXIMAL_MM, MARGIN_MM, TRABECULAR_HU_RANGE
from bonefe.sites.long_bone.lesions import Lesion, VoxelBone, in_ball
from bonefe.sites.long_bone.phantom import (FORMATS, HU_BLASTIC, HU_CORTEX_DIAPHYSIS, HU_CORTEX_PROXIMAL, HU_LYTIC, HU_MARROW,
                                            HU_SOFT_TISSUE, smoothstep)
from bonefe.volume import BACKGROUND, BONE, LYTIC, Volume

MIN_CORTEX_MM = 1.0
"""Thinnest cortex kept where the inner surface nears or crosses the outer one (mm): about the
thinnest cortex of the femoral neck and condyles (0.5–1.5 mm) resolvable at clinical CT voxels."""
PROXIMAL_MM = (65.0, 100.0)
"""Below the head centre (mm): epiphyseal cortex and trabecular interior above the first value,
diaphysis below the second (the procedural phantom's transition)."""
DISTAL_METAPHYSIS_MM = (55.0, 90.0)
"""Above the knee centre (mm): condylar cortex and trabecular interior below the first value,
diaphysis above the second (the distal metaphysis is about one condylar width, ≈ 80 mm, tall)."""
ENDOSTEAL_HU = 80.0
"""Extra trabecular HU next to the endosteal surface, decaying over 3 mm."""
CALCAR_RADII = (2.2, 0.58)
"""The calcar (lower end of the principal compressive group): head radii below the head centre and
medial of the shaft axis."""


@dataclass(frozen=True)
class SurfaceSpec:
    """A real bone surface turned into a phantom. Lengths in mm, CT values in HU.

    outer: periosteal surface file; inner: endosteal surface file or None (thickness model);
    voxel_mm: isotropic voxel size; side: "left" or "right" (checked against the anatomy);
    lesion_site: a site of `bonefe.sites.femur.lesions` or None; lesion_type, lesion_diameter_mm,
    cortical_involvement: as in `bonefe.sites.femur.phantom.PhantomSpec`; noise_hu, seed: Gaussian CT noise.
    """

    outer: Path
    inner: Path | None = None
    voxel_mm: float = 1.0
    side: Literal["left", "right"] = "left"
    lesion_site: str | None = None
    lesion_type: Literal["lytic", "blastic"] = "lytic"
    lesion_diameter_mm: float = 20.0
    cortical_involvement: float = 0.5
    noise_hu: float = 0.0
    seed: int = 0

    def __post_init__(self):
        ranges = {"voxel_mm": (0.25, 3.0), "lesion_diameter_mm": (2.0, 50.0), "cortical_involvement": (0.0, 1.0),
                  "noise_hu": (0.0, 500.0)}
        require_within("phantom", self, ranges)
        if self.lesion_site is not None:
            canonical_site(self.lesion_site)


def read_surface(path: str | Path):
    """A closed triangle surface (pyvista PolyData, mm) from a mesh file; holes are capped."""
    import pyvista as pv

    path = Path(path)
    if not path.is_file():
        raise BonefeError(f"surface file {path} not found: give an STL, VTK, PLY or OBJ surface in mm")
    try:
        surface = pv.read(path)
    except (ValueError, OSError) as error:
        raise BonefeError(f"{path.name}: cannot read it as a surface mesh ({error})") from None
    surface = surface.extract_surface(algorithm="dataset_surface").triangulate().clean()
    if surface.n_cells == 0:
        raise BonefeError(f"{path.name}: the file holds no surface triangles")
    if surface.n_open_edges:
        surface = surface.fill_holes(1e9).clean()
    if surface.n_open_edges:
        raise BonefeError(f"{path.name}: the surface is not closed ({surface.n_open_edges} open edges remain "
                          "after capping holes); repair it (e.g. in MeshLab) first")
    return surface


def voxelise(surface, origin: np.ndarray, voxel_mm: float, shape: tuple[int, int, int]) -> np.ndarray:
    """Bool mask [i, j, k]: voxel centres (origin + h·(i, j, k), mm) inside the closed surface."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkImagingStencil import vtkImageStencilToImage, vtkPolyDataToImageStencil

    stencil = vtkPolyDataToImageStencil()
    stencil.SetInputData(surface)
    stencil.SetOutputOrigin(*map(float, origin))
    stencil.SetOutputSpacing(voxel_mm, voxel_mm, voxel_mm)
    stencil.SetOutputWholeExtent(0, shape[0] - 1, 0, shape[1] - 1, 0, shape[2] - 1)
    image = vtkImageStencilToImage()
    image.SetInputConnection(stencil.GetOutputPort())
    image.SetInsideValue(1)
    image.SetOutsideValue(0)
    image.SetOutputScalarTypeToUnsignedChar()
    image.Update()
    values = vtk_to_numpy(image.GetOutput().GetPointData().GetScalars())
    return values.reshape(shape[::-1]).transpose(2, 1, 0).astype(bool)


def _grid(surface, voxel_mm: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Origin (a multiple of the voxel size, mm) and shape of a grid holding the surface + MARGIN_MM."""
    bounds = np.array(surface.bounds).reshape(3, 2)
    lo = np.floor((bounds[:, 0] - MARGIN_MM) / voxel_mm) * voxel_mm
    hi = np.ceil((bounds[:, 1] + MARGIN_MM) / voxel_mm) * voxel_mm
    return lo, tuple(int(n) for n in np.round((hi - lo) / voxel_mm).astype(int) + 1)


@dataclass(frozen=True)
class _Regions:
    """Weights (1 epiphyseal … 0 diaphyseal) of the cortex and of the interior on the grid."""

    cortex: np.ndarray
    interior: np.ndarray


def _regions(frame: FemurFrame, points: tuple) -> _Regions:
    """Epiphyseal weights from the height along the frame's superior axis (module docstring, 3–4)."""
    superior = frame.superior()
    height = sum(points[a] * superior[a] for a in range(3))
    below_head = float(np.asarray(frame.head_centre) @ superior) - height
    cortex = smoothstep((PROXIMAL_MM[1] - below_head) / (PROXIMAL_MM[1] - PROXIMAL_MM[0]))
    interior = smoothstep((PROXIMAL_MM[1] + 5.0 - below_head) / (PROXIMAL_MM[1] - PROXIMAL_MM[0]))
    if frame.knee_centre is not None:
        above_knee = height - float(np.asarray(frame.knee_centre) @ superior)
        span = DISTAL_METAPHYSIS_MM[1] - DISTAL_METAPHYSIS_MM[0]
        cortex = np.maximum(cortex, smoothstep((DISTAL_METAPHYSIS_MM[1] - above_knee) / span))
        interior = np.maximum(interior, smoothstep((DISTAL_METAPHYSIS_MM[1] + 5.0 - above_knee) / span))
    return _Regions(cortex, interior)


def _trabecular_hu(frame: FemurFrame, points: tuple, endosteal_depth: np.ndarray) -> np.ndarray:
    """Trabecular HU (module docstring, 4)."""
    medial, _, superior = frame.basis().T
    radius, head = frame.head_radius, np.asarray(frame.head_centre, float)
    top = head + 0.5 * radius * superior
    shaft = np.asarray(frame.shaft_axis, float)
    level = (head - CALCAR_RADII[0] * radius * superior) @ superior
    base = np.asarray(frame.distal_centre, float)
    on_axis = base + (level - base @ superior) / (shaft @ superior) * shaft
    segment = on_axis + CALCAR_RADII[1] * radius * medial - top
    q = [points[a] - top[a] for a in range(3)]
    s = np.clip(sum(q[a] * segment[a] for a in range(3)) / (segment @ segment), 0.0, 1.0)
    d2 = sum((q[a] - s * segment[a]) ** 2 for a in range(3))
    r2 = sum((points[a] - head[a]) ** 2 for a in range(3))
    hu = (190.0 + 130.0 * np.exp(-r2 / radius ** 2) + 150.0 * np.exp(-d2 / (0.31 * radius) ** 2)
          + ENDOSTEAL_HU * np.exp(-endosteal_depth / 3.0))
    return np.clip(hu, *TRABECULAR_HU_RANGE)


def depth_below(envelope: np.ndarray, voxel_mm: float) -> np.ndarray:
    """Depth (mm) of voxel centres below the periosteal surface: exact Euclidean distance transform of
    the envelope less half a voxel (the surface lies midway between voxel centres)."""
    return ndimage.distance_transform_edt(envelope, sampling=voxel_mm) - 0.5 * voxel_mm


def cortex_between(envelope: np.ndarray, inner: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Cortex between the outer and inner surfaces, nowhere thinner than MIN_CORTEX_MM (module docstring, 3)."""
    return envelope & ~(inner & (depth >= MIN_CORTEX_MM))


def cortex_model(envelope: np.ndarray, depth: np.ndarray, epiphyseal: np.ndarray) -> np.ndarray:
    """Cortex of the thickness model: depth < t, t from CORTEX_DIAPHYSIS_MM (weight 0) to
    CORTEX_PROXIMAL_MM (weight 1, the epiphyses) (module docstring, 3)."""
    thickness = CORTEX_DIAPHYSIS_MM + (CORTEX_PROXIMAL_MM - CORTEX_DIAPHYSIS_MM) * epiphyseal
    return envelope & (depth < thickness)


@dataclass(frozen=True)
class SurfacePhantom:
    """The result: the Volume (with the lesion, if any), the frame found on the lesion-free volume,
    the cortex mask, the lesion placed (or None) and the volumes enclosed by the surfaces (mm³)."""

    volume: Volume
    frame: FemurFrame
    cortex: np.ndarray
    lesion: Lesion | None
    surface_volumes: dict


def make_surface_phantom(spec: SurfaceSpec, landmarks: dict | None = None) -> SurfacePhantom:
    """Build the phantom of `spec` (module docstring); landmarks override the femur frame."""
    outer = read_surface(spec.outer)
    inner_surface = read_surface(spec.inner) if spec.inner is not None else None
    h = spec.voxel_mm
    origin, shape = _grid(outer, h)
    envelope = voxelise(outer, origin, h, shape)
    if not envelope.any():
        raise BonefeError(f"{Path(spec.outer).name}: no voxel centre lies inside the surface at {h:g} mm voxels; "
                          "use smaller voxels")
    inner = voxelise(inner_surface, origin, h, shape) if inner_surface is not None else None
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = h * np.eye(3), origin
    labels = np.where(envelope, BONE, BACKGROUND).astype(np.uint8)
    frame = femur_frame(Volume(np.zeros(shape, np.float32), labels, affine), spec.side, landmarks)
    points = np.meshgrid(*[origin[a] + h * np.arange(shape[a]) for a in range(3)], indexing="ij", sparse=True)
    depth = depth_below(envelope, h)
    regions = _regions(frame, points)
    cortex = (cortex_between(envelope, inner, depth) if inner is not None
              else cortex_model(envelope, depth, regions.cortex))
    endosteal = depth_below(envelope & ~cortex, h)
    inside_hu = HU_MARROW + (_trabecular_hu(frame, points, endosteal) - HU_MARROW) * regions.interior
    cortex_hu = HU_CORTEX_DIAPHYSIS + (HU_CORTEX_PROXIMAL - HU_CORTEX_DIAPHYSIS) * regions.cortex
    hu = np.where(cortex, cortex_hu, np.where(envelope, inside_hu, HU_SOFT_TISSUE)).astype(np.float32)
    lesion = None
    if spec.lesion_site is not None:
        lesion = place_lesion(spec.lesion_site, frame, VoxelBone(envelope, cortex, affine), spec.lesion_diameter_mm,
                              spec.cortical_involvement, spec.lesion_type)
        inside = envelope & in_ball(points, lesion.centre, lesion.radius_mm)
        hu[inside] = HU_LYTIC if lesion.label == LYTIC else HU_BLASTIC
        labels[inside] = lesion.label
    if spec.noise_hu > 0:
        hu += np.random.default_rng(spec.seed).normal(0.0, spec.noise_hu, hu.shape).astype(np.float32)
    volumes = {"outer": float(outer.volume), "inner": float(inner_surface.volume) if inner_surface else None}
    return SurfacePhantom(Volume(hu, labels, affine), frame, cortex, lesion, volumes)


def write_surface_phantom(spec: SurfaceSpec, out_dir: str | Path, fmt: str = "nii.gz",
                          landmarks: dict | None = None) -> dict[str, Path]:
    """Write ct.<fmt>, labels.<fmt> and phantom.json (spec, frame, lesion, volumes) into out_dir, atomically."""
    if fmt not in FORMATS:
        raise BonefeError(f"phantom: format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    phantom = make_surface_phantom(spec, landmarks)
    volume = phantom.volume
    out_dir = Path(out_dir)
    paths = {"ct": out_dir / f"ct.{fmt}", "labels": out_dir / f"labels.{fmt}", "json": out_dir / "phantom.json"}
    write_image(paths["ct"], volume.hu, volume.affine)
    write_image(paths["labels"], volume.labels, volume.affine)
    spec_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(spec).items()}
    spec_dict.update(outer=Path(spec.outer).name, inner=spec.inner and Path(spec.inner).name)
    description = {
        "spec": spec_dict,
        "frame": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(phantom.frame).items()},
        "lesion": phantom.lesion.as_dict() if phantom.lesion else {},
        "surface_volumes_mm3": phantom.surface_volumes,
        "min_cortex_mm": MIN_CORTEX_MM if spec.inner is not None else None,
        "shape": list(volume.hu.shape),
        "voxel_counts": {"bone": int(np.count_nonzero(volume.labels == BONE)),
                         "cortex": int(np.count_nonzero(phantom.cortex)),
                         "lesion": int(np.count_nonzero(volume.labels >= LYTIC))},
    }
    atomic_write_json(paths["json"], description)
    return paths

"""A specimen case file: the image, which voxels are the specimen, its material and the rig.

    site: specimen
    name: microct-cube
    image: {path: ../data/stack/, voxel_mm: 0.0195, downsample: 8}   # or phantom: {...}
    specimen: box                                 # or {threshold: 63} or {labels: l.nii.gz, value: 1}
    material: {grey_power: {scale_mpa: 18000, exponent: 2.5, reference_grey: 250}, poisson: 0.3}
    rig:
      fixed: {plane: {point: [0, 0, 0], normal: [0, 0, 1], depth_mm: 0.0}}   # layer: {E_mpa, nu, thickness_mm}
      loaded: {plane: {point: [0, 0, 3.9], normal: [0, 0, -1]}}
      displacement_mm: [0, 0, -0.04]              # or force_n: [0, 0, -500]
      # rotation_deg: [0, 0, 1] or moment_nmm: [0, 0, 0] (free plate); pivot: [x, y, z]
    mesh: {size_mm: 0.2}
    failure: {averaging_radius_mm: 0.5, exclusion_mm: 0.5}

World coordinates are the image box's (mm): the box spans [0, n · voxel size] along each axis
(`bonefe.sites.specimen.reading`; a TIFF stack's i, j, k are its columns, rows, slices). Planes point into the specimen: a region is the specimen's
exterior facets whose vertices all lie within depth_mm of the plane on the specimen's side (or
beyond it), so depth 0 takes a flat cut face and a depth of 20 mm the potted end of a femur.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from bonefe.errors import BonefeError
from bonefe.materials import MaterialOptions
from bonefe.plate_layer import Layer
from bonefe.risk import StrainCriterion
from bonefe.schema import build

Vector = tuple[float, float, float]


def _unit(vector, where: str) -> np.ndarray:
    v = np.asarray(vector, float)
    if not np.linalg.norm(v) > 0:
        raise ValueError(f"{where} must be a non-zero vector (got {list(vector)})")
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class BlockPhantom:
    """A generated block specimen of uniform grey value: size_mm (x, y, z) on voxel_mm voxels."""

    size_mm: Vector = (10.0, 10.0, 20.0)
    voxel_mm: float = 1.0
    grey: float = 100.0

    def __post_init__(self):
        if not self.voxel_mm > 0 or min(self.size_mm) < 3 * self.voxel_mm:
            raise ValueError("phantom: voxel_mm must be positive and each side at least 3 voxels")


@dataclass(frozen=True)
class ImageOptions:
    """The image: `path` (a folder of TIFF slices in name order, a multi-page TIFF, or any image
    SimpleITK reads) or a generated `phantom`. voxel_mm: the voxel size (mm; one number or x, y, z),
    required for TIFF (their headers rarely hold it), else overriding the header. downsample: an
    integer factor; blocks of f³ voxels are averaged (partial blocks at the far faces dropped)."""

    path: Path | None = None
    voxel_mm: float | Vector | None = None
    downsample: int = 1
    phantom: BlockPhantom | None = None

    def __post_init__(self):
        if (self.path is None) == (self.phantom is None):
            raise ValueError("give either path (the image) or phantom, not both or neither")
        if self.downsample < 1:
            raise ValueError(f"downsample must be a whole number >= 1 (got {self.downsample})")
        sizes = np.atleast_1d(np.asarray(self.voxel_mm if self.voxel_mm is not None else 1.0, float))
        if not np.all(sizes > 0):
            raise ValueError(f"voxel_mm must be positive (got {self.voxel_mm})")


@dataclass(frozen=True)
class Segmentation:
    """Which voxels are the specimen: `threshold` (grey value ≥ it, largest connected part, after
    downsampling) or a label map (`labels`, on the image's grid, voxels equal to `value`)."""

    threshold: float | None = None
    labels: Path | None = None
    value: int = 1

    def __post_init__(self):
        if (self.threshold is None) == (self.labels is None):
            raise ValueError("give either threshold or labels")


@dataclass(frozen=True)
class GreyPower:
    """E = scale_mpa · (g / reference_grey)^exponent (MPa) of the image value g (a grey value, or
    a density when the image holds one), floored at min_modulus_mpa (E ≥ it; background voxels of
    a micro-CT hold marrow, which the law would make nearly void)."""

    scale_mpa: float
    exponent: float
    reference_grey: float = 1.0
    min_modulus_mpa: float = 1.0

    def __post_init__(self):
        if not (self.scale_mpa > 0 and self.reference_grey > 0 and self.min_modulus_mpa > 0):
            raise ValueError("grey_power: scale_mpa, reference_grey and min_modulus_mpa must be positive")
        if not 0 <= self.exponent <= 5:
            raise ValueError(f"grey_power: exponent must lie in [0, 5] (got {self.exponent})")

    def modulus(self, grey: np.ndarray) -> np.ndarray:
        """E (MPa) of image values."""
        ratio = np.maximum(np.asarray(grey, float), 0.0) / self.reference_grey
        return np.maximum(self.scale_mpa * ratio**self.exponent, self.min_modulus_mpa)


@dataclass(frozen=True)
class SpecimenMaterial:
    """The specimen's material: `grey_power` (a power law of the image value) or `density`
    (bonefe's HU → density → law chain, `bonefe.materials.MaterialOptions`, for clinical CT);
    poisson: Poisson's ratio of the specimen (the density chain's own `poisson` is not used)."""

    grey_power: GreyPower | None = None
    density: MaterialOptions | None = None
    poisson: float = 0.3

    def __post_init__(self):
        if (self.grey_power is None) == (self.density is None):
            raise ValueError("give either grey_power or density")
        if not 0.0 <= self.poisson < 0.5:
            raise ValueError(f"poisson must lie in [0, 0.5) (got {self.poisson})")


@dataclass(frozen=True)
class Plane:
    """A plane through `point` (mm) with unit `normal` pointing into the specimen; depth_mm: how far
    into the specimen the region reaches (module docstring)."""

    point: Vector
    normal: Vector
    depth_mm: float = 0.0

    def __post_init__(self):
        _unit(self.normal, "normal")
        if self.depth_mm < 0:
            raise ValueError(f"depth_mm must be zero or positive (got {self.depth_mm})")

    def height(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (mm) of points (n, 3) from the plane, positive into the specimen."""
        return (np.asarray(points, float) - np.asarray(self.point, float)) @ _unit(self.normal, "normal")


@dataclass(frozen=True)
class Region:
    """A region of the specimen's surface: a `plane` (with a depth), or a `label` value of the
    segmentation's label map (exterior facets whose midpoint lies within one voxel of it).
    `layer`: a compliant layer between a plane region and its rigid support or plate — a PMMA
    potting or cap, a rubber pad (`bonefe.plate_layer`: a bed of springs across the plane);
    without one the region is bonded to it."""

    plane: Plane | None = None
    label: int | None = None
    layer: Layer | None = None

    def __post_init__(self):
        if (self.plane is None) == (self.label is None):
            raise ValueError("give either plane or label")
        if self.layer is not None and self.plane is None:
            raise ValueError("a layer needs a plane region (its normal is the plane's)")


@dataclass(frozen=True)
class Rig:
    """The test machine: `fixed` region (all displacements 0), `loaded` region bonded to a rigid plate.

    The plate's translation: `displacement_mm` (displacement control) or `force_n` (force control,
    N on the specimen). Its rotation about `pivot` (mm; default the loaded region's centroid):
    locked when neither `rotation_deg` nor `moment_nmm` is given (a platen), else prescribed by
    `rotation_deg` (small rotation, degrees about the world x, y, z axes) or free, carrying
    `moment_nmm` (N·mm on the specimen; [0, 0, 0] for a plate on a ball joint at the pivot, e.g. a
    cantilever's free end). A zero translation with a rotation or moment is a torsion or bending
    test: its failure is then read as a moment."""

    fixed: Region
    loaded: Region
    displacement_mm: Vector | None = None
    force_n: Vector | None = None
    rotation_deg: Vector | None = None
    moment_nmm: Vector | None = None
    pivot: Vector | None = None

    def __post_init__(self):
        if (self.displacement_mm is None) == (self.force_n is None):
            raise ValueError("give either displacement_mm or force_n")
        if self.rotation_deg is not None and self.moment_nmm is not None:
            raise ValueError("give rotation_deg or moment_nmm, not both (neither: the plate does not rotate)")
        if not np.any(self.translation_load) and not np.any(self.rotation_load):
            raise ValueError("the rig's load is zero: give a non-zero displacement_mm or force_n, "
                             "or a rotation_deg or moment_nmm")

    @property
    def rotates(self) -> bool:
        """Whether the plate's rotation is solved (prescribed or free), not locked."""
        return self.rotation_deg is not None or self.moment_nmm is not None

    @property
    def translation_load(self) -> np.ndarray:
        """The translation's prescribed value (mm or N) as an array."""
        return np.asarray(self.displacement_mm if self.force_n is None else self.force_n, float)

    @property
    def rotation_load(self) -> np.ndarray:
        """The rotation's prescribed value (degrees or N·mm); zeros when locked."""
        value = self.rotation_deg if self.moment_nmm is None else self.moment_nmm
        return np.zeros(3) if value is None else np.asarray(value, float)

    @property
    def torsion_or_bending(self) -> bool:
        """A pure moment test: zero translation (or force), a rotation or moment only."""
        return not np.any(self.translation_load)


@dataclass(frozen=True)
class SpecimenMesh:
    """size_mm: element size; degree: Lagrange degree of the displacement (1 or 2). A `box` specimen
    is meshed as the image's box (structured tetrahedra, flat faces); a segmented one by bonefe's
    smooth surface mesher (`bonefe.meshing.mesh_bone`, no cortex refinement; kind `smooth`) or
    voxel by voxel (kind `voxel`: six tetrahedra per specimen voxel after downsampling, the
    voxel-faithful mesh of micro-FE; size_mm unused)."""

    size_mm: float = 1.0
    degree: Literal[1, 2] = 1
    kind: Literal["smooth", "voxel"] = "smooth"

    def __post_init__(self):
        if not self.size_mm > 0:
            raise ValueError(f"size_mm must be positive (got {self.size_mm})")


@dataclass(frozen=True)
class FailureOptions:
    """The failure reading (`bonefe.assessment`): the strain `criterion`, the radius of the spheres
    the strain is averaged over (mm; set it well below the specimen's size) and the distance from
    the fixed and loaded regions within which no bone is evaluated (mm; Saint-Venant)."""

    criterion: StrainCriterion = field(default_factory=StrainCriterion)
    averaging_radius_mm: float = 2.0
    exclusion_mm: float = 0.0

    def __post_init__(self):
        if not self.averaging_radius_mm > 0 or self.exclusion_mm < 0:
            raise ValueError("averaging_radius_mm must be positive and exclusion_mm zero or positive")


@dataclass(frozen=True)
class SpecimenCase:
    """A whole specimen case (module docstring); `load_specimen_case` reads one."""

    name: str
    image: ImageOptions
    material: SpecimenMaterial
    rig: Rig
    site: Literal["specimen"] = "specimen"
    specimen: Literal["box"] | Segmentation = "box"
    mesh: SpecimenMesh = field(default_factory=SpecimenMesh)
    failure: FailureOptions = field(default_factory=FailureOptions)
    exports: list[Literal["inp", "vtu"]] = field(default_factory=list)
    output: Path | None = None

    def __post_init__(self):
        if not self.name or not self.name.isprintable() or any(c in self.name for c in '/\\:*?"<>|') \
                or self.name in (".", ".."):
            raise ValueError(f"name must be a non-empty folder-safe text (got {self.name!r})")
        if "inp" in self.exports and self.mesh.degree != 1:
            raise ValueError("exports: inp writes linear tetrahedra (C3D4): set mesh.degree 1 or drop inp")
        if "inp" in self.exports and (self.rig.fixed.layer or self.rig.loaded.layer):
            raise ValueError("exports: inp holds bonded regions only (a layer would need CalculiX spring "
                             "elements): drop inp or the layer")
        labels = [r.label for r in (self.rig.fixed, self.rig.loaded) if r.label is not None]
        if labels and (self.specimen == "box" or self.specimen.labels is None):
            raise ValueError("rig regions by label need the specimen's label map (specimen.labels)")


def case_site(path: Path) -> str | None:
    """The `site:` of a case file (None when absent or unreadable: the full reader then says why)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data.get("site") if isinstance(data, dict) else None


def load_specimen_case(path: str | Path) -> SpecimenCase:
    """Read and check a specimen case file; relative paths become relative to the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise BonefeError(f"case file {path} not found: give the path to a .yaml case file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise BonefeError(f"{path.name}: not valid YAML: {error}") from None
    case = build(SpecimenCase, data, path.name)
    base = path.resolve().parent
    image = case.image if case.image.path is None else \
        ImageOptions(base / case.image.path, case.image.voxel_mm, case.image.downsample)
    specimen = case.specimen
    if specimen != "box" and specimen.labels is not None:
        specimen = Segmentation(labels=base / specimen.labels, value=specimen.value)
    output = (base / (case.output or Path("runs") / case.name)).resolve()
    if path.resolve().is_relative_to(output):
        raise BonefeError(f"{path.name}: the output folder {output} holds the case file; a finished run "
                          "replaces that folder: choose another output")
    return SpecimenCase(case.name, image, case.material, case.rig, case.site, specimen, case.mesh,
                        case.failure, case.exports, output)

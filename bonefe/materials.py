"""CT → bone material: density calibration, density–modulus laws, element-wise integration.

The chain for one CT sample (units: HU, g/cm³, MPa):

1. Calibration: ρ_QCT = slope·HU + intercept (equivalent K2HPO4/hydroxyapatite density of the
   calibration phantom), clamped at 0 (air and fat hold no mineral). The default slope of
   0.0008 g/cm³ per HU with intercept 0 (water holds no mineral) is the order of magnitude of
   phantom calibrations at 120 kVp (about 0.7–0.9 mg/cm³ per HU for K2HPO4 and hydroxyapatite
   rods): a placeholder for scans without a phantom. Give the scanner's own values in the case
   file, or fit them from the phantom's rods with `fit_calibration`.
2. Ash and apparent density (Schileo et al. 2008, J Biomech 41:356–367):
   ρ_ash = 0.877·ρ_QCT + 0.079 and ρ_app = ρ_ash / 0.6.
3. Modulus: one law of `LAWS` (each takes ash or apparent density), times a lesion factor, floored
   at `min_modulus` so that soft lesions keep the stiffness matrix well posed.

Element-wise integration (Bonemat-style, Taddei et al. 2007, Med Eng Phys 29:973): each
tetrahedron is split into n³ equal-volume sub-tetrahedra (the Freudenthal subdivision of its
reference Kuhn simplex); the CT is sampled at their centroids and the element modulus is the
average of the sample moduli, E_e = (1/|T|)∫_T E(HU(x)) dx — the average of the moduli, not the
modulus of the mean HU, which would understate stiffness where density varies inside an element
because every law is convex. n = ceil(longest element edge / (sample_spacing_voxels · smallest
voxel size)), at least MIN_SUBDIVISIONS and at most MAX_SUBDIVISIONS, so every sub-tetrahedron is
at most 2 · max(sample_spacing_voxels · voxel, longest edge / MAX_SUBDIVISIONS) across. HU between
voxel centres is trilinear (scipy.ndimage.map_coordinates, order 1, in voxel index space).
ρ_app per element is the average sample density (the element's mass over its volume).

Partial volume at the periosteal surface: voxels just outside the bone mix bone with soft tissue,
and a smoothed mesh surface passes between bone and background voxel centres, so sampling the raw
CT there would give every surface element an artificially soft skin. Before sampling, every
non-bone voxel (label 0) takes the HU and label of its nearest bone voxel (exact Euclidean
distance transform), so the CT is extrapolated outward from the bone at constant value.

Lesions (label map, `bonefe.volume`): a sample takes the label of its nearest voxel. Lytic samples
keep their low CT density and their modulus is further multiplied by `lytic_factor`; blastic
samples, dense but woven and disorganised, by `blastic_factor` (see `MaterialOptions`). An
element's label is the majority label of its samples; on a tie the lesion wins (lytic before
blastic before bone), so a half-lesion element is shown and treated as lesion. Where failure is
read, and which volume its strain averages count as bone, follows the label at each point instead
(`LesionMap`: nearest voxel, after the same fill), not the element's majority label, which a
lesion's rim splits differently on every mesh (`bonefe.nonlocal_strain`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.volume import BACKGROUND, BLASTIC, BONE, LESION_LABELS, LYTIC, Volume, grown_box

ASH_PER_QCT, ASH_OFFSET = 0.877, 0.079
"""ρ_ash = 0.877·ρ_QCT + 0.079 g/cm³ (Schileo et al. 2008, J Biomech 41:356, femoral specimens)."""
ASH_PER_APPARENT = 0.6
"""ρ_ash / ρ_app, constant over the whole density range (Schileo et al. 2008)."""

CARTER_HAYES_STRAIN_RATE = 0.01
"""Strain rate (1/s) at which the Carter & Hayes law is evaluated: quasi-static loading, the order of
the bone strain rates of walking (their tests spanned 0.001–10 /s)."""

MIN_SUBDIVISIONS, MAX_SUBDIVISIONS = 2, 10
"""Bounds on n, the sub-tetrahedra per element edge: 8 to 1000 CT samples per element."""

SAMPLES_PER_CHUNK = 2_000_000
"""CT samples processed at once (bounds the memory of cell_material to a few hundred MB)."""

FILL_MARGIN_VOXELS = 3
"""The partial-volume fill works on the bone's bounding box grown by this many voxels; samples
beyond it take the value of the nearest voxel of that box (already bone-filled)."""


@dataclass(frozen=True)
class ModulusLaw:
    """A power law E = coefficient · ρ^exponent (E in MPa, ρ in g/cm³) of ash or apparent density."""

    name: str
    coefficient: float
    exponent: float
    density: Literal["ash", "apparent"]
    reference: str

    def modulus(self, rho_ash: np.ndarray, rho_app: np.ndarray) -> np.ndarray:
        """Young's modulus (MPa) from the density this law takes (g/cm³)."""
        rho = rho_ash if self.density == "ash" else rho_app
        return self.coefficient * np.power(rho, self.exponent)


LAWS: dict[str, ModulusLaw] = {law.name: law for law in (
    ModulusLaw("morgan2003", 6850.0, 1.49, "apparent",
               "Morgan, Bayraktar, Keaveny 2003, J Biomech 36:897-904 (human femoral neck trabecular bone)"),
    ModulusLaw("morgan2003_vertebra", 4730.0, 1.56, "apparent",
               "Morgan, Bayraktar, Keaveny 2003, J Biomech 36:897-904 (human vertebral trabecular bone)"),
    ModulusLaw("keller1994", 10500.0, 2.29, "ash",
               "Keller 1994, J Biomech 27:1159-1168 (human femoral and vertebral bone, pooled)"),
    ModulusLaw("keyak1994", 33900.0, 2.20, "ash",
               "Keyak, Lee, Skinner 1994, J Biomed Mater Res 28:1329-1336 (proximal tibia trabecular bone, "
               "axial modulus)"),
    ModulusLaw("carter_hayes1977", 3790.0 * CARTER_HAYES_STRAIN_RATE ** 0.06, 3.0, "apparent",
               "Carter, Hayes 1977, J Bone Joint Surg Am 59:954-962: E = 3790·(strain rate)^0.06·ρ_app^3 "
               f"at {CARTER_HAYES_STRAIN_RATE:g} /s"),
)}
"""Density–modulus laws selectable by name (`MaterialOptions.law`)."""
FEMORAL_LAWS = ("morgan2003", "keller1994")
"""Laws the uncertainty study draws for `law` on a long bone (femur, humerus): those fitted on human femoral bone
(Morgan et al. 2003, femoral neck; Keller 1994, femur). Which law suits a metastatic femur is not
settled — the bonefe default is Morgan 2003 (DESIGN, with the Schileo et al. 2008 density chain),
while a CT-FE validation on 20 cadaveric proximal femora found Keller's equations the most
reproducible (PubMed Central PMC5732520, abstract)."""


@dataclass(frozen=True)
class MaterialOptions:
    """How CT becomes Young's modulus (case-file section `material`).

    law: a key of LAWS (default morgan2003, measured on femoral-neck bone).
    slope, intercept: ρ_QCT = slope·HU + intercept (g/cm³ per HU, g/cm³); see the module docstring.
    poisson: Poisson's ratio (0.4, Schileo et al. 2008; 0.3 is the other common choice).
    min_modulus: floor on every sample's modulus (MPa) so that lesions stay well posed.
    lytic_factor: multiplies the modulus of lytic samples. Default 0.01: lytic tissue (tumour,
        fibrous tissue, blood) has no mineralised matrix and a modulus well below 1 MPa, while the
        laws extrapolated to its water-like density (0–40 HU: ρ_ash ≈ 0.08–0.11 g/cm³ by Schileo's
        intercept) give 30–500 MPa (Morgan: 330–520 MPa), as stiff as weak trabecular bone;
        experimental and FE studies of lytic defects model them as holes. The factor brings lytic
        tissue to a few MPa at most, where the floor then holds it.
    blastic_factor: multiplies the modulus of blastic samples. Default 0.5: osteoblastic
        metastases are dense but woven bone with disorganised collagen, so their high HU must not
        be read as healthy cortex; their modulus–density relation is poorly characterised (see
        Kaneko et al. 2004, J Biomech 37:523 for metastatic trabecular bone), so 0.5 is a
        modelling choice: vary it in a sensitivity analysis.
    sample_spacing_voxels: target distance between CT samples inside an element, in voxel sizes.
        Default 1.5: a 3 mm element on 1 mm voxels gets 27–64 samples, several per voxel it covers.
    modulus_scale: multiplies every element's modulus, after the lesion factors and the floor, so
        the whole field scales (MPa/MPa, > 0). Default 1. Fit it to mechanical tests with
        `bonefe calibrate --specimens` (`bonefe.cohort.material_fit`): under linear elasticity and a strain
        criterion the predicted failure load scales by exactly this factor.
    """

    law: str = "morgan2003"
    slope: float = 0.0008
    intercept: float = 0.0
    poisson: float = 0.4
    min_modulus: float = 10.0
    lytic_factor: float = 0.01
    blastic_factor: float = 0.5
    sample_spacing_voxels: float = 1.5
    modulus_scale: float = 1.0

    def __post_init__(self):
        if self.law not in LAWS:
            raise ValueError(f"law must be one of {', '.join(LAWS)} (got {self.law!r})")
        if not self.slope > 0:
            raise ValueError(f"slope must be positive, g/cm³ per HU (got {self.slope})")
        if not 0.0 <= self.poisson < 0.5:
            raise ValueError(f"poisson must lie in [0, 0.5) (got {self.poisson})")
        if not self.min_modulus > 0:
            raise ValueError(f"min_modulus must be positive, MPa (got {self.min_modulus})")
        for name in ("lytic_factor", "blastic_factor"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1] (got {getattr(self, name)})")
        if not 0.1 <= self.sample_spacing_voxels <= 4.0:
            raise ValueError(f"sample_spacing_voxels must lie in [0.1, 4] (got {self.sample_spacing_voxels})")
        if not self.modulus_scale > 0:
            raise ValueError(f"modulus_scale must be positive (got {self.modulus_scale}); 1 leaves the law as is")


@dataclass
class CellMaterial:
    """Material of the local owned cells (arrays of length mesh.topology.index_map(3).size_local).

    E: Young's modulus (MPa); rho_app: apparent density (g/cm³); label: canonical label (majority of
    the element's CT samples); lesion_fraction: fraction of those samples in lesion voxels.
    """

    E: np.ndarray
    rho_app: np.ndarray
    label: np.ndarray
    lesion_fraction: np.ndarray


def qct_density(hu: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Calibrated equivalent mineral density ρ_QCT (g/cm³) of HU, negative values clamped to 0."""
    return np.maximum(slope * np.asarray(hu, float) + intercept, 0.0)


def ash_density(rho_qct: np.ndarray) -> np.ndarray:
    """Ash density (g/cm³) from ρ_QCT (Schileo et al. 2008)."""
    return ASH_PER_QCT * rho_qct + ASH_OFFSET


def apparent_density(rho_ash: np.ndarray) -> np.ndarray:
    """Apparent (wet) density (g/cm³) from ash density (Schileo et al. 2008)."""
    return rho_ash / ASH_PER_APPARENT


def fit_calibration(hu_means, densities) -> tuple[float, float, float]:
    """Least-squares line ρ = slope·HU + intercept through the rods of a calibration phantom.

    hu_means: mean HU measured in each rod; densities: the rods' nominal densities (g/cm³).
    Returns slope (g/cm³ per HU), intercept (g/cm³) and the standard error of the estimate
    sqrt(Σ residual² / (n − 2)) in g/cm³.
    """
    hu, rho = np.asarray(hu_means, float), np.asarray(densities, float)
    if hu.shape != rho.shape or hu.ndim != 1 or hu.size < 3:
        raise BonefeError("calibration: give the mean HU and the density of at least 3 phantom rods, "
                          "as two lists of equal length")
    if np.ptp(hu) == 0:
        raise BonefeError("calibration: all rods have the same mean HU; check the rod measurements")
    design = np.column_stack([hu, np.ones_like(hu)])
    (slope, intercept), *_ = np.linalg.lstsq(design, rho, rcond=None)
    residual = rho - design @ (slope, intercept)
    return float(slope), float(intercept), float(np.sqrt(residual @ residual / (hu.size - 2)))


def sample_modulus(hu: np.ndarray, labels: np.ndarray, options: MaterialOptions) -> tuple[np.ndarray, np.ndarray]:
    """Modulus (MPa, lesion factors, floor and modulus_scale applied) and apparent density (g/cm³) of CT samples."""
    rho_ash = ash_density(qct_density(hu, options.slope, options.intercept))
    rho_app = apparent_density(rho_ash)
    factor = np.ones(max(LESION_LABELS) + 1)
    factor[LYTIC], factor[BLASTIC] = options.lytic_factor, options.blastic_factor
    E = LAWS[options.law].modulus(rho_ash, rho_app) * factor[labels]
    return np.maximum(E, options.min_modulus) * options.modulus_scale, rho_app


@lru_cache(maxsize=None)
def subdivision_points(n: int) -> np.ndarray:
    """Barycentric coordinates (n³, 4) of the centroids of the n³ equal sub-tetrahedra of a tetrahedron.

    The tetrahedron is the image of the Kuhn simplex {1 ≥ x ≥ y ≥ z ≥ 0} (vertices 0, e_x,
    e_x + e_y, e_x + e_y + e_z); n times that simplex is exactly the union of n³ simplices of the
    Freudenthal triangulation of the integer lattice, all of volume 1/6.
    """
    centroids = []
    for origin in itertools.product(range(n), repeat=3):
        for order in itertools.permutations(range(3)):
            steps = np.eye(3)[list(order)]
            centroid = np.asarray(origin) + (3 * steps[0] + 2 * steps[1] + steps[2]) / 4.0
            if n > centroid[0] > centroid[1] > centroid[2] > 0:
                centroids.append(centroid / n)
    x, y, z = np.array(centroids).T
    return np.column_stack([1.0 - x, x - y, y - z, z])


def cell_vertices(mesh) -> np.ndarray:
    """Vertex coordinates (n_local, 4, 3) of the local owned tetrahedra (world mm)."""
    n = mesh.topology.index_map(3).size_local
    return mesh.geometry.x[mesh.geometry.dofmaps[0][:n, :4]]


def canonical_order(vertices: np.ndarray) -> np.ndarray:
    """Each cell's vertices sorted lexicographically by (x, y, z): the subdivision, hence the CT
    samples, then depend on the element alone, not on how a mesh or partition numbers its vertices."""
    cells, _ = np.indices(vertices.shape[:2])
    order = np.lexsort((vertices[..., 2].ravel(), vertices[..., 1].ravel(), vertices[..., 0].ravel(),
                        cells.ravel()))
    return vertices.reshape(-1, 3)[order].reshape(vertices.shape)


def subdivisions(vertices: np.ndarray, voxel_mm: float, spacing_voxels: float) -> np.ndarray:
    """Sub-tetrahedra per edge n for each element (n_cells,), from its longest edge (mm)."""
    edges = [vertices[:, j] - vertices[:, i] for i, j in itertools.combinations(range(4), 2)]
    longest = np.max(np.linalg.norm(np.stack(edges, axis=1), axis=2), axis=1)
    n = np.ceil(longest / (spacing_voxels * voxel_mm)).astype(int)
    return np.clip(n, MIN_SUBDIVISIONS, MAX_SUBDIVISIONS)


def _fill(volume: Volume):
    """The partial-volume fill (module docstring): the bone's bounding box (+ margin) as slices, the
    index arrays of each box voxel's nearest bone or lesion voxel, and the box's first voxel index."""
    bone = volume.labels != BACKGROUND
    if not bone.any():
        raise BonefeError("The label map has no bone voxels (all 0): check the label file and label_values.")
    hits = [np.flatnonzero(bone.any(axis=tuple(b for b in range(3) if b != a))) for a in range(3)]
    lo = np.array([max(h[0] - FILL_MARGIN_VOXELS, 0) for h in hits])
    hi = np.array([min(h[-1] + 1 + FILL_MARGIN_VOXELS, s) for h, s in zip(hits, bone.shape)])
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    nearest = ndimage.distance_transform_edt(~bone[box], sampling=volume.spacing,
                                             return_distances=False, return_indices=True)
    return box, tuple(nearest), lo


def _nearest_label(labels: np.ndarray, origin: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """Label of the nearest voxel of a box (first voxel index `origin`) at continuous voxel indices
    (n, 3) of the full volume; beyond the box, of its nearest voxel."""
    local = (np.asarray(ijk, float) - origin).T
    nearest = [np.clip(np.rint(local[a]).astype(int), 0, labels.shape[a] - 1) for a in range(3)]
    return labels[tuple(nearest)]


@dataclass(frozen=True)
class FilledCT:
    """HU and labels on the bone's bounding box (+ margin) with every background voxel replaced by
    its nearest bone voxel; `origin` is the voxel index of the box's [0, 0, 0]."""

    hu: np.ndarray
    labels: np.ndarray
    origin: np.ndarray

    @classmethod
    def from_volume(cls, volume: Volume) -> FilledCT:
        """The partial-volume fill of the module docstring (identical on every rank)."""
        box, nearest, lo = _fill(volume)
        return cls(volume.hu[box][nearest].astype(float), volume.labels[box][nearest], lo)

    def sample(self, ijk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Trilinear HU and nearest-voxel label at continuous voxel indices (n, 3) of the full volume."""
        local = (ijk - self.origin).T
        hu = ndimage.map_coordinates(self.hu, local, order=1, mode="nearest", prefilter=False)
        return hu, _nearest_label(self.labels, self.origin, ijk)


@dataclass(frozen=True)
class LesionMap:
    """Which world points lie in lesion tissue by the CT's label map: a point takes the label of its
    nearest voxel after the partial-volume fill (module docstring), the label a material sample there
    takes. The failure reading follows it (`bonefe.assessment.failure_points`). Identical on every rank.

    labels, origin: the filled labels of the bone's bounding box and its first voxel index; volume:
    the CT (for its voxel → world map).
    """

    labels: np.ndarray
    origin: np.ndarray
    volume: Volume

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """True (k,) where the world points (k, 3) mm lie in lesion tissue."""
        return self.at_index(self.volume.to_index(np.asarray(points, float).reshape(-1, 3)))

    def at_index(self, ijk: np.ndarray) -> np.ndarray:
        """True (k,) where continuous voxel indices (k, 3) of the volume lie in lesion tissue."""
        return np.isin(_nearest_label(self.labels, self.origin, ijk), LESION_LABELS)


def lesion_map(volume: Volume, fill=None) -> LesionMap | None:
    """The volume's `LesionMap`, None when it has no lesion voxels (every point is bone); fill: its
    `_fill` when known."""
    if not np.isin(volume.labels, LESION_LABELS).any():
        return None
    box, nearest, lo = fill or _fill(volume)
    return LesionMap(volume.labels[box][nearest], lo, volume)


def _same_background(volume: Volume, reference: Volume) -> bool:
    """The same grid and the same background voxels (labels 0): the same partial-volume fill."""
    return (volume.hu.shape == reference.hu.shape and np.array_equal(volume.affine, reference.affine)
            and np.array_equal(volume.labels == BACKGROUND, reference.labels == BACKGROUND))


def _integrate(corners: np.ndarray, n: int, ct: FilledCT, modulus):
    """Element averages of E and ρ_app and label counts (bone, lytic, blastic) for cells split n³.

    corners: (cells, 4, 3) element vertices as continuous voxel indices (the voxel map is affine,
    so barycentric combinations commute with it); modulus: (hu, labels) -> (E, ρ) of the samples.
    """
    bary = subdivision_points(n)
    hu, labels = ct.sample(np.matmul(bary, corners).reshape(-1, 3))
    E, rho = modulus(hu, labels)
    shape = (len(corners), len(bary))
    labels = labels.reshape(shape)
    counts = np.stack([np.count_nonzero(labels == value, axis=1) for value in (BONE, LYTIC, BLASTIC)], axis=1)
    return E.reshape(shape).mean(axis=1), rho.reshape(shape).mean(axis=1), counts


def cell_material(mesh, volume: Volume, options: MaterialOptions = MaterialOptions(), modulus=None) -> CellMaterial:
    """Element-wise CT material of the local owned cells of a tetrahedral mesh in world mm.

    See the module docstring for the sampling, the partial-volume fill and the lesion rules.
    modulus: (image values, labels) -> (E MPa, density) of the samples, replacing the density chain
    of `options` (`sample_modulus`), e.g. a grey-value power law of a micro-CT (`bonefe.sites.specimen`).
    Vectorised; each rank handles its own cells, so results do not depend on the partition.
    """
    corners, n_sub = _sampling(mesh, volume, options)
    E, rho, counts = _sample_cells(corners, n_sub, FilledCT.from_volume(volume), modulus or _law(options),
                                   np.arange(len(corners)))
    return CellMaterial(E, rho, *_labels(counts))


def _law(options: MaterialOptions):
    return lambda hu, labels: sample_modulus(hu, labels, options)


def _sampling(mesh, volume: Volume, options: MaterialOptions) -> tuple[np.ndarray, np.ndarray]:
    """The local cells' vertices as continuous voxel indices (cells, 4, 3) and their subdivisions."""
    vertices = canonical_order(cell_vertices(mesh))
    corners = volume.to_index(vertices.reshape(-1, 3)).reshape(vertices.shape)
    return corners, subdivisions(vertices, float(volume.spacing.min()), options.sample_spacing_voxels)


def _sample_cells(corners, n_sub, ct: FilledCT, modulus, cells: np.ndarray):
    """Element averages of E and ρ_app and label counts (`_integrate`) of `cells` (indices)."""
    E, rho, counts = np.empty(len(cells)), np.empty(len(cells)), np.zeros((len(cells), 3), int)
    for n in np.unique(n_sub[cells]):
        rows = np.flatnonzero(n_sub[cells] == n)
        for chunk in np.array_split(rows, max(1, len(rows) * n**3 // SAMPLES_PER_CHUNK)):
            E[chunk], rho[chunk], counts[chunk] = _integrate(corners[cells[chunk]], int(n), ct, modulus)
    return E, rho, counts


def _labels(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell the canonical label and the lesion fraction of its samples from label counts (cells, 3)."""
    # argmax keeps the first of equal counts: order lytic, blastic, bone makes the lesion win ties
    label = np.array([LYTIC, BLASTIC, BONE], dtype=np.int32)[np.argmax(counts[:, [1, 2, 0]], axis=1)]
    return label, counts[:, 1:].sum(axis=1) / np.maximum(counts.sum(axis=1), 1)


class MaterialUpdate:
    """`cell_material` of volumes that differ from a reference volume in a few voxels, on one mesh
    (the what-if states): a cell whose CT samples cannot reach a changed voxel of the filled CT (its
    voxel box, one voxel wider than the trilinear stencil) keeps the reference's values, the others
    are sampled again: the numbers of `cell_material` for the work of the changed region. Applies
    when the grid, the background (labels 0) and every option but the lesion factors are the
    reference's (a new lesion factor changes the cells that sample lesion); otherwise every cell is
    sampled. material: the reference's own, `cell_material(mesh, volume, options)`."""

    def __init__(self, mesh, volume: Volume, options: MaterialOptions):
        self.mesh, self.volume, self.options = mesh, volume, options
        self.box, self.nearest, origin = _fill(volume)
        self.ct = self._filled(volume, origin)
        self.corners, self.n_sub = _sampling(mesh, volume, options)
        E, rho, counts = _sample_cells(self.corners, self.n_sub, self.ct, _law(options), np.arange(len(self.corners)))
        self.material = CellMaterial(E, rho, *_labels(counts))
        local, top = self.corners - origin, np.array(self.ct.hu.shape) - 1
        self.low = np.clip(np.floor(local.min(axis=1)).astype(int) - 1, 0, top)
        self.high = np.clip(np.floor(local.max(axis=1)).astype(int) + 2, 0, top)

    def _filled(self, volume: Volume, origin) -> FilledCT:
        return FilledCT(volume.hu[self.box][self.nearest].astype(float), volume.labels[self.box][self.nearest], origin)

    def _applies(self, volume: Volume, options: MaterialOptions) -> bool:
        lesion_factors = {"lytic_factor": self.options.lytic_factor, "blastic_factor": self.options.blastic_factor}
        return replace(options, **lesion_factors) == self.options and _same_background(volume, self.volume)

    def lesion_map(self, volume: Volume) -> LesionMap | None:
        """`lesion_map(volume)`, through the reference's fill when the volume has its background
        (a what-if state: the fill depends on nothing else)."""
        same = _same_background(volume, self.volume)
        return lesion_map(volume, (self.box, self.nearest, self.ct.origin) if same else None)

    def __call__(self, volume: Volume, options: MaterialOptions) -> CellMaterial:
        if not self._applies(volume, options):
            return cell_material(self.mesh, volume, options)
        ct = self._filled(volume, self.ct.origin)
        changed = (ct.hu != self.ct.hu) | (ct.labels != self.ct.labels)
        if options != self.options:
            changed |= np.isin(ct.labels, LESION_LABELS) | np.isin(self.ct.labels, LESION_LABELS)
        cells = np.flatnonzero(box_counts(changed, self.low, self.high) > 0)
        E, rho, counts = _sample_cells(self.corners, self.n_sub, ct, _law(options), cells)
        label, fraction = _labels(counts)
        result = CellMaterial(*(np.array(a) for a in (self.material.E, self.material.rho_app, self.material.label,
                                                      self.material.lesion_fraction)))
        for whole, part in ((result.E, E), (result.rho_app, rho), (result.label, label),
                            (result.lesion_fraction, fraction)):
            whole[cells] = part
        return result


def box_counts(mask: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Number of True voxels of a 3-D `mask` in each inclusive index box low..high (boxes, 3), by a
    summed-volume table (inclusion–exclusion over the box's eight corners)."""
    table = np.zeros(tuple(n + 1 for n in mask.shape), np.int64)
    table[1:, 1:, 1:] = mask.cumsum(0).cumsum(1).cumsum(2)
    total = np.zeros(len(low), np.int64)
    for corner in itertools.product((0, 1), repeat=3):
        index = tuple(np.where(c, high[:, a] + 1, low[:, a]) for a, c in enumerate(corner))
        total += (-1) ** (3 - sum(corner)) * table[index]
    return total


TWIN_DEPTH_WEIGHT = 10.0
"""In the lesion-free twin fill, 1 mm of difference in depth below the periosteal surface costs as
much as 10 mm of distance along it, so a lesion voxel takes the HU of bone at its own depth."""


def healthy_volume(volume: Volume) -> Volume:
    """The lesion-free twin of a CT (Sternheim et al. 2020): lesion voxels become healthy bone.

    Rule: every lesion voxel takes label BONE and the HU of the nearest healthy bone voxel at the
    same depth below the periosteal surface (depth: exact Euclidean distance transform of the
    bone envelope, labels > 0, in mm). Nearest means nearest in (position, TWIN_DEPTH_WEIGHT ·
    depth): the cortex is a shell of slowly varying thickness, so where a lesion cut the cortex its
    voxels at cortical depth are filled with the surrounding cortex and deeper voxels with the
    trabecular bone or marrow around them. A volume without lesions is returned unchanged.
    """
    from scipy.spatial import cKDTree

    lesion = np.isin(volume.labels, LESION_LABELS)
    if not lesion.any():
        return volume
    healthy = volume.labels == BONE
    if not healthy.any():
        raise BonefeError("the label map has lesion but no healthy bone voxels: a lesion-free twin needs "
                          "the bone around the lesion labelled as bone")
    envelope = volume.labels != BACKGROUND
    box, depth = grown_box(envelope, volume.spacing, 0.0), np.zeros(envelope.shape)
    depth[box] = ndimage.distance_transform_edt(envelope[box], sampling=volume.spacing)  # background rings the box

    def keys(mask):
        ijk = np.argwhere(mask)
        return np.column_stack([volume.to_world(ijk), TWIN_DEPTH_WEIGHT * depth[mask]])

    _, nearest = cKDTree(keys(healthy)).query(keys(lesion), k=1)
    hu, labels = volume.hu.copy(), volume.labels.copy()
    hu[lesion] = volume.hu[healthy][nearest]
    labels[lesion] = BONE
    return Volume(hu=hu, labels=labels, affine=volume.affine)

"""How sure is the failure load? Sensitivity to the modelling inputs and a sampled interval.

The stance failure load F (`bonefe.assessment`) rests on inputs that are known only roughly. This
module moves each one and re-solves (case-file section `uncertainty`, `bonefe run --uncertainty`):

==============  ====================================================  ===========================
factor          one-at-a-time low / high                              Monte-Carlo distribution
==============  ====================================================  ===========================
calibration     slope ± 1 SE and intercept ± 1 SE (two rows)          bivariate normal, the fit's
                                                                      covariance
law             every density–modulus law of the list (min / max)     discrete uniform
poisson         ν ∓ poisson_delta                                     uniform on ν ± poisson_delta
segmentation    bone envelope eroded / dilated by one voxel, re-mesh  (geometric, see below)
mesh            element size × mesh_factors (0.75, 1.5), re-mesh      (geometric, see below)
==============  ====================================================  ===========================

Calibration SE: from the rod fit (`bonefe.calibration.calibration_errors`) when the case has rods
or ROIs. Without a fit (a line given in the case file or the default), DEFAULT_SLOPE_REL_SE and
DEFAULT_INTERCEPT_SE_HU apply, slope and intercept uncorrelated (see their docstrings).

Material factors (calibration, law, Poisson) change the modulus only, so every Monte-Carlo sample
reuses the one nominal mesh: its material is recomputed (`bonefe.materials.cell_material`), one
operator assembled and the stance load solved once. Geometric factors (segmentation, mesh) need a
new mesh each, so they are not sampled: each gets its two one-at-a-time runs (4 re-meshes in all).

Combination, on log load L = ln F. Each factor's first-order standard deviation s_f from its
one-at-a-time runs: the root-mean-square deviation of L_low and L_high from the nominal L_0 for a
±1 SD perturbation (calibration; segmentation and mesh, whose low/high values are taken as ±1 SD)
— |L_high − L_low| / 2 when the response is linear, and still honest when both runs fall on one
side —, that divided by √3 for a uniform one (Poisson: SD of a uniform = half-range / √3), and the
standard deviation of L over the laws for the law (discrete uniform). Its share of the variance
is s_f² / Σ s². The interval with probability p: the Monte-Carlo quantiles q_lo, q_hi
(numpy.quantile, linear, of the sampled loads) and median m, each side widened in quadrature by the
geometric factors, independent and normal on log load with s_geo² = Σ_geometric s_f²:

    lower = exp(ln m − √((ln m − ln q_lo)² + (z·s_geo)²)),  upper likewise with q_hi,

z the standard normal quantile of (1 + p)/2. Without sampled factors, m = F and q = F.
The samples are drawn from numpy's PCG64 generator seeded by `seed`, in a fixed order, on every
rank alike, and each failure load is a global (MPI-reduced) number: results do not depend on the
number of ranks beyond the solver tolerance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Literal

import numpy as np
from mpi4py import MPI
from scipy import ndimage

from bonefe.anatomy import SUPPORT, FemurFrame, boundary_tags
from bonefe.assessment import PATCH_TAGS, FailurePoints, RiskOptions, evaluated_cells, failure_points, unit_forces
from bonefe.calibration import LineErrors
from bonefe.errors import BonefeError
from bonefe.loads import ACTIVITIES, STANCE_ACTIVITY, WALKING_DIRECTION
from bonefe.materials import LAWS, MaterialOptions, cell_material
from bonefe.meshing import mesh_bone
from bonefe.risk import body_weight_n, failure_under_unit_load, risk_category
from bonefe.solver import ElasticitySolver, cell_strain, patch_traction, principal_strains
from bonefe.volume import BACKGROUND, LESION_LABELS, Volume

FACTORS = ("calibration", "law", "poisson", "segmentation", "mesh")
FEMORAL_LAWS = ("morgan2003", "keller1994")
"""Laws varied by default: those fitted on human femoral bone (Morgan 2003 neck, Keller 1994 femur)."""
MATERIAL_FACTORS = ("calibration", "law", "poisson")

DEFAULT_SLOPE_REL_SE = 0.05
"""Relative standard error of the calibration slope when no phantom fit is available. Ataei et al.
2022 (PLoS One 17:e0265524) found a change of tube voltage alone shifted phantom-calibrated BMD by
about 10 % against the standard protocol, and Eggermont et al. 2019 (PLoS One 14:e0220564) found an
average (non-patient-specific) calibration changed FE failure loads of metastatic femora
significantly; a 10 % deviation is taken as 2 SE."""

DEFAULT_INTERCEPT_SE_HU = 5.0
"""Standard error of the calibration intercept without a phantom fit, in HU (times the slope gives
g/cm³): HU are defined so that water reads 0, and CT acceptance testing holds water within about
±5–7 HU of 0 (e.g. the ACR CT accreditation phantom criterion of ±7 HU)."""


@dataclass(frozen=True)
class UncertaintyOptions:
    """The uncertainty study (case-file section `uncertainty`; off when the section is absent).

    samples: Monte-Carlo samples of the material factors (each: material, one operator, one solve).
    seed: seed of the sample draws (same seed, same samples). interval: probability p of the interval.
    factors: which of FACTORS to vary (all by default).
    slope_rel_se, intercept_se_hu: calibration SEs used when the case has no rod fit (relative,
        and HU times the slope); see DEFAULT_SLOPE_REL_SE and DEFAULT_INTERCEPT_SE_HU.
    poisson_delta: half-range of the Poisson ratio around the case's value.
    laws: density–modulus laws to choose from (default FEMORAL_LAWS, the two fitted on femoral
        bone; keyak1994, fitted on tibia, gives about 2.3x the default law's load on the demo femur
        and would dominate the interval with a law that does not apply to the site).
    mesh_factors: element-size multipliers of the two re-meshed runs.
    segmentation_voxels: voxels by which the bone envelope is eroded and dilated.
    """

    samples: int = 16
    seed: int = 0
    interval: float = 0.9
    factors: list[Literal["calibration", "law", "poisson", "segmentation", "mesh"]] = field(
        default_factory=lambda: list(FACTORS))
    slope_rel_se: float = DEFAULT_SLOPE_REL_SE
    intercept_se_hu: float = DEFAULT_INTERCEPT_SE_HU
    poisson_delta: float = 0.05
    laws: list[str] = field(default_factory=lambda: list(FEMORAL_LAWS))
    mesh_factors: tuple[float, float] = (0.75, 1.5)
    segmentation_voxels: int = 1

    def __post_init__(self):
        if not 2 <= self.samples <= 10000:
            raise ValueError(f"samples must lie between 2 and 10000 (got {self.samples})")
        if not 0.5 <= self.interval < 1.0:
            raise ValueError(f"interval must lie in [0.5, 1), e.g. 0.9 (got {self.interval})")
        if not self.factors or len(set(self.factors)) != len(self.factors):
            raise ValueError(f"factors must name each of {', '.join(FACTORS)} at most once (got {self.factors})")
        if not 0.0 <= self.slope_rel_se < 0.5 or not self.intercept_se_hu >= 0.0:
            raise ValueError("slope_rel_se must lie in [0, 0.5) and intercept_se_hu be >= 0")
        if not 0.0 < self.poisson_delta <= 0.2:
            raise ValueError(f"poisson_delta must lie in (0, 0.2] (got {self.poisson_delta})")
        unknown = [law for law in self.laws if law not in LAWS]
        if unknown or not self.laws:
            raise ValueError(f"laws must be a non-empty list of {', '.join(LAWS)} (got {self.laws})")
        if not 0.2 <= min(self.mesh_factors) <= max(self.mesh_factors) <= 3.0:
            raise ValueError(f"mesh_factors must lie in [0.2, 3] (got {self.mesh_factors})")
        if not 1 <= self.segmentation_voxels <= 3:
            raise ValueError(f"segmentation_voxels must be 1, 2 or 3 (got {self.segmentation_voxels})")

    def law_names(self, nominal: str) -> list[str]:
        """The laws varied over, the nominal one included, in registry order."""
        chosen = set(self.laws) | {nominal}
        return [name for name in LAWS if name in chosen]


@dataclass(frozen=True)
class CalibrationSpread:
    """The calibration line and its uncertainty: slope (g/cm³ per HU), intercept (g/cm³), their
    standard errors and covariance; source says where the errors come from."""

    slope: float
    intercept: float
    slope_se: float
    intercept_se: float
    covariance: float
    source: str

    def covariance_matrix(self) -> np.ndarray:
        return np.array([[self.slope_se**2, self.covariance], [self.covariance, self.intercept_se**2]])


@dataclass(frozen=True)
class FactorEffect:
    """One factor's one-at-a-time runs: failure loads (N) at its low and high values, their labels,
    its first-order standard deviation of ln F and share of the summed variance; sampled: part of
    the Monte-Carlo draws (else combined in quadrature)."""

    name: str
    description: str
    low_label: str
    high_label: str
    low_n: float
    high_n: float
    sd_log: float
    share: float
    sampled: bool


@dataclass(frozen=True)
class Sample:
    """One Monte-Carlo draw of the material inputs and its stance failure load (N)."""

    law: str
    slope: float
    intercept: float
    poisson: float
    failure_load_n: float


@dataclass(frozen=True)
class UncertaintyResult:
    """The interval of the stance failure load and what drives it (see the module docstring).

    nominal_n: failure load with every input at its case value (this module's own solve);
    lower_n/upper_n (and × BW): the combined interval of probability `interval`;
    material_lower_n/upper_n: numpy.quantile of the sampled loads (None without sampled factors);
    geometric_sd_log: s_geo; categories: risk category at the nominal load, the lower and the
    upper end; robust: all three equal; thresholds_crossed_bw: risk boundaries inside the interval.
    """

    nominal_n: float
    interval: float
    lower_n: float
    upper_n: float
    lower_bw: float
    upper_bw: float
    material_lower_n: float | None
    material_upper_n: float | None
    geometric_sd_log: float
    categories: list[str]
    robust: bool
    thresholds_crossed_bw: list[float]
    factors: list[FactorEffect]
    samples: list[Sample]
    seed: int
    calibration_source: str
    runtime_s: float


@dataclass(frozen=True)
class Study:
    """What every run of the study shares: the scanned volume, femur frame, case options (material,
    mesh: a `bonefe.case.MeshOptions`, risk, element degree) and body mass (kg)."""

    volume: Volume
    frame: FemurFrame
    material: MaterialOptions
    mesh: object
    risk: RiskOptions
    body_mass_kg: float
    degree: int = 1


@dataclass
class MeshedBone:
    """A mesh with its facet tags, cell labels and the quantities every solve on it reuses."""

    mesh: object
    facet_tags: object
    lattice: FailurePoints


def mesh_case(volume: Volume, options, frame: FemurFrame, comm=MPI.COMM_WORLD):
    """The pipeline's mesh stage: `bonefe.meshing.mesh_bone` at the case's mesh options and the
    boundary tags of the femur frame. Returns (BoneMesh, facet tags)."""
    bone = mesh_bone(volume, options.size_mm, comm, options.lesion_size_mm,
                     cortex_size_mm=options.cortex_size_mm, thin_cortex_mm=options.thin_cortex_mm,
                     cortex_hu=options.cortex_hu)
    return bone, boundary_tags(bone.mesh, frame, cap_axis=-(frame.basis() @ WALKING_DIRECTION))


def meshed_bone(mesh, facet_tags, labels: np.ndarray, risk: RiskOptions) -> MeshedBone:
    """The per-mesh quantities: the nonlocal strain's sphere average and its points evaluated for
    failure (cell labels from the CT)."""
    evaluated = evaluated_cells(mesh, facet_tags, labels, risk.exclusion_mm)
    return MeshedBone(mesh, facet_tags, failure_points(mesh, labels, evaluated, risk.averaging_radius_mm))


def stance_failure(study: Study, bone: MeshedBone, E: np.ndarray, nu: float) -> float:
    """Stance failure load (N) of one material on one mesh: one operator, one solve of the stance
    patch forces scaled to 1 N of contact force (linearity gives the load as 1 / the index)."""
    solver = ElasticitySolver(bone.mesh, E, nu, bone.facet_tags.find(SUPPORT), degree=study.degree)
    forces, _ = unit_forces(ACTIVITIES[STANCE_ACTIVITY], study.frame, study.body_mass_kg, study.risk.abductor)
    loads = []
    for patch, force in forces.items():
        facets = bone.facet_tags.find(PATCH_TAGS[patch])
        loads.append((facets, patch_traction(bone.mesh, facets, force)))
    principal = principal_strains(bone.lattice.nonlocal_field(cell_strain(solver.solve(loads))))
    return failure_under_unit_load(principal, bone.lattice.points, bone.mesh.comm,
                                   criterion=study.risk.criterion).failure_load_n


def material_failure(study: Study, bone: MeshedBone, material: MaterialOptions) -> float:
    """Stance failure load (N) with `material` mapped from the scanned CT onto the mesh."""
    return stance_failure(study, bone, cell_material(bone.mesh, study.volume, material).E, material.poisson)


def shifted_envelope(volume: Volume, voxels: int) -> Volume:
    """The volume with the bone envelope (labels > 0) dilated (voxels > 0) or eroded (< 0) by
    |voxels| 6-connected steps. The CT is unchanged; lesion voxels are never removed; a new envelope
    voxel takes the label of a neighbour in the envelope, lesion first (the highest label). The
    image border does not erode, so a distal cut at the border stays in place."""
    labels = volume.labels.copy()
    structure = ndimage.generate_binary_structure(3, 1)
    for _ in range(abs(voxels)):
        envelope = labels != BACKGROUND
        if voxels > 0:
            grown = ndimage.binary_dilation(envelope, structure) & ~envelope
            labels[grown] = ndimage.grey_dilation(labels, footprint=structure)[grown]
        else:
            keep = ndimage.binary_erosion(envelope, structure, border_value=1) | np.isin(labels, LESION_LABELS)
            labels[~keep] = BACKGROUND
    return Volume(hu=volume.hu, labels=labels, affine=volume.affine)


def calibration_spread(material: MaterialOptions, errors: LineErrors | None,
                       options: UncertaintyOptions) -> CalibrationSpread:
    """The calibration line of `material` with the rod fit's errors, or the documented defaults."""
    if errors is not None:
        return CalibrationSpread(material.slope, material.intercept, errors.slope_se, errors.intercept_se,
                                 errors.covariance, f"least-squares fit to {errors.n_rods} phantom rods")
    return CalibrationSpread(material.slope, material.intercept, options.slope_rel_se * material.slope,
                             options.intercept_se_hu * material.slope, 0.0,
                             f"no phantom fit: default SEs, {100 * options.slope_rel_se:g} % of the slope "
                             f"and {options.intercept_se_hu:g} HU × slope for the intercept")


def _effect(name, description, labels, loads, sd_log, sampled) -> FactorEffect:
    return FactorEffect(name, description, labels[0], labels[1], float(loads[0]), float(loads[1]),
                        float(sd_log), 0.0, sampled)


def _rms_log(nominal_n: float, loads) -> float:
    """Root-mean-square deviation of ln F at the low and high runs from ln F at the nominal inputs."""
    return float(np.sqrt(np.mean((np.log(loads) - np.log(nominal_n)) ** 2)))


def _material_effects(study: Study, bone: MeshedBone, nominal_E, nominal_n: float, calibration: CalibrationSpread,
                      options: UncertaintyOptions) -> list[FactorEffect]:
    """One-at-a-time runs of the material factors on the nominal mesh (nominal E and load given)."""
    material, effects = study.material, []
    if "calibration" in options.factors:
        for key, se, unit in (("slope", calibration.slope_se, "g/cm³ per HU"),
                              ("intercept", calibration.intercept_se, "g/cm³")):
            value = getattr(material, key)
            loads = [material_failure(study, bone, replace(material, **{key: value + sign * se})) for sign in (-1, 1)]
            effects.append(_effect(f"calibration_{key}", f"{key} {value:.4g} ± {se:.2g} {unit} (1 SE; "
                                   f"{calibration.source})", ("−1 SE", "+1 SE"), loads,
                                   _rms_log(nominal_n, loads), True))
    if "law" in options.factors:
        names = options.law_names(material.law)
        loads = {name: material_failure(study, bone, replace(material, law=name)) if name != material.law
                 else nominal_n for name in names}
        low, high = min(loads, key=loads.get), max(loads, key=loads.get)
        effects.append(_effect("law", "density–modulus law: " + ", ".join(
            f"{name} {load:,.0f} N" for name, load in loads.items()), (low, high), (loads[low], loads[high]),
            np.std(np.log(list(loads.values()))), True))
    if "poisson" in options.factors:
        nus = [material.poisson - options.poisson_delta, min(material.poisson + options.poisson_delta, 0.499)]
        loads = [stance_failure(study, bone, nominal_E, nu) for nu in nus]
        effects.append(_effect("poisson", f"Poisson ratio {material.poisson:g} ± {options.poisson_delta:g} "
                               "(uniform)", tuple(f"ν = {nu:g}" for nu in nus), loads,
                               _rms_log(nominal_n, loads) / np.sqrt(3.0), True))
    return effects


def _remeshed_failure(study: Study, volume: Volume, mesh_options, comm) -> float:
    """Stance failure load (N) of `volume` meshed anew at `mesh_options`, nominal material."""
    bone, tags = mesh_case(volume, mesh_options, study.frame, comm)
    cells = cell_material(bone.mesh, volume, study.material)
    return stance_failure(study, meshed_bone(bone.mesh, tags, cells.label, study.risk), cells.E,
                          study.material.poisson)


def _scaled_mesh(options, factor: float):
    """Mesh options with every element size multiplied by factor."""
    scale = (lambda size: None if size is None else size * factor)
    try:
        return replace(options, size_mm=options.size_mm * factor, lesion_size_mm=scale(options.lesion_size_mm),
                       cortex_size_mm=scale(options.cortex_size_mm))
    except ValueError as error:
        raise BonefeError(f"uncertainty.mesh_factors: {error}; choose factors that keep the mesh size valid") from None


def _geometric_effects(study: Study, nominal_n: float, options: UncertaintyOptions, comm) -> list[FactorEffect]:
    """One-at-a-time re-meshed runs: segmentation eroded/dilated, element size scaled."""
    effects = []
    if "segmentation" in options.factors:
        n = options.segmentation_voxels
        loads = [_remeshed_failure(study, shifted_envelope(study.volume, sign * n), study.mesh, comm)
                 for sign in (-1, 1)]
        effects.append(_effect("segmentation", f"bone envelope eroded / dilated by {n} voxel(s), lesions kept",
                               (f"−{n} voxel", f"+{n} voxel"), loads, _rms_log(nominal_n, loads), False))
    if "mesh" in options.factors:
        factors = sorted(options.mesh_factors)
        loads = [_remeshed_failure(study, study.volume, _scaled_mesh(study.mesh, f), comm) for f in factors]
        effects.append(_effect("mesh", f"element size {study.mesh.size_mm:g} mm × {factors[0]:g} and × {factors[1]:g}",
                               tuple(f"× {f:g}" for f in factors), loads, _rms_log(nominal_n, loads), False))
    return effects


def draw_samples(options: UncertaintyOptions, material: MaterialOptions,
                 calibration: CalibrationSpread) -> list[MaterialOptions]:
    """The Monte-Carlo material inputs: options.samples draws, in a fixed order from PCG64(seed);
    factors not asked for stay at their case values."""
    rng = np.random.default_rng(options.seed)
    n = options.samples
    lines = np.tile([calibration.slope, calibration.intercept], (n, 1))
    laws = [material.law] * n
    nus = np.full(n, material.poisson)
    if "calibration" in options.factors:
        lines = rng.multivariate_normal(lines[0], calibration.covariance_matrix(), size=n, method="cholesky")
        if np.any(lines[:, 0] <= 0.0):
            raise BonefeError("uncertainty: a sampled calibration slope is not positive; the slope's "
                              "standard error is too large for a linear calibration")
    if "law" in options.factors:
        names = options.law_names(material.law)
        laws = [names[i] for i in rng.integers(len(names), size=n)]
    if "poisson" in options.factors:
        nus = rng.uniform(material.poisson - options.poisson_delta,
                          min(material.poisson + options.poisson_delta, 0.499), size=n)
    return [replace(material, slope=float(s), intercept=float(b), law=law, poisson=float(nu))
            for (s, b), law, nu in zip(lines, laws, nus)]


def combined_interval(nominal_n: float, sampled_n: list[float], geometric_sd_log: float,
                      probability: float) -> tuple[float, float, float | None, float | None]:
    """(lower, upper) of the combined interval and the Monte-Carlo quantiles (None without samples),
    N; the rule of the module docstring."""
    z = NormalDist().inv_cdf(0.5 + probability / 2.0)
    if sampled_n:
        q_lo, q_hi = (float(q) for q in np.quantile(sampled_n, [0.5 - probability / 2.0, 0.5 + probability / 2.0]))
        centre = float(np.log(np.median(sampled_n)))
    else:
        q_lo = q_hi = None
        centre = float(np.log(nominal_n))
    low_side = 0.0 if q_lo is None else centre - np.log(q_lo)
    high_side = 0.0 if q_hi is None else np.log(q_hi) - centre
    spread = z * geometric_sd_log
    return (float(np.exp(centre - np.hypot(low_side, spread))), float(np.exp(centre + np.hypot(high_side, spread))),
            q_lo, q_hi)


def _with_shares(effects: list[FactorEffect]) -> list[FactorEffect]:
    total = sum(e.sd_log**2 for e in effects)
    return [replace(e, share=e.sd_log**2 / total if total > 0 else 0.0) for e in effects]


def propagate(study: Study, options: UncertaintyOptions, calibration_errors: LineErrors | None = None,
              mesh=None, comm=MPI.COMM_WORLD) -> UncertaintyResult:
    """The uncertainty study of one bone: one-at-a-time effects, Monte-Carlo samples of the
    material factors and the combined interval (module docstring). `mesh`: the nominal
    (dolfinx mesh, facet tags) when already built (else meshed here); every rank calls it."""
    start = time.perf_counter()
    if mesh is None:
        bone_mesh, tags = mesh_case(study.volume, study.mesh, study.frame, comm)
        mesh = (bone_mesh.mesh, tags)
    cells = cell_material(mesh[0], study.volume, study.material)
    bone = meshed_bone(*mesh, cells.label, study.risk)
    calibration = calibration_spread(study.material, calibration_errors, options)
    nominal = stance_failure(study, bone, cells.E, study.material.poisson)
    effects = _material_effects(study, bone, cells.E, nominal, calibration, options)
    sampled = []
    if any(f in MATERIAL_FACTORS for f in options.factors):
        sampled = [Sample(m.law, m.slope, m.intercept, m.poisson, material_failure(study, bone, m))
                   for m in draw_samples(options, study.material, calibration)]
    geometric = _geometric_effects(study, nominal, options, comm)
    effects = _with_shares(effects + geometric)
    geometric_sd = float(np.sqrt(sum(e.sd_log**2 for e in geometric)))
    lower, upper, q_lo, q_hi = combined_interval(nominal, [s.failure_load_n for s in sampled], geometric_sd,
                                                 options.interval)
    bw = body_weight_n(study.body_mass_kg)
    thresholds = study.risk.thresholds
    categories = [risk_category(f / bw, thresholds) for f in (nominal, lower, upper)]
    crossed = [t for t in (thresholds.high_below_bw, thresholds.low_from_bw) if lower / bw < t <= upper / bw]
    return UncertaintyResult(
        nominal, options.interval, lower, upper, lower / bw, upper / bw, q_lo, q_hi, geometric_sd, categories,
        len(set(categories)) == 1, crossed, effects, sampled, options.seed, calibration.source,
        comm.allreduce(time.perf_counter() - start, op=MPI.MAX))


def markdown_table(result: UncertaintyResult) -> str:
    """The one-at-a-time effects and the interval as a Markdown table (e.g. for docs/validation.md)."""
    rows = ["| factor | low | high | failure load low / high (N) | SD of ln F | share of variance |",
            "|---|---|---|---|---|---|"]
    for e in result.factors:
        rows.append(f"| {e.name}{'' if e.sampled else ' (re-meshed)'} | {e.low_label} | {e.high_label} | "
                    f"{e.low_n:,.0f} / {e.high_n:,.0f} | {e.sd_log:.3f} | {100 * e.share:.0f} % |")
    rows.append(f"\nNominal {result.nominal_n:,.0f} N; {100 * result.interval:g} % interval "
                f"{result.lower_n:,.0f}–{result.upper_n:,.0f} N ({result.lower_bw:.1f}–{result.upper_bw:.1f} × BW) "
                f"from {len(result.samples)} samples (seed {result.seed}); risk categories at nominal, lower, "
                f"upper: {', '.join(result.categories)}.")
    return "\n".join(rows)

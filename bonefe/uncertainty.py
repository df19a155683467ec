"""How sure is the failure load? Each uncertain input drawn from its stated error, the failure
load computed for every draw, and the interval read from the computed loads.

Factors (case-file section `uncertainty`, `bonefe run --uncertainty[=N]`), each with its spread
and source (constants below):

============  ===========================================================  =====================
factor        error model (one draw per Monte-Carlo sample)                spread and source
============  ===========================================================  =====================
segmentation  bone outline moved outward by d ~ N(0, bone_sd_mm²),         BONE_SD_MM
              truncated at ±2 SD (`bonefe.perturbation`)
lesion        lesion outlines moved by d ~ N(0, lesion_sd_mm²), ±2 SD      LESION_SD_MM
calibration   (slope, intercept) ~ N(line, covariance)                     the case's own fit
                                                                           (`calibration_errors`)
                                                                           or DEFAULT_* below
poisson       ν ~ uniform(ν ± poisson_delta)                               POISSON_DELTA
law           density–modulus law ~ uniform over `laws` (opt-in)           the site's laws
============  ===========================================================  =====================

Every state is material on one shared mesh (`bonefe.perturbation.SharedMesh`: the bone grown by
the largest outward move, 2 SD, CT sampled once): a draw costs its modulus, one operator and one
reference-load solve, no re-meshing. The shared mesh is a second mesh of (nearly) the same bone, so its
nominal state F₀′ differs from the case's failure load F₀ by mesh noise (reported as
`shared_nominal_n`); every computed load F_i is used as the ratio F_i / F₀′, applied to F₀.

Interval (distribution-free, from order statistics, Wilks 1941, Ann Math Stat 12:91): with n
computed loads sorted, x(1) ≤ … ≤ x(n), the interval of probability p is [x(k), x(n+1−k)] with
k = ⌊(n + 1)(1 − p)/2⌋, whose expected coverage of a new draw is (n + 1 − 2k)/(n + 1) ≥ p. With
fewer than 2/(1 − p) − 1 samples (19 for 90 %) k would be 0: the interval is then the sample range
[x(1), x(n)] and its expected coverage (n − 1)/(n + 1) < p is reported (`expected_coverage`), with
how many samples p needs. Either way both ends are computed states: the interval never reaches
beyond what was computed, and it is as asymmetric as the loads are.

What drives it: each factor alone at −1 SD and +1 SD (calibration: slope and intercept rows;
Poisson: the ends of its range; law: the weakest and strongest law), on the shared mesh; a
factor's share is its (ln F_high − ln F_low)² over their sum. The report names the largest in
plain words and what would narrow it (`PLAIN_WORDS`, `NARROWED_BY`). Robustness: the risk
categories at F₀ and at both ends; "not robust" only when the interval truly contains a
category boundary.

Draws: numpy PCG64 seeded by `seed`, in a fixed order, identical on every rank; each failure load
is a global (MPI-reduced) number, so results do not depend on the number of ranks beyond the
solver tolerance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from mpi4py import MPI

from bonefe.assessment import FailurePoints, RiskOptions, away_from_patches, failure_points, reference_failure
from bonefe.calibration import LineErrors
from bonefe.errors import BonefeError
from bonefe.materials import LAWS, MaterialOptions, cell_material, lesion_map
from bonefe.perturbation import SegmentationState, SharedMesh, grown_volume
from bonefe.risk import body_weight_n, risk_category
from bonefe.volume import Volume

FACTORS = ("segmentation", "lesion", "calibration", "poisson", "law")
DEFAULT_FACTORS = ("segmentation", "lesion", "calibration", "poisson")
"""Drawn by default: the inputs with a measured error. The law is opt-in: which law suits a
metastatic bone is model-form uncertainty without a known distribution, so it is not drawn by
default (nor can a synthetic truth test it, `bonefe.validation.coverage`); the laws drawn are the
case's `laws`, else the site's (`bonefe.sites.base.Setup.laws`)."""

BONE_SD_MM = 0.5
"""SD (mm) of the offset of the whole periosteal outline. Nine reconstructions of one femur by
seven expert groups deviated from an optical surface scan by an RMS 0.84 mm in the neck and
trochanter (Soodmand et al. 2018, BioMed Eng OnLine 17:29); two raters' manual proximal-femur
outlines differed by 0.21 mm average surface distance ("Bone and joint enhancement filtering:
application to proximal femur segmentation from uncalibrated CT datasets", 2021, abstract). A
systematic offset of 0.5 mm SD lies between the two (local scatter averages out over the 2 mm
strain sphere); ±2 SD is one voxel of a 1 mm scan. Measured on femora; applied to every site (a
vertebral source was not found: for the vertebra this SD is unconfirmed)."""
LESION_SD_MM = 1.5
"""SD (mm) of the offset of the lesion outlines. Two operators segmenting 54 metastatic femora
agreed with Dice 0.54 ± 0.28, larger lesions mostly above 0.7 (Ataei et al. 2021, Int J CARS,
doi:10.1007/s11548-021-02450-w). Concentric spheres of radius r and r + Δ have Dice
2r³/(r³ + (r + Δ)³): Dice 0.7 on a 20 mm lesion is Δ = 2.3 mm between two operators, 2.3/√2 ≈
1.6 mm per operator. Three times the bone's: lesion size is the larger segmentation error. Measured
on femora; applied to every site (unconfirmed for vertebrae)."""
POISSON_DELTA = 0.05
"""Half-range of ν. The project's assumption, not a measured spread (no source for the spread of
an isotropic whole-bone ν was found): femoral FE models use 0.4 (Schileo et al. 2008, the default
here) or 0.3 (`bonefe.materials.MaterialOptions`), and ±0.05 about the chosen value covers half of
that choice."""
TRUNCATE_SD = 2.0
"""Outline offsets are drawn from a normal truncated at ±2 SD (95 % of its mass): the shared mesh
must hold the largest outward move, and larger moves are gross errors, not measurement error."""

DEFAULT_SLOPE_REL_SE = 0.05
"""Relative SE of the calibration slope without a phantom or internal fit. A tube-voltage change
alone shifted phantom-calibrated BMD by about 10 % (Ataei et al. 2022, PLoS One 17:e0265524) and a
non-patient-specific calibration changed metastatic-femur FE failure loads significantly
(Eggermont et al. 2019, PLoS One 14:e0220564); a 10 % deviation is taken as 2 SE."""
DEFAULT_INTERCEPT_SE_HU = 5.0
"""SE of the intercept without a fit, in HU (times the slope gives g/cm³): water reads 0 HU and CT
acceptance holds it within about ±5–7 HU (ACR CT accreditation phantom: ±7 HU)."""

PLAIN_WORDS = {
    "segmentation": "where the outer surface of the bone was drawn on the CT",
    "lesion": "where the edge of the lesion was drawn",
    "calibration": "the conversion of CT numbers into bone density",
    "poisson": "the Poisson ratio of bone",
    "law": "the choice of the density–stiffness law",
}
NARROWED_BY = {
    "segmentation": "a finer scan (smaller voxels) or a second, checked segmentation of the bone",
    "lesion": "a lesion outline confirmed by a second reader or on MRI",
    "calibration": "a calibration phantom in the scan or an internal (phantomless) calibration",
    "poisson": "nothing practical: it moves the load little",
    "law": "mechanical tests of metastatic bones that single out one law",
}


@dataclass(frozen=True)
class UncertaintyOptions:
    """The uncertainty study (case-file section `uncertainty`; off when the section is absent).

    samples: Monte-Carlo draws (each: modulus, one operator, one solve on the shared mesh); 19 or
        more give a true 90 % interval (module docstring). seed: seed of the draws.
    interval: probability p of the interval. factors: which of FACTORS to draw.
    bone_sd_mm, lesion_sd_mm: SD of the outline offsets (BONE_SD_MM, LESION_SD_MM).
    slope_rel_se, intercept_se_hu: calibration SEs used when the case has no fit.
    poisson_delta: half-range of ν. laws: the laws drawn when `law` is among the factors (None:
        the site's, `bonefe.sites.base.Setup.laws`).
    """

    samples: int = 19
    seed: int = 0
    interval: float = 0.9
    factors: list[Literal["segmentation", "lesion", "calibration", "poisson", "law"]] = field(
        default_factory=lambda: list(DEFAULT_FACTORS))
    bone_sd_mm: float = BONE_SD_MM
    lesion_sd_mm: float = LESION_SD_MM
    slope_rel_se: float = DEFAULT_SLOPE_REL_SE
    intercept_se_hu: float = DEFAULT_INTERCEPT_SE_HU
    poisson_delta: float = POISSON_DELTA
    laws: list[str] | None = None

    def __post_init__(self):
        if not 2 <= self.samples <= 10000:
            raise ValueError(f"samples must lie between 2 and 10000 (got {self.samples})")
        if not 0.5 <= self.interval < 1.0:
            raise ValueError(f"interval must lie in [0.5, 1), e.g. 0.9 (got {self.interval})")
        if not self.factors or len(set(self.factors)) != len(self.factors):
            raise ValueError(f"factors must name each of {', '.join(FACTORS)} at most once (got {self.factors})")
        if not (0.0 <= self.bone_sd_mm <= 2.0 and 0.0 <= self.lesion_sd_mm <= 5.0):
            raise ValueError("bone_sd_mm must lie in [0, 2] and lesion_sd_mm in [0, 5] (mm)")
        if not 0.0 <= self.slope_rel_se < 0.5 or not self.intercept_se_hu >= 0.0:
            raise ValueError("slope_rel_se must lie in [0, 0.5) and intercept_se_hu be >= 0")
        if not 0.0 < self.poisson_delta <= 0.2:
            raise ValueError(f"poisson_delta must lie in (0, 0.2] (got {self.poisson_delta})")
        unknown = [law for law in self.laws or () if law not in LAWS]
        if unknown or self.laws == []:
            raise ValueError(f"laws must be a non-empty list of {', '.join(LAWS)} (got {self.laws})")

    def law_names(self, nominal: str, site_laws=()) -> list[str]:
        """The laws drawn from (`laws`, else the site's), the nominal one included, in registry order."""
        chosen = set(self.laws if self.laws is not None else site_laws) | {nominal}
        return [name for name in LAWS if name in chosen]

    @property
    def reach_mm(self) -> float:
        """The largest outward move of the bone outline: the shared mesh's growth (mm)."""
        return TRUNCATE_SD * self.bone_sd_mm if "segmentation" in self.factors else 0.0


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
    """One factor alone at its low and high value (labels), failure loads (N, scaled to the case
    mesh) and its share of the summed squared log ranges."""

    name: str
    description: str
    low_label: str
    high_label: str
    low_n: float
    high_n: float
    share: float


@dataclass(frozen=True)
class Sample:
    """One Monte-Carlo draw of the inputs and its reference failure load (N, scaled to the case mesh)."""

    law: str
    slope: float
    intercept: float
    poisson: float
    bone_mm: float
    lesion_mm: float
    failure_load_n: float


@dataclass(frozen=True)
class UncertaintyResult:
    """The interval of the reference failure load and what drives it (see the module docstring).

    nominal_n: the case's failure load F₀; shared_nominal_n: F₀′, the same inputs on the shared
    mesh (their difference is mesh noise); lower_n/upper_n (and × BW): the interval, the order
    statistics order_k and n + 1 − order_k of the samples; expected_coverage: its expected coverage
    (≥ interval unless too few samples); categories: risk category at F₀, lower and upper end;
    robust: all three equal; thresholds_crossed_bw: boundaries inside the interval; dominant: the
    factor with the largest share, in words, and what would narrow it.
    """

    nominal_n: float
    shared_nominal_n: float
    interval: float
    lower_n: float
    upper_n: float
    lower_bw: float
    upper_bw: float
    order_k: int
    expected_coverage: float
    categories: list[str]
    robust: bool
    thresholds_crossed_bw: list[float]
    factors: list[FactorEffect]
    samples: list[Sample]
    seed: int
    calibration_source: str
    dominant: str
    dominant_words: str
    narrowed_by: str
    runtime_s: float


@dataclass(frozen=True)
class Study:
    """What every state of the study shares: the scanned volume, the site bound to the case
    (`bonefe.sites.base.Setup`: frame, patches, reference load, thresholds, laws) and the case
    options (material, mesh: a `bonefe.case.MeshOptions`, risk, element degree)."""

    volume: Volume
    setup: object
    material: MaterialOptions
    mesh: object
    risk: RiskOptions
    degree: int = 1


@dataclass
class MeshedBone:
    """A mesh with its facet tags and the lattice where failure is read."""

    mesh: object
    facet_tags: object
    lattice: FailurePoints


@dataclass(frozen=True)
class Draw:
    """The inputs of one state: material options (law, line, ν) and the outline offsets."""

    material: MaterialOptions
    segmentation: SegmentationState


def meshed_failure(study: Study, bone: MeshedBone, E: np.ndarray, nu: float) -> float:
    """Reference failure load (N) of one material on one mesh, read at the bone's lattice (the site
    solves only what that load needs, `bonefe.assessment.reference_failure`)."""
    return reference_failure(study.setup, bone.mesh, bone.facet_tags, bone.lattice, E, nu, study.risk,
                             study.degree).failure_load_n


def case_failure(study: Study, comm=MPI.COMM_WORLD) -> float:
    """The case's reference failure load F₀ (N) as the pipeline computes it: the case mesh, the CT
    material of `bonefe.materials.cell_material`, read where the CT holds bone
    (`bonefe.assessment.failure_points`)."""
    bone, tags = study.setup.mesh(study.volume, study.mesh, comm)
    cells = cell_material(bone.mesh, study.volume, study.material)
    away = away_from_patches(bone.mesh, tags, study.risk.exclusion_mm)
    lattice = failure_points(bone.mesh, lesion_map(study.volume), away, study.risk.averaging_radius_mm)
    return meshed_failure(study, MeshedBone(bone.mesh, tags, lattice), cells.E, study.material.poisson)


def shared_mesh(study: Study, reach_mm: float, comm=MPI.COMM_WORLD) -> SharedMesh:
    """The shared mesh of the study: the bone grown by reach_mm, meshed at the case's options."""
    bone, tags = study.setup.mesh(grown_volume(study.volume, reach_mm), study.mesh, comm)
    return SharedMesh(bone.mesh, tags, study.volume, reach_mm, study.material, study.risk.exclusion_mm,
                      study.risk.averaging_radius_mm)


def state_failure(study: Study, shared: SharedMesh, draw: Draw, drawn_bone_mm: float = 0.0) -> float:
    """Reference failure load (N) of one state on the shared mesh (read where the outline drawn at
    offset drawn_bone_mm holds bone, `bonefe.perturbation`)."""
    lattice = shared.failure_points(draw.segmentation, drawn_bone_mm)
    return meshed_failure(study, MeshedBone(shared.mesh, shared.facet_tags, lattice),
                          shared.modulus(draw.segmentation, draw.material), draw.material.poisson)


def calibration_spread(material: MaterialOptions, errors: LineErrors | None,
                       options: UncertaintyOptions) -> CalibrationSpread:
    """The calibration line of `material` with the case's own fit errors, or the documented defaults."""
    if errors is not None:
        return CalibrationSpread(material.slope, material.intercept, errors.slope_se, errors.intercept_se,
                                 errors.covariance, f"the case's own calibration fit ({errors.n_rods} points)")
    return CalibrationSpread(material.slope, material.intercept, options.slope_rel_se * material.slope,
                             options.intercept_se_hu * material.slope, 0.0,
                             f"no calibration fit: {100 * options.slope_rel_se:g} % of the slope and "
                             f"{options.intercept_se_hu:g} HU for the intercept (literature defaults)")


def draw_samples(options: UncertaintyOptions, material: MaterialOptions,
                 calibration: CalibrationSpread, site_laws: tuple[str, ...] = ()) -> list[Draw]:
    """The Monte-Carlo inputs: options.samples draws in a fixed order from PCG64(seed); factors
    not asked for stay at their case values."""
    from scipy import stats  # 0.45 s to import: only when a study samples

    rng = np.random.default_rng(options.seed)
    n = options.samples
    lines = np.tile([calibration.slope, calibration.intercept], (n, 1))
    laws = [material.law] * n
    nus = np.full(n, material.poisson)
    bone, lesion = np.zeros(n), np.zeros(n)
    if "segmentation" in options.factors:
        bone = options.bone_sd_mm * stats.truncnorm.rvs(-TRUNCATE_SD, TRUNCATE_SD, size=n, random_state=rng)
    if "lesion" in options.factors:
        lesion = options.lesion_sd_mm * stats.truncnorm.rvs(-TRUNCATE_SD, TRUNCATE_SD, size=n, random_state=rng)
    if "calibration" in options.factors:
        lines = rng.multivariate_normal(lines[0], calibration.covariance_matrix(), size=n, method="cholesky")
        if np.any(lines[:, 0] <= 0.0):
            raise BonefeError("uncertainty: a sampled calibration slope is not positive; the slope's "
                              "standard error is too large for a linear calibration")
    if "poisson" in options.factors:
        nus = rng.uniform(*_poisson_range(material, options), size=n)
    if "law" in options.factors:
        names = options.law_names(material.law, site_laws)
        laws = [names[i] for i in rng.integers(len(names), size=n)]
    return [Draw(replace(material, slope=float(s), intercept=float(b), law=law, poisson=float(nu)),
                 SegmentationState(float(d), float(e)))
            for (s, b), law, nu, d, e in zip(lines, laws, nus, bone, lesion)]


def _poisson_range(material: MaterialOptions, options: UncertaintyOptions) -> tuple[float, float]:
    return material.poisson - options.poisson_delta, min(material.poisson + options.poisson_delta, 0.499)


def order_statistic_interval(loads, probability: float) -> tuple[float, float, int, float]:
    """(lower, upper, k, expected coverage) of the order-statistic interval [x(k), x(n+1−k)],
    k = ⌊(n + 1)(1 − p)/2⌋ (at least 1), expected coverage (n + 1 − 2k)/(n + 1)."""
    x = np.sort(np.asarray(loads, float))
    n = x.size
    k = max(1, int(np.floor((n + 1) * (1.0 - probability) / 2.0 + 1e-9)))
    return float(x[k - 1]), float(x[n - k]), k, (n + 1 - 2 * k) / (n + 1)


def one_at_a_time(options: UncertaintyOptions, material: MaterialOptions,
                  calibration: CalibrationSpread, site_laws: tuple[str, ...] = ()) -> list[tuple[str, str, list[tuple[str, Draw]]]]:
    """Each factor's (name, description, [(label, draw) low and high]) at ±1 SD (module docstring)."""
    nominal = SegmentationState()
    rows = []

    def at(label, segmentation=nominal, **changes):
        return label, Draw(replace(material, **changes), segmentation)

    if "segmentation" in options.factors:
        sd = options.bone_sd_mm
        rows.append(("segmentation", f"bone outline moved {sd:g} mm in / out (1 SD)",
                     [at(f"−{sd:g} mm", SegmentationState(-sd, 0.0)), at(f"+{sd:g} mm", SegmentationState(sd, 0.0))]))
    if "lesion" in options.factors:
        sd = options.lesion_sd_mm
        rows.append(("lesion", f"lesion outline moved {sd:g} mm in / out (1 SD)",
                     [at(f"−{sd:g} mm", SegmentationState(0.0, -sd)), at(f"+{sd:g} mm", SegmentationState(0.0, sd))]))
    if "calibration" in options.factors:
        for key, se, unit in (("slope", calibration.slope_se, "g/cm³ per HU"),
                              ("intercept", calibration.intercept_se, "g/cm³")):
            value = getattr(material, key)
            rows.append((f"calibration_{key}", f"{key} {value:.4g} ± {se:.2g} {unit} (1 SE; {calibration.source})",
                         [at("−1 SE", **{key: value - se}), at("+1 SE", **{key: value + se})]))
    if "poisson" in options.factors:
        low, high = _poisson_range(material, options)
        rows.append(("poisson", f"Poisson ratio {material.poisson:g} ± {options.poisson_delta:g} (uniform)",
                     [at(f"ν = {low:g}", poisson=low), at(f"ν = {high:g}", poisson=high)]))
    if "law" in options.factors:
        rows.append(("law", "density–modulus law", [at(name, law=name) for name in options.law_names(material.law, site_laws)]))
    return rows


def _effects(rows, loads: dict) -> list[FactorEffect]:
    """FactorEffects from the one-at-a-time rows and their computed loads (label → N per row)."""
    effects = []
    for name, description, states in rows:
        computed = {label: loads[name, label] for label, _ in states}
        low, high = min(computed, key=computed.get), max(computed, key=computed.get)
        if name != "law":
            low, high = states[0][0], states[-1][0]
        effects.append(FactorEffect(name, description, low, high, computed[low], computed[high], 0.0))
    spreads = [np.log(e.high_n / e.low_n) ** 2 for e in effects]
    total = sum(spreads)
    return [replace(e, share=float(s / total) if total > 0 else 0.0) for e, s in zip(effects, spreads)]


def factor_group(name: str) -> str:
    """The factor a one-at-a-time row belongs to (calibration_slope → calibration)."""
    return name.split("_")[0]


def dominant_factor(effects: list[FactorEffect]) -> tuple[str, float]:
    """The factor (calibration rows summed) with the largest share, and that share."""
    shares = {}
    for e in effects:
        shares[factor_group(e.name)] = shares.get(factor_group(e.name), 0.0) + e.share
    name = max(shares, key=shares.get)
    return name, shares[name]


def propagate(study: Study, options: UncertaintyOptions, calibration_errors: LineErrors | None = None,
              nominal_n: float | None = None, comm=MPI.COMM_WORLD, shared: SharedMesh | None = None
              ) -> UncertaintyResult:
    """The uncertainty study of one bone (module docstring); every rank calls it. nominal_n: the
    case's failure load F₀ on its own mesh (meshed and solved here when None); shared: the shared
    mesh when already built (else `shared_mesh` at options.reach_mm)."""
    start = time.perf_counter()
    if nominal_n is None:
        nominal_n = case_failure(study, comm)
    shared = shared or shared_mesh(study, options.reach_mm, comm)
    shared_nominal = state_failure(study, shared, Draw(study.material, SegmentationState()))
    scale = nominal_n / shared_nominal
    calibration = calibration_spread(study.material, calibration_errors, options)
    rows = one_at_a_time(options, study.material, calibration, study.setup.laws)
    loads = {(name, label): scale * state_failure(study, shared, draw) for name, _, states in rows
             for label, draw in states}
    effects = _effects(rows, loads)
    samples = [Sample(d.material.law, d.material.slope, d.material.intercept, d.material.poisson,
                      d.segmentation.bone_mm, d.segmentation.lesion_mm, scale * state_failure(study, shared, d))
               for d in draw_samples(options, study.material, calibration, study.setup.laws)]
    lower, upper, k, coverage = order_statistic_interval([s.failure_load_n for s in samples], options.interval)
    bw = body_weight_n(study.setup.body_mass_kg)
    thresholds = study.setup.thresholds(study.risk)
    categories = [risk_category(f / bw, thresholds) for f in (nominal_n, lower, upper)]
    crossed = [t for t in (thresholds.high_below_bw, thresholds.low_from_bw) if lower / bw < t <= upper / bw]
    dominant, _ = dominant_factor(effects)
    return UncertaintyResult(
        nominal_n, shared_nominal, options.interval, lower, upper, lower / bw, upper / bw, k, coverage,
        categories, len(set(categories)) == 1, crossed, effects, samples, options.seed, calibration.source,
        dominant, PLAIN_WORDS[dominant], NARROWED_BY[dominant],
        comm.allreduce(time.perf_counter() - start, op=MPI.MAX))


def samples_needed(probability: float) -> int:
    """The fewest samples whose order-statistic interval has expected coverage ≥ probability."""
    return int(np.ceil(2.0 / (1.0 - probability) - 1.0 - 1e-9))


def markdown_table(result: UncertaintyResult) -> str:
    """The one-at-a-time effects and the interval as a Markdown table (e.g. for docs/validation.md)."""
    rows = ["| factor | low | high | failure load low / high (N) | share |", "|---|---|---|---|---|"]
    for e in result.factors:
        rows.append(f"| {e.name} | {e.low_label} | {e.high_label} | {e.low_n:,.0f} / {e.high_n:,.0f} | "
                    f"{100 * e.share:.0f} % |")
    rows.append(f"\nNominal {result.nominal_n:,.0f} N (shared mesh {result.shared_nominal_n:,.0f} N); "
                f"{100 * result.interval:g} % interval {result.lower_n:,.0f}–{result.upper_n:,.0f} N "
                f"({result.lower_bw:.1f}–{result.upper_bw:.1f} × BW) from {len(result.samples)} samples "
                f"(seed {result.seed}; order statistics k = {result.order_k}, expected coverage "
                f"{100 * result.expected_coverage:.0f} %); risk categories at nominal, lower, upper: "
                f"{', '.join(result.categories)}; dominant: {result.dominant_words}.")
    return "\n".join(rows)

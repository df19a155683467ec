"""Uncertainty of the failure load (`bonefe.uncertainty`, `bonefe.perturbation`), checked against
independent references.

References: (1) order statistics: [x(k), x(n+1−k)] of n draws holds a new draw with expected
probability (n + 1 − 2k)/(n + 1) (Wilks 1941), worked by hand below. (2) A homogeneous bar:
linear elasticity makes every strain ∝ 1/E, so the failure load is ∝ E and a calibration change
scales it by the analytic modulus ratio of Schileo's chain (ρ_QCT = a·HU + b, ρ_ash = 0.877 ρ_QCT
+ 0.079, ρ_app = ρ_ash/0.6, E = c·ρ^p); tolerance 1e-6 relative: the iterative solver's rtol 1e-10
with margin. (3) The phantom femur: a bone outline moved outward (more bone, the partial-volume
layer with the CT's own values) is not weaker than the one drawn, and one moved inward is weaker;
on one shared mesh the comparison carries no mesh noise, only the solver's (< 1e-6). (4) The OLS
standard errors of a line (scipy.stats.linregress). (5) 1 and 2 MPI ranks give the same draws and loads.
"""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from mpi4py import MPI
from scipy import stats

import bonefe.uncertainty as uncertainty
from bonefe.sites.femur.anatomy import HEAD, SUPPORT, FemurFrame
from bonefe.assessment import RiskOptions
from bonefe.calibration import line_errors
from bonefe.case import MeshOptions
from bonefe.sites.femur.loads import ACTIVITIES, STANCE_ACTIVITY
from bonefe.materials import FEMORAL_LAWS, LAWS, MaterialOptions, apparent_density, ash_density, qct_density
from bonefe.perturbation import SegmentationState, SharedMesh, signed_distance
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom, write_phantom
from bonefe.sites.femur.site import FemurSetup
from bonefe.pipeline import run_case
from bonefe.uncertainty import (
    Draw, FactorEffect, Study, UncertaintyOptions, calibration_spread, case_failure, dominant_factor, draw_samples,
    order_statistic_interval, propagate, samples_needed, shared_mesh, state_failure,
)
from bonefe.volume import BONE, Volume

ROOT = Path(__file__).resolve().parents[1]
COMM = MPI.COMM_WORLD
SOLVER_RTOL = 1e-6
BAR_HU = 1000.0
BAR = (20.0, 20.0, 120.0)  # mm: a 20 × 20 mm bar, 120 mm long, along world z


def test_order_statistic_interval_by_hand():
    """19 loads 100…1900 N: k = ⌊20 · 0.05⌋ = 1, interval [x(1), x(19)] = [100, 1900] N, expected
    coverage 18/20 = 0.9. 39 loads 10…390 N: k = ⌊40 · 0.05⌋ = 2, [x(2), x(38)] = [20, 380] N, 36/40.
    8 loads: k would be ⌊9 · 0.05⌋ = 0, so the range [x(1), x(8)], coverage 7/9 = 0.778 < 0.9, and
    19 samples are needed (n + 1 ≥ 2/(1 − p) = 20)."""
    shuffled = np.random.default_rng(1).permutation(np.arange(1, 20) * 100.0)
    assert order_statistic_interval(shuffled, 0.9) == (100.0, 1900.0, 1, pytest.approx(0.9))
    assert order_statistic_interval(np.arange(39, 0, -1) * 10.0, 0.9) == (20.0, 380.0, 2, pytest.approx(0.9))
    assert order_statistic_interval([5.0, 3.0, 8.0, 1.0, 9.0, 2.0, 7.0, 4.0], 0.9) == (
        1.0, 9.0, 1, pytest.approx(7 / 9))
    assert samples_needed(0.9) == 19 and samples_needed(0.8) == 9


def test_propagation_by_hand(monkeypatch):
    """propagate on a stand-in solver whose load is literal per state, worked by hand:
    shared-mesh nominal 1000 N, case load 2000 N (scale 2); one-at-a-time: bone −/+0.5 mm 600 /
    1050 N, lesion −/+1.5 mm 1000 / 700 N, so log ranges² ln(1050/600)² = 0.3132 and
    ln(1000/700)² = 0.1272: segmentation 71 %, lesion 29 %. 19 draws with loads 1000 + 400·d_bone −
    100·d_lesion (d from the list below) give 19 loads whose lowest and highest, times 2, are the
    interval: 2 × (1000 − 400 − 100·1.0) = 1,000 N and 2 × (1000 + 400 + 100·1.0) = 3,000 N.
    75 kg (735.75 N BW): nominal 2.72 × BW; the interval 1.36–4.08 × BW lies inside the high-risk
    band (< 5 × BW): robust."""
    one_at_a_time = {(-0.5, 0.0): 600.0, (0.5, 0.0): 1050.0, (0.0, -1.5): 1000.0, (0.0, 1.5): 700.0,
                     (0.0, 0.0): 1000.0}
    bone = np.linspace(-1.0, 1.0, 19)
    lesion = -np.linspace(-1.0, 1.0, 19)
    draws = [Draw(MaterialOptions(), SegmentationState(float(b), float(e))) for b, e in zip(bone, lesion)]

    def load(study, shared, draw, drawn_bone_mm=0.0):
        key = (draw.segmentation.bone_mm, draw.segmentation.lesion_mm)
        if key in one_at_a_time and not any(d is draw for d in draws):
            return one_at_a_time[key]
        return 1000.0 + 400.0 * key[0] - 100.0 * key[1]

    monkeypatch.setattr(uncertainty, "state_failure", load)
    monkeypatch.setattr(uncertainty, "draw_samples", lambda *args: draws)
    study = Study(None, FemurSetup(None, 75.0), MaterialOptions(), None, RiskOptions())
    options = UncertaintyOptions(factors=["segmentation", "lesion"])
    result = propagate(study, options, nominal_n=2000.0, shared=object())
    effects = {e.name: e for e in result.factors}
    assert (effects["segmentation"].low_n, effects["segmentation"].high_n) == (1200.0, 2100.0)
    assert (effects["lesion"].low_n, effects["lesion"].high_n) == (2000.0, 1400.0)
    assert effects["segmentation"].share == pytest.approx(0.3132 / (0.3132 + 0.1272), abs=1e-3)
    assert (result.lower_n, result.upper_n) == pytest.approx((1000.0, 3000.0), rel=1e-12)
    assert result.shared_nominal_n == 1000.0 and result.order_k == 1 and result.expected_coverage == pytest.approx(0.9)
    assert (result.lower_bw, result.upper_bw) == pytest.approx((1.3592, 4.0775), abs=1e-4)
    assert result.robust and result.categories == ["high", "high", "high"]
    assert result.dominant == "segmentation" and "outer surface of the bone" in result.dominant_words
    assert "finer scan" in result.narrowed_by


def test_dominant_factor_sums_the_calibration_rows():
    """Shares 0.3 (slope) + 0.25 (intercept) = 0.55 for calibration beat 0.45 for segmentation."""
    effects = [FactorEffect("segmentation", "", "", "", 1.0, 2.0, 0.45),
               FactorEffect("calibration_slope", "", "", "", 1.0, 2.0, 0.3),
               FactorEffect("calibration_intercept", "", "", "", 1.0, 2.0, 0.25)]
    assert dominant_factor(effects) == ("calibration", pytest.approx(0.55))


def test_signed_distance_puts_the_outline_halfway_between_voxel_centres():
    """A 1-D slab of 4 inside voxels (2 mm): centres −1, −3 mm inside its outline, +1, +3 mm outside."""
    mask = np.zeros((1, 1, 10), bool)
    mask[0, 0, 3:7] = True
    distance = signed_distance(mask, np.array([2.0, 2.0, 2.0]))[0, 0]
    assert distance[1:9].tolist() == [3.0, 1.0, -1.0, -3.0, -3.0, -1.0, 1.0, 3.0]


def test_clopper_pearson_at_the_extremes():
    """With 0 of n successes the exact upper bound is 1 − (α/2)^(1/n), with n of n the lower bound
    is (α/2)^(1/n): n = 10, α = 0.05 gives 0.3085 and 0.6915 (closed form of the beta quantile)."""
    from bonefe.validation.coverage import clopper_pearson

    assert clopper_pearson(0, 10) == (0.0, pytest.approx(0.3085, abs=1e-4))
    assert clopper_pearson(10, 10) == (pytest.approx(0.6915, abs=1e-4), 1.0)


def test_line_errors_match_scipy_linregress():
    """SE of slope and intercept of a 5-rod fit equal scipy.stats.linregress's; covariance equals
    −x̄·SE_slope² (OLS). Reference (4)."""
    hu = np.array([-10.0, 95.0, 210.0, 405.0, 790.0])
    rho = 0.0008 * hu + 0.002 + np.array([0.003, -0.002, 0.001, -0.004, 0.002])
    fit = stats.linregress(hu, rho)
    residual = rho - (fit.slope * hu + fit.intercept)
    errors = line_errors(hu, float(np.sqrt(residual @ residual / (hu.size - 2))))
    assert errors.slope_se == pytest.approx(fit.stderr, rel=1e-10)
    assert errors.intercept_se == pytest.approx(fit.intercept_stderr, rel=1e-10)
    assert errors.covariance == pytest.approx(-hu.mean() * fit.stderr**2, rel=1e-10)


def test_draws_follow_the_stated_error_model():
    """Same seed, same draws; outline offsets within ±2 SD with the truncated normal's SD
    (0.8796·SD; 4000 draws: sampling error ~1.1 %, 5 % allowed); with a fit the calibration draws
    follow its covariance (4000 draws within 10 %: ~2 % sampling error per entry)."""
    options = UncertaintyOptions(samples=8, seed=3)
    spread = calibration_spread(MaterialOptions(), None, options)
    assert draw_samples(options, MaterialOptions(), spread) == draw_samples(options, MaterialOptions(), spread)
    assert draw_samples(options, MaterialOptions(), spread) != draw_samples(replace(options, seed=4),
                                                                              MaterialOptions(), spread)
    errors = line_errors(np.array([0.0, 100.0, 200.0, 400.0, 800.0]), 0.004)
    spread = calibration_spread(MaterialOptions(), errors, options)
    many = draw_samples(replace(options, samples=4000), MaterialOptions(), spread)
    lines = np.array([[d.material.slope, d.material.intercept] for d in many])
    assert np.cov(lines.T) == pytest.approx(spread.covariance_matrix(), rel=0.1)
    bone = np.array([d.segmentation.bone_mm for d in many])
    lesion = np.array([d.segmentation.lesion_mm for d in many])
    assert np.abs(bone).max() <= 1.0 and np.abs(lesion).max() <= 3.0
    assert bone.std() == pytest.approx(0.8796 * 0.5, rel=0.05) and lesion.std() == pytest.approx(0.8796 * 1.5, rel=0.05)
    assert {d.material.law for d in many} == {"morgan2003"}


def axial_frame() -> FemurFrame:
    """A femur frame turned so that the stance hip-contact force points along world −z (pure
    axial compression of a bar standing on z = 0)."""
    d = np.asarray(ACTIVITIES[STANCE_ACTIVITY].force, float)
    d /= np.linalg.norm(d)
    target = np.array([0.0, 0.0, -1.0])
    v, c = np.cross(d, target), float(d @ target)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    rotation = np.eye(3) + k + k @ k / (1.0 + c)
    return FemurFrame(np.zeros(3), 10.0, rotation[:, 2], rotation[:, 0], np.zeros(3))


def bar_tags(mesh):
    """Facet tags: SUPPORT on z = min, HEAD (the loaded patch) on z = max."""
    from dolfinx.mesh import locate_entities_boundary, meshtags

    z = mesh.geometry.x[:, 2]
    lo, hi = COMM.allreduce(z.min(), op=MPI.MIN), COMM.allreduce(z.max(), op=MPI.MAX)
    support = locate_entities_boundary(mesh, 2, lambda x: np.isclose(x[2], lo, atol=1e-6))
    head = locate_entities_boundary(mesh, 2, lambda x: np.isclose(x[2], hi, atol=1e-6))
    facets = np.concatenate([support, head]).astype(np.int32)
    values = np.concatenate([np.full(support.size, SUPPORT), np.full(head.size, HEAD)]).astype(np.int32)
    order = np.argsort(facets)
    return meshtags(mesh, 2, facets[order], values[order])


def modulus(material: MaterialOptions, hu: float = BAR_HU) -> float:
    """E (MPa) of one HU by the chain of reference (2), written out independently."""
    rho_qct = material.slope * hu + material.intercept
    rho_ash = 0.877 * rho_qct + 0.079
    law = LAWS[material.law]
    rho = rho_ash if law.density == "ash" else rho_ash / 0.6
    return law.coefficient * rho**law.exponent


def test_independent_modulus_chain_matches_the_library():
    """The test's own chain agrees with bonefe.materials (guards reference (2))."""
    for law in LAWS:
        material = MaterialOptions(law=law)
        rho_ash = ash_density(qct_density(np.array([BAR_HU]), material.slope, material.intercept))
        assert LAWS[law].modulus(rho_ash, apparent_density(rho_ash))[0] == pytest.approx(modulus(material), rel=1e-12)


def test_bar_samples_scale_with_the_analytic_modulus_and_the_interval_is_two_of_them():
    """A uniform 1000 HU bar (2 mm voxels, structured tetrahedra), calibration and law drawn: every
    sample's load is the nominal load times the analytic modulus ratio (reference 2), and the 90 %
    interval of 19 samples is their lowest and highest (reference 1)."""
    from dolfinx.mesh import CellType, create_box

    shape = (14, 14, 64)
    volume = Volume(hu=np.full(shape, BAR_HU, np.float32), labels=np.full(shape, BONE, np.uint8),
                    affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    mesh = create_box(COMM, [[3.0, 3.0, 3.0], [3.0 + BAR[0], 3.0 + BAR[1], 3.0 + BAR[2]]], [4, 4, 24],
                      CellType.tetrahedron)
    risk = RiskOptions(exclusion_mm=25.0)  # > bar width: Saint-Venant end zones not read
    study = Study(volume, FemurSetup(axial_frame(), 75.0), MaterialOptions(), None, risk)
    shared = SharedMesh(mesh, bar_tags(mesh), volume, 0.0, study.material, risk.exclusion_mm, risk.averaging_radius_mm)
    nominal = state_failure(study, shared, Draw(study.material, SegmentationState()))
    result = propagate(study, UncertaintyOptions(samples=19, factors=["calibration", "law"], laws=list(LAWS)),
                       nominal_n=nominal, comm=COMM, shared=shared)
    base = study.material
    for s in result.samples:
        sample = replace(base, slope=s.slope, intercept=s.intercept, law=s.law)
        assert s.failure_load_n == pytest.approx(nominal * modulus(sample) / modulus(base), rel=SOLVER_RTOL)
    loads = [s.failure_load_n for s in result.samples]
    assert (result.lower_n, result.upper_n) == (min(loads), max(loads))
    slope = {e.name: e for e in result.factors}["calibration_slope"]
    expected = [nominal * modulus(replace(base, slope=base.slope * f)) / modulus(base) for f in (0.95, 1.05)]
    assert [slope.low_n, slope.high_n] == pytest.approx(expected, rel=SOLVER_RTOL)


@pytest.fixture(scope="module")
def phantom_states():
    """The coarse phantom femur (2 mm voxels, 20 mm lytic neck lesion, 6 mm mesh): the case's load
    on its own mesh and, on one shared mesh grown by one voxel, the loads of the bone outline moved
    by −1, −½, 0, +½, +1 voxel and of the lesion outline by ±1.5 mm (N)."""
    volume, frame = make_phantom(PhantomSpec(voxel_mm=2.0))
    study = Study(volume, FemurSetup(frame, 75.0), MaterialOptions(), MeshOptions(size_mm=6.0), RiskOptions())
    shared = shared_mesh(study, 2.0, COMM)
    bone = {d: state_failure(study, shared, Draw(study.material, SegmentationState(d, 0.0)))
            for d in (-2.0, -1.0, 0.0, 1.0, 2.0)}
    lesion = {d: state_failure(study, shared, Draw(study.material, SegmentationState(0.0, d))) for d in (-1.5, 1.5)}
    return case_failure(study, COMM), bone, lesion


def test_dilated_bone_is_not_weaker_than_the_drawn_or_the_eroded_one(phantom_states):
    """Reference (3). Measured 2026-12-01 with failure read point-wise (b7e185b; the test prints
    them): eroded one voxel 0.137×, half a voxel 0.565×, dilated half a voxel 1.102×, one voxel
    1.131× the drawn outline's load on the shared mesh (before b7e185b: 0.21×, 0.59×, 1.13×,
    1.16×; re-meshing the one-voxel eroded labels gave 0.19× against the case mesh then, not
    re-measured). On one mesh the noise is the solver's (< 1e-6), so the order holds exactly. The
    shared mesh's drawn state lies 9.7 % below the case's own mesh at this coarse 6 mm size (7 %
    before b7e185b): mesh noise between two meshes of nearly the same bone, which `propagate`
    removes by using ratios; held within 10 %."""
    case, bone, _ = phantom_states
    print("phantom, shared 6 mm mesh, bone outline offset (mm): load / nominal",
          {d: round(bone[d] / bone[0.0], 4) for d in sorted(bone)}, "shared / case", round(bone[0.0] / case, 4))
    assert bone[-2.0] < bone[-1.0] < bone[0.0]
    assert bone[1.0] >= bone[0.0] * (1 - SOLVER_RTOL) and bone[2.0] >= bone[1.0] * (1 - SOLVER_RTOL)
    assert bone[2.0] > bone[-2.0]
    assert bone[0.0] == pytest.approx(case, rel=0.1)


def test_a_grown_lesion_weakens_the_bone(phantom_states):
    """The lesion outline moved out by 1.5 mm (more bone becomes lytic: E × 0.01) lowers the load;
    moved in, the load does not fall (the lesion's own low CT values stay)."""
    _, bone, lesion = phantom_states
    assert lesion[1.5] < 0.9 * bone[0.0]
    assert lesion[-1.5] >= bone[0.0] * (1 - 1e-3)


def demo_spec(voxel_mm: float = 1.0) -> PhantomSpec:
    """The demo phantom as `make demo` writes it: Makefile DEMO_LESION (site, diameter, cortical
    involvement) read from the Makefile, `bonefe phantom`'s 1 mm voxels."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    line = re.search(r"^DEMO_LESION\s*:=\s*(.+)$", makefile, re.MULTILINE).group(1)
    options = dict(zip(shlex.split(line)[::2], shlex.split(line)[1::2]))
    return PhantomSpec(voxel_mm=voxel_mm, lesion_site=options["--lesion-site"],
                       lesion_diameter_mm=float(options["--lesion-diameter"]),
                       cortical_involvement=float(options["--cortical-involvement"]))


def test_the_makefile_demo_lesion_is_the_code_s():
    """The Makefile's DEMO_LESION (what `make demo` draws) and `bonefe.sites.femur.phantom.DEMO_LESION`
    (what the coverage experiment, the follow-up series and the convergence study take) agree."""
    from bonefe.sites.femur.phantom import DEMO_LESION

    assert demo_spec() == PhantomSpec(**DEMO_LESION)


@pytest.fixture(scope="module")
def demo_states():
    """The demo femur (20 mm lytic inferomedial neck lesion through the cortex, 1 mm voxels) on one
    shared mesh of 5 mm grown by 1 mm (2 SD of the bone outline, the study's reach): the loads of
    the bone outline moved by −1, −½, 0, +½, +1 voxel (N)."""
    volume, frame = make_phantom(demo_spec())
    study = Study(volume, FemurSetup(frame, 75.0), MaterialOptions(), MeshOptions(size_mm=5.0), RiskOptions())
    shared = shared_mesh(study, UncertaintyOptions().reach_mm, COMM)
    return {d: state_failure(study, shared, Draw(study.material, SegmentationState(d, 0.0)))
            for d in (-1.0, -0.5, 0.0, 0.5, 1.0)}


def test_on_the_demo_a_dilated_bone_is_not_weaker_and_an_eroded_one_not_stronger(demo_states):
    """Issue 24's done-when on the demo itself. Reference (3): on one mesh only the solver's noise
    (< 1e-6) separates the states. Measured (2026-12-01; 5 mm): eroded 1 / ½ voxel 0.832× / 0.891×,
    dilated ½ / 1 voxel 1.153× / 1.198× the drawn outline's load; at the demo's own 3 mm mesh
    0.948× / 1.013× and 1.205× / 1.284×. The ½-voxel erosion at 3 mm is 1.3 % above the drawn
    outline, so only the one-voxel erosion is held at or below it; the dilated states hold at both
    sizes."""
    bone = demo_states
    print("demo, shared 5 mm mesh, bone outline offset (mm): load / nominal",
          {d: round(bone[d] / bone[0.0], 4) for d in sorted(bone)})
    assert bone[0.5] >= bone[0.0] * (1 - SOLVER_RTOL) and bone[1.0] >= bone[0.0] * (1 - SOLVER_RTOL)
    assert bone[-1.0] <= bone[0.0] * (1 + SOLVER_RTOL)


@pytest.fixture(scope="module")
def tiny_case(tmp_path_factory):
    """A coarse phantom femur case (2 mm voxels, 8 mm mesh, one activity, no what-if) run with
    `uncertainty=5` as `bonefe run --uncertainty=5` does."""
    folder = Path(COMM.bcast(str(tmp_path_factory.mktemp("uncertainty")) if COMM.rank == 0 else None))
    if COMM.rank == 0:
        paths = write_phantom(PhantomSpec(voxel_mm=2.0, lesion_site="neck", lesion_diameter_mm=20.0), folder / "ph")
        case = {"name": "tiny", "ct": str(paths["ct"]), "labels": str(paths["labels"]), "output": "runs/tiny",
                "patient": {"body_mass_kg": 75}, "mesh": {"size_mm": 8.0}, "activities": ["walking"],
                "uncertainty": {"seed": 7}}
        (folder / "tiny.yaml").write_text(yaml.safe_dump(case), encoding="utf-8")
    COMM.barrier()
    results = run_case(folder / "tiny.yaml", quiet=True, uncertainty=5)
    return folder, results


def test_interval_is_reported_from_computed_loads(tiny_case):
    """report.json carries the entry; with 5 samples the interval is their range (expected coverage
    4/6), which the report says instead of claiming 90 %; both ends are computed loads; the
    summary names the dominant input and what would narrow it."""
    folder, results = tiny_case
    report = json.loads((folder / "runs" / "tiny" / "report.json").read_text(encoding="utf-8"))
    u = report["uncertainty"]
    loads = [s["failure_load_n"] for s in u["samples"]]
    assert len(loads) == 5 and u["seed"] == 7 and u["interval"] == 0.9
    assert [u["lower_n"], u["upper_n"]] == [min(loads), max(loads)]
    assert u["expected_coverage"] == pytest.approx(4 / 6) and u["order_k"] == 1
    assert u["nominal_n"] == pytest.approx(report["failure_load_n"], rel=1e-12)
    assert u["lower_bw"] == pytest.approx(u["lower_n"] / (75 * 9.81), rel=1e-12)
    assert {f["name"] for f in u["factors"]} == {"segmentation", "lesion", "calibration_slope",
                                                "calibration_intercept", "poisson"}
    assert sum(f["share"] for f in u["factors"]) == pytest.approx(1.0, rel=1e-12)
    assert u["robust"] == (len(set(u["categories"])) == 1)
    html = (folder / "runs" / "tiny" / "report.html").read_text(encoding="utf-8")
    assert "range of 5 samples" in html and "19 samples give a 90 % interval" in html
    assert "would narrow it" in html and u["dominant_words"] in html
    assert (folder / "runs" / "tiny" / "uncertainty.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.skipif(COMM.size > 1, reason="launches its own 2-rank run")
def test_cli_flag_on_two_ranks_gives_the_same_samples(tiny_case, tmp_path):
    """`mpirun -n 2 bonefe run CASE --uncertainty=5`: the same draws and, within the solver
    tolerance, the same sampled failure loads and interval as the serial run. Reference (5)."""
    folder, results = tiny_case
    mpirun = Path(sys.executable).parent / "mpirun"
    mpirun = str(mpirun) if mpirun.exists() else shutil.which("mpirun")
    if mpirun is None:
        pytest.skip("no mpirun next to the interpreter or on PATH")
    completed = subprocess.run([mpirun, "-n", "2", sys.executable, "-m", "bonefe.cli", "run",
                                str(folder / "tiny.yaml"), "--output", str(tmp_path / "np2"), "--quiet",
                                "--uncertainty=5"], capture_output=True, encoding="utf-8", timeout=900)
    assert completed.returncode == 0, completed.stderr[-2000:]
    parallel = json.loads((tmp_path / "np2" / "report.json").read_text(encoding="utf-8"))["uncertainty"]
    serial = results["uncertainty"]
    assert [(s["bone_mm"], s["lesion_mm"], s["slope"]) for s in parallel["samples"]] == [
        (s.bone_mm, s.lesion_mm, s.slope) for s in serial.samples]
    assert [s["failure_load_n"] for s in parallel["samples"]] == pytest.approx(
        [s.failure_load_n for s in serial.samples], rel=SOLVER_RTOL)
    assert [parallel["lower_n"], parallel["upper_n"]] == pytest.approx([serial.lower_n, serial.upper_n], rel=SOLVER_RTOL)


def test_default_factors_and_laws():
    """By default the inputs with a measured error are drawn, not the law; when the law is asked
    for, only those fitted on human femoral bone (Morgan 2003 neck, Keller 1994 femur)."""
    assert UncertaintyOptions().factors == ["segmentation", "lesion", "calibration", "poisson"]
    assert UncertaintyOptions().law_names("morgan2003", FEMORAL_LAWS) == ["morgan2003", "keller1994"]
    assert UncertaintyOptions().reach_mm == 1.0 and UncertaintyOptions(factors=["lesion"]).reach_mm == 0.0

"""Uncertainty of the failure load (`bonefe.uncertainty`), checked against independent references.

References: (1) a homogeneous bar: linear elasticity makes every strain ∝ 1/E, so the failure load
is ∝ E and any change of the material inputs scales it by the analytic modulus ratio of
Schileo's density chain and the law (ρ_QCT = a·HU + b, ρ_ash = 0.877 ρ_QCT + 0.079,
ρ_app = ρ_ash/0.6, E = c·ρ^p); tolerance 1e-6 relative: the iterative solver's rtol 1e-10 with
margin. (2) Saint-Venant: away from its ends a bar under an axial force F has ε = −F/(E·A), so
its compressive failure load is ε_c·E·A: it must grow as its segmentation is dilated and shrink
as it is eroded (monotone only: on 3 mm elements the load ratios differ from the area ratios by
up to 9 %, which the peak-over-critical-volume near the tagged end faces may explain; not held).
(3) The OLS standard errors of a line (scipy.stats.linregress).
(4) Statistics: the reported Monte-Carlo quantiles are numpy.quantile of the reported samples,
the same seed draws the same samples, and 1 and 2 MPI ranks give the same interval.
"""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

import json
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

from bonefe.anatomy import HEAD, SUPPORT, FemurFrame
from bonefe.assessment import RiskOptions
from bonefe.calibration import line_errors
from bonefe.loads import ACTIVITIES, STANCE_ACTIVITY
from bonefe.materials import LAWS, MaterialOptions, apparent_density, ash_density, cell_material, qct_density
from bonefe.meshing import mesh_bone
from bonefe.phantom import PhantomSpec, write_phantom
from bonefe.pipeline import run_case
from bonefe.uncertainty import (
    Study, UncertaintyOptions, draw_samples, calibration_spread, meshed_bone, propagate, shifted_envelope,
    stance_failure,
)
from bonefe.volume import BACKGROUND, BONE, Volume

COMM = MPI.COMM_WORLD
SOLVER_RTOL = 1e-6
BAR_HU = 1000.0
BAR = (20.0, 20.0, 120.0)  # mm: a 20 × 20 mm bar, 120 mm long, along world z


def axial_frame() -> FemurFrame:
    """A femur frame turned so that the stance hip-contact force points along world −z (pure
    axial compression of a bar standing on z = 0): its basis is the rotation taking the stance
    direction (medial, anterior, superior) onto −z."""
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


def bar_study(volume: Volume) -> Study:
    # exclusion 25 mm > bar width: the end zones of Saint-Venant are not evaluated
    return Study(volume, axial_frame(), MaterialOptions(), None, RiskOptions(exclusion_mm=25.0), 75.0)


@pytest.fixture(scope="module")
def bar():
    """A structured tetrahedral bar inside a uniform 1000 HU bone volume (2 mm voxels)."""
    from dolfinx.mesh import CellType, create_box

    shape = (14, 14, 64)
    volume = Volume(hu=np.full(shape, BAR_HU, np.float32), labels=np.full(shape, BONE, np.uint8),
                    affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    mesh = create_box(COMM, [[3.0, 3.0, 3.0], [3.0 + BAR[0], 3.0 + BAR[1], 3.0 + BAR[2]]], [4, 4, 24],
                      CellType.tetrahedron)
    return bar_study(volume), mesh, bar_tags(mesh)


def modulus(material: MaterialOptions, hu: float = BAR_HU) -> float:
    """E (MPa) of one HU by the chain of the module docstring, written out independently."""
    rho_qct = material.slope * hu + material.intercept
    rho_ash = 0.877 * rho_qct + 0.079
    law = LAWS[material.law]
    rho = rho_ash if law.density == "ash" else rho_ash / 0.6
    return law.coefficient * rho**law.exponent


def test_bar_failure_load_scales_with_the_analytic_modulus(bar):
    """Slope × (1 ± 5 %), intercept ± 5 HU·slope and each law scale the bar's failure load by the
    analytic modulus ratio; every Monte-Carlo sample too. Reference (1)."""
    study, mesh, tags = bar
    result = propagate(study, UncertaintyOptions(samples=6, factors=["calibration", "law"], laws=list(LAWS)),
                       mesh=(mesh, tags), comm=COMM)
    nominal, base = result.nominal_n, study.material
    effects = {e.name: e for e in result.factors}
    se_slope, se_intercept = 0.05 * base.slope, 5.0 * base.slope
    for name, key, se in (("calibration_slope", "slope", se_slope), ("calibration_intercept", "intercept", se_intercept)):
        expected = [nominal * modulus(replace(base, **{key: getattr(base, key) + s * se})) / modulus(base)
                    for s in (-1, 1)]
        assert [effects[name].low_n, effects[name].high_n] == pytest.approx(expected, rel=SOLVER_RTOL)
    by_law = {law: nominal * modulus(replace(base, law=law)) / modulus(base) for law in LAWS}
    assert effects["law"].low_n == pytest.approx(min(by_law.values()), rel=SOLVER_RTOL)
    assert effects["law"].high_n == pytest.approx(max(by_law.values()), rel=SOLVER_RTOL)
    assert effects["law"].sd_log == pytest.approx(np.std(np.log(list(by_law.values()))), rel=1e-5)
    for s in result.samples:
        sample = replace(base, slope=s.slope, intercept=s.intercept, law=s.law)
        assert s.failure_load_n == pytest.approx(nominal * modulus(sample) / modulus(base), rel=SOLVER_RTOL)


def test_bar_failure_load_hardly_depends_on_poisson(bar):
    """Axial compression: ε_zz = −F/(E·A) whatever ν away from the ends, so the Poisson factor's
    runs stay within 2 % of the nominal load (the end zones' tails reach the evaluated cells)."""
    study, mesh, tags = bar
    result = propagate(study, UncertaintyOptions(samples=2, factors=["poisson"]), mesh=(mesh, tags), comm=COMM)
    (effect,) = result.factors
    assert [effect.low_n, effect.high_n] == pytest.approx([result.nominal_n] * 2, rel=0.02)
    assert {s.law for s in result.samples} == {"morgan2003"} and 0.35 <= min(s.poisson for s in result.samples)


def test_independent_modulus_chain_matches_the_library():
    """The test's own chain agrees with bonefe.materials (guards the reference above)."""
    for law in LAWS:
        material = MaterialOptions(law=law)
        rho_ash = ash_density(qct_density(np.array([BAR_HU]), material.slope, material.intercept))
        assert LAWS[law].modulus(rho_ash, apparent_density(rho_ash))[0] == pytest.approx(modulus(material), rel=1e-12)


def test_line_errors_match_scipy_linregress():
    """SE of slope and intercept of a 5-rod fit equal scipy.stats.linregress's; covariance equals
    −x̄·SE_slope² (OLS). Reference (3)."""
    hu = np.array([-10.0, 95.0, 210.0, 405.0, 790.0])
    rho = 0.0008 * hu + 0.002 + np.array([0.003, -0.002, 0.001, -0.004, 0.002])
    fit = stats.linregress(hu, rho)
    residual = rho - (fit.slope * hu + fit.intercept)
    errors = line_errors(hu, float(np.sqrt(residual @ residual / (hu.size - 2))))
    assert errors.slope_se == pytest.approx(fit.stderr, rel=1e-10)
    assert errors.intercept_se == pytest.approx(fit.intercept_stderr, rel=1e-10)
    assert errors.covariance == pytest.approx(-hu.mean() * fit.stderr**2, rel=1e-10)


def test_same_seed_same_samples_and_the_rod_covariance_is_used():
    """Draws depend on the seed alone; with a rod fit the calibration draws follow its covariance
    (sample covariance of 4000 draws within 10 %: sampling error ~ √(2/4000) ≈ 2 % per entry)."""
    options = UncertaintyOptions(samples=8, seed=3)
    spread = calibration_spread(MaterialOptions(), None, options)
    assert draw_samples(options, MaterialOptions(), spread) == draw_samples(options, MaterialOptions(), spread)
    assert draw_samples(options, MaterialOptions(), spread) != draw_samples(replace(options, seed=4),
                                                                              MaterialOptions(), spread)
    hu = np.array([0.0, 100.0, 200.0, 400.0, 800.0])
    errors = line_errors(hu, 0.004)
    spread = calibration_spread(MaterialOptions(), errors, options)
    many = draw_samples(replace(options, samples=4000, factors=["calibration"]), MaterialOptions(), spread)
    lines = np.array([[m.slope, m.intercept] for m in many])
    assert np.cov(lines.T) == pytest.approx(spread.covariance_matrix(), rel=0.1)


def cylinder_volume() -> Volume:
    """A bone cylinder of radius 9 mm (2 mm voxels) along z, in a CT that is bone (1000 HU)
    everywhere: the segmentation, not the CT, decides the bar's cross-section."""
    shape = (16, 16, 40)
    i, j, _ = np.indices(shape)
    inside = (i - 7.5) ** 2 + (j - 7.5) ** 2 <= 4.5**2
    labels = np.where(inside, BONE, BACKGROUND).astype(np.uint8)
    return Volume(hu=np.full(shape, BAR_HU, np.float32), labels=labels, affine=np.diag([2.0, 2.0, 2.0, 1.0]))


def test_segmentation_dilation_strengthens_and_erosion_weakens_an_axial_bar():
    """The eroded, as segmented and dilated cylinder: cross-section area (mesh volume / length)
    and failure load both grow, in that order. Reference (2): F = ε_c·E·A grows with A."""
    volume = cylinder_volume()
    study = bar_study(volume)
    loads, areas = [], []  # failure load (N), meshed cross-section area (mm²)
    for voxels in (-1, 0, 1):
        shifted = shifted_envelope(volume, voxels)
        mesh = mesh_bone(shifted, 3.0, COMM).mesh
        tags = bar_tags(mesh)
        cells = cell_material(mesh, shifted, study.material)
        bone = meshed_bone(mesh, tags, cells.label, study.risk)
        loads.append(stance_failure(study, bone, cells.E, 0.4))
        z = mesh.geometry.x[:, 2]
        length = COMM.allreduce(z.max(), op=MPI.MAX) - COMM.allreduce(z.min(), op=MPI.MIN)
        areas.append(COMM.allreduce(float(bone.lattice.average.bin_volume.sum()), op=MPI.SUM) / length)
    assert areas[0] < areas[1] < areas[2]
    assert loads[0] < loads[1] < loads[2]


def test_erosion_keeps_lesions_and_the_image_border():
    """Erosion removes the outer bone voxels but never a lesion voxel nor the slice at the image
    border (the distal cut); dilation labels new voxels from their neighbours, lesion first."""
    labels = np.zeros((9, 9, 6), np.uint8)
    labels[2:7, 2:7, :] = BONE
    labels[2, 4, 3] = 2  # a lytic voxel on the surface
    volume = Volume(hu=np.zeros(labels.shape, np.float32), labels=labels, affine=np.eye(4))
    eroded = shifted_envelope(volume, -1).labels
    assert eroded[2, 4, 3] == 2 and eroded[2, 3, 3] == BACKGROUND and eroded[3, 3, 0] == BONE
    assert np.count_nonzero(eroded == BONE) == 3 * 3 * 6 - 0
    dilated = shifted_envelope(volume, 1).labels
    assert dilated[1, 4, 3] == 2 and dilated[1, 3, 3] == BONE and dilated[1, 1, 3] == BACKGROUND


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
        (folder / "tiny.yaml").write_text(yaml.safe_dump(case))
    COMM.barrier()
    results = run_case(folder / "tiny.yaml", quiet=True, uncertainty=5)
    return folder, results


def test_interval_is_reported_and_contains_the_nominal_load(tiny_case):
    """report.json carries the entry; its Monte-Carlo quantiles are numpy.quantile of its samples;
    the combined interval holds the nominal load and the material interval; the summary says it."""
    folder, results = tiny_case
    report = json.loads((folder / "runs" / "tiny" / "report.json").read_text())
    u = report["uncertainty"]
    loads = [s["failure_load_n"] for s in u["samples"]]
    assert len(loads) == 5 and u["seed"] == 7 and u["interval"] == 0.9
    assert [u["material_lower_n"], u["material_upper_n"]] == list(np.quantile(loads, [0.05, 0.95]))
    assert u["lower_n"] <= min(u["material_lower_n"], report["failure_load_n"])
    assert u["upper_n"] >= max(u["material_upper_n"], report["failure_load_n"])
    assert u["nominal_n"] == pytest.approx(report["failure_load_n"], rel=SOLVER_RTOL)
    assert u["lower_bw"] == pytest.approx(u["lower_n"] / (75 * 9.81), rel=1e-12)
    assert {f["name"] for f in u["factors"]} == {"calibration_slope", "calibration_intercept", "law", "poisson",
                                                "segmentation", "mesh"}
    assert sum(f["share"] for f in u["factors"]) == pytest.approx(1.0, rel=1e-12)
    html = (folder / "runs" / "tiny" / "report.html").read_text()
    assert "90 % interval" in html and "How sure is the failure load" in html
    assert (folder / "runs" / "tiny" / "uncertainty.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.skipif(COMM.size > 1, reason="launches its own 2-rank run")
def test_cli_flag_on_two_ranks_gives_the_same_samples(tiny_case, tmp_path):
    """`mpirun -n 2 bonefe run CASE --uncertainty=5`, material factors only (no re-meshing, to keep
    it short): the same draws and, within the solver tolerance, the same sampled failure loads and
    Monte-Carlo interval as the serial run (seeded draws identical on every rank)."""
    folder, results = tiny_case
    mpirun = Path(sys.executable).parent / "mpirun"
    mpirun = str(mpirun) if mpirun.exists() else shutil.which("mpirun")
    if mpirun is None:
        pytest.skip("no mpirun next to the interpreter or on PATH")
    case = yaml.safe_load((folder / "tiny.yaml").read_text())
    case["uncertainty"]["factors"] = ["calibration", "law", "poisson"]
    (folder / "material.yaml").write_text(yaml.safe_dump(case))
    completed = subprocess.run([mpirun, "-n", "2", sys.executable, "-m", "bonefe.cli", "run",
                                str(folder / "material.yaml"), "--output", str(tmp_path / "np2"), "--quiet",
                                "--uncertainty=5"], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "90 % interval" in completed.stdout
    parallel = json.loads((tmp_path / "np2" / "report.json").read_text())["uncertainty"]
    serial = results["uncertainty"]
    assert [(s["law"], s["slope"], s["poisson"]) for s in parallel["samples"]] == [
        (s.law, s.slope, s.poisson) for s in serial.samples]
    assert [s["failure_load_n"] for s in parallel["samples"]] == pytest.approx(
        [s.failure_load_n for s in serial.samples], rel=SOLVER_RTOL)
    assert [parallel["material_lower_n"], parallel["material_upper_n"]] == pytest.approx(
        [serial.material_lower_n, serial.material_upper_n], rel=SOLVER_RTOL)


def test_default_laws_are_the_femoral_ones():
    """By default only laws fitted on human femoral bone are varied (Morgan 2003 neck, Keller 1994
    femur); a nominal law outside them is kept in the set."""
    assert UncertaintyOptions().law_names("morgan2003") == ["morgan2003", "keller1994"]
    assert "keyak1994" in UncertaintyOptions().law_names("keyak1994")

"""`bonefe calibrate`: the cohort calibration end to end on a hand-computed cohort, the modulus
scale fit against closed forms and scipy's t interval, and modulus_scale in the FE model against
the exact scaling of linear elasticity."""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

import json

import dolfinx
import numpy as np
import pytest
from mpi4py import MPI
from scipy import stats

from bonefe.sites.femur.anatomy import HEAD, SUPPORT, TROCHANTER
from bonefe.assessment import RiskOptions
from bonefe.sites.femur.assessment import femur_model
from bonefe.cli import main
from bonefe.errors import BonefeError
from bonefe.cohort.material_fit import fit_modulus_scale
from bonefe.materials import LAWS, MaterialOptions, apparent_density, ash_density, cell_material, qct_density
from bonefe.risk import thresholds_from_calibration
from bonefe.schema import build
from bonefe.volume import BONE, Volume

COLUMNS = ("case,status,runtime_s,failure_load_n,failure_load_bw,risk_category,strain_fold_ratio,"
           "mirels_min,mirels_max,axial_involvement_mm,error,output")
# case, status, failure_load_n, failure_load_bw, strain_fold_ratio, mirels_min, mirels_max, axial_mm
COHORT = [
    ("p1", "done", 2000, 2.7, 2.1, 9, 11, 40), ("p2", "done", 3000, 4.0, 1.9, 8, 10, 35),
    ("p3", "done", 4500, 6.1, 1.2, 7, 9, 20), ("p4", "done", 6600, 9.0, 1.5, 8, 10, ""),
    ("p5", "done", 8000, 11.0, 1.1, 6, 8, 10), ("p6", "done", 9000, 12.0, "", "", "", ""),
    ("p8", "done", 6000, 8.2, 1.3, 6, 6, 5), ("p7", "failed", "", "", "", "", "", ""),
]
OUTCOMES = "case,fractured,follow_up_months\np1,yes,3\np2,Yes,6\np3,no,12\np4,1,\np5,false,24\np6,0,24\n" \
           "p8,NO,18\np7,yes,1\np9,no,3\n"
# failure_load_bw (lower is riskier): fractured 2.7 4.0 9.0, intact 6.1 8.2 11.0 12.0 (p7 failed and
# p9 absent are left out). Mann-Whitney: 2.7 and 4.0 are below all 4 intact, 9.0 below 11 and 12:
# AUC = (4 + 4 + 2) / 12 = 0.8333. Cut-points (flag F < cut) and (sensitivity, specificity, J):
#   3.35 (1/3, 1, .33)  5.05 (2/3, 1, .67)  7.15 (2/3, 3/4, .42)  8.6 (2/3, 1/2, .17)
#   10.0 (1, 1/2, .5)   11.5 (1, 1/4, .25)
# Youden: 5.05 -> high_below_bw; sensitivity 1 first at 10.0 -> low_from_bw = max(5.05, 10.0) = 10.0.
# strain_fold_ratio: fractured 2.1 1.9 1.5 > intact 1.3 1.2 1.1 (p6 has none): AUC 1, cut 1.4.
# Mirels midpoints: fractured 10 9 9 > intact 8 7 6 (p8: 6): AUC 1, cut 8.5.
# axial: fractured 40 35 > intact 20 10 5 (p4, p6 have none): AUC 1, cut 27.5.


SERIAL_ONLY = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="a user error in bonefe.cli.main aborts every "
                                 "MPI rank (_stop_other_ranks); the calibration itself is serial")


def write_cohort(folder):
    """cohort-summary.csv of COHORT in the columns of bonefe batch."""
    lines = [COLUMNS] + [f"{c},{s},1.0,{n},{bw},,{sfr},{lo},{hi},{ax},,cases/{c}"
                         for c, s, n, bw, sfr, lo, hi, ax in COHORT]
    (folder / "cohort-summary.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_end_to_end_matches_the_hand_computed_cohort(tmp_path, capsys):
    """Exit 0; thresholds (5.05, 10.0) and every AUC and cut-point as worked out above (tolerance:
    float rounding); one warning line per left-out reason; the calibration file loads with
    bonefe.risk.thresholds_from_calibration (round trip) and roc.png is a PNG."""
    write_cohort(tmp_path)
    (tmp_path / "outcomes.csv").write_text(OUTCOMES, encoding="utf-8")
    code, out, err = run_cli(capsys, "calibrate", tmp_path / "outcomes.csv", "--cohort", tmp_path,
                             "--out", tmp_path / "cal", "--bootstrap", 500)
    assert code == 0, err
    warnings = err.strip().splitlines()
    assert warnings == ["bonefe calibrate: warning: 1 case(s) not done in the cohort (failed), left out: p7",
                        "bonefe calibrate: warning: 1 case(s) not in the cohort, left out: p9"]
    data = json.loads((tmp_path / "cal" / "calibration.json").read_text(encoding="utf-8"))
    assert data["risk_thresholds"] == pytest.approx({"high_below_bw": 5.05, "low_from_bw": 10.0})
    expected = {"failure_load_bw": (10 / 12, 5.05, 10.0), "strain_fold_ratio": (1.0, 1.4, 1.4),
                "mirels": (1.0, 8.5, 8.5), "axial_involvement_mm": (1.0, 27.5, 27.5)}
    for name, (area, youden, target) in expected.items():
        result = data["predictors"][name]
        assert (result["auc"], result["youden"]["cut"], result["target_sensitivity"]["cut"]) == pytest.approx(
            (area, youden, target), abs=1e-12), name
        assert result["auc_ci95"][0] <= result["auc"] <= result["auc_ci95"][1]
    assert [data["predictors"][n]["n_cases"] for n in expected] == [7, 6, 6, 5]
    provenance = data["provenance"]
    assert (provenance["n_cases"], provenance["n_fractured"], provenance["cohort"]) == (7, 3, "cohort-summary.csv")
    assert set(provenance["excluded"]) == {"p7", "p9"}
    thresholds = thresholds_from_calibration(tmp_path / "cal" / "calibration.json")
    assert (thresholds.high_below_bw, thresholds.low_from_bw) == pytest.approx((5.05, 10.0))
    assert "calibration.json" in thresholds.reference
    assert (tmp_path / "cal" / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "cal" / "calibration-report.md").read_text(encoding="utf-8")
    assert "| < 5.05 | 2 | 0.667 | 1.000 | 0.667 |" in report


def test_same_inputs_give_the_same_calibration_file(tmp_path, capsys):
    """The file is date-free and the bootstrap seeded: two runs write identical bytes."""
    write_cohort(tmp_path)
    (tmp_path / "outcomes.csv").write_text(OUTCOMES, encoding="utf-8")
    for out in ("a", "b"):
        assert run_cli(capsys, "calibrate", tmp_path / "outcomes.csv", "--cohort", tmp_path / "cohort-summary.csv",
                       "--out", tmp_path / out, "--bootstrap", 100)[0] == 0
    assert (tmp_path / "a" / "calibration.json").read_bytes() == (tmp_path / "b" / "calibration.json").read_bytes()


def drop_column(path, column):
    """Rewrite a CSV file without one column."""
    rows = [line.split(",") for line in path.read_text(encoding="utf-8").splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name != column]
    path.write_text("\n".join(",".join(r[i] for i in keep) for r in rows) + "\n", encoding="utf-8")


@SERIAL_ONLY
@pytest.mark.parametrize("outcomes, dropped, message", [
    ("case,fractured\np1,maybe\n", None, "fractured must be yes/no"),
    ("case,outcome\np1,yes\n", None, "missing column(s) fractured"),
    (OUTCOMES, "failure_load_bw", "missing column(s) failure_load_bw"),
    ("case,fractured\np1,yes\np3,no\np5,no\n", None, "1 fractured and 2 non-fractured"),
    ("case,fractured\np1,yes\np1,no\n", None, "appears twice"),
    ("case,fractured\np1,yes\np6,yes\np3,no\np5,no\n", None, "lower --target-sensitivity"),
])
def test_cli_user_errors_exit_2_with_one_line(tmp_path, capsys, outcomes, dropped, message):
    """Bad fractured value, missing columns, too few cases after the join, repeated case ids, and a
    target sensitivity only reachable by flagging everybody (the strongest bone, p6, fractured)."""
    write_cohort(tmp_path)
    if dropped:
        drop_column(tmp_path / "cohort-summary.csv", dropped)
    (tmp_path / "outcomes.csv").write_text(outcomes, encoding="utf-8")
    code, out, err = run_cli(capsys, "calibrate", tmp_path / "outcomes.csv", "--cohort", tmp_path,
                             "--out", tmp_path / "cal", "--bootstrap", 100)
    errors = [line for line in err.splitlines() if line.startswith("bonefe: error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0], err
    assert not (tmp_path / "cal" / "calibration.json").exists()


@SERIAL_ONLY
def test_cli_needs_exactly_one_mode(tmp_path, capsys):
    for args in ([], [tmp_path / "o.csv", "--specimens", tmp_path / "s.csv"]):
        code, _, err = run_cli(capsys, "calibrate", *args, "--out", tmp_path / "cal")
        assert code == 2 and err.startswith("bonefe: error: give either OUTCOMES.csv")


# ----------------------------------------------------------------------------------------------
# Material calibration
# ----------------------------------------------------------------------------------------------

def synthetic_loads(scale: float, sigma: float, n: int, seed: int):
    """Predicted loads log-uniform in 2-10 kN; measured = scale · predicted · exp(N(0, sigma²))."""
    rng = np.random.default_rng(seed)
    predicted = np.exp(rng.uniform(np.log(2000.0), np.log(10000.0), n))
    return predicted, scale * predicted * np.exp(rng.normal(0.0, sigma, n))


def test_exact_loads_give_the_scale_and_r2_of_1():
    """measured = 1.25 · predicted exactly: s = 1.25, R² = 1 and RMSE = 0 on both scales, zero-width
    interval. Tolerance: float rounding of logs and exponentials."""
    predicted, measured = synthetic_loads(1.25, 0.0, 8, seed=3)
    fit = fit_modulus_scale(predicted, measured)
    assert fit.scale == pytest.approx(1.25, rel=1e-12)
    assert (fit.r2_log, fit.r2_n) == pytest.approx((1.0, 1.0), abs=1e-12)
    assert (fit.rmse_log, fit.rmse_n, fit.se) == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)
    assert fit.ci95 == pytest.approx((1.25, 1.25), rel=1e-12)


def test_noisy_loads_recover_the_scale_within_scipys_t_interval():
    """15 specimens, s = 1.3, 10 % log-normal scatter: 1.3 lies in the 95 % interval, which is
    exp of scipy's one-sample t interval of ln(F_meas/F_pred) (independent reference; tolerance:
    rounding); R² of loads in N from its definition; SE by the delta method."""
    predicted, measured = synthetic_loads(1.3, 0.1, 15, seed=4)
    fit = fit_modulus_scale(predicted, measured)
    y = np.log(measured / predicted)
    low, high = stats.ttest_1samp(y, 0.0).confidence_interval(0.95)
    assert fit.ci95 == pytest.approx((np.exp(low), np.exp(high)), rel=1e-12)
    assert fit.ci95[0] < 1.3 < fit.ci95[1]
    assert fit.se == pytest.approx(fit.scale * stats.sem(y), rel=1e-12)
    residual = measured - fit.scale * predicted
    assert fit.r2_n == pytest.approx(1 - residual @ residual / np.sum((measured - measured.mean()) ** 2), rel=1e-12)
    assert fit.rmse_log == pytest.approx(np.std(y), rel=1e-12)


def test_interval_covers_the_true_scale_95_percent_of_the_time():
    """400 synthetic experiments of 6 specimens: the t interval is exact for normal log errors, so
    it covers s in 95 % of them; asserted within 3 binomial standard deviations (±3.3 %)."""
    covered = [fit_modulus_scale(*synthetic_loads(0.8, 0.15, 6, seed)).ci95 for seed in range(400)]
    rate = np.mean([low < 0.8 < high for low, high in covered])
    assert 0.917 <= rate <= 0.983


@SERIAL_ONLY
def test_material_cli_from_a_cohort_summary(tmp_path, capsys):
    """Specimens p1-p5 measured at exactly 1.5 x their summary failure_load_n: s = 1.5, R² = 1;
    material-fit.json holds the value for case files; an unknown specimen is a one-line error."""
    write_cohort(tmp_path)
    rows = {c: n for c, _, n, *_ in COHORT[:5]}
    (tmp_path / "specimens.csv").write_text("case,measured_failure_load_n\n" +
                                            "".join(f"{c},{1.5 * n}\n" for c, n in rows.items()), encoding="utf-8")
    code, out, err = run_cli(capsys, "calibrate", "--specimens", tmp_path / "specimens.csv", "--cohort", tmp_path,
                             "--out", tmp_path / "fit")
    assert code == 0, err
    data = json.loads((tmp_path / "fit" / "material-fit.json").read_text(encoding="utf-8"))
    assert data["material"]["modulus_scale"] == pytest.approx(1.5, rel=1e-12)
    assert data["fit"]["r2_log"] == pytest.approx(1.0, abs=1e-12)
    assert [s["case"] for s in data["specimens"]] == list(rows)
    assert (tmp_path / "fit" / "material-fit.png").is_file() and "modulus_scale" in out
    (tmp_path / "specimens.csv").write_text("case,measured_failure_load_n\np1,100\np7,200\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "calibrate", "--specimens", tmp_path / "specimens.csv", "--cohort", tmp_path,
                           "--out", tmp_path / "fit")
    assert code == 2 and err.count("\n") == 1 and "p7" in err


def test_modulus_scale_must_be_positive():
    with pytest.raises(BonefeError, match="modulus_scale must be positive"):
        build(MaterialOptions, {"modulus_scale": 0.0}, "case.yaml: material")


# ----------------------------------------------------------------------------------------------
# modulus_scale in the FE model
# ----------------------------------------------------------------------------------------------

WIDTH, LENGTH, HU = 20.0, 100.0, 1000.0


def bar_with_ct():
    """A 20 x 20 x 100 mm bar (4 mm tetrahedra; support z = 0, head on top, a trochanter patch the
    unit-load basis needs) inside a uniform CT of 1000 HU on 2 mm voxels, all bone."""
    comm = MPI.COMM_WORLD
    mesh = dolfinx.mesh.create_box(comm, [np.zeros(3), np.array([WIDTH, WIDTH, LENGTH])], [5, 5, 25],
                                   dolfinx.mesh.CellType.tetrahedron)
    markers = [(SUPPORT, lambda p: np.isclose(p[2], 0.0)), (HEAD, lambda p: np.isclose(p[2], LENGTH)),
               (TROCHANTER, lambda p: np.isclose(p[0], WIDTH) & (p[2] > 92.0))]
    facets = [dolfinx.mesh.locate_entities_boundary(mesh, 2, marker) for _, marker in markers]
    values = np.concatenate([np.full(len(f), tag, np.int32) for (tag, _), f in zip(markers, facets)])
    facets = np.concatenate(facets)
    order = np.argsort(facets)
    tags = dolfinx.mesh.meshtags(mesh, 2, facets[order].astype(np.int32), values[order])
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -3.0
    shape = (14, 14, 54)  # voxel centres from -3 to 23 (x, y) and to 105 mm (z)
    volume = Volume(np.full(shape, HU, np.float32), np.full(shape, BONE, np.uint8), affine)
    return mesh, tags, volume


def test_modulus_scale_2_doubles_the_failure_load():
    """Reference: linear elasticity, F_pred(2E) = 2 F_pred(E) exactly (bonefe.cohort.material_fit), here to
    1e-8 (the CG solve converges to 1e-10 relative; scaling by 2 is exact in floating point). The
    uniform-CT modulus is the Morgan law by hand: ρ_app = (0.877·0.8 + 0.079)/0.6, E = 6850 ρ_app^1.49;
    the compressive failure load is 1.04 % · E · A within 2 % (clamp disturbance 25 mm away)."""
    mesh, tags, volume = bar_with_ct()
    options = RiskOptions(exclusion_mm=25.0)
    labels = np.full(mesh.topology.index_map(3).size_local, BONE, np.int32)
    e_law = LAWS["morgan2003"].modulus(None, apparent_density(ash_density(qct_density(HU, 0.0008, 0.0))))
    loads = []
    for scale in (1.0, 2.0):
        E = cell_material(mesh, volume, MaterialOptions(modulus_scale=scale)).E
        assert E == pytest.approx(scale * e_law, rel=1e-6)  # float32 CT, averaged samples
        model = femur_model(mesh, tags, E, labels, MaterialOptions().poisson, options)
        loads.append(model.failure({"head": np.array([0.0, 0.0, -1.0])}).failure_load_n)
    assert loads[1] / loads[0] == pytest.approx(2.0, rel=1e-8)
    assert loads[0] == pytest.approx(0.0104 * e_law * WIDTH * WIDTH, rel=0.02)


@pytest.mark.slow
@SERIAL_ONLY
def test_material_cli_runs_the_specimen_cases(tmp_path, capsys):
    """Without --cohort the specimens' case files are run (bonefe batch machinery). Two cases of one
    tiny phantom (3 mm voxels, 10 mm mesh), the second with material.modulus_scale 2: its predicted
    load is exactly twice the first's (linear elasticity), so measured loads M and 2M fit with
    R² = 1 and s = M / F_pred of the first case read from its own report.json (tolerance: rounding)."""
    from bonefe.sites.femur.phantom import PhantomSpec, write_phantom

    phantom = write_phantom(PhantomSpec(voxel_mm=3.0), tmp_path / "phantom")
    for name, scale in (("a", 1.0), ("b", 2.0)):
        (tmp_path / f"{name}.yaml").write_text(json.dumps({
            "name": name, "ct": str(phantom["ct"]), "labels": str(phantom["labels"]),
            "patient": {"body_mass_kg": 70}, "mesh": {"size_mm": 10.0}, "activities": ["walking"],
            "material": {"modulus_scale": scale}}), encoding="utf-8")
    (tmp_path / "specimens.csv").write_text("case,measured_failure_load_n\na.yaml,3000\nb.yaml,6000\n",
                                            encoding="utf-8")
    code, out, err = run_cli(capsys, "calibrate", "--specimens", tmp_path / "specimens.csv", "--out", tmp_path / "fit")
    assert code == 0, err
    runs = tmp_path / "fit" / "specimen-runs" / "cases"
    loads = [json.loads((runs / n / "report.json").read_text(encoding="utf-8"))["failure_load_n"] for n in "ab"]
    assert loads[1] / loads[0] == pytest.approx(2.0, rel=1e-6)  # report.json rounds its numbers
    data = json.loads((tmp_path / "fit" / "material-fit.json").read_text(encoding="utf-8"))
    assert data["fit"]["modulus_scale"] == pytest.approx(3000.0 / loads[0], rel=1e-6)
    assert data["fit"]["r2_log"] == pytest.approx(1.0, abs=1e-9)

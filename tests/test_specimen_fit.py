"""`bonefe calibrate --specimens` on specimen cases: recover a known law from synthetic experiments.

Six generated blocks of different grey values (poisson 0, so each is exactly uniaxial: stiffness
E A / L, failure at E A ε, `tests/test_specimen.py`), four pushed and two pulled. Their "measured"
stiffness and failure loads come from the closed form with a true law E = 13,000 (g/100)^2.0 MPa
and true limits ε_t = 0.6 %, ε_c = 0.9 %, while the cases carry E = 10,000 (g/100)^1.5 and
Schileo's 0.73 % / 1.04 %: the fit must find s = 1.3, b = 2.0 and both limits, and predict every
left-out specimen. With 3 % noise the intervals must hold the true values.
"""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from bonefe.cli import main
from bonefe.sites.specimen.fit import calibrate_specimens, read_specimen_table

COMM = MPI.COMM_WORLD
TRUE_SCALE, TRUE_EXPONENT, TENSILE, COMPRESSIVE = 1.3, 2.0, 0.006, 0.009
CASE_SCALE_MPA, REFERENCE_GREY = 10_000.0, 100.0
BLOCKS = [("c60", 60, -1), ("c90", 90, -1), ("c120", 120, -1), ("c170", 170, -1), ("t80", 80, 1), ("t140", 140, 1)]
SIDE_MM, LENGTH_MM = 4.0, 8.0

CASE = """site: specimen
name: {name}
image: {{phantom: {{size_mm: [{side}, {side}, {length}], voxel_mm: 1.0, grey: {grey}}}}}
material: {{grey_power: {{scale_mpa: {scale}, exponent: 1.5, reference_grey: {ref}, min_modulus_mpa: 0.001}}, poisson: 0.0}}
rig:
  fixed: {{plane: {{point: [0, 0, 0], normal: [0, 0, 1]}}}}
  loaded: {{plane: {{point: [0, 0, {length}], normal: [0, 0, -1]}}}}
  displacement_mm: [0, 0, {travel}]
mesh: {{size_mm: 2.0}}
failure: {{averaging_radius_mm: 1.0}}
"""


def _true(grey: float, sign: int) -> tuple[float, float]:
    """Closed-form stiffness (N/mm) and failure load (N) of a block under the true law and limits."""
    E = CASE_SCALE_MPA * TRUE_SCALE * (grey / REFERENCE_GREY) ** TRUE_EXPONENT
    area = SIDE_MM**2
    return E * area / LENGTH_MM, E * area * (TENSILE if sign > 0 else COMPRESSIVE)


def _table(folder: Path, noise: float = 0.0) -> Path:
    """Case files and S.csv of the blocks, measured values times (1 + noise · a fixed normal draw)."""
    draws = np.random.default_rng(7).standard_normal((len(BLOCKS), 2))
    if COMM.rank == 0:
        rows = ["case,measured_stiffness_n_per_mm,measured_failure_load_n"]
        for (name, grey, sign), draw in zip(BLOCKS, draws):
            (folder / f"{name}.yaml").write_text(CASE.format(name=name, side=SIDE_MM, length=LENGTH_MM, grey=grey,
                                                             scale=CASE_SCALE_MPA, ref=REFERENCE_GREY, travel=0.01 * sign),
                                                encoding="utf-8")
            stiffness, failure = np.array(_true(grey, sign)) * (1 + noise * draw)
            rows.append(f"{name}.yaml,{float(stiffness)!r},{float(failure)!r}")
        (folder / "S.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    COMM.barrier()
    return folder / "S.csv"


def _folder(tmp_path_factory, name) -> Path:
    return Path(COMM.bcast(str(tmp_path_factory.mktemp(name)) if COMM.rank == 0 else None))


@pytest.fixture(scope="module")
def exact(tmp_path_factory):
    return calibrate_specimens(read_specimen_table(_table(_folder(tmp_path_factory, "exact"))), COMM)


def test_recovers_the_true_law_and_limits(exact):
    assert exact["modulus_scale"]["value"] == pytest.approx(TRUE_SCALE, rel=1e-4)
    assert exact["exponent"]["identified"] and exact["exponent"]["value"] == pytest.approx(TRUE_EXPONENT, abs=1e-4)
    assert exact["tensile_limit"]["value"] == pytest.approx(TENSILE, rel=1e-4)
    assert exact["compressive_limit"]["value"] == pytest.approx(COMPRESSIVE, rel=1e-4)


def test_predicts_every_left_out_specimen(exact):
    for key in ("stiffness", "failure"):
        assert exact[key]["leave_one_out"]["mean_abs_relative_error"] < 1e-4, key
        assert exact[key]["fit"]["r2"] == pytest.approx(1.0, abs=1e-6)
        assert exact[key]["fit"]["slope"] == pytest.approx(1.0, abs=1e-4)


def test_noisy_intervals_hold_the_truth_and_the_report_is_written(tmp_path_factory, capsys):
    folder = _folder(tmp_path_factory, "noisy")
    table = _table(folder, noise=0.03)
    assert main(["calibrate", "--specimens", str(table), "--out", str(folder / "fit")]) == 0
    if COMM.rank == 0:
        import json

        result = json.loads((folder / "fit" / "specimen-fit.json").read_text(encoding="utf-8"))
        for key, truth in (("modulus_scale", TRUE_SCALE), ("exponent", TRUE_EXPONENT),
                           ("tensile_limit", TENSILE), ("compressive_limit", COMPRESSIVE)):
            low, high = result[key]["ci95"]
            assert low < truth < high, (key, low, high)
        assert (folder / "fit" / "specimen-fit.png").stat().st_size > 10_000
        assert "leave-one-out" in (folder / "fit" / "specimen-fit.md").read_text(encoding="utf-8").lower()
        assert "modulus scale" in capsys.readouterr().out
    COMM.barrier()


def test_what_the_data_cannot_tell_is_reported_not_identified():
    """Specimens of one grey value cannot tell the exponent; compression tests alone cannot tell the
    tensile limit (their failure is compressive at any plausible one): both kept, flagged."""
    from bonefe.risk import StrainCriterion
    from bonefe.sites.specimen.fit import fit_limits, fit_scale_exponent

    predicted = np.array([1000.0, 2000.0, 4000.0])
    scale, exponent = fit_scale_exponent(1.3 * predicted, lambda b: np.log(predicted) + 0.0 * b)
    assert scale.value == pytest.approx(1.3) and not exponent.identified
    p_c = 1.0 / np.array([5e5, 1e6, 2e6])  # peak −ε3 per newton; ε1 a third of it (ν-like)
    tensile, compressive = fit_limits(0.009 / p_c, p_c / 3, p_c, StrainCriterion())
    assert compressive.identified and compressive.value == pytest.approx(0.009)
    assert not tensile.identified and tensile.value == StrainCriterion().tensile_limit

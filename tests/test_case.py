"""Case files: valid files load with paths resolved; every mistake gives one clear line and exit 2."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bonefe.case import load_case
from bonefe.errors import BonefeError

MINIMAL = """\
name: demo
ct: data/ct.nii.gz
labels: data/labels.nii.gz
patient: {body_mass_kg: 70}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "case.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_minimal_case_resolves_paths_and_defaults(tmp_path):
    case = load_case(write(tmp_path, MINIMAL))
    assert case.ct == tmp_path / "data" / "ct.nii.gz"
    assert case.output == tmp_path / "runs" / "demo"
    assert case.body_weight == pytest.approx(70 * 9.81)
    assert case.patient.side == "left"
    assert case.label_values.as_dict() is None  # the default convention: bone 1, lytic 2, blastic 3
    named = load_case(write(tmp_path, MINIMAL + "label_values: {bone: [75, 76]}\n"))
    assert named.label_values.as_dict() == {"bone": [75, 76]}


def test_demo_case_in_repository_is_valid():
    case = load_case(Path(__file__).parents[1] / "cases" / "femur-neck-lytic.yaml")
    assert case.mesh.size_mm == 3.0 and case.material.law == "morgan2003"


@pytest.mark.parametrize(
    "text, message",
    [
        (MINIMAL + "meshh: {size_mm: 2}\n", r"unknown key 'meshh'"),
        (MINIMAL + "mesh: {size_mm: fine}\n", r"case.yaml.mesh.size_mm must be a number"),
        (MINIMAL + "mesh: {size_mm: 0.01}\n", r"size_mm must be between"),
        (MINIMAL.replace("{body_mass_kg: 70}", "{body_mass_kg: 70, side: up}"), r"patient.side must be one of"),
        (MINIMAL.replace("name: demo\n", ""), r"missing required key 'name'"),
        (MINIMAL + "label_values: {bone: [1, x]}\n", r"label_values.bone"),
        (MINIMAL + "landmarks: {head_centre: [1, 2]}\n", r"head_centre must have 3 entries"),
        (MINIMAL + "risk: {averaging_radius_mm: 0}\n", r"averaging_radius_mm must be positive"),
        (MINIMAL + "risk: {critical_volume_mm3: 8}\n", r"unknown key 'critical_volume_mm3'.*averaging_radius_mm"),
        ("name: [unclosed\n", r"not valid YAML at line"),
        ("- a list\n", r"must be a mapping"),
    ],
)
def test_bad_case_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(BonefeError, match=message):
        load_case(write(tmp_path, text))


def test_cli_reports_bad_input_in_one_line_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bonefe.cli", "run", str(write(tmp_path, MINIMAL + "colour: red\n"))],
        capture_output=True, encoding="utf-8",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bonefe: error: case.yaml: unknown key 'colour' (allowed: name, ct, labels, patient, output, "
        "ct_series, label_values, resample_labels, mesh, calibration, material, landmarks, solver, risk, activities, "
        "custom_activities, exports, uncertainty, checks, suitability, site, level, spine, days_since_baseline)"
    ]


def test_cli_missing_case_file(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bonefe.cli", "run", str(tmp_path / "nope.yaml")],
                            capture_output=True, encoding="utf-8")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "case file" in result.stderr and "not found" in result.stderr


def test_calibration_file_sets_the_risk_thresholds(tmp_path):
    """A cohort calibration file replaces the default thresholds and is named in their reference."""
    (tmp_path / "cohort.json").write_text(json.dumps({
        "schema": "bonefe-calibration/1", "risk_thresholds": {"high_below_bw": 4.2, "low_from_bw": 8.5},
        "provenance": {"predictor": "failure_load_bw", "method": "Youden index"}}), encoding="utf-8")
    case = load_case(write(tmp_path, MINIMAL + "risk: {calibration_file: cohort.json}\n"))
    assert (case.risk.thresholds.high_below_bw, case.risk.thresholds.low_from_bw) == (4.2, 8.5)
    assert "cohort.json" in case.risk.thresholds.reference
    (tmp_path / "broken.json").write_text('{"risk_thresholds": {"high_below_bw": 4}}', encoding="utf-8")
    with pytest.raises(BonefeError, match="broken.json is not a bonefe-calibration/1 file"):
        load_case(write(tmp_path, MINIMAL + "risk: {calibration_file: broken.json}\n"))
    with pytest.raises(BonefeError, match="missing.json not found"):
        load_case(write(tmp_path, MINIMAL + "risk: {calibration_file: missing.json}\n"))

"""`bonefe batch run` locally: a broken case fails alone, and a killed batch resumes without redoing
finished cases.

References: the summary's numbers are checked against each case's own report.json read here
(the columns the calibration reads), the error against the message `bonefe run` prints for a
missing CT, and "untouched" against inode, mtime and sha256 of every file of a finished case.
Tiny phantoms (3 mm voxels, 10 mm mesh, walking only) keep each case to a few seconds.
"""

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bonefe.cohort.batch import SUMMARY_COLUMNS, Cohort, case_error, cohort_cases, error_line, report_numbers, summary_row
from bonefe.errors import BonefeError
from bonefe.sites.femur.phantom import PhantomSpec, write_phantom

TIMEOUT_S = 240  # a stuck batch fails the test instead of hanging CI


def write_case(folder: Path, name: str, phantom: dict, ct: str | None = None) -> Path:
    """A case file for the tiny phantom; `ct` replaces the CT path (e.g. a missing file)."""
    case = {"name": name, "ct": ct or str(phantom["ct"]), "labels": str(phantom["labels"]),
            "patient": {"body_mass_kg": 70}, "mesh": {"size_mm": 10.0}, "activities": ["walking"]}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(case), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom(PhantomSpec(voxel_mm=3.0), tmp_path_factory.mktemp("phantom"))


def batch(*args, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bonefe.cli", "batch", *map(str, args)], capture_output=True,
                          encoding="utf-8", timeout=TIMEOUT_S, **popen)


def summary(out: Path) -> dict[str, dict]:
    rows = json.loads((out / "cohort-summary.json").read_text(encoding="utf-8"))
    assert all(tuple(row) == SUMMARY_COLUMNS for row in rows)
    header = (out / "cohort-summary.csv").read_text(encoding="utf-8").splitlines()[0]
    assert tuple(header.split(",")) == SUMMARY_COLUMNS
    return {row["case"]: row for row in rows}


def fingerprint(folder: Path) -> dict[str, tuple]:
    """inode, mtime and sha256 of every file below `folder`."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_duplicate_case_names_are_refused(tmp_path, phantom):
    first = write_case(tmp_path, "same", phantom)
    second = tmp_path / "other.yaml"
    second.write_text(first.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(BonefeError, match="both named 'same'"):
        cohort_cases([first, second])
    with pytest.raises(BonefeError, match="both named 'same'"):
        cohort_cases([first, first])


def test_the_error_line_is_the_bonefe_message_or_the_exit_reason():
    stderr = ("[1/6] read images ... failed\nbonefe: error: ct.nii.gz: no such file; check the path\n"
              "application called MPI_Abort(MPI_COMM_WORLD, 2) - process 0\n")
    assert error_line(stderr) == "ct.nii.gz: no such file; check the path"
    assert error_line("Traceback (most recent call last):\n  ...\nMemoryError\n") == "MemoryError"
    assert case_error(-9, "[3/6] mesh ...") == "killed by SIGKILL (out of memory?)"
    assert case_error(1, "") == "exited with code 1"


def test_the_summary_keeps_each_report_s_numbers_until_the_report_changes(tmp_path):
    """A done case's numbers are read from its report once and kept in its status file: the
    summary row takes them from there (a marker put only in the status file shows it), and reads
    the report again when the report has changed since (newer mtime)."""
    cohort = Cohort(tmp_path, {"x": tmp_path / "x.yaml"})
    report_path = cohort.output("x") / "report.json"
    report_path.parent.mkdir(parents=True)
    report = {"failure_load_n": 5000.0, "failure_load_bw": 6.8, "risk_category": "moderate",
              "strain_fold_ratio": 1.2, "mirels": {"total_min": 7, "total_max": 9},
              "axial_involvement": {"length_mm": 12.0}}
    report_path.write_text(json.dumps(report), encoding="utf-8")
    kept = report_numbers(cohort, "x")
    assert summary_row(cohort, "x")["failure_load_n"] == 5000.0 and kept["mirels_max"] == 9
    cohort.status_path("x").parent.mkdir()
    cohort.status_path("x").write_text(json.dumps({"status": "done", "runtime_s": 1.0,
                                                   "report": {**kept, "failure_load_n": -1.0}}), encoding="utf-8")
    assert summary_row(cohort, "x")["failure_load_n"] == -1.0
    report_path.write_text(json.dumps({**report, "failure_load_n": 4000.0}), encoding="utf-8")
    os.utime(report_path, ns=(kept["mtime_ns"] + 10**9, kept["mtime_ns"] + 10**9))
    row = summary_row(cohort, "x")
    assert (row["failure_load_n"], row["axial_involvement_mm"], row["runtime_s"]) == (4000.0, 12.0, 1.0)


@pytest.mark.slow
def test_a_broken_case_fails_alone(tmp_path, phantom):
    cases = [write_case(tmp_path, "a", phantom), write_case(tmp_path, "b", phantom),
             write_case(tmp_path, "broken", phantom, ct=str(tmp_path / "missing.nii.gz"))]
    out = tmp_path / "cohort"
    result = batch("run", *cases, "--out", out, "--jobs", "2")
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("bonefe batch: 1 of 3 cases failed (broken)")
    rows = summary(out)
    for name in ("a", "b"):
        row, report = rows[name], json.loads((out / "cases" / name / "report.json").read_text(encoding="utf-8"))
        assert row["status"] == "done" and row["error"] == "" and row["runtime_s"] > 0
        assert math.isfinite(row["failure_load_n"]) and row["failure_load_n"] > 0
        assert (row["failure_load_n"], row["failure_load_bw"], row["risk_category"], row["strain_fold_ratio"],
                row["mirels_min"], row["mirels_max"], row["axial_involvement_mm"]) == (
            report["failure_load_n"], report["failure_load_bw"], report["risk_category"],
            report["strain_fold_ratio"], report["mirels"]["total_min"], report["mirels"]["total_max"],
            report["axial_involvement"]["length_mm"])
    broken = rows["broken"]
    assert broken["status"] == "failed" and broken["failure_load_n"] is None
    assert "missing.nii.gz" in broken["error"] and "\n" not in broken["error"]
    assert json.loads((out / "status" / "broken.json").read_text(encoding="utf-8"))["exit_code"] == 2
    assert not (out / "cases" / "broken").exists()


@pytest.mark.slow
def test_a_killed_batch_resumes_without_redoing_finished_cases(tmp_path, phantom):
    names = ["c1", "c2", "c3"]
    cases = [write_case(tmp_path, name, phantom) for name in names]
    out = tmp_path / "cohort"
    command = [sys.executable, "-m", "bonefe.cli", "batch", "run", *map(str, cases), "--out", str(out), "--jobs", "1"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + TIMEOUT_S
    while not any((out / "cases" / name / "report.json").exists() for name in names):
        assert first.poll() is None and time.monotonic() < deadline, "the batch ended before any case finished"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the batch and the case it is running, mid-way
    first.wait()
    finished = [name for name in names if (out / "cases" / name / "report.json").exists()]
    before = {name: fingerprint(out / "cases" / name) for name in finished}
    logs_before = {name: (out / "logs" / f"{name}.out").stat().st_mtime_ns for name in finished}

    assert batch("status", out).returncode == 0  # rewrites the summary: the case cut short is not "running"
    interrupted = summary(out)
    for name in set(names) - set(finished):
        assert interrupted[name]["status"] in ("failed", "pending")
        if interrupted[name]["status"] == "failed":
            assert interrupted[name]["error"].startswith("interrupted")

    result = batch("run", *cases, "--out", out, "--jobs", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(finished)} already done; running {len(names) - len(finished)}" in result.stdout
    assert sorted(line.split()[1].rstrip(":") for line in result.stdout.splitlines() if line.startswith("[")) == \
        sorted(set(names) - set(finished))  # each unfinished case ran once, no finished case again
    rows = summary(out)
    assert all(rows[name]["status"] == "done" for name in names)
    for name in finished:
        assert fingerprint(out / "cases" / name) == before[name]
        assert (out / "logs" / f"{name}.out").stat().st_mtime_ns == logs_before[name]
    assert sorted(p.name for p in (out / "cases").iterdir()) == names  # no partial folder left behind


def test_status_of_a_folder_that_is_no_batch_is_a_clear_error(tmp_path):
    result = batch("status", tmp_path)
    assert result.returncode == 2
    assert "is not a batch folder" in result.stderr and "bonefe batch run" in result.stderr


def test_specimen_cases_run_as_a_batch(tmp_path):
    """Specimens in test machines run as a cohort too (issue 19): two phantom blocks (E 10 GPa,
    ν 0, A 100 mm², 20 mm long, cases/specimen-phantom.yaml) pushed 0.02 mm, one of them pushed on a
    5 mm PMMA layer (k_n A = 2500/5 × 100 = 50,000 N/mm in series with E A / L = 50,000 N/mm). The
    summary takes each specimen-report.json: stiffness E A / L = 50,000 and 25,000 N/mm, failure
    load E A ε_c = 10,400 N for both (the block's strain is uniform either way); no risk columns."""
    source = (Path(__file__).resolve().parents[1] / "cases" / "specimen-phantom.yaml").read_text(encoding="utf-8")
    source = source.replace("exports: [inp]", "exports: []")
    (tmp_path / "bonded.yaml").write_text(source.replace("name: specimen-phantom", "name: bonded"), encoding="utf-8")
    (tmp_path / "padded.yaml").write_text(source.replace("name: specimen-phantom", "name: padded").replace(
        "normal: [0, 0, -1]}}", "normal: [0, 0, -1]}, layer: {E_mpa: 2500, nu: 0.3, thickness_mm: 5}}"),
        encoding="utf-8")
    out = tmp_path / "cohort"
    result = batch("run", tmp_path / "bonded.yaml", tmp_path / "padded.yaml", "--out", out, "--jobs", "1")
    assert result.returncode == 0, result.stderr
    rows = summary(out)
    assert rows["bonded"]["stiffness_n_per_mm"] == pytest.approx(50_000.0, rel=1e-8)
    assert rows["padded"]["stiffness_n_per_mm"] == pytest.approx(25_000.0, rel=1e-8)
    for row in rows.values():
        assert row["status"] == "done" and row["failure_load_n"] == pytest.approx(10_400.0, rel=1e-7)
        assert row["failure_load_bw"] is None and row["risk_category"] is None

"""Inputs that must never give a confident clinical answer: each is refused with one line naming
the problem (BonefeError; exit 2 and no traceback from the CLI), never a report.

Covered: body mass outside 20–300 kg, case names that are not a folder name (including '.' and
'..', which made the output folder the runs folder or the case's own folder: a finished run
replaces and deletes that folder), an output folder that holds the case's inputs, negative custom forces, 4-D images, anatomy that cannot be
found (too little shaft, no head), `batch --jobs 0` / `--ranks 0`, a second batch run in the
same folder, and the Slurm job script (rendered without a live Slurm).
"""

import fcntl
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bonefe.sites.femur.anatomy import femur_frame
from bonefe.cohort.batch import prepare, run_local
from bonefe.case import load_case
from bonefe.errors import BonefeError
from bonefe.imaging import read_sitk
from bonefe.activities import activity_from_dict
from bonefe.sites.femur.loads import PATCHES
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
from bonefe.cohort.slurm import SlurmOptions, render_script
from bonefe.volume import BACKGROUND

CASE = """\
name: {name}
ct: data/ct.nii.gz
labels: data/labels.nii.gz
patient: {{body_mass_kg: {mass}}}
"""


def case_file(folder: Path, name: str = "demo", mass: float = 70, file: str = "case.yaml") -> Path:
    path = folder / file
    path.write_text(textwrap.dedent(CASE.format(name=name, mass=mass)), encoding="utf-8")
    return path


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bonefe.cli", *map(str, args)], capture_output=True, encoding="utf-8",
                          timeout=120)


@pytest.mark.parametrize("mass", [19.9, 300.5, -70])
def test_body_mass_outside_the_adult_range_is_refused(tmp_path, mass):
    """Body mass scales every activity load (BW = mass × 9.81 N): outside 20–300 kg it is a typing error."""
    with pytest.raises(BonefeError, match=r"body_mass_kg must be between 20 and 300 kg"):
        load_case(case_file(tmp_path, mass=mass))


def test_body_mass_at_the_range_ends_is_accepted(tmp_path):
    assert load_case(case_file(tmp_path, mass=20)).body_weight == pytest.approx(196.2)
    assert load_case(case_file(tmp_path, mass=300)).body_weight == pytest.approx(2943.0)


@pytest.mark.parametrize("name", ["'..'", "'.'", "a/b", "'c:d'", "'..\\\\x'", "'tab\\there'", "''"])
def test_unsafe_case_names_are_refused(tmp_path, name):
    """The case name is the output folder's name (runs/<name>). '..' resolved to the case's own
    folder, which a finished run renames away and deletes (CT, labels and case file with it)."""
    with pytest.raises(BonefeError, match=r"name must be a non-empty folder-safe text"):
        load_case(case_file(tmp_path, name=name))


def test_unsafe_case_name_from_the_cli_is_one_line_and_touches_nothing(tmp_path):
    path = case_file(tmp_path, name="'..'")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli("run", path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "bonefe: error: case.yaml: name must be a non-empty folder-safe text, not '.' or '..' (got '..')"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("output", [".", "..", "data"])
def test_an_output_folder_holding_the_inputs_is_refused(tmp_path, output):
    """A finished run replaces its output folder (bonefe.outputs.staged_folder): `output: .` would delete
    the case file, CT and labels with it."""
    path = case_file(tmp_path)
    path.write_text(path.read_text(encoding="utf-8") + f"output: {output}\n", encoding="utf-8")
    with pytest.raises(BonefeError, match=r"output folder .* holds (case.yaml|ct.nii.gz).*choose an output folder"):
        load_case(path)


@pytest.mark.parametrize("activity, message", [
    ({"name": "push", "magnitude": -100.0, "direction": [0, 0, -1]}, r"magnitude non-negative"),
    ({"name": "push", "magnitude": 100.0, "direction": [0, 0, 0]}, r"direction must be non-zero"),
    ({"name": "push", "force": [0, float("nan"), -100]}, r"'force' must be three numbers"),
    ({"name": "push", "force": [0, -100]}, r"'force' must be three numbers"),
    ({"name": "push", "force": [0, 0, -100], "unit": "kg"}, r"unit must be one of"),
])
def test_bad_custom_forces_are_refused(activity, message):
    with pytest.raises(BonefeError, match=message):
        activity_from_dict(activity, PATCHES)


def test_a_four_dimensional_or_multichannel_image_is_refused(tmp_path):
    """A 4-D NIfTI (a time series of 3-D volumes) and a 3-D image with 5 channels are not CT volumes."""
    import SimpleITK as sitk

    frame = sitk.GetImageFromArray(np.zeros((3, 4, 5), np.int16))
    series, channels = tmp_path / "ct4d.nii.gz", tmp_path / "rgb.nii.gz"
    sitk.WriteImage(sitk.JoinSeries([frame, frame]), str(series))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5, 5), np.int16), isVector=True), str(channels))
    with pytest.raises(BonefeError, match=r"ct4d.nii.gz: expected a 3-D single-channel image, found 4-D"):
        read_sitk(series)
    with pytest.raises(BonefeError, match=r"expected a 3-D single-channel image, found 3-D with 5 channel"):
        read_sitk(channels)


@pytest.fixture(scope="module")
def phantom():
    """A 400 mm phantom femur (2 mm voxels): enough shaft to lose the head and keep the shaft."""
    return make_phantom(PhantomSpec(voxel_mm=2.0, lesion_site=None, length_mm=400.0))[0]


def test_too_little_shaft_is_refused(phantom):
    """Only the proximal 80 mm of the femur (head and trochanters, no shaft below them): the shaft axis
    cannot be found; the message asks for landmarks.shaft_axis."""
    z = phantom.affine[2, 3] + phantom.affine[2, 2] * np.arange(phantom.labels.shape[2])
    k0 = int(np.argmax(z >= z.max() - 80.0))
    affine = phantom.affine.copy()
    affine[:3, 3] += k0 * affine[:3, 2]
    cropped = replace(phantom, hu=phantom.hu[:, :, k0:], labels=phantom.labels[:, :, k0:], affine=affine)
    with pytest.raises(BonefeError, match=r"too little femoral shaft.*landmarks.shaft_axis"):
        femur_frame(cropped, "left")


def test_a_bone_without_head_is_refused(phantom):
    """The phantom with its top 95 mm cut away (head, neck and trochanters' tips): whatever sphere the head
    search settles on, no neck leads to it, and the frame is refused instead of guessed."""
    z = phantom.affine[2, 3] + phantom.affine[2, 2] * np.arange(phantom.labels.shape[2])
    labels = phantom.labels.copy()
    labels[:, :, z > z.max() - 95.0] = BACKGROUND
    with pytest.raises(BonefeError, match=r"could not follow the femoral neck; give landmarks.neck_axis"):
        femur_frame(replace(phantom, labels=labels), "left")


def test_batch_needs_at_least_one_rank_and_one_job(tmp_path):
    case = case_file(tmp_path)
    with pytest.raises(BonefeError, match=r"--ranks must be at least 1 \(got 0\)"):
        prepare([case], tmp_path / "batch", ranks=0)
    cohort = prepare([case], tmp_path / "batch")
    with pytest.raises(BonefeError, match=r"--jobs must be at least 1 \(got 0\)"):
        run_local(cohort, 0)
    result = cli("batch", "run", case, "--out", tmp_path / "batch2", "--jobs", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--jobs must be at least 1 (got 0)" in result.stderr


def test_a_second_batch_run_in_the_same_folder_is_refused(tmp_path):
    """While one `bonefe batch run` holds the folder's lock (flock on .batch.lock), another is refused
    before it touches a case."""
    cohort = prepare([case_file(tmp_path)], tmp_path / "batch")
    with open(cohort.folder / ".batch.lock", "a", encoding="utf-8") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(BonefeError, match=r"another `bonefe batch run` is working in"):
            run_local(cohort, 1)
    assert not (cohort.folder / "cohort-summary.csv").exists()


def test_slurm_script_renders_without_a_live_slurm(tmp_path):
    """The job-array script for cases 0 and 2 of a two-rank batch: every placeholder filled with the
    cohort's values and the options; a template with an unknown placeholder is refused."""
    cohort = prepare([case_file(tmp_path), case_file(tmp_path, "b", file="b.yaml")], tmp_path / "batch", ranks=2)
    text = render_script(cohort, [0, 2], SlurmOptions(memory="8G", time="01:30:00", sbatch=["--partition=short"]))
    for line in ("#SBATCH --array=0,2", "#SBATCH --ntasks=2", "#SBATCH --mem=8G", "#SBATCH --time=01:30:00",
                 "#SBATCH --partition=short", f"#SBATCH --chdir={cohort.folder}",
                 f'exec "{sys.executable}" -m bonefe.cli batch task "{cohort.folder}" "$SLURM_ARRAY_TASK_ID"'):
        assert line in text.splitlines(), line
    assert "@" not in text.replace("$SLURM", "")
    template = tmp_path / "custom.sbatch.in"
    template.write_text("#SBATCH --qos=@QOS@\n", encoding="utf-8")
    with pytest.raises(BonefeError, match=r"unknown placeholders \['QOS'\]"):
        render_script(cohort, [0], SlurmOptions(template=template))


def test_help_prints_under_an_ascii_locale():
    """`bonefe calibrate --help` holds R²: with an ASCII-only locale (LC_ALL=C, PYTHONUTF8=0, as on a
    bare CI container) it used to end in UnicodeEncodeError; now the CLI writes UTF-8 there."""
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    run = subprocess.run([sys.executable, "-m", "bonefe.cli", "calibrate", "--help"], capture_output=True, env=env,
                         check=False)
    assert run.returncode == 0, run.stderr.decode("ascii", "replace")
    assert "R²" in run.stdout.decode("utf-8")

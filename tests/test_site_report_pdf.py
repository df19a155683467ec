"""The vertebra and humerus reports write a report.pdf with the HTML page's content (fpdf2's HTML
renderer, `bonefe.report.pdf.render_page_pdf`): its text carries the failure load of report.json,
its tables and the strain picture; a page without its picture (no mesh gathered) still renders."""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

import json
import shutil
import subprocess

import pytest

from bonefe.report.humerus import write_humerus_report
from bonefe.report.pdf import render_page_pdf
from bonefe.report.sections import page
from bonefe.report.spine import write_spine_report
from test_report import bone_mesh

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext not installed (poppler-utils)")

ACTIVITY = {"name": "standing", "label": "Relaxed standing", "peak_force_n": 594.0, "safety_factor": 6.74,
            "verdict": "safe", "reference": "Wilke et al. 1999, Spine 24:755"}
COMMON = {"case_name": "request", "body_mass_kg": 70.0, "failure_load_n": 4006.24, "failure_load_bw": 5.834,
          "failure_location_mm": [6.5, -2.5, 0.5], "failure_mode": "compressive", "risk_category": "low",
          "strain_fold_ratio": None, "reference_activity": "standing", "activities": [ACTIVITY],
          "provenance": {"bonefe": bonefe.__version__}}
SPINE = {**COMMON, "level": "L1", "failure_region": "vertebral body", "endplate_layer": "disc", "exercises": [],
         "unit_loads": [{"name": "flexion", "failure_load": 45.4, "unit": "N·m", "region": "vertebral body",
                         "mode": "tensile"}],
         "sins": {"total": [5, 15], "categories": ["stable", "unstable"], "components": {"location": [3, 3]},
                  "body_involvement": 0.08, "posterolateral_sides": [], "collapse_fraction": None}}
HUMERUS = {**COMMON, "failure_load_n": 1234.5, "side": "right", "mirels": None, "walking_aids": [],
           "frame": {"shaft_from": "anatomy"}, "assumptions": ["Distal cut fixed."],
           "activities": [{**ACTIVITY, "name": "arm_elevation", "label": "Raising the arm"}]}


def pdf_text(path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True,
                          timeout=60, encoding="utf-8").stdout


def image_count(path) -> int:
    listing = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, encoding="utf-8", timeout=60)
    return len(listing.stdout.splitlines()) - 2 if listing.returncode == 0 else -1


@pytest.mark.parametrize("write, results, title, activity", [
    (write_spine_report, SPINE, "Vertebra L1: low risk", "Relaxed standing"),
    (write_humerus_report, HUMERUS, "Humerus (right): low risk", "Raising the arm")])
def test_site_report_pdf_carries_the_failure_load_and_the_picture(tmp_path, write, results, title, activity):
    paths = write(tmp_path, results, bone_mesh())
    assert {"json", "html", "pdf", "png"} <= set(paths) and paths["pdf"] == tmp_path / "report.pdf"
    load = json.loads(paths["json"].read_text(encoding="utf-8"))["failure_load_n"]
    text = pdf_text(paths["pdf"])
    assert f"{load:.0f} N" in text  # as the HTML prints it
    assert f"{load:.0f} N" in paths["html"].read_text(encoding="utf-8")
    assert title in text and activity in text
    assert "font-family" not in text  # the page's <style> is not printed
    page_html = paths["html"].read_text(encoding="utf-8")
    assert 'src="strain.png"' not in page_html and page_html.count('src="data:image/png;base64,') >= 1  # opens alone
    if shutil.which("pdfimages"):
        assert image_count(paths["pdf"]) >= 1  # strain.png, embedded


def test_site_report_pdf_without_picture(tmp_path):
    """No gathered mesh: no strain.png, and the HTML and PDF leave the page's picture out."""
    paths = write_spine_report(tmp_path, SPINE)
    assert "png" not in paths and not (tmp_path / "strain.png").exists()
    assert "4006 N" in pdf_text(paths["pdf"])
    assert "<img" not in paths["html"].read_text(encoding="utf-8").split("<h2>Picture</h2>", 1)[1]  # no broken picture


def test_page_pdf_keeps_table_cells_and_escapes(tmp_path):
    """Table cells, escaped characters and non-Latin-1 glyphs (DejaVu) come through."""
    body = ("<h1>Title &amp; more</h1><p>µε ≥ 2 × BW</p>"
            "<table><thead><tr><th>Quantity</th><th>Value</th></tr></thead>"
            "<tbody><tr><td>Failure load</td><td class=\"x\">4006 N</td></tr></tbody></table>")
    path = tmp_path / "page.pdf"
    path.write_bytes(render_page_pdf(page("t", body)))
    text = pdf_text(path)
    assert "Title & more" in text and "µε ≥ 2 × BW" in text
    assert "Failure load" in text and "4006 N" in text and "Quantity" in text


def test_pictures_fit_the_page_width():
    """A picture wider than the page (the exercise-window chart) is shrunk to the page's width in the HTML,
    its aspect kept, instead of making the page scroll sideways."""
    style = page("t", "<p>x</p>").split("<style>", 1)[1].split("</style>", 1)[0]
    assert "img{max-width:100%;height:auto}" in style and "max-width:60em" in style

"""The report as a reader gets it: JSON numbers, a self-contained HTML page that a real browser
(headless Chromium) shows with its pictures, a PDF whose pages render, and real pictures."""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

import base64
import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import pyvista as pv
from PIL import Image

from bonefe import risk
from bonefe.errors import BonefeError
from bonefe.report import build_results, write_report
from bonefe.report.content import build_content
from bonefe.report.html import render_html
from bonefe.report.pictures import PICTURE_SIZE, image_is_real

MASS_KG = 70.0
BW = MASS_KG * 9.81  # 686.7 N
FAILURE_N = 3000.0  # 4.37 x BW: "high" under the default thresholds (below 5 x BW)


def make_results() -> dict:
    """A results dict as the pipeline builds it, from bonefe.risk and numpy values."""
    policy, thresholds = risk.VerdictPolicy(), risk.RiskThresholds()
    activities = [
        risk.assess_activity(name, label, share * BW, allowed, ref, policy)
        for name, label, share, allowed, ref in [
            ("walking", "Walking", 2.38, 3000.0, "Bergmann et al. 2016, PLoS One 11:e0155612"),
            ("stairs_up", "Stairs up", 2.51, 3600.0, "Bergmann et al. 2016, PLoS One 11:e0155612"),
            ("stumbling", "Stumbling", 7.2, 3900.0, "Bergmann et al. 2004"),
        ]
    ]
    return dict(
        case_name="case-017",
        body_mass_kg=MASS_KG,
        failure_load_n=np.float64(FAILURE_N),
        failure_load_bw=FAILURE_N / BW,
        failure_load_case="one-leg stance",
        failure_location_mm=np.array([15.0, -15.0, 140.0]),
        failure_mode="tensile",
        risk_category=risk.risk_category(FAILURE_N / BW, thresholds),
        averaging_radius_mm=3.0,
        strain_criterion=risk.StrainCriterion(),
        risk_thresholds=thresholds,
        verdict_policy=policy,
        walking_weight_bearing_fraction=risk.weight_bearing_fraction(3000.0, 2.38 * BW, policy),
        activities=activities,
        mesh={"cells": np.int64(5400), "dofs": 4557},
        material_law="Morgan et al. 2003, femoral neck",
        timings_s={"mesh": 1.2, "solve": 3.4},
        provenance={"inputs": {"ct.nii.gz": "sha256:0f1e"}, "parameters": {"mesh": {"size_mm": 3.0}}},
        failure_site="superolateral neck",
        strain_fold_ratio=1.62,
        assumptions=["Distal cut fixed.", "Hip-contact force spread over a head patch."],
    )


def bone_mesh() -> dict:
    """A 30 x 30 x 150 mm block of tetrahedra standing in for a femoral shaft, with a strain
    gradient and a 10 mm spherical lesion."""
    grid = pv.ImageData(dimensions=(7, 7, 31), spacing=(5.0, 5.0, 5.0), origin=(-15.0, -15.0, 0.0))
    grid = grid.triangulate()
    centres = grid.cell_centers().points
    strain = 1e-3 * (1 + centres[:, 0] / 15.0) * (centres[:, 2] / 150.0)
    lesion = (np.linalg.norm(centres - [5.0, -10.0, 100.0], axis=1) < 10.0).astype(int)
    return dict(
        points=np.asarray(grid.points),
        tets=grid.cells.reshape(-1, 5)[:, 1:],
        cell_data={"max_principal_strain": strain, "lesion": lesion},
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One full report (pictures included) shared by the tests of this file."""
    out = tmp_path_factory.mktemp("report")
    return write_report(out, make_results(), bone_mesh())


def test_json_round_trips_the_numbers(report):
    """report.json holds the numbers given (exactly: JSON keeps float64 digits) and, without the
    added software block, builds back into the same results."""
    data = json.loads(report["json"].read_text(encoding="utf-8"))
    assert data["failure_load_n"] == FAILURE_N
    assert data["body_weight_n"] == pytest.approx(686.7, rel=1e-12)
    assert data["risk_category"] == "high"
    assert [a["safety_factor"] for a in data["activities"]] == pytest.approx(
        [3000.0 / (2.38 * BW), 3600.0 / (2.51 * BW), 3900.0 / (7.2 * BW)], rel=1e-15
    )
    assert data["provenance"]["inputs"] == {"ct.nii.gz": "sha256:0f1e"}
    software = data["provenance"].pop("software")
    assert software["bonefe"] == bonefe.__version__ and "numpy" in software
    assert data["synthesis"]["level"] == "high" and data["synthesis"]["headline"] == "HIGH fracture risk"
    assert data["exercise_guidance"] == []  # no lesion scores: no guideline rows
    del data["schema"], data["body_weight_n"], data["synthesis"], data["exercise_guidance"]
    # kept apart: report.json is reproducible
    data.update(timings_s=json.loads(report["run_info"].read_text(encoding="utf-8"))["timings_s"])
    assert build_results(data) == build_results(make_results())


def test_html_is_self_contained(report):
    """Verdict text present; no http(s) address, no <link>, every src= a PNG data URI whose
    picture is real and of the size rendered."""
    html = report["html"].read_text(encoding="utf-8")
    assert "HIGH fracture risk" in html
    assert not re.search(r"https?:", html) and "<link" not in html
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == 3  # strain, lesion, safety-factor chart
    prefix = "data:image/png;base64,"
    assert all(s.startswith(prefix) for s in sources)
    bone = [base64.b64decode(s[len(prefix):]) for s in sources[:2]]
    assert all(image_is_real(png, PICTURE_SIZE) for png in bone)
    assert not list(Path(report["html"]).parent.glob("*.tmp"))  # atomic writes left no temporaries


def test_pictures_are_real_and_framed(report):
    """Bone pictures are 1000 x 800 and not blank; the bone fills a sensible part of the frame
    (5-60 % non-white pixels: a 30 x 150 mm block seen from the front); a uniform image is
    recognised as blank."""
    for name in ("strain", "lesion", "safety-factors"):
        assert image_is_real(report[name])
    for name in ("strain", "lesion"):
        pixels = np.asarray(Image.open(report[name]).convert("RGB"), dtype=float)
        assert pixels.shape == (800, 1000, 3)
        covered = np.mean(pixels.min(axis=2) < 240)
        assert 0.05 < covered < 0.60
    assert not image_is_real(np.full((800, 1000, 3), 255, np.uint8))
    assert not image_is_real(report["strain"], (800, 1000))  # wrong size


def test_walking_advice_partial_weight_bearing():
    """Allowed walking force 40 % of what full weight bearing needs (SF 2): the advice says
    40 % of body weight, 0.4 x 70 kg = 28 kg."""
    results = make_results()
    results["walking_weight_bearing_fraction"] = 0.4
    content = build_content(build_results(results), {})
    assert "at most 40 % of body weight (about 28 kg on this leg)" in content.walking_advice


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(patient_id="123"), "unknown key 'patient_id'"),
        (lambda r: r["provenance"].update(dicom={"PatientName": "Doe^J"}), "patient identifier"),
        (lambda r: r.update(risk_category="low"), "disagrees with the thresholds"),
        (lambda r: r.update(failure_load_bw=9.0), "disagrees with failure_load_n"),
    ],
)
def test_results_schema_refuses(change, message):
    """Identifiers and inconsistent numbers never reach a report: one-line BonefeError."""
    results = copy.deepcopy(make_results())
    change(results)
    with pytest.raises(BonefeError, match=message):
        build_results(results)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium(tmp_path, *args) -> str:
    """Run headless Chromium on its own profile; return stdout."""
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, encoding="utf-8", timeout=120, check=True).stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package 'chromium')")
def test_browser_shows_report(report, tmp_path):
    """A real browser loads report.html from disk: the screenshot is not blank and shows the
    high-risk red (198, 40, 40) verdict box; the page's own check finds all 3 images decoded."""
    url = report["html"].resolve().as_uri()
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2000", url)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert image_is_real(pixels, (1200, 2000))
    red = np.all(np.abs(pixels.astype(int) - [198, 40, 40]) <= 3, axis=2)
    assert red.mean() > 0.01
    dom = chromium(tmp_path, "--dump-dom", url)
    assert "HIGH fracture risk" in dom
    assert re.search(r'id="image-check"[^>]*data-state="ok"', dom)
    assert 'data-images="3"' in dom


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm not installed (poppler-utils)")
def test_pdf_pages_render(report, tmp_path):
    """Every PDF page renders (poppler) and is not blank; page 1 carries the red verdict box."""
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(report["pdf"]), str(tmp_path / "page")],
                   check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 3
    assert all(image_is_real(page) for page in pages)
    first = np.asarray(Image.open(pages[0]).convert("RGB")).astype(int)
    assert np.all(np.abs(first - [198, 40, 40]) <= 6, axis=2).mean() > 0.01


def with_scores(mirels_total: int, axial_mm: float) -> dict:
    """make_results (FE: high risk, 3 kN < 5 × BW) plus a Mirels score, axial involvement, a twin
    failure load and a two-plane envelope with walking marked inside it."""
    from bonefe.sites.femur.assessment import EnvelopeMark, EnvelopePlane
    from bonefe.sites.long_bone.scores import AxialInvolvement, MirelsScore, mirels_recommendation

    site, kind, size = 3, 3, 2
    pain = mirels_total - site - kind - size
    angles = [float(a) for a in range(0, 360, 30)]
    return dict(
        make_results(),
        twin_failure_load_n=6000.0,
        mirels=MirelsScore(site, pain, kind, size, 0.5, mirels_total, mirels_total,
                           mirels_recommendation(mirels_total, mirels_total)),
        axial_involvement=AxialInvolvement(axial_mm),
        envelope=[EnvelopePlane(p, t, angles, [4000.0 + 1000.0 * np.cos(np.radians(a)) for a in angles])
                  for p, t in (("frontal", "lateral"), ("sagittal", "posterior"))],
        envelope_marks=[EnvelopeMark("Walking", {"frontal": 13.0, "sagittal": 8.0}, 1600.0, 3000.0)],
    )


def test_report_headline_synthesises_fe_and_clinical_scores(tmp_path):
    """FE high risk (4.4 × BW < 5), SFR 1.62 > 1.48 with Mirels 10 (≥ 9, Mirels 1989) and 35 mm axial
    involvement (> 30 mm, Van der Linden 2004): all high, red HIGH. With Mirels 5 (≤ 7) and 10 mm
    the supporting scores disagree with the primary FE indicators: still red HIGH (a supporting low
    vote never outweighs a primary warning), and the sentence names both sides without contradiction."""
    agree = build_content(build_results(with_scores(10, 35.0)), {})
    differ = build_content(build_results(with_scores(5, 10.0)), {})
    assert agree.level == "high" and agree.headline == "HIGH fracture risk"
    assert agree.agreement == ("Failure load (4.4 × BW), strain fold ratio (1.62 vs 1.48), Mirels score (10) "
                               "and axial cortical involvement (35 mm) point to high risk; none points "
                               "the other way.")
    assert differ.level == "high" and differ.headline == "HIGH fracture risk"
    assert 'class="verdict level-high"' in render_html(differ, [], "now")
    assert differ.agreement == ("Failure load (4.4 × BW) and strain fold ratio (1.62 vs 1.48) point to high "
                                "risk; Mirels score (5) and axial cortical involvement (10 mm) point to low "
                                "risk, which does not outweigh the warning.")
    written = write_report(tmp_path, with_scores(10, 35.0))
    assert image_is_real(written["envelope"])
    html = written["html"].read_text(encoding="utf-8")
    assert "Mirels score" in html and "Axial cortical involvement" in html and "lesion-free twin" in html
    assert "level-high" in html and "Exercise guidance beside the FE verdict" in html
    assert "agree for every activity it rules on (1)" in html  # walking: caution vs not included
    report = json.loads(written["json"].read_text(encoding="utf-8"))
    assert report["mirels"]["total_min"] == 10 and report["twin_failure_load_n"] == 6000.0


def with_uncertainty(lower_n: float, upper_n: float) -> dict:
    """make_results (3 kN, high risk below 5 × BW = 3,434 N) with an uncertainty study whose
    interval is [lower_n, upper_n]."""
    from bonefe.uncertainty import FactorEffect, Sample, UncertaintyResult

    bw = BW
    categories = [risk.risk_category(f / bw) for f in (FAILURE_N, lower_n, upper_n)]
    crossed = [t for t in (5.0, 10.0) if lower_n / bw < t <= upper_n / bw]
    factors = [FactorEffect("segmentation", "bone outline ± 0.5 mm", "−0.5 mm", "+0.5 mm", 2000.0, 3200.0, 0.8),
               FactorEffect("poisson", "Poisson ratio", "ν = 0.35", "ν = 0.45", 2900.0, 3100.0, 0.2)]
    samples = [Sample("morgan2003", 0.0008, 0.0, 0.4, 0.0, 0.0, load) for load in [lower_n] + [3000.0] * 17 + [upper_n]]
    return dict(make_results(), uncertainty=UncertaintyResult(
        FAILURE_N, 2950.0, 0.9, lower_n, upper_n, lower_n / bw, upper_n / bw, 1, 0.9, categories,
        len(set(categories)) == 1, crossed, factors, samples, 0, "no calibration fit", "segmentation",
        "where the outer surface of the bone was drawn on the CT", "a finer scan", 12.0))


def test_report_shows_the_interval_and_whether_the_category_holds(tmp_path):
    """An interval crossing the 5 × BW boundary (3,434 N for 70 kg) is called not robust, with
    the boundary named; one inside the high-risk band is robust. The JSON keeps the numbers and
    builds back; a real tornado picture is written; reports without a study have none."""
    crossing = build_content(build_results(with_uncertainty(2400.0, 3900.0)), {})
    assert "90 % interval 2,400–3,900 N (3.5–5.7 × BW)" in crossing.summary
    assert "NOT robust" in crossing.summary and "5 × BW" in crossing.summary
    inside = build_content(build_results(with_uncertainty(2400.0, 3300.0)), {})
    assert "holds over the whole interval" in inside.summary
    written = write_report(tmp_path, with_uncertainty(2400.0, 3900.0))
    data = json.loads(written["json"].read_text(encoding="utf-8"))
    assert data["uncertainty"]["lower_n"] == 2400.0 and data["uncertainty"]["robust"] is False
    assert [s["failure_load_n"] for s in data["uncertainty"]["samples"]][:2] == [2400.0, 3000.0]
    assert build_results(with_uncertainty(2400.0, 3900.0)).uncertainty.factors[0].high_n == 3200.0
    assert image_is_real(written["uncertainty"])
    html = written["html"].read_text(encoding="utf-8")
    assert "Failure load: uncertainty" in html and "What moves the failure load" in html
    assert "where the outer surface of the bone was drawn" in html and "would narrow it: a finer scan" in html
    assert "110 of 120 such intervals held the true failure load" in html
    theory = (Path(__file__).parents[1] / "docs" / "theory.md").read_text(encoding="utf-8")
    assert "together 110 of 120" in theory and "All ten misses lie below the lower end" in theory
    assert "uncertainty" not in write_report(tmp_path / "plain", make_results())

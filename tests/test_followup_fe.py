"""`bonefe followup` end to end on the synthetic demo series (growth, then healing), coarse: 2 mm
voxels, 8 mm mesh. Known answers: each later scan is the phantom placed by a known rigid motion
(`bonefe.sites.femur.series`), its lesion grown from 20 to 26 mm (day 90), then re-mineralised half
way (day 180); lesion volumes are voxel counts × voxel volume of the unmoved phantoms; the failure
loads on the baseline mesh are checked against the unmoved phantoms mapped onto that same mesh."""

import bonefe  # noqa: F401  (before dolfinx)

import re
import shutil

import numpy as np
import pytest
from mpi4py import MPI
from PIL import Image

from bonefe.case import load_case
from bonefe.followup import assess_on_mesh, baseline_mesh, run_followup
from bonefe.followup.synthetic import moved
from bonefe.sites.femur.series import DEMO_DAYS, demo_scans, write_demo
from bonefe.materials import MaterialOptions
from bonefe.registration import register, resample_to_baseline
from bonefe.report.pictures import image_is_real
from bonefe.sites import site_of
from bonefe.volume import LESION_LABELS

COMM = MPI.COMM_WORLD
VOXEL_MM = 2.0


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("followup") if COMM.rank == 0 else None
    folder = COMM.bcast(folder, root=0)
    if COMM.rank == 0:
        paths = write_demo(folder, mesh_size_mm=8.0, voxel_mm=VOXEL_MM)
    paths = COMM.bcast(paths if COMM.rank == 0 else None, root=0)
    results = run_followup(paths, output=folder / "out", quiet=True, comm=COMM)
    return {"paths": paths, "out": folder / "out", "results": results, "scans": demo_scans(VOXEL_MM)}


def test_registration_recovers_the_known_motions(series):
    """Within 0.5 mm over the bone and 0.5° of each later scan's known placement."""
    base = series["scans"][0][0]
    bone = base.to_world(np.argwhere(base.labels > 0))
    for (_, true), found in zip(series["scans"][1:], series["results"]["registrations"]):
        found = np.array(found["matrix"])
        error = np.linalg.norm(bone @ (found[:3, :3] - true[:3, :3]).T + found[:3, 3] - true[:3, 3], axis=1)
        relative = found[:3, :3] @ true[:3, :3].T
        angle = np.degrees(np.arccos(np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0)))
        assert error.max() < 0.5 and angle < 0.5


def test_lesion_volumes_matching_and_healing(series):
    """Volumes exact (voxel counts); one lesion per scan matched to the baseline's; healing fraction
    0 after growth and 0.5 after the half re-mineralisation, within 0.03 (linear resampling of a
    rotated scan blurs the lesion's rim); lytic labels kept, so no lytic → blastic conversion."""
    rows = series["results"]["lesions"]
    for row, (volume, _) in zip(rows, series["scans"]):
        expected = np.count_nonzero(np.isin(volume.labels, LESION_LABELS)) * VOXEL_MM ** 3
        assert [lesion["volume_mm3"] for lesion in row["lesions"]] == [pytest.approx(expected)]
        assert row["lesions"][0]["baseline_match"] == 0
    assert rows[1]["healing_fraction"] == pytest.approx(0.0, abs=0.03)
    assert rows[2]["healing_fraction"] == pytest.approx(0.5, abs=0.03)
    assert not any(lesion["lytic_to_blastic"] for row in rows[1:] for lesion in row["lesions"])
    assert rows[1]["lesions"][0]["volume_change_mm3"] > 0
    # on the baseline mesh the half-healed lesion's modulus factor is half-way from lytic (0.01) to bone
    assert series["results"]["scans"][2]["lesion_modulus_factors"]["lytic"] == pytest.approx(0.505, abs=0.03)


def test_failure_load_on_one_mesh_against_the_unmoved_scans(series):
    """Sign exact on both routes (growth weakens, healing strengthens). On one baseline mesh (built
    here from the unmoved phantoms), each later scan registered and resampled gives the failure load
    of its unmoved phantom within 2 % (what registration and resampling may cost)."""
    scans = series["results"]["scans"]
    for route in ("one_mesh", "own_mesh"):
        loads = [s[route]["failure_load_n"] for s in scans]
        assert loads[1] < loads[0] and loads[2] > loads[1]
    case = load_case(series["paths"][0])
    base = series["scans"][0][0]
    exact = [volume for volume, _ in series["scans"]]
    frame = site_of(case.site).anatomy(case, base, None).frame
    mesh, tags, setup = baseline_mesh(case, frame, exact, COMM)
    resampled = [resample_to_baseline(moved(volume, motion), base, register(base, moved(volume, motion)))
                 for volume, motion in series["scans"][1:]]
    volumes = exact[1:] + resampled
    loads = [a.stance.failure_load_n for a in assess_on_mesh(case, mesh, tags, setup, volumes,
                                                             [MaterialOptions()] * len(volumes))]
    assert loads[2] == pytest.approx(loads[0], rel=0.02) and loads[3] == pytest.approx(loads[1], rel=0.02)
    assert loads[0] < loads[1]


def test_course_is_healing_at_the_measured_rate(series):
    """The last interval heals: rate 0.5 / 90 days per day (± the healing fraction's 0.03), interval
    reaching the literature rate (one healing interval); the projection rises and stays inside its band."""
    course = series["results"]["course"]
    assert course["kind"] == "healing" and course["scans_fitted"] == 2 and course["literature_rate_used"]
    per_day = course["healing_rate_per_month"]["value"] / (365.25 / 12)
    assert per_day == pytest.approx(0.5 / (DEMO_DAYS[2] - DEMO_DAYS[1]), abs=0.03 / 90)
    projection = course["projection"]
    assert projection["failure_load_n"][-1] > projection["failure_load_n"][0]
    assert all(lo <= f <= hi for lo, f, hi in zip(projection["low_n"], projection["failure_load_n"],
                                                 projection["high_n"]))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package 'chromium')")
def test_report_renders_in_chromium(series, tmp_path):
    """Headless Chromium loads followup.html: the timeline decodes (the page's own check) and the
    screenshot is not blank; days come from the case files (90, 180 in the table)."""
    if COMM.rank != 0:
        return
    from test_report import chromium

    url = (series["out"] / "followup.html").resolve().as_uri()
    dom = chromium(tmp_path, "--dump-dom", url)
    assert "Change since the first scan" in dom
    assert re.search(r'id="image-check"[^>]*data-state="ok"', dom) and 'data-images="1"' in dom
    assert "<td>90</td>" in dom and "<td>180</td>" in dom
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,1400", url)
    assert image_is_real(np.asarray(Image.open(shot).convert("RGB")), (1000, 1400))
    assert image_is_real(series["out"] / "timeline.png")


ONE_MESH_N = (2725.149264152852, 1195.288776547192, 6715.975235317837)
"""Failure loads on the baseline mesh of the three scans, serial run (N); pinned to show rank independence.
Re-pinned 2026-12-01 when failure came to be read where the CT holds bone (was 4097, 1171, 6614 N)."""
OWN_MESH_N = 2831.059058389688
"""The baseline scan's failure load on its own mesh, serial run (N) (5632 N before the same change:
the baseline scan's two routes now differ by 3.9 % instead of 37 %). The later scans' own meshes are
not pinned: gmsh meshes their rigidly moved (oblique) grids at this 8 mm size differently on
different CPUs (the grown scan: 1380 N on the machines the pins came from, 1205 N on an AVX2-only
AMD EPYC, before and after the same commit); each own-mesh route is `bonefe run`, whose rank
independence tests/test_femur_golden.py and tests/test_sites.py pin."""


def test_results_do_not_depend_on_the_rank_count(series):
    """The same numbers under `mpirun -n 2` as serially (to 1e-6)."""
    scans = series["results"]["scans"]
    assert [s["one_mesh"]["failure_load_n"] for s in scans] == pytest.approx(ONE_MESH_N, rel=1e-6)
    assert scans[0]["own_mesh"]["failure_load_n"] == pytest.approx(OWN_MESH_N, rel=1e-6)

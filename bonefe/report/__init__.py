"""The report a clinician reads: report.json, report.html (self-contained), report.pdf, pictures.

    write_report(out_dir, results, picture_mesh=None) -> {name: path}

`results` is a plain dict following `bonefe.report.results.ReportResults` (the schema, documented
there); it must never carry DICOM header fields or other patient identifiers. `picture_mesh`
(rank 0 only) is documented in `bonefe.report.pictures`; without it the report shows the
safety-factor chart only. Call on rank 0 alone: rendering is serial.
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import bonefe
from bonefe.errors import BonefeError
from bonefe.outputs import atomic_write_bytes, atomic_write_json, atomic_write_text
from bonefe.report.content import build_content
from bonefe.report.exercise import has_chart, window_picture
from bonefe.report.html import render_html
from bonefe.report.pdf import render_pdf
from bonefe.report.pictures import (
    LESION,
    PICTURE_SIZE,
    Picture,
    image_is_real,
    png_bytes,
    render_lesion,
    render_strain,
    envelope_chart,
    safety_factor_chart,
    tornado_chart,
    whatif_chart,
)
from bonefe.report.results import ReportResults, build_results, results_json

__all__ = ["write_report", "ReportResults", "build_results", "software_versions"]

DEPENDENCIES = (
    "numpy", "scipy", "mpi4py", "dolfinx-solver-real", "fenics-dolfinx", "petsc4py", "gmsh",
    "SimpleITK", "meshio", "pyvista", "vtk", "matplotlib", "fpdf2", "pydicom", "PyYAML",
)
HEADLESS_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri"


def software_versions() -> dict:
    """bonefe, Python and installed dependency versions (distributions that are absent are left out)."""
    versions = {"bonefe": bonefe.__version__, "python": platform.python_version()}
    for name in DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _checked(name: str, image, size) -> bytes:
    """PNG bytes of a rendered image, refusing blank renders (a broken OpenGL stack)."""
    if not image_is_real(image, size):
        raise BonefeError(
            f"the '{name}' picture rendered blank: install the Debian packages {HEADLESS_PACKAGES} "
            "for off-screen rendering"
        )
    return png_bytes(image)


def _bone_pictures(r: ReportResults, picture_mesh: dict) -> list[Picture]:
    """Strain picture, and the lesion picture when the mesh carries lesion cells."""
    site = r.failure_location_mm
    loading = picture_mesh.get("strain_description", r.failure_load_case)
    pictures = [
        Picture(
            "strain",
            "Strain, anterior view",
            f"Maximum principal strain on the bone surface under {loading}. "
            f"Black sphere: where failure starts ({r.failure_mode}).",
            _checked("strain", render_strain(picture_mesh, site), PICTURE_SIZE),
        )
    ]
    if LESION in picture_mesh.get("cell_data", {}):
        pictures.append(
            Picture(
                "lesion",
                "Lesion, anterior view",
                "Lesion (red) inside the translucent bone. Black sphere: where failure starts.",
                _checked("lesion", render_lesion(picture_mesh, site), PICTURE_SIZE),
            )
        )
    return pictures


def _chart(r: ReportResults) -> Picture:
    """Safety factor per activity with the verdict boundaries."""
    policy = r.verdict_policy
    image = safety_factor_chart(r.activities, policy.safe_factor, policy.avoid_factor)
    return Picture(
        "safety-factors",
        "Safety factor per activity",
        f"Allowed force along each activity's direction divided by its peak hip-contact force; "
        f"safe from {policy.safe_factor:g}, avoid below {policy.avoid_factor:g}.",
        _checked("safety-factors", image, image.shape[1::-1]),
    )


def _envelope(r: ReportResults) -> Picture:
    """Polar plots of the allowed hip-contact force with the activities marked."""
    image = envelope_chart(r.envelope, r.envelope_marks)
    return Picture(
        "envelope",
        "Allowed hip-contact force by direction",
        "Force on the femoral head at which failure starts, for every direction of the frontal and "
        "sagittal planes (contact force alone). Dots: each activity's peak force at the angle of its "
        "direction projected on the plane; filled = inside the envelope along its own direction "
        "(safety factor ≥ 1), hollow = outside.",
        _checked("envelope", image, image.shape[1::-1]),
    )


def _whatif(r: ReportResults) -> Picture:
    """Failure load against lesion growth and re-mineralisation, with the high-risk boundary."""
    image = whatif_chart(r.whatif_growth, r.whatif_remineralisation,
                         r.risk_thresholds.high_below_bw * r.body_weight_n, r.failure_load_case)
    return Picture(
        "whatif",
        "What if the lesion grows or heals",
        f"Failure load ({r.failure_load_case}) on the same mesh with the lesion grown by each step "
        "(inside the bone; x-axis also gives the equivalent sphere diameter of the lesion) and with "
        "the lesion re-mineralised towards the lesion-free twin (fraction 1 = the twin). Dashed: "
        "high-risk boundary; ring: the first step at high risk.",
        _checked("whatif", image, image.shape[1::-1]),
    )


def _tornado(r: ReportResults) -> Picture:
    """Each input's one-at-a-time effect on the failure load, with the combined interval."""
    u = r.uncertainty
    image = tornado_chart(u, r.risk_thresholds.high_below_bw * r.body_weight_n,
                          r.risk_thresholds.low_from_bw * r.body_weight_n)
    return Picture(
        "uncertainty",
        "How sure is the failure load",
        f"Failure load ({r.failure_load_case}) with one input at a time at its low and high value "
        f"({', '.join(e.name.replace('_', ' ') for e in u.factors)}; −1/+1 SD), around the nominal "
        f"value (black line). Shaded: the interval read from {len(u.samples)} computed failure loads "
        "with every input drawn together. Dashed: risk boundaries.",
        _checked("uncertainty", image, image.shape[1::-1]),
    )


def write_report(out_dir, results: dict, picture_mesh: dict | None = None) -> dict[str, Path]:
    """Write report.json, report.html, report.pdf and the PNG pictures into `out_dir`, atomically.

    Returns the written paths by name. Raises BonefeError if `results` does not fit the schema.
    """
    r = build_results(results)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    software = software_versions()
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    pictures = _bone_pictures(r, picture_mesh) if picture_mesh is not None else []
    if r.activities:
        pictures.append(_chart(r))
    if r.envelope:
        pictures.append(_envelope(r))
    if r.whatif_growth is not None or r.whatif_remineralisation is not None:
        pictures.append(_whatif(r))
    if r.uncertainty is not None:
        pictures.append(_tornado(r))
    if r.exercise_window is not None and has_chart(r.exercise_window):
        pictures.append(window_picture(r.exercise_window, r.verdict_policy.safe_factor, r.verdict_policy.avoid_factor))
    content = build_content(r, software)
    payload = results_json(r, software)
    run_info = {"generated_utc": generated, "timings_s": payload.pop("timings_s")}  # report.json: reproducible
    written = {}
    for picture in pictures:
        written[picture.name] = out / f"{picture.name}.png"
        atomic_write_bytes(written[picture.name], picture.png)
    written["json"] = out / "report.json"
    atomic_write_json(written["json"], payload)
    written["run_info"] = out / "run-info.json"
    atomic_write_json(written["run_info"], run_info)
    written["html"] = out / "report.html"
    atomic_write_text(written["html"], render_html(content, pictures, generated))
    written["pdf"] = out / "report.pdf"
    atomic_write_bytes(written["pdf"], render_pdf(content, pictures, generated))
    return written

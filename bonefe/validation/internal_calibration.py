"""Internal (phantomless) against phantom-rod calibration: the default phantom femur inside a body
with a rod phantom (`bonefe.phantom_body`: scanner gain 1.04, offset +12 HU, cupping 15 HU, noise
15 HU), calibrated on its tissues and on its rods; the stance failure loads of the two, and of the
placeholder line, on the same (deterministic) mesh."""

from __future__ import annotations

from dataclasses import replace

from bonefe.calibration import CalibrationOptions, Rod, resolve_calibration
from bonefe.case import MeshOptions
from bonefe.internal_calibration import InternalCalibration
from bonefe.materials import MaterialOptions
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
from bonefe.phantom_body import ROD_DENSITIES, ROD_LABELS, VESSEL_LABEL, BodySpec, add_body
from bonefe.validation.checks import Section, relative
from bonefe.validation.femur import femur

BOUND = 0.05
"""Agreement bound of the failure loads (tests/test_calibration_run.py gives its reasoning)."""


def internal_calibration_section() -> Section:
    """Rod and internal calibrations of one body phantom and their stance failure loads."""
    spec, body = PhantomSpec(), BodySpec()
    volume, frame = make_phantom(spec)
    volume, raw, description = add_body(volume, body)
    options = {"rods": CalibrationOptions(rods=[Rod(label, rho) for label, rho in zip(ROD_LABELS, ROD_DENSITIES)]),
               "internal": CalibrationOptions(internal=InternalCalibration(labels={"blood": VESSEL_LABEL}))}
    lines = {name: resolve_calibration(o, volume.hu, volume.affine, raw, volume.labels > 0) for name, o in options.items()}
    size = MeshOptions().size_mm
    loads = {}
    for name, line in [*lines.items(), ("placeholder", None)]:
        material = MaterialOptions() if line is None else replace(MaterialOptions(), slope=line.slope,
                                                                  intercept=line.intercept)
        loads[name] = femur(volume, frame, size, material=material).stance_failure().failure_load_n
    mesh = f"{size:g} mm P1, {spec.voxel_mm:g} mm voxels"
    source = "the rod calibration of the same phantom"
    checks = [relative("stance failure load, internal vs rod calibration", loads["internal"], loads["rods"], BOUND,
                       mesh, source),
              relative("stance failure load, placeholder line vs rod calibration", loads["placeholder"], loads["rods"],
                       None, mesh, source)]
    true = description["true_calibration"]
    rows = "\n".join(f"| {name} | {line.slope:.6f} | {line.intercept:+.4f} | {loads[name]:.0f} |"
                     for name, line in lines.items())
    text = ("`calibration: internal` (docs/theory.md §8a) against the phantom's K2HPO4 rods, on the default phantom "
            "femur (20 mm lytic neck lesion) inside a body with air, fat, muscle and a vessel, beside four rods, "
            f"scanned by a simulated scanner (gain {body.gain:g}, offset {body.offset_hu:+g} HU, cupping "
            f"{body.cupping_hu:g} HU at the body's centre, noise {body.noise_hu:g} HU). True line of the ideal CT "
            f"numbers: {true['slope_g_cm3_per_hu']:.6f}·HU {true['intercept_g_cm3']:+.4f} g/cm³; the cupping, seen "
            "by the tissues but not by the rods outside the body, is what separates the two calibrations.\n\n"
            "| calibration | slope (g/cm³/HU) | intercept (g/cm³) | stance failure load (N) |\n|---|---|---|---|\n"
            f"{rows}\n| placeholder (0.0008, 0) | 0.000800 | +0.0000 | {loads['placeholder']:.0f} |")
    return Section("Internal (phantomless) calibration against phantom rods", text, checks)

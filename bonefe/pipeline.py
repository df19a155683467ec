"""`bonefe run`: read → femur frame → mesh → material → solve and assess → report, for one case.

Every rank runs every stage on its part of the mesh; rank 0 alone writes the report. Outputs go
into `<output>.partial/` and replace `<output>/` in one rename when the case succeeds, so a failed
run never destroys earlier results. Folder contents:

  mesh.xdmf/.h5          mesh with cell tags (bone/lesion) and facet tags (support/head/trochanter)
  mesh-quality.json      element counts, SICN statistics, volume versus segmentation
  fields.xdmf/.h5        per activity at its peak load: displacement, strain tensor and principal
                         strains per cell; per-cell E, density, label and the evaluated-for-failure flag
  strain-energy.json     strain energy per activity (N mm)
  failure-points.vtp     the lattice points where failure is read, with the nonlocal strain and
                         failure index under the stance peak load (the failure site has the largest)
  model.inp, model.vtu   the model for CalculiX/Abaqus and ParaView, when the case asks (`exports`)
  report.json/.html/.pdf also carry the failure load's interval when the case (section
                         `uncertainty`) or `bonefe run --uncertainty` asks for it (`bonefe.uncertainty`)
  report.json/.html/.pdf and the PNG pictures
  run-info.json          when the report was made and the wall time per stage, kept out of
                         report.json so that the same case gives a byte-identical report.json
"""

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
from mpi4py import MPI

from bonefe import __version__
from bonefe.sites.femur.anatomy import SUPPORT, femur_frame
from bonefe.assessment import PATCH_TAGS, activity_list, assess
from bonefe.calibration import calibration_errors, calibration_record, raw_labels_on_ct, resolve_calibration
from bonefe.case import Case, load_case
from bonefe.errors import BonefeError
from bonefe.export import export_inp, export_mesh, gather_cells, gather_mesh
from bonefe.sites.femur.fall import fall_risk, fall_strength
from bonefe.imaging import read_volume
from bonefe.sites.femur.loads import ACTIVITIES, STANCE_ACTIVITY, activity_from_dict, patch_forces
from bonefe.materials import cell_material, healthy_volume, lesion_map
from bonefe.meshing import cell_tags, write_mesh, write_quality
from bonefe.outputs import staged_folder
from bonefe.plausibility import check_volume
from bonefe.progress import Progress
from bonefe.report import write_report
from bonefe.risk import risk_category, weight_bearing_fraction
from bonefe.schema import as_plain
from bonefe.sites.femur.scores import axial_involvement, mirels_score
from bonefe.suitability import check_scan, verdict_summary
from bonefe.synthesis import synthesis_of
from bonefe.fields import FAILURE_POINTS, write_activity_fields, write_failure_points
from bonefe.uncertainty import Study, UncertaintyOptions, mesh_case, propagate
from bonefe.whatif import Scenario, what_if
from bonefe.window import exercise_window

STAGES = ["read images", "femur frame", "mesh", "material", "solve and assess", "uncertainty", "report"]


def run_case(case_path, output: Path | None = None, mesh_size: float | None = None,
             quiet: bool = False, comm=MPI.COMM_WORLD, uncertainty: bool | int = False) -> dict:
    """Run one case file end to end; returns the report's results dict (on every rank).

    uncertainty: True turns the uncertainty study on (the case's section, or its defaults); a
    number N also sets its Monte-Carlo samples to N; False leaves the case file to decide."""
    case = load_case(case_path)
    if output is not None:
        case = replace(case, output=Path(output).resolve())
    if mesh_size is not None:
        case = replace(case, mesh=replace(case.mesh, size_mm=mesh_size))
    if case.site == "vertebra":
        if uncertainty is not False or case.uncertainty is not None:
            raise BonefeError("the uncertainty study is available for the femur only; remove `uncertainty` "
                              "from the vertebra case (and --uncertainty)")
        from bonefe.vertebra_pipeline import run_vertebra_case

        return run_vertebra_case(case, quiet, comm)
    if uncertainty is not False:
        case = replace(case, uncertainty=_uncertainty_options(case.uncertainty, uncertainty))
    stages = [s for s in STAGES if s != "uncertainty" or case.uncertainty is not None]
    progress = Progress(stages, comm.rank, quiet)
    with staged_folder(case.output, comm) as out:
        results = _run(case, out, progress, comm)
    if comm.rank == 0:
        print(_summary(case, results))
    return results


def _run(case: Case, out: Path, progress: Progress, comm) -> dict:
    with progress.stage("read images"):
        volume = read_volume(case.ct, case.labels, case.label_values.as_dict(), case.resample_labels,
                             case.ct_series, case.label_values.other_values() + case.calibration.label_values())
        volume = check_volume(volume, case.checks, case.label_values.lesion_named, case.ct.name, comm.rank == 0)
        suitability = check_scan(volume, case.ct, case.suitability)
        needs_raw = case.calibration.rods or case.calibration.internal
        raw_labels = raw_labels_on_ct(case.ct, case.labels, case.ct_series) if needs_raw else None
        calibration = resolve_calibration(case.calibration, volume.hu, volume.affine, raw_labels, volume.labels > 0)
        material_options = case.material if calibration is None else replace(
            case.material, slope=calibration.slope, intercept=calibration.intercept)
    with progress.stage("femur frame"):
        frame = femur_frame(volume, case.patient.side, case.landmarks.overrides())
    with progress.stage("mesh"):
        bone, facet_tags = mesh_case(volume, case.mesh, frame, comm)
        mesh = bone.mesh
    with progress.stage("material"):
        material = cell_material(mesh, volume, material_options)
        twin_volume = healthy_volume(volume)
        twin_E = cell_material(mesh, twin_volume, material_options).E if twin_volume is not volume else None
        write_mesh(out / "mesh.xdmf", mesh, cell_tags(mesh, material.label), facet_tags)
        if comm.rank == 0:
            write_quality(out / "mesh-quality.json", bone.quality)
    with progress.stage("solve and assess"):
        activities = activity_list(case.activities, [activity_from_dict(a) for a in case.custom_activities])
        lesion = lesion_map(volume)
        result = assess(mesh, facet_tags, material.E, material.label, case.material.poisson, frame,
                        case.patient.body_mass_kg, activities, case.risk, case.solver.degree, twin_E, lesion=lesion)
        patient = case.patient
        fall = fall_risk(fall_strength(mesh, facet_tags, material.E, material.label, case.material.poisson, frame,
                                       case.risk, case.solver.degree, lesion=lesion),
                         patient.body_mass_kg, patient.height_m, patient.trochanteric_soft_tissue_mm)
        scores = {"mirels": mirels_score(volume, frame, case.patient.pain),
                  "axial_involvement": axial_involvement(volume, frame, twin_volume)}
        cells = {"E": material.E, "density": material.rho_app, "label": material.label,
                 "evaluated": result.evaluated.astype(float)}
        peak_forces = {a.name: patch_forces(a, frame, case.patient.body_mass_kg, case.risk.abductor)
                       for a in activities}
        write_activity_fields(out / "fields.xdmf", mesh, result.basis, peak_forces, cells)
        write_failure_points(out / FAILURE_POINTS, result.stance_points, comm)
        _export(case.exports, out, result.basis, facet_tags, material.E, case.material.poisson,
                patch_forces(ACTIVITIES[STANCE_ACTIVITY], frame, case.patient.body_mass_kg, case.risk.abductor))
        window = exercise_window(result.model, material.E, material.label, activities, result.activities, frame,
                                 case.patient.body_mass_kg, case.material.poisson)
        scenarios = what_if(Scenario(mesh, facet_tags, volume, material_options, frame, case.patient.body_mass_kg,
                                     case.risk, case.solver.degree), result.stance.failure_load_n)
    spread = None
    if case.uncertainty is not None:
        with progress.stage("uncertainty"):
            study = Study(volume, frame, material_options, case.mesh, case.risk, case.patient.body_mass_kg,
                          case.solver.degree)
            errors = calibration_errors(case.calibration, volume.hu, volume.affine, raw_labels, volume.labels > 0)
            spread = propagate(study, case.uncertainty, errors, result.stance.failure_load_n, comm)
    with progress.stage("report"):
        picture = _picture_mesh(mesh, result.stance_strain, material.label)
        results = _results(case, bone.quality, result, progress.timings, scores, material_options, scenarios)
        results["uncertainty"] = spread
        results["fall"] = as_plain(fall)  # plain keys: results["fall"]["fall_strength_n"]
        results["exercise_window"] = window
        record, sentence = calibration_record(calibration, material_options.slope, material_options.intercept)
        results["provenance"]["density_calibration"].update(record)
        results["provenance"]["scan_suitability"] = verdict_summary(suitability)
        results["assumptions"].append(sentence)
        if comm.rank == 0:
            write_report(out, results, picture)
    return results


def _uncertainty_options(options: UncertaintyOptions | None, samples: bool | int) -> UncertaintyOptions:
    """The case's uncertainty options (defaults without a section), with `samples` when a number."""
    options = options or UncertaintyOptions()
    if samples is True:
        return options
    try:
        return replace(options, samples=int(samples))
    except ValueError as error:
        raise BonefeError(f"--uncertainty: {error}") from None


def _export(formats, out: Path, basis, facet_tags, E, nu, forces) -> None:
    """Write the model for other solvers: "inp" (CalculiX/Abaqus, per-element material, the stance
    load) and "vtu" (mesh and E). The .inp reuses the assembled P1 operator of `basis`."""
    mesh = basis.solver.mesh
    if "inp" in formats:
        export_inp(out / "model.inp", mesh, E, nu, facet_tags.find(SUPPORT),
                   {name: facet_tags.find(tag) for name, tag in PATCH_TAGS.items()}, forces,
                   solver=basis.solver if basis.solver.V.element.basix_element.degree == 1 else None)
    if "vtu" in formats:
        export_mesh(out / "model.vtu", mesh, {"E": E})


def _picture_mesh(mesh, stance_strain, labels) -> dict | None:
    """The mesh and its cell fields gathered on rank 0 for the pictures (None elsewhere)."""
    points, tets = gather_mesh(mesh)
    strain, label = gather_cells(mesh, stance_strain), gather_cells(mesh, labels)
    if mesh.comm.rank != 0:
        return None
    stance = ACTIVITIES[STANCE_ACTIVITY].label.lower()
    return {"points": points, "tets": tets,
            "cell_data": {"max_principal_strain": strain, "lesion": np.isin(label, (2, 3)).astype(float)},
            "strain_description": f"the peak load of {stance}"}


def _file_hash(path: Path) -> str:
    """sha256 of a file, or of every file of a folder (DICOM series) in name order."""
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if file.is_file():
            digest.update(file.read_bytes())
    return digest.hexdigest()


def _results(case: Case, quality: dict, result, timings: dict, scores: dict, material, scenarios: dict) -> dict:
    """The report's results dict: numbers, the rules applied and provenance (no identifiers).

    scores: {"mirels": MirelsScore | None, "axial_involvement": AxialInvolvement | None};
    scenarios: the what-if series by kind (`bonefe.whatif.what_if`), {} when none were asked for."""
    bw = case.body_weight
    stance = result.stance
    calibration_file = case.risk.calibration_file
    parameters = as_plain(replace(  # file names only: folder names may identify a patient
        case, ct=Path(case.ct.name), labels=Path(case.labels.name), output=Path(case.output.name),
        risk=replace(case.risk, calibration_file=calibration_file and Path(calibration_file.name))))
    walking = next((a for a in result.activities if a.name == "walking"), None)
    return {
        "case_name": case.name,
        "body_mass_kg": case.patient.body_mass_kg,
        "failure_load_n": stance.failure_load_n,
        "failure_load_bw": stance.failure_load_n / bw,
        "failure_load_case": ACTIVITIES[STANCE_ACTIVITY].label.lower() + " direction",
        "failure_location_mm": stance.location_mm,
        "failure_mode": stance.mode,
        "risk_category": risk_category(stance.failure_load_n / bw, case.risk.thresholds),
        "averaging_radius_mm": case.risk.averaging_radius_mm,
        "strain_criterion": case.risk.criterion,
        "risk_thresholds": case.risk.thresholds,
        "verdict_policy": case.risk.verdict,
        "walking_weight_bearing_fraction": (
            weight_bearing_fraction(walking.allowed_force_n, walking.peak_force_n, case.risk.verdict)
            if walking else 1.0),
        "activities": result.activities,
        "strain_fold_ratio": result.twin.strain_fold_ratio if result.twin else None,
        "twin_failure_load_n": result.twin.twin_stance.failure_load_n if result.twin else None,
        "envelope": result.envelope,
        "envelope_marks": result.envelope_marks,
        **scores,
        "whatif_growth": scenarios.get("growth"),
        "whatif_remineralisation": scenarios.get("remineralisation"),
        "mesh": {"cells": quality["tets"], "nodes": quality["nodes"], "dofs": result.dofs},
        "material_law": case.material.law,
        "timings_s": dict(timings),
        "provenance": {
            "bonefe": __version__,
            "inputs": {case.ct.name: _file_hash(case.ct), case.labels.name: _file_hash(case.labels)},
            "parameters": parameters,
            "density_calibration": {"slope_g_cm3_per_hu": material.slope, "intercept_g_cm3": material.intercept},
            "mpi_ranks": MPI.COMM_WORLD.size,
            "solver_iterations": result.iterations,
        },
        "assumptions": _assumptions(case),
    }


def _assumptions(case: Case) -> list[str]:
    return case.checks.overrides() + [
        "Linear elastic, isotropic material mapped from CT; failure is the onset of local failure "
        "by the maximum principal strain criterion (Schileo et al. 2008) on the strain averaged over "
        f"{case.risk.averaging_radius_mm:g} mm spheres of bone.",
        "Activities: distal end of the model fixed; hip-contact forces spread uniformly over a "
        "surface patch of the femoral head. Sideways fall: the head loaded through the acetabulum, the "
        "greater trochanter supported, the distal femur pinned (the cadaver test of Courtney et al. 1995), "
        "shaft tilted 10-30 deg and internally rotated 10-30 deg.",
        f"Cells within {case.risk.exclusion_mm:g} mm of a load or support patch and lesion tissue "
        "itself are not evaluated for failure.",
        "Activity forces are population peak values from instrumented hip implants, scaled by body weight.",
        f"Element size {case.mesh.size_mm:g} mm. On the phantom femur the failure load at the 3 mm "
        "default lies within 0.2 % of a 1.1 mm mesh, and meshes from 6 to 1.1 mm scatter by up to "
        "4.5 % without a trend (docs/validation.md).",
    ]


def _summary(case: Case, results: dict) -> str:
    spread = results.get("uncertainty")
    interval = "" if spread is None else (
        (f" [{100 * spread.interval:g} % interval" if spread.expected_coverage + 1e-9 >= spread.interval else
         f" [range of {len(spread.samples)} samples (expected coverage {100 * spread.expected_coverage:.0f} %)")
        + f" {spread.lower_n / 1000:.2f}-{spread.upper_n / 1000:.2f} kN"
        + ("" if spread.robust else ", risk category not robust") + f"; most from {spread.dominant}]")
    return (f"{case.name}: {synthesis_of(results).headline}; failure load "
            f"{results['failure_load_n'] / 1000:.2f} kN ({results['failure_load_bw']:.1f} x BW){interval}, "
            f"{results['risk_category']} risk by failure load; "
            f"fall strength {results['fall']['fall_strength_n'] / 1000:.2f} kN "
            f"(factor of risk {results['fall']['factor_of_risk']:.2f}); "
            f"report: {case.output / 'report.html'}")

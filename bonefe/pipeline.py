"""`bonefe run`: read → anatomy → mesh → material → solve and assess → report, for one case of any
bone site (`bonefe.sites.base`: the case's `site:` supplies frame, patches, loads, scores, report).

Every rank runs every stage on its part of the mesh; rank 0 alone writes the report. Outputs go
into `<output>.partial/` and replace `<output>/` in one rename when the case succeeds, so a failed
run never destroys earlier results. Folder contents:

  mesh.xdmf/.h5          mesh with cell tags (bone/lesion) and the site's facet tags (femur:
                         support/head/trochanter; none for the vertebra's endplate layers)
  mesh-quality.json      element counts, SICN statistics, volume versus segmentation
  fields.xdmf/.h5        when the case asks (`exports: [fields]`; 65–110 MB for the 3 mm demo): per
                         activity at its peak load, displacement, strain tensor and principal strains
                         per cell; per-cell E, density, label and the evaluated-for-failure flag
  strain-energy.json     with the fields: strain energy of the bone per activity (N mm)
  failure-points.vtp     the lattice points where failure is read, with the nonlocal strain and
                         failure index under the reference load's peak (the failure site has the largest)
  model.inp, model.vtu   the model for CalculiX/Abaqus and ParaView, when the case asks (`exports`;
                         the site says which it supports)
  report.json/.html/...  the site's report (femur: `bonefe.report`; vertebra: `bonefe.report.spine`),
                         with the failure load's interval when the case (section `uncertainty`) or
                         `bonefe run --uncertainty` asks for it (`bonefe.uncertainty`)
  run-info.json          when the report was made and the wall time per stage, kept out of
                         report.json so that the same case gives a byte-identical report.json

The report needs none of the exports (its pictures come from the mesh and the reference strain in
memory); the failure points and the exports are written, and timed, in the stage "write outputs".
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
from mpi4py import MPI

from bonefe import __version__
from bonefe.assessment import assess
from bonefe.calibration import calibration_errors, calibration_record, raw_labels_on_ct, resolve_calibration
from bonefe.case import Case, load_case
from bonefe.errors import BonefeError
from bonefe.export import export_mesh, gather_cells, gather_mesh
from bonefe.fields import FAILURE_POINTS, write_activity_fields, write_failure_points
from bonefe.imaging import read_volume
from bonefe.meshing import cell_tags, write_mesh, write_quality
from bonefe.outputs import staged_folder
from bonefe.plausibility import check_volume
from bonefe.progress import Progress
from bonefe.provenance import file_hash
from bonefe.risk import risk_category
from bonefe.schema import as_plain
from bonefe.sites import site_of
from bonefe.suitability import check_scan, verdict_summary
from bonefe.uncertainty import Study, UncertaintyOptions, propagate
from bonefe.volume import LESION_LABELS
from bonefe.whatif import Scenario, what_if
from bonefe.window import exercise_window

STAGES = ["read images", "anatomy", "mesh", "material", "solve and assess", "write outputs", "uncertainty",
          "report"]
GENERIC_EXPORTS = ("fields",)
"""Exports every site writes (`Case.exports`); the site lists its own (`Site.exports`)."""


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
    if uncertainty is not False:
        case = replace(case, uncertainty=_uncertainty_options(case.uncertainty, uncertainty))
    site = site_of(case.site)
    available = GENERIC_EXPORTS + tuple(site.exports)
    unsupported = [f for f in case.exports if f not in available]
    if unsupported:
        raise BonefeError(f"exports: '{unsupported[0]}' is not available for the {site.name}: choose from "
                          f"{', '.join(available)}")
    stages = [s for s in STAGES if s != "uncertainty" or case.uncertainty is not None]
    progress = Progress(stages, comm.rank, quiet)
    with staged_folder(case.output, comm) as out:
        results = _run(case, site, out, progress, comm)
    if comm.rank == 0:
        print(site.summary(case, results))
    return results


def _run(case: Case, site, out: Path, progress: Progress, comm) -> dict:
    with progress.stage("read images"):
        volume = read_volume(case.ct, case.labels, case.label_values.as_dict(), case.resample_labels,
                             case.ct_series, case.label_values.other_values() + case.calibration.label_values())
        volume = check_volume(volume, case.checks, case.label_values.lesion_named, case.ct.name, comm.rank == 0)
        suitability = check_scan(volume, case.ct, site.suitability(case.suitability))
        needs_raw = case.calibration.rods or case.calibration.internal
        raw_labels = raw_labels_on_ct(case.ct, case.labels, case.ct_series) if needs_raw else None
        calibration = resolve_calibration(case.calibration, volume.hu, volume.affine, raw_labels, volume.labels > 0,
                                          case.checks.calibration_fit)
        material_options = case.material if calibration is None else replace(
            case.material, slope=calibration.slope, intercept=calibration.intercept)
    with progress.stage("anatomy"):
        anatomy = site.anatomy(case, volume, raw_labels)
        volume, setup = anatomy.volume, site.setup(case, anatomy.frame)
    with progress.stage("mesh"):
        bone, facet_tags = setup.mesh(volume, case.mesh, comm)
        mesh = bone.mesh
    with progress.stage("material"):
        scenario = Scenario(mesh, facet_tags, volume, material_options, setup, case.risk, case.solver.degree)
        material, twin_volume = scenario.materials.material, scenario.twin
        twin_E = scenario.materials(twin_volume, material_options).E if twin_volume is not volume else None
        write_mesh(out / "mesh.xdmf", mesh, cell_tags(mesh, material.label), facet_tags)
        if comm.rank == 0:
            write_quality(out / "mesh-quality.json", bone.quality)
    with progress.stage("solve and assess"):
        loads = setup.loads(case.activities, case.custom_activities)
        lesion = scenario.materials.lesion_map(volume)
        result = assess(setup, mesh, facet_tags, material.E, material.label, case.material.poisson, loads,
                        case.risk, case.solver.degree, twin_E, lesion)
        extras = site.assess_more(setup, result.model, loads, result.activities)
        extras.update(site.analyses(case, setup, mesh, facet_tags, material, lesion))
        extras.update(site.scores_of(case, anatomy, twin_volume))
        window = exercise_window(result.model, material.E, material.label, loads, result.activities,
                                 case.patient.body_mass_kg, case.material.poisson)
        scenarios = what_if(scenario, result.stance.failure_load_n,
                            result.twin and result.twin.twin_stance.failure_load_n)
    with progress.stage("write outputs"):
        write_failure_points(out / FAILURE_POINTS, result.stance_points, comm)
        if "fields" in case.exports:
            cells = {"E": material.E, "density": material.rho_app, "label": material.label,
                     "evaluated": result.evaluated.astype(float)}
            write_activity_fields(out / "fields.xdmf", mesh, result.basis, {load.name: load.peak for load in loads},
                                  cells)
        if "inp" in case.exports:
            site.export_inp(out / "model.inp", result.basis, facet_tags, material.E, case.material.poisson, setup)
        if "vtu" in case.exports:
            export_mesh(out / "model.vtu", mesh, {"E": material.E})
    spread = None
    if case.uncertainty is not None:
        with progress.stage("uncertainty"):
            study = Study(volume, setup, material_options, case.mesh, case.risk, case.solver.degree)
            errors = calibration_errors(case.calibration, volume.hu, volume.affine, raw_labels, volume.labels > 0)
            spread = propagate(study, case.uncertainty, errors, result.stance.failure_load_n, comm)
    with progress.stage("report"):
        picture = _picture_mesh(mesh, result.stance_strain, material.label, setup.reference().label)
        results = _results(case, setup, bone.quality, result, progress.timings, material_options, scenarios)
        results.update(extras)
        results.update(site.results(case, anatomy, result, setup))
        results["uncertainty"] = spread
        results["exercise_window"] = window
        record, sentence = calibration_record(calibration, material_options.slope, material_options.intercept)
        results["provenance"]["density_calibration"].update(record)
        results["provenance"]["scan_suitability"] = verdict_summary(suitability)
        results["assumptions"] = _assumptions(case, site.assumptions(case)) + [sentence]
        if comm.rank == 0:
            site.write_report(out, results, picture)
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


def _picture_mesh(mesh, strain, labels, reference: str) -> dict | None:
    """The mesh and its cell fields gathered on rank 0 for the pictures (None elsewhere)."""
    points, tets = gather_mesh(mesh)
    strain, label = gather_cells(mesh, strain), gather_cells(mesh, labels)
    if mesh.comm.rank != 0:
        return None
    return {"points": points, "tets": tets,
            "cell_data": {"max_principal_strain": strain, "lesion": np.isin(label, LESION_LABELS).astype(float)},
            "strain_description": f"the peak load of {reference.lower()}"}


def _results(case: Case, setup, quality: dict, result, timings: dict, material, scenarios: dict) -> dict:
    """The results every site reports: numbers, the rules applied and provenance (no identifiers).

    scenarios: the what-if series by kind (`bonefe.whatif.what_if`), {} when none were asked for."""
    bw = case.body_weight
    stance = result.stance
    thresholds = setup.thresholds(case.risk)
    calibration_file = case.risk.calibration_file
    parameters = as_plain(replace(  # file names only: folder names may identify a patient
        case, ct=Path(case.ct.name), labels=Path(case.labels.name), output=Path(case.output.name),
        risk=replace(case.risk, calibration_file=calibration_file and Path(calibration_file.name))))
    return {
        "case_name": case.name,
        "body_mass_kg": case.patient.body_mass_kg,
        "failure_load_n": stance.failure_load_n,
        "failure_load_bw": stance.failure_load_n / bw,
        "failure_location_mm": stance.location_mm,
        "failure_mode": stance.mode,
        "risk_category": risk_category(stance.failure_load_n / bw, thresholds),
        "averaging_radius_mm": case.risk.averaging_radius_mm,
        "strain_criterion": case.risk.criterion,
        "risk_thresholds": thresholds,
        "verdict_policy": case.risk.verdict,
        "activities": result.activities,
        "strain_fold_ratio": result.twin.strain_fold_ratio if result.twin else None,
        "twin_failure_load_n": result.twin.twin_stance.failure_load_n if result.twin else None,
        "whatif_growth": scenarios.get("growth"),
        "whatif_remineralisation": scenarios.get("remineralisation"),
        "mesh": {"cells": quality["tets"], "nodes": quality["nodes"], "dofs": result.dofs},
        "material_law": case.material.law,
        "timings_s": dict(timings),
        "provenance": {
            "bonefe": __version__,
            "inputs": {case.ct.name: file_hash(case.ct), case.labels.name: file_hash(case.labels)},
            "parameters": parameters,
            "density_calibration": {"slope_g_cm3_per_hu": material.slope, "intercept_g_cm3": material.intercept},
            "mpi_ranks": MPI.COMM_WORLD.size,
            "solver_iterations": result.iterations,
        },
    }


def _assumptions(case: Case, site_assumptions: list[str] = ()) -> list[str]:
    """The checks turned off, the failure criterion, then the site's sentences (loading, evaluation, mesh)."""
    return case.checks.overrides() + [
        "Linear elastic, isotropic material mapped from CT; failure is the onset of local failure "
        "by the maximum principal strain criterion (Schileo et al. 2008) on the strain averaged over "
        f"{case.risk.averaging_radius_mm:g} mm spheres of bone.",
        *site_assumptions,
    ]

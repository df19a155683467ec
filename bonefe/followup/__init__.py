"""`bonefe followup`: scans of one bone over time — registration, lesion change, mechanical change, course.

For scans S₀ (baseline), S₁, … given as case files with `days_since_baseline` (days from the
baseline scan; 0 or absent for it — never DICOM dates, which stay private):

1. each later CT is registered to the baseline (`bonefe.registration`; rigid, or affine) and
   resampled into the baseline grid;
2. each scan runs as `bonefe run` does, on its own mesh (own-mesh route, `scans/NN-name/`);
3. lesions per scan, matched, with healing fraction h and lytic → blastic conversion
   (`bonefe.followup.lesion_change`);
4. the baseline's mesh, refined around every scan's lesion, carries every scan's material (its CT
   and labels in the baseline frame, its own density calibration, its lesion modulus factors moved
   towards bone by its healing fraction as `bonefe.whatif` re-mineralises, f(h) = (1 − h)·f + h,
   once h exceeds the detection limit): failure load, strain fold ratio and activity verdicts per
   scan (one-mesh route), so that the change is not mesh noise and the projection (step 5) starts
   where the scans are. Both routes give each scan's failure load with the lesion as labelled
   (`bonefe run` knows no healing); they agree within ROUTE_TOLERANCE (reported per scan);
5. the course and its projection (`bonefe.followup.course`), from what-if series
   (`bonefe.whatif`) of the last scan's state on the baseline mesh;
6. followup.json, followup.html with the timeline plot (`bonefe.followup.report`).
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
from mpi4py import MPI

from bonefe.assessment import assess
from bonefe.case import load_case
from bonefe.errors import BonefeError
from bonefe.followup import course as courses
from bonefe.followup.lesion_change import healing_fraction, lesions, match
from bonefe.followup.report import write_followup
from bonefe.imaging import read_volume
from bonefe.materials import cell_material, healthy_volume, lesion_map
from bonefe.outputs import staged_folder
from bonefe.pipeline import run_case
from bonefe.registration import register, resample_to_baseline
from bonefe.risk import body_weight_n, risk_category
from bonefe.sites import site_of
from bonefe.volume import BACKGROUND, LESION_LABELS
from bonefe.whatif import Scenario, healed_material, lesion_growth, remineralisation

ROUTE_TOLERANCE = 0.25
"""Largest relative difference accepted between a scan's failure load on its own mesh and on the
baseline's mesh; a larger one is flagged per scan (`routes_agree`) and in the report. Measured
(docs/followup.md): the femur demo series (20 mm lytic calcar lesion breaching the cortex, grown to
26 mm, then half healed) at a 4 mm mesh 10, 6 and 24 %; the vertebra demo series (12 mm central
lesion, grown to 16 mm, healed) at 3 mm up to 9 %; a real T8 up to 13 %. The difference is mesh
noise around the lesion (the two meshes are refined around different lesion regions), which is why
the change is read on one mesh: there a registered, resampled scan gives its unmoved phantom's
failure load within 2 % (tests/test_followup_fe.py)."""
GROWTH_STEPS_MM = [1.0, 2.0, 4.0, 6.0, 8.0]
"""What-if growth of the last scan's lesion for the projection (mm)."""
HEALING_STEPS = [0.25, 0.5, 0.75, 1.0]
"""What-if re-mineralisation fractions of the last scan's lesion for the projection."""
HORIZON_MONTHS = 12.0
"""Default projection horizon (months)."""


def _checked_cases(paths: list[Path]):
    if len(paths) < 2:
        raise BonefeError("followup needs at least two case files: the baseline scan first, then the later ones")
    cases = [load_case(p) for p in paths]
    days = [c.days_since_baseline or 0.0 for c in cases]
    if days[0] != 0:
        raise BonefeError(f"{Path(paths[0]).name}: the baseline scan (first case) must have days_since_baseline 0 "
                          f"or none (got {days[0]:g})")
    for path, before, after in zip(paths[1:], days, days[1:]):
        if not after > before:
            raise BonefeError(f"{Path(path).name}: days_since_baseline must be larger than the scan before's "
                              f"({after:g} ≤ {before:g}); give the scans in time order with their intervals in days")
    bones = [site_of(c.site).bone(c) for c in cases]
    for path, bone in zip(paths[1:], bones[1:]):
        if bone != bones[0]:
            raise BonefeError(f"{Path(path).name}: the {bone} but the baseline is the {bones[0]}; "
                              "a follow-up compares scans of one bone")
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise BonefeError("followup: every scan's case needs its own name (they name the scan folders)")
    return cases, days


def _anatomy(path, case):
    """The scan's read stage as `bonefe run` has it (`Site.anatomy`: the site's frame, crop, inserted
    lesion); its errors name the case file."""
    try:
        volume = read_volume(case.ct, case.labels, case.label_values.as_dict(), case.resample_labels, case.ct_series)
        return site_of(case.site).anatomy(case, volume, None)
    except BonefeError as error:
        raise BonefeError(f"{Path(path).name}: {error}") from None


def _registrations(volumes, kind: str, comm):
    """Registrations of every later volume to the first, computed on rank 0 and shared."""
    outcome = None
    if comm.rank == 0:
        try:
            outcome = [register(volumes[0], v, kind) for v in volumes[1:]]
        except BonefeError as error:
            outcome = str(error)
    outcome = comm.bcast(outcome, root=0)
    if isinstance(outcome, str):
        raise BonefeError(outcome)
    return outcome


def _meshing_volume(on_baseline):
    """The baseline volume with every scan's lesion voxels marked, so the mesh is refined around the
    lesion of every scan (the mesh's lesion refinement, `bonefe.meshing`), not the baseline's alone."""
    base = on_baseline[0]
    labels = base.labels.copy()
    for volume in on_baseline[1:]:
        grown = np.isin(volume.labels, LESION_LABELS) & (base.labels != BACKGROUND) & ~np.isin(labels, LESION_LABELS)
        labels[grown] = volume.labels[grown]
    return replace(base, labels=labels)


def baseline_mesh(case, frame, on_baseline, comm=MPI.COMM_WORLD):
    """The baseline's mesh refined around every volume's lesion (step 3): (mesh, facet tags, setup),
    setup: the case's site bound to the baseline's frame (`bonefe.sites.base.Setup`)."""
    setup = site_of(case.site).setup(case, frame)
    bone, tags = setup.mesh(_meshing_volume(on_baseline), case.mesh, comm)
    return bone.mesh, tags, setup


def assess_on_mesh(case, mesh, tags, setup, volumes, materials) -> list:
    """Each volume (on the baseline grid) with its material options on one mesh: the assessments
    (`bonefe.assessment.assess`, the case's activities)."""
    loads = setup.loads(case.activities, case.custom_activities)
    results = []
    for volume, material in zip(volumes, materials):
        cells = cell_material(mesh, volume, material)
        twin = healthy_volume(volume)
        twin_E = cell_material(mesh, twin, material).E if twin is not volume else None
        results.append(assess(setup, mesh, tags, cells.E, cells.label, material.poisson, loads, case.risk,
                              case.solver.degree, twin_E, lesion_map(volume)))
    return results


def _scan_row(case, thresholds, days, own: dict, one, as_labelled: float, material) -> dict:
    """One scan's row; as_labelled: its baseline-mesh failure load with the lesion factors unhealed (N),
    the one compared with its own mesh's (`bonefe run` does not know the healing)."""
    bw = body_weight_n(case.patient.body_mass_kg)
    f_one = one.stance.failure_load_n
    difference = abs(own["failure_load_n"] - as_labelled) / as_labelled
    return {
        "case_name": case.name, "days_since_baseline": days,
        "own_mesh": {"failure_load_n": own["failure_load_n"], "failure_load_bw": own["failure_load_bw"],
                     "strain_fold_ratio": own["strain_fold_ratio"], "risk_category": own["risk_category"],
                     "cells": own["mesh"]["cells"]},
        "one_mesh": {"failure_load_n": f_one, "failure_load_bw": f_one / bw, "failure_load_as_labelled_n": as_labelled,
                     "strain_fold_ratio": one.twin.strain_fold_ratio if one.twin else None,
                     "risk_category": risk_category(f_one / bw, thresholds),
                     "verdicts": {a.name: a.verdict for a in one.activities}},
        "route_difference": difference,
        "routes_agree": difference <= ROUTE_TOLERANCE,
        "density_calibration": {"slope_g_cm3_per_hu": material.slope, "intercept_g_cm3": material.intercept},
        "lesion_modulus_factors": {"lytic": material.lytic_factor, "blastic": material.blastic_factor},
    }


def _course(cases, days, volumes, on_baseline, own_lesions, healing, hu_gap, one, mesh, tags, setup,
            materials, horizon_days) -> dict:
    """Kind, rates and projection of the failure load (bonefe.followup.course)."""
    base = cases[0]
    voxel = float(np.mean(volumes[0].spacing))
    totals = [sum(lesion.volume_mm3 for lesion in found) for found in own_lesions]
    kinds = [_interval_kind(totals, healing, voxel, i) for i in range(1, len(totals))]
    kind = kinds[-1]
    run_from = len(kinds) - next((n for n, k in enumerate(reversed(kinds)) if k != kind), len(kinds))
    scenario = Scenario(mesh, tags, on_baseline[-1], materials[-1], setup, base.risk, base.solver.degree)
    last_n = one[-1].stance.failure_load_n
    result = {"kind": kind, "scans_fitted": len(days) - run_from, "lesion_volumes_mm3": totals,
              "healing_fractions": healing}
    if kind == "healing":
        rate = courses.healing_rate(days[run_from:], healing[run_from:], hu_gap)
        h = healing[-1]
        # healed (as dense as healthy bone or denser, e.g. a sclerotic response): nothing left to project
        series = remineralisation(scenario, HEALING_STEPS, last_n) if h < 1.0 else None
        states = [h + step.value * (1.0 - h) for step in series.steps] if series else [1.0, 2.0]
        state_now = min(h, 1.0)
        result["healing_rate_per_month"] = _per_month(rate)
        result["full_remineralisation_days"] = max(1.0 - h, 0.0) / rate.value if rate.value > 0 else None
        result["literature_rate_used"] = rate.points == 2
    elif kind == "growth":
        rate = courses.growth_rate(days[run_from:], totals[run_from:], voxel)
        series = lesion_growth(scenario, GROWTH_STEPS_MM, last_n)
        states = [step.lesion_volume_mm3 for step in series.steps]
        state_now = states[0]
        result["growth_rate_per_day"] = vars(rate)
        result["doubling_time_days"] = courses.doubling_time_days(rate.value)
        result["doubling_time_interval_days"] = sorted(
            d if d is not None else float("inf") for d in map(courses.doubling_time_days, (rate.low, rate.high)))
    else:
        rate, states, state_now = courses.Rate(0.0, 0.0, 0.0), [0.0, 1.0], 0.0
        series = None
    loads = [s.failure_load_n for s in series.steps] if series else [last_n, last_n]
    projection = courses.project(state_now, rate, horizon_days, states, loads, kind)
    threshold = setup.thresholds(base.risk).high_below_bw * body_weight_n(base.patient.body_mass_kg)
    crossing = [courses.first_day_below(projection.days, curve, threshold)
                for curve in (projection.failure_load_n, projection.low_n)]
    months = horizon_days / courses.DAYS_PER_MONTH
    result.update({
        "fit_r2": rate.r2, "projection": vars(projection), "high_risk_threshold_n": threshold,
        "days_to_high_risk": crossing[0], "days_to_high_risk_earliest": crossing[1],
        "horizon_days": horizon_days,
        "time_to_high_risk": (f"not within {months:g} months" if crossing[1] is None
                              else "already high risk" if crossing[0] == 0.0
                              else f"{crossing[0] / courses.DAYS_PER_MONTH:.1f} months after the last scan"
                              if crossing[0] is not None else
                              f"not at the nominal rate within {months:g} months; "
                              f"from {crossing[1] / courses.DAYS_PER_MONTH:.1f} months at the fast end"),
    })
    return result


def _per_month(rate) -> dict:
    return {k: (v * courses.DAYS_PER_MONTH if isinstance(v, float) and k in ("value", "low", "high") else v)
            for k, v in vars(rate).items()}


def _interval_kind(totals, healing, voxel: float, i: int) -> str:
    """The course between scans i − 1 and i; the course reported is the last interval's, fitted on
    the trailing run of intervals of the same kind (e.g. growth, then healing under treatment)."""
    return courses.course_kind(totals[i - 1:i + 1], [0.0, healing[i] - healing[i - 1]], voxel)


def run_followup(case_paths: list[Path], output: Path | None = None, mesh_size: float | None = None,
                 registration: str = "rigid", horizon_months: float = HORIZON_MONTHS, quiet: bool = False,
                 comm=MPI.COMM_WORLD) -> dict:
    """Run a follow-up (module docstring); returns the followup.json dict on every rank."""
    cases, days = _checked_cases([Path(p) for p in case_paths])
    if mesh_size is not None:
        cases = [replace(c, mesh=replace(c.mesh, size_mm=mesh_size)) for c in cases]
    output = Path(output).resolve() if output else cases[0].output.with_name(cases[0].output.name + "-followup")
    anatomies = [_anatomy(path, case) for path, case in zip(case_paths, cases)]
    volumes = [a.volume for a in anatomies]
    regs = _registrations(volumes, registration, comm)
    on_baseline = [volumes[0]] + [resample_to_baseline(v, volumes[0], r) for v, r in zip(volumes[1:], regs)]
    with staged_folder(output, comm) as out:
        own = [run_case(path, output=out / "scans" / f"{i:02d}-{c.name}", mesh_size=mesh_size, quiet=quiet,
                        comm=comm) for i, (path, c) in enumerate(zip(case_paths, cases))]
        materials = [replace(c.material, **{k.removesuffix("_g_cm3_per_hu").removesuffix("_g_cm3"): v
                                            for k, v in r["provenance"]["density_calibration"].items()
                                            if k in ("slope_g_cm3_per_hu", "intercept_g_cm3")})
                     for c, r in zip(cases, own)]
        mesh, tags, setup = baseline_mesh(cases[0], anatomies[0].frame, on_baseline, comm)
        found = [lesions(v, m.slope, m.intercept) for v, m in zip(volumes, materials)]
        baseline_lesion = np.isin(volumes[0].labels, LESION_LABELS)
        twin = healthy_volume(volumes[0])
        healing = [0.0] + [healing_fraction(volumes[0], twin, v, baseline_lesion) if baseline_lesion.any() else 0.0
                           for v in on_baseline[1:]]
        hu_gap = float((twin.hu[baseline_lesion] - volumes[0].hu[baseline_lesion]).mean()) if baseline_lesion.any() else 0.0
        healed = [healed_material(m, min(h, 1.0)) if h > courses.HEALING_DETECTION else m
                  for m, h in zip(materials, healing)]
        one = assess_on_mesh(cases[0], mesh, tags, setup, on_baseline, healed)
        as_labelled = [a.stance.failure_load_n if h is m else
                       assess_on_mesh(cases[0], mesh, tags, setup, [v], [m])[0].stance.failure_load_n
                       for a, v, h, m in zip(one, on_baseline, healed, materials)]
        results = {
            "baseline": cases[0].name,
            "bone": site_of(cases[0].site).bone(cases[0]),
            "reference_load": setup.reference().label,
            "registrations": [r.as_dict() for r in regs],
            "scans": [_scan_row(c, setup.thresholds(c.risk), *row)
                      for c, *row in zip(cases, days, own, one, as_labelled, healed)],
            "route_tolerance": ROUTE_TOLERANCE,
            "lesions": _lesion_table(found, regs, healing),
            "course": _course(cases, days, volumes, on_baseline, found, healing, hu_gap, one, mesh, tags, setup,
                              healed, horizon_months * courses.DAYS_PER_MONTH),
        }
        if comm.rank == 0:
            write_followup(out, results)
    if comm.rank == 0:
        c = results["course"]
        print(f"followup {cases[0].name}: {len(cases)} scans, course {c['kind']}, "
              f"failure load {results['scans'][0]['one_mesh']['failure_load_n']:.0f} → "
              f"{results['scans'][-1]['one_mesh']['failure_load_n']:.0f} N (baseline mesh); "
              f"high risk: {c['time_to_high_risk']}; {output}")
    return results


def _lesion_table(found, regs, healing) -> list[dict]:
    """Per scan: its lesions with the baseline lesion each matches (index or None) and the conversion."""
    rows = [{"scan": 0, "lesions": [dict(l.as_dict(), baseline_match=i) for i, l in enumerate(found[0])]}]
    for scan, (later, reg) in enumerate(zip(found[1:], regs), start=1):
        pairs = match(found[0], later, reg.to_baseline)
        items = []
        for j, lesion in enumerate(later):
            i = pairs.get(j)
            converted = i is not None and found[0][i].type == "lytic" and lesion.type == "blastic"
            items.append(dict(lesion.as_dict(), baseline_match=i, lytic_to_blastic=converted,
                              volume_change_mm3=lesion.volume_mm3 - found[0][i].volume_mm3 if i is not None else None))
        rows.append({"scan": scan, "healing_fraction": healing[scan], "lesions": items,
                     "new_lesions": sum(1 for j in range(len(later)) if j not in pairs),
                     "baseline_lesions_gone": sum(1 for i in range(len(found[0])) if i not in pairs.values())})
    return rows

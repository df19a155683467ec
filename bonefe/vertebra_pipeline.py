"""`bonefe run` for a vertebra (`site: vertebra`): read → vertebra frame → mesh → material →
solve and assess → report. Same conventions as the femur pipeline (`bonefe.pipeline`): every rank
runs every stage on its part of the mesh, rank 0 writes, outputs are staged and renamed at the end.

Folder contents: mesh.xdmf/.h5 (cell tags bone/lesion), mesh-quality.json, report.json,
report.html and strain.png (`bonefe.report.spine`).
"""

from dataclasses import dataclass, replace

import numpy as np
from mpi4py import MPI

from bonefe import __version__
from bonefe.calibration import calibration_record, raw_labels_on_ct, resolve_calibration
from bonefe.case import Case
from bonefe.errors import BonefeError
from bonefe.export import gather_cells, gather_mesh
from bonefe.imaging import read_volume
from bonefe.materials import cell_material, healthy_volume, lesion_map
from bonefe.meshing import bounding_box, cell_tags, mesh_bone, write_mesh, write_quality
from bonefe.outputs import staged_folder
from bonefe.plausibility import check_volume
from bonefe.progress import Progress
from bonefe.provenance import file_hash
from bonefe.report.spine import write_spine_report
from bonefe.schema import as_plain
from bonefe.sites.vertebra.activities import ACTIVITIES, REFERENCE_ACTIVITY
from bonefe.sites.vertebra.anatomy import VertebraFrame, label_centroid, vertebra_frame
from bonefe.sites.vertebra.assessment import assess_vertebra
from bonefe.sites.vertebra.lesions import insert_lesion
from bonefe.sites.vertebra.levels import neighbours, totalsegmentator_value
from bonefe.sites.vertebra.loading import LAYERS
from bonefe.sites.vertebra.sins import sins_score
from bonefe.suitability import check_scan, verdict_summary
from bonefe.volume import LESION_LABELS, Volume

STAGES = ["read images", "vertebra frame", "mesh", "material", "solve and assess", "report"]
CROP_MARGIN_VOXELS = 4
VERTEBRA_MIN_LENGTH_MM = 10.0
"""The scan's field-of-view check (`bonefe.suitability`) asks the femur for 120 mm of bone; a
vertebra needs only itself: 10 mm is below the smallest (cervical) body height, so it never binds."""


def _check_whole(volume: Volume, allow_cut: bool) -> None:
    """Refuse a vertebra touching any face of the image (the femur check lets the inferior face pass)."""
    bone = volume.labels > 0
    cut = any(np.take(bone, end, axis=axis).any() for axis in range(3) for end in (0, -1))
    if cut and not allow_cut:
        raise BonefeError("the vertebra touches the edge of the image: it is cut by the scan; use a scan "
                          "that holds the whole vertebra (or set suitability.allow_cut_bone: true)")


def crop(volume: Volume, mask: np.ndarray, margin: int = CROP_MARGIN_VOXELS) -> Volume:
    """The volume cut to the bounding box of `mask` plus `margin` voxels (affine shifted)."""
    lo, hi = bounding_box(mask)
    lo = np.maximum(np.asarray(lo) - margin, 0)
    hi = np.minimum(np.asarray(hi) + margin, np.array(mask.shape))
    window = tuple(slice(a, b) for a, b in zip(lo, hi))
    affine = volume.affine.copy()
    affine[:3, 3] = volume.to_world(lo[None, :])[0]
    return Volume(hu=volume.hu[window].copy(), labels=volume.labels[window].copy(), affine=affine)


def neighbour_values(case: Case) -> tuple[int | None, int | None]:
    """Label values of the (cranial, caudal) neighbours: the case's, or TotalSegmentator's when the
    bone's value is the level's TotalSegmentator value."""
    if case.spine.neighbour_values is not None:
        return tuple(case.spine.neighbour_values)
    bone = case.label_values.bone
    if bone is not None and totalsegmentator_value(case.level) in np.atleast_1d(bone).tolist():
        return tuple(None if n is None else totalsegmentator_value(n) for n in neighbours(case.level))
    return (None, None)


def _neighbour_heights(raw: np.ndarray, affine: np.ndarray, value: int | None):
    """Body heights (anterior, middle, posterior, mm) of a neighbour wholly inside the image, else None."""
    if value is None:
        return None
    mask = raw == value
    if not mask.any():
        return None
    lo, hi = bounding_box(mask)
    if min(lo) == 0 or np.any(np.asarray(hi) >= np.array(mask.shape)):
        return None  # cut by the image edge: its height would be wrong
    labels = mask.astype(np.uint8)
    return vertebra_frame(crop(Volume(np.zeros(mask.shape, np.float32), labels, affine), mask)).heights_mm


@dataclass
class VertebraInputs:
    """The read stage's output: the cropped vertebra (lesion inserted when the case asks), its frame,
    the neighbours' mean body heights (None without a whole neighbour), the inserted lesion's centre
    (or None), the density calibration and the scan-suitability verdicts."""

    volume: Volume
    frame: VertebraFrame
    reference_heights: tuple | None
    lesion_centre: np.ndarray | None
    calibration: object
    suitability: list


def read_vertebra(case: Case, warn: bool = True) -> VertebraInputs:
    """Read, check and calibrate the CT, find the vertebra's frame and neighbours, crop, insert the lesion."""
    volume = read_volume(case.ct, case.labels, case.label_values.as_dict(), case.resample_labels, case.ct_series)
    volume = check_volume(volume, case.checks, case.label_values.lesion_named, case.ct.name, warn)
    suitability = check_scan(volume, case.ct, replace(case.suitability, min_length_mm=VERTEBRA_MIN_LENGTH_MM))
    _check_whole(volume, case.suitability.allow_cut_bone)
    raw = raw_labels_on_ct(case.ct, case.labels, case.ct_series)
    calibration = resolve_calibration(case.calibration, volume.hu, volume.affine, raw, volume.labels > 0)
    values = neighbour_values(case)
    centroids = tuple(label_centroid(raw, volume.affine, v) for v in values)
    heights = [h for h in (_neighbour_heights(raw, volume.affine, v) for v in values) if h is not None]
    reference = tuple(np.mean(heights, axis=0)) if heights else None
    volume = crop(volume, volume.labels > 0)
    frame = vertebra_frame(volume, centroids, case.spine.landmarks())
    centre = None
    if case.spine.insert_lesion is not None:
        lesion = case.spine.insert_lesion
        volume, centre = insert_lesion(volume, frame, lesion.site, lesion.diameter_mm, lesion.type)
    return VertebraInputs(volume, frame, reference, centre, calibration, suitability)


def run_vertebra_case(case: Case, quiet: bool = False, comm=MPI.COMM_WORLD) -> dict:
    """Run one vertebra case end to end; returns the results dict (on every rank)."""
    progress = Progress(STAGES, comm.rank, quiet)
    with staged_folder(case.output, comm) as out:
        results = _run(case, out, progress, comm)
    if comm.rank == 0:
        print(summary(case, results))
    return results


def _run(case: Case, out, progress: Progress, comm) -> dict:
    with progress.stage("read images"):
        inputs = read_vertebra(case, comm.rank == 0)
        volume, frame, calibration = inputs.volume, inputs.frame, inputs.calibration
        material_options = case.material if calibration is None else replace(
            case.material, slope=calibration.slope, intercept=calibration.intercept)
    with progress.stage("vertebra frame"):
        sins = sins_score(volume, frame, case.level, case.spine.pain, case.spine.alignment, inputs.reference_heights)
    with progress.stage("mesh"):
        m = case.mesh
        bone = mesh_bone(volume, m.size_mm, comm, m.lesion_size_mm, cortex_size_mm=m.cortex_size_mm,
                         thin_cortex_mm=m.thin_cortex_mm, cortex_hu=m.cortex_hu)
        mesh = bone.mesh
    with progress.stage("material"):
        material = cell_material(mesh, volume, material_options)
        twin_volume = healthy_volume(volume)
        twin_E = cell_material(mesh, twin_volume, material_options).E if twin_volume is not volume else None
        write_mesh(out / "mesh.xdmf", mesh, cell_tags(mesh, material.label))
        if comm.rank == 0:
            write_quality(out / "mesh-quality.json", bone.quality)
    with progress.stage("solve and assess"):
        result = assess_vertebra(mesh, material.E, material.label, material_options.poisson, frame,
                                 LAYERS[case.spine.layer], case.level, case.patient.body_mass_kg, case.risk,
                                 case.solver.degree, twin_E, lesion_map(volume))
    with progress.stage("report"):
        points, tets = gather_mesh(mesh)
        strain, label = gather_cells(mesh, result.compression_strain), gather_cells(mesh, material.label)
        results = _results(case, frame, sins, result, bone.quality, inputs.lesion_centre, material_options,
                           progress.timings)
        record, _ = calibration_record(calibration, material_options.slope, material_options.intercept)
        results["provenance"]["density_calibration"].update(record)
        results["provenance"]["scan_suitability"] = verdict_summary(inputs.suitability)
        if comm.rank == 0:
            picture = {"points": points, "tets": tets,
                       "cell_data": {"max_principal_strain": strain * results["failure_load_n"],
                                     "lesion": np.isin(label, LESION_LABELS).astype(float)}}
            write_spine_report(out, results, picture)
    return results


def _results(case: Case, frame, sins, result, quality: dict, lesion_centre, material, timings) -> dict:
    bw = case.body_weight
    compression = result.compression
    return {
        "site": "vertebra",
        "level": case.level,
        "case_name": case.name,
        "body_mass_kg": case.patient.body_mass_kg,
        "endplate_layer": case.spine.layer,
        "failure_load_n": compression.failure_load_n,
        "failure_load_bw": compression.failure_load_n / bw,
        "failure_load_case": "axial compression through the endplates",
        "failure_location_mm": compression.location_mm,
        "failure_mode": compression.mode,
        "failure_region": result.unit_loads[0].region,
        "risk_category": result.risk_category,
        "unit_loads": as_plain(result.unit_loads),
        "activities": as_plain(result.activities),
        "exercises": [a.name for a in ACTIVITIES.values() if a.exercise],
        "reference_activity": REFERENCE_ACTIVITY,
        "envelope": result.envelope,
        "strain_fold_ratio": result.twin.strain_fold_ratio if result.twin else None,
        "twin_failure_load_n": result.twin.twin_stance.failure_load_n if result.twin else None,
        "axial_stiffness_n_per_mm": result.axial_stiffness_n_per_mm,
        "sins": {"components": {k: list(v) for k, v in sins.components.items()}, "total": list(sins.total),
                 "categories": list(sins.categories), "collapse_fraction": sins.collapse_fraction,
                 "body_involvement": sins.body_involvement, "posterolateral_sides": list(sins.posterolateral_sides)},
        "frame": {"origin_mm": frame.origin.tolist(), "cranial": frame.cranial.tolist(),
                  "anterior": frame.anterior.tolist(), "posterior_wall_mm": frame.posterior_wall,
                  "heights_mm": list(frame.heights_mm), "width_mm": frame.width_mm, "depth_mm": frame.depth_mm},
        "inserted_lesion_centre_mm": None if lesion_centre is None else list(map(float, lesion_centre)),
        "mesh": {"cells": quality["tets"], "nodes": quality["nodes"], "dofs": result.dofs},
        "material_law": material.law,
        "timings_s": dict(timings),
        "provenance": {
            "bonefe": __version__,
            "inputs": {case.ct.name: file_hash(case.ct), case.labels.name: file_hash(case.labels)},
            "parameters": as_plain(replace(case, ct=case.ct.name, labels=case.labels.name,
                                           output=case.output.name, risk=replace(case.risk, calibration_file=None))),
            "density_calibration": {"slope_g_cm3_per_hu": material.slope, "intercept_g_cm3": material.intercept},
            "mpi_ranks": MPI.COMM_WORLD.size,
            "solver_iterations": result.iterations,
        },
    }


def summary(case: Case, results: dict) -> str:
    lo, hi = results["sins"]["total"]
    sins = f"SINS {lo}" if lo == hi else f"SINS {lo}-{hi}"
    sfr = results["strain_fold_ratio"]
    return (f"{case.name} ({case.level}): {results['risk_category']} risk; compressive failure load "
            f"{results['failure_load_n'] / 1000:.2f} kN ({results['failure_load_bw']:.1f} x BW) in the "
            f"{results['failure_region']}; {sins} ({' to '.join(dict.fromkeys(results['sins']['categories']))})"
            + ("" if sfr is None else f"; strain fold ratio {sfr:.2f}")
            + f"; report: {case.output / 'report.html'}")

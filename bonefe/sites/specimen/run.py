"""`bonefe run` for a specimen case: read → mesh with the rig's regions → material → the rig's three
plate motions → readouts and failure load → outputs, every rank on its part of the mesh.

Outputs in `<output>/` (replaced whole when the run succeeds, `bonefe.outputs.staged_folder`):
  mesh.xdmf/.h5            the mesh with the rig's facet tags (1 fixed, 2 loaded)
  mesh-quality.json        element counts (and, for a segmented specimen, bonefe's mesh quality)
  fields.xdmf/.h5          under the rig's load: displacement, strain, principal strains; E, image value
  failure-points.vtp       where failure is read, with the nonlocal strain and failure index
  specimen-report.json     reaction force and moment, stiffness, failure load and where it starts
  rig.png                  the specimen in its rig (fixed blue, loaded red, strain under the load)
  model.inp, model.vtu     when the case asks (`exports`): the rig for CalculiX, the mesh for ParaView
"""

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from mpi4py import MPI

from bonefe import __version__
from bonefe.assessment import NonlocalStance, RiskOptions
from bonefe.export import export_mesh
from bonefe.fields import FAILURE_POINTS, write_activity_fields, write_failure_points
from bonefe.materials import CellMaterial, cell_material
from bonefe.meshing import cell_tags, write_mesh, write_quality
from bonefe.outputs import staged_folder
from bonefe.progress import Progress
from bonefe.risk import failure_index
from bonefe.schema import as_plain
from bonefe.solver import principal_strains
from bonefe.sites.specimen.case import SpecimenCase, SpecimenMaterial, load_specimen_case
from bonefe.sites.specimen.pictures import render_rig
from bonefe.sites.specimen.reading import read_specimen
from bonefe.sites.specimen.site import SPECIMEN, SpecimenSetup

STAGES = ["read image", "mesh", "material and rig", "report"]


def specimen_material(mesh, volume, material: SpecimenMaterial) -> CellMaterial:
    """Per local cell E (MPa) and the mean image value ("density": the grey value, or ρ_app of the
    density chain), integrated element by element (`bonefe.materials.cell_material`)."""
    if material.density is not None:
        return cell_material(mesh, volume, material.density)
    law = material.grey_power
    return cell_material(mesh, volume, modulus=lambda grey, labels: (law.modulus(grey), np.asarray(grey, float)))


def risk_options(case: SpecimenCase) -> RiskOptions:
    return RiskOptions(criterion=case.failure.criterion, averaging_radius_mm=case.failure.averaging_radius_mm,
                       exclusion_mm=case.failure.exclusion_mm)


@dataclass
class Solved:
    """One specimen solved in its rig: setup (bound to its plate force), model (`RigModel`),
    material, the failure under the rig's load (`bonefe.risk.FailureResult`), mesh and tags."""

    setup: SpecimenSetup
    model: object
    material: CellMaterial
    stance: object
    mesh: object
    tags: object
    quality: dict


def solve_specimen(case: SpecimenCase, volume, comm=MPI.COMM_WORLD, bone=None) -> Solved:
    """Mesh (unless `bone`, a (BoneMesh, tags) pair, is given), material, rig and failure of one specimen."""
    setup = SPECIMEN.setup(case, None)
    bone_mesh, tags = bone or setup.mesh(volume, case.mesh, comm)
    mesh = bone_mesh.mesh
    material = specimen_material(mesh, volume, case.material)
    model = setup.model(mesh, tags, material.E, material.label, case.material.poisson, risk_options(case),
                        case.mesh.degree)
    setup = setup.with_plate_load(model.loading.plate_load(case.rig))
    stance = model.failure(setup.reference().unit)
    return Solved(setup, model, material, stance, mesh, tags, bone_mesh.quality)


def run_specimen(case_path, output: Path | None = None, mesh_size: float | None = None, quiet: bool = False,
                 comm=MPI.COMM_WORLD) -> dict:
    """Run one specimen case end to end; returns the report's results (every rank)."""
    case = load_specimen_case(case_path)
    if output is not None:
        case = replace(case, output=Path(output).resolve())
    if mesh_size is not None:
        case = replace(case, mesh=replace(case.mesh, size_mm=mesh_size))
    progress = Progress(STAGES, comm.rank, quiet)
    with staged_folder(case.output, comm) as out:
        results = _run(case, out, progress, comm)
    if comm.rank == 0:
        print(SPECIMEN.summary(case, results))
    return results


def _run(case: SpecimenCase, out: Path, progress: Progress, comm) -> dict:
    with progress.stage("read image"):
        volume = read_specimen(case.image, case.specimen)
    with progress.stage("mesh"):
        setup = SPECIMEN.setup(case, None)
        bone = setup.mesh(volume, case.mesh, comm)
    with progress.stage("material and rig"):
        solved = solve_specimen(case, volume, comm, bone)
    model, setup, material = solved.model, solved.setup, solved.material
    with progress.stage("report"):
        write_mesh(out / "mesh.xdmf", solved.mesh, cell_tags(solved.mesh, material.label), solved.tags)
        load = setup.reference()
        principal = model.principal(load.peak)
        write_failure_points(out / FAILURE_POINTS, NonlocalStance(model.lattice.points, model.lattice.keys, principal,
                                                                  failure_index(principal, case.failure.criterion)), comm)
        write_activity_fields(out / "fields.xdmf", solved.mesh, model.basis, {"rig": load.peak},
                              {"E": material.E, "image_value": material.rho_app, "evaluated": model.evaluated.astype(float)})
        if "inp" in case.exports:
            SPECIMEN.export_inp(out / "model.inp", model.basis, solved.tags, material.E, case.material.poisson, setup)
        if "vtu" in case.exports:
            export_mesh(out / "model.vtu", solved.mesh, {"E": material.E})
        results = report(case, solved, comm)
        picture = render_rig(solved.mesh, solved.tags, principal_strains(model.basis.strain(load.peak))[:, 2],
                             None if case.rig.torsion_or_bending else load.peak["force"])
        if comm.rank == 0:
            write_quality(out / "mesh-quality.json", solved.quality)
            SPECIMEN.write_report(out, results, picture)
    return results


def report(case: SpecimenCase, solved: Solved, comm) -> dict:
    """The results of one specimen: rig readouts, failure, mesh, material summary, assumptions, provenance."""
    E = solved.material.E
    cells = comm.allreduce(len(E), op=MPI.SUM)
    results = {"schema": "bonefe-specimen-report/1", "case_name": case.name}
    results.update(SPECIMEN.assess_more(solved.setup, solved.model, [], []))
    results.update(SPECIMEN.results(case, None, solved, solved.setup))
    results.update({
        "mesh": {"cells": cells, "dofs": solved.model.solver.num_dofs(), **solved.quality},
        "modulus_mpa": {"min": comm.allreduce(float(E.min(initial=np.inf)), op=MPI.MIN),
                        "max": comm.allreduce(float(E.max(initial=-np.inf)), op=MPI.MAX)},
        "solver_iterations": [h["iterations"] for h in solved.model.solver.history],
        "assumptions": SPECIMEN.assumptions(case),
        "provenance": {"bonefe": __version__, "mpi_ranks": comm.size,
                       "parameters": as_plain(_file_names(case))},
    })
    return results


def _file_names(case: SpecimenCase) -> SpecimenCase:
    """The case with file and folder names only (no directories in the report)."""
    image = case.image if case.image.path is None else replace(case.image, path=Path(case.image.path.name))
    specimen = case.specimen
    if specimen != "box" and specimen.labels is not None:
        specimen = replace(specimen, labels=Path(specimen.labels.name))
    return replace(case, image=image, specimen=specimen, output=Path(case.output.name))

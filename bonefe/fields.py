"""Per-activity result fields for ParaView: one XDMF file with every activity side by side.

For each activity (a set of world forces on the load patches) the displacement, cell strain
tensor and principal strains are superposed from a :class:`bonefe.solver.UnitLoadBasis` (no new
solve), and written next to the material cell fields (E, density, label) in one XDMF/HDF5 pair.
Field names are ``<activity>_displacement`` (P1 vector, mm), ``<activity>_strain`` (DG0 3×3
tensor, cell average) and ``<activity>_principal_strains`` (DG0 3-vector, ε1 ≥ ε2 ≥ ε3 per cell).
The total strain energy of each activity, W = ½ ∫ σ(u):ε(u) dx (N·mm = mJ) of the superposed
displacement, goes to ``strain-energy.json`` in the same folder.

The failure load is read from the nonlocal strain at lattice points (`bonefe.nonlocal_strain`),
not from these cell fields: `write_failure_points` writes those points with their nonlocal
strain and failure index under the stance load, so the failure site can be seen where it is read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bonefe.errors import BonefeError
from bonefe.outputs import atomic_write_json
from bonefe.solver import (UnitLoadBasis, cell_function, nodal_displacement, principal_strains,
                           write_functions)

ENERGY_FILE = "strain-energy.json"
FAILURE_POINTS = "failure-points.vtp"
_NAME = re.compile(r"[A-Za-z0-9_-]+")


def activity_functions(basis: UnitLoadBasis, name: str, forces: Mapping[str, np.ndarray]):
    """The fields of one activity (forces {patch: world force N}) and its strain energy (N·mm):
    ([displacement, strain tensor, principal strains], W)."""
    mesh = basis.solver.mesh
    u = basis.displacement(forces)
    energy = basis.solver.strain_energy(u)
    strain = basis.strain(forces)
    u.name = f"{name}_displacement"
    functions = [nodal_displacement(u), cell_function(mesh, strain, f"{name}_strain"),
                 cell_function(mesh, principal_strains(strain), f"{name}_principal_strains")]
    return functions, energy


def write_energy_json(path: Path, energies: Mapping[str, float]) -> None:
    """Write {activity: strain energy} (N·mm) as JSON to `path`, atomically (call on one rank)."""
    atomic_write_json(path, {"units": "N mm (= mJ)", "strain_energy": dict(energies)})


def write_activity_fields(path, mesh, basis: UnitLoadBasis,
                          activities: Mapping[str, Mapping[str, np.ndarray]],
                          cell_fields: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Write every activity's displacement, strain tensor and principal strains plus the material
    `cell_fields` (name -> array over local owned cells) to one XDMF/HDF5 pair at `path`, and the
    activities' strain energies to ``strain-energy.json`` beside it; both atomically.

    activities: activity name -> {patch: world force (N)}; names are used in field names, so
    they must be letters, digits, '_' or '-'. Collective over ``mesh.comm``; returns
    {activity: strain energy (N·mm)} on every rank.
    """
    bad = [name for name in activities if not _NAME.fullmatch(name)]
    if bad:
        raise BonefeError(f"activity name {bad[0]!r} cannot name an output field: use only "
                          "letters, digits, '_' and '-'")
    functions, energies = [], {}
    for name, forces in activities.items():
        fields, energies[name] = activity_functions(basis, name, forces)
        functions += fields
    functions += [cell_function(mesh, values, name) for name, values in cell_fields.items()]
    path = Path(path)
    write_functions(path, mesh, functions)
    if mesh.comm.rank == 0:
        write_energy_json(path.parent / ENERGY_FILE, energies)
    mesh.comm.barrier()
    return energies


def write_failure_points(path, stance, comm) -> None:
    """The evaluated lattice points of `stance` (`bonefe.assessment.NonlocalStance`, world mm) as
    VTK PolyData (.vtp, ParaView) with point fields stance_failure_index, and the nonlocal
    stance_max_principal_strain and stance_min_principal_strain. Gathered on rank 0 in lattice-key
    order, so the file is the same on any number of ranks. Collective; rank 0 writes."""
    import pyvista as pv

    parts = comm.gather((stance.keys, stance.points, stance.failure_index, stance.principal), root=0)
    if comm.rank != 0:
        return
    keys, points, index, principal = (np.concatenate([part[i] for part in parts]) for i in range(4))
    order = np.argsort(keys)
    cloud = pv.PolyData(points[order])
    cloud.point_data["stance_failure_index"] = index[order]
    cloud.point_data["stance_max_principal_strain"] = principal[order, 0]
    cloud.point_data["stance_min_principal_strain"] = principal[order, 2]
    cloud.save(str(path))

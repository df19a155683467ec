"""Export of a linear tetrahedral model to the Abaqus/CalculiX input format (.inp), and of the mesh
with cell data through meshio (.vtu, .vtk for ParaView), for cross-checks.

One .inp file holds the nodes, C3D4 elements grouped by material (one *MATERIAL per unique
(E, ν)), *SOLID SECTION cards, node sets for the support (NFIX) and each load patch
(P_<NAME>), the support (*BOUNDARY, all three components of the fixed nodes), nodal forces
(*CLOAD) and one linear *STATIC step with field output (*NODE FILE U, *EL FILE S, E) and text
output that is easy to parse (*NODE PRINT U, *EL PRINT ELSE totals = strain energy). Units are
whatever the caller uses; bonefe uses mm, N, MPa throughout.

CalculiX's C3D4 is the same linear tetrahedron as dolfinx's vector P1, so with nodal forces equal
to dolfinx's assembled load vector (not a lumped guess) both solve the same discrete system.

Material binning (``export_inp``): CT-based models have nearly one E per element, and one
*MATERIAL per element makes huge decks that some readers handle slowly. With ``bins`` = B the
moduli are grouped Bonemat-style into B classes of equal width in log E between the smallest and
largest E, and each element takes the mean E of its class. An element's exported E then lies
within a factor (E_max/E_min)^(1/B) of its own: with the default B = 1000 and E from 10 to
25 000 MPa (bonefe's floor to cortical bone) that is under 0.8 %. ``bins=None`` keeps every
distinct E (exact).

The gather helpers bring a distributed dolfinx P1 model to rank 0 in the mesh's original input
order (independent of the number of ranks).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bonefe.errors import BonefeError
from bonefe.outputs import atomic_path

DEFAULT_E_BINS = 1000
"""Modulus classes of an exported .inp (see the module docstring): under 0.8 % modulus error."""

REAL_FORMAT = "%.12E"
"""Every real number of an .inp: 13 significant digits in at most 19 characters (sign, d.dddddddddddd,
E±dd), inside CalculiX's 20-character fields (CalculiX 2.20 refuses ``4.1803588325228357E-06``, the
22 characters of %.17g: "ERROR reading *NODE"). Relative rounding 5e-13, far below the solver's."""

TINY = 1e-90
"""Reals smaller in magnitude are written as 0 (a three-digit exponent would need a 20th character)."""


def _reals(values) -> np.ndarray:
    """`values` as floats, with magnitudes below TINY set to zero (see REAL_FORMAT)."""
    values = np.asarray(values, dtype=float)
    return np.where(np.abs(values) < TINY, 0.0, values)


def _real(value: float) -> str:
    """One real in REAL_FORMAT."""
    return REAL_FORMAT % _reals(value)


def _oriented(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Tetrahedra reordered so that (x2−x1)×(x3−x1)·(x4−x1) > 0, as C3D4 requires."""
    p = points[tets]
    volume6 = np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]),
                        p[:, 3] - p[:, 0])
    if np.any(volume6 == 0.0):
        raise BonefeError("the mesh has tetrahedra of zero volume: remesh before exporting")
    tets = tets.copy()
    flip = volume6 < 0
    tets[flip, 1], tets[flip, 2] = tets[flip, 2], tets[flip, 1].copy()
    return tets


def _id_lines(ids: np.ndarray, per_line: int = 16) -> str:
    """1-based ids, comma separated, at most `per_line` per line (the format's line limit)."""
    ids = np.asarray(ids) + 1
    rows = [ids[i:i + per_line] for i in range(0, ids.size, per_line)]
    return "".join(", ".join(map(str, row)) + "\n" for row in rows)


def _material_cards(E: np.ndarray, nu: np.ndarray) -> str:
    """*ELSET, *MATERIAL and *SOLID SECTION cards, one material per unique (E, ν)."""
    pairs, group = np.unique(np.column_stack([E, nu]), axis=0, return_inverse=True)
    group = group.ravel()
    order = np.argsort(group, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(group, minlength=len(pairs)))[:-1])
    out = io.StringIO()
    for k, elements in enumerate(members):
        out.write(f"*ELSET, ELSET=EMAT{k + 1}\n" + _id_lines(elements))
    for k, (e_k, nu_k) in enumerate(pairs):
        out.write(f"*MATERIAL, NAME=MAT{k + 1}\n*ELASTIC\n{_real(e_k)}, {_real(nu_k)}\n"
                  f"*SOLID SECTION, ELSET=EMAT{k + 1}, MATERIAL=MAT{k + 1}\n")
    return out.getvalue()


def set_name(name: str) -> str:
    """The .inp node-set name of a load patch: P_ + the name in upper case, other than letters,
    digits and _ replaced by _ (the format's identifier rule)."""
    return "P_" + re.sub(r"[^A-Z0-9_]", "_", name.upper())


def write_inp(path, points, tets, E, nu, fixed_nodes, nodal_forces,
              node_sets: Mapping[str, np.ndarray] | None = None,
              moved: Mapping[str, object] | None = None) -> None:
    """Write a linear static C3D4 model to `path` (.inp), atomically.

    points:       (n, 3) node coordinates.
    tets:         (m, 4) 0-based node indices of the tetrahedra (any orientation).
    E, nu:        Young's modulus per element (m,) and Poisson ratio (scalar or (m,)).
    fixed_nodes:  0-based indices of nodes with all displacement components zero.
    nodal_forces: (n, 3) force on each node; zero rows are omitted.
    node_sets:    optional named node sets (0-based indices), written as *NSET P_<NAME>.
    moved:        optional {node set name: displacement 3-vector, or (k, 3) per node of the set in
                  ascending node order}: those sets' nodes moved (*BOUNDARY with values, a
                  displacement-controlled plate), each set's total reaction force printed
                  (*NODE PRINT RF, TOTALS=ONLY; per node too when moved per node), and NFIX's too.
    """
    points = np.asarray(points, dtype=float)
    tets = _oriented(points, np.asarray(tets, dtype=np.int64))
    E = np.asarray(E, dtype=float)
    nu = np.broadcast_to(np.asarray(nu, dtype=float), E.shape)
    forces = np.asarray(nodal_forces, dtype=float)
    if E.shape != (tets.shape[0],) or forces.shape != points.shape:
        raise BonefeError("write_inp: need one E per element and one force row per node")
    nodes, components = np.nonzero(forces)

    def write(handle):
        handle.write("** bonefe export: linear elastic C3D4 model (units mm, N, MPa)\n*NODE, NSET=NALL\n")
        np.savetxt(handle, np.column_stack([np.arange(1, len(points) + 1), _reals(points)]),
                   fmt=["%d", REAL_FORMAT, REAL_FORMAT, REAL_FORMAT], delimiter=", ")
        handle.write("*ELEMENT, TYPE=C3D4, ELSET=EALL\n")
        np.savetxt(handle, np.column_stack([np.arange(1, len(tets) + 1), tets + 1]),
                   fmt="%d", delimiter=", ")
        handle.write(_material_cards(E, nu))
        handle.write("*NSET, NSET=NFIX\n" + _id_lines(np.unique(fixed_nodes)))
        for name, members in (node_sets or {}).items():
            handle.write(f"*NSET, NSET={set_name(name)}\n" + _id_lines(np.unique(members)))
        handle.write("*BOUNDARY\nNFIX, 1, 3, 0.\n*STEP\n*STATIC\n")
        for name, value in (moved or {}).items():
            value = np.asarray(value, float)
            if value.ndim == 1:
                lines = [f"{set_name(name)}, {c}, {c}, {_real(v)}\n" for c, v in enumerate(value, start=1)]
            else:
                nodes_of_set = np.unique(node_sets[name]) + 1
                lines = [f"{n}, {c}, {c}, {_real(v)}\n" for n, row in zip(nodes_of_set, value)
                         for c, v in enumerate(row, start=1)]
            handle.write("*BOUNDARY\n" + "".join(lines))
        handle.write("*CLOAD\n")
        np.savetxt(handle, np.column_stack([nodes + 1, components + 1, _reals(forces[nodes, components])]),
                   fmt=["%d", "%d", REAL_FORMAT], delimiter=", ")
        if moved:
            handle.write("*NODE PRINT, NSET=NFIX, TOTALS=ONLY\nRF\n")
            for name, value in moved.items():
                totals = "YES" if np.ndim(value) == 2 else "ONLY"  # per node too: a rotating plate's moment
                handle.write(f"*NODE PRINT, NSET={set_name(name)}, TOTALS={totals}\nRF\n")
        handle.write("*NODE FILE\nU\n*EL FILE\nS, E\n*NODE PRINT, NSET=NALL\nU\n"
                     "*EL PRINT, ELSET=EALL, TOTALS=ONLY\nELSE\n*END STEP\n")

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        write(handle)


def _gather_sorted(comm, keys: np.ndarray, values: np.ndarray):
    """Gather (key, value) rows on rank 0 and order them by key; duplicate keys are merged."""
    gathered = comm.gather((keys, values), root=0)
    if comm.rank != 0:
        return None
    all_keys = np.concatenate([k for k, _ in gathered])
    all_values = np.concatenate([v for _, v in gathered])
    unique, first = np.unique(all_keys, return_index=True)
    if unique.size and unique[-1] != unique.size - 1:
        raise BonefeError("gathered indices are not contiguous: is the mesh linear (P1)?")
    return all_values[first]


def gather_mesh(mesh):
    """(points (n, 3), tets (m, 4)) of a linear tetrahedral mesh on rank 0, in the original input
    order of nodes and cells; (None, None) on other ranks."""
    geometry, comm = mesh.geometry, mesh.comm
    n_nodes = geometry.index_map().size_local
    n_cells = mesh.topology.index_map(3).size_local
    original = np.asarray(geometry.input_global_indices, dtype=np.int64)
    points = _gather_sorted(comm, original[:n_nodes], geometry.x[:n_nodes])
    cells = original[geometry.dofmaps[0][:n_cells]]
    tets = _gather_sorted(comm, mesh.topology.original_cell_index[:n_cells].astype(np.int64), cells)
    return points, tets


def gather_cells(mesh, values: np.ndarray):
    """Per-cell `values` (over local owned cells) on rank 0 in original cell order, else None."""
    n_cells = mesh.topology.index_map(3).size_local
    keys = mesh.topology.original_cell_index[:n_cells].astype(np.int64)
    return _gather_sorted(mesh.comm, keys, np.asarray(values)[:n_cells])


def gather_nodal(V, array: np.ndarray):
    """Nodal (n, 3) values of a vector P1 dof array (owned + ghost blocks of V) on rank 0, in the
    mesh's original node order; None on other ranks."""
    mesh = V.mesh
    if V.element.basix_element.degree != 1:
        raise BonefeError("gather_nodal needs a P1 function space")
    node_of_dof = np.empty(V.dofmap.index_map.size_local + V.dofmap.index_map.num_ghosts, np.int64)
    node_of_dof[V.dofmap.list.ravel()] = mesh.geometry.dofmaps[0].ravel()
    owned = np.arange(V.dofmap.index_map.size_local)
    original = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)
    values = np.asarray(array).reshape(-1, 3)[owned]
    return _gather_sorted(mesh.comm, original[node_of_dof[owned]], values)


def gather_facet_nodes(mesh, facets: np.ndarray):
    """Nodes (original input indices, sorted) of the given local facets over all ranks, on rank 0;
    None on other ranks."""
    from dolfinx.mesh import entities_to_geometry

    mesh.topology.create_connectivity(2, 3)
    local = entities_to_geometry(mesh, 2, np.asarray(facets, dtype=np.int32)).ravel()
    original = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)[local]
    gathered = mesh.comm.gather(original, root=0)
    return np.unique(np.concatenate(gathered)) if mesh.comm.rank == 0 else None


def bin_modulus(E: np.ndarray, bins: int | None) -> np.ndarray:
    """Moduli grouped into ``bins`` classes of equal width in log E, each replaced by its class's
    mean (see the module docstring); E unchanged when bins is None."""
    E = np.asarray(E, dtype=float)
    if bins is None:
        return E
    if bins < 1 or np.any(E <= 0):
        raise BonefeError("E binning needs bins >= 1 and positive moduli: give bins=None to export E exactly")
    log_e = np.log(E)
    width = (log_e.max() - log_e.min()) / bins
    if width == 0:
        return E
    group = np.minimum(((log_e - log_e.min()) / width).astype(int), bins - 1)
    return (np.bincount(group, weights=E) / np.maximum(np.bincount(group), 1))[group]


def export_inp(path, mesh, E, nu, fixed_facets, patches: Mapping[str, np.ndarray],
               forces: Mapping[str, object], bins: int | None = DEFAULT_E_BINS, solver=None) -> Path:
    """Write the bone model to a CalculiX/Abaqus .inp (collective; rank 0 writes).

    E: modulus per local owned cell (MPa); nu: Poisson ratio (scalar or per cell);
    fixed_facets: local facets of the support (all displacements 0, node set NFIX);
    patches: {name: local facets} of the load patches (node sets P_<NAME>);
    forces: {patch name: world force (N)}, each spread as a uniform traction over its patch and
    integrated consistently (ElasticitySolver.load_vector) into *CLOAD nodal forces;
    bins: modulus classes (module docstring), None for exact E;
    solver: an existing P1 ElasticitySolver on this mesh to reuse (else one is built).
    Returns the path on every rank.
    """
    from bonefe.solver import ElasticitySolver, patch_traction

    unknown = sorted(set(forces) - set(patches))
    if unknown:
        raise BonefeError(f"export: no load patch named {unknown[0]!r} (patches: {', '.join(patches)})")
    solver = solver or ElasticitySolver(mesh, E, nu, fixed_facets)
    if solver.V.element.basix_element.degree != 1:
        raise BonefeError("export: C3D4 elements need a P1 (degree 1) solver")
    loads = [(patches[name], patch_traction(mesh, patches[name], force)) for name, force in forces.items()]
    nodal = gather_nodal(solver.V, solver.load_vector(loads).array_r)
    points, tets = gather_mesh(mesh)
    E_all = gather_cells(mesh, E)
    nu_all = gather_cells(mesh, np.broadcast_to(np.asarray(nu, float), np.shape(E)))
    fixed = gather_facet_nodes(mesh, fixed_facets)
    sets = {name: gather_facet_nodes(mesh, facets) for name, facets in patches.items()}
    path = Path(path)
    if mesh.comm.rank == 0:
        write_inp(path, points, tets, bin_modulus(E_all, bins), nu_all, fixed, nodal, sets)
    mesh.comm.barrier()
    return path


def export_mesh(path, mesh, cell_data: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write the mesh and per-cell arrays (over local owned cells, e.g. {"E": E}) with meshio, in
    the single-file format its ending names, atomically (collective; rank 0 writes). Verified
    round trips: .vtu and .vtk (ParaView). meshio 5.3's .msh loses cell data on reading back and
    its .xdmf writes a second file under the temporary name, so use write_mesh for XDMF. Returns
    the path on every rank."""
    import meshio

    points, tets = gather_mesh(mesh)
    data = {name: gather_cells(mesh, values) for name, values in (cell_data or {}).items()}
    path = Path(path)
    if mesh.comm.rank == 0:
        with atomic_path(path) as tmp:
            meshio.write(tmp, meshio.Mesh(points, [("tetra", tets)],
                                          cell_data={k: [np.asarray(v)] for k, v in data.items()}))
    mesh.comm.barrier()
    return path

"""Verification of the model export (bonefe.export): .inp for CalculiX/Abaqus, meshio formats.

References: the distributed model itself read back by an independent reader (meshio) for counts,
node sets and per-element E; CalculiX (an independent FE code, C3D4 = dolfinx's vector P1) for
the strain energy of the exported femur under a head load; the bin-width bound of the module
docstring for binned moduli. Runs serially and under ``mpirun -n 2`` (rank 0 writes and reads).
"""

import bonefe  # noqa: F401  (before dolfinx)

import re
import shutil
import subprocess

import numpy as np
import pytest
from mpi4py import MPI

from bonefe.sites.femur.anatomy import HEAD, SUPPORT, boundary_tags
from bonefe.export import DEFAULT_E_BINS, bin_modulus, export_inp, export_mesh, gather_cells
from bonefe.materials import MaterialOptions, cell_material
from bonefe.meshing import mesh_bone
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
from bonefe.solver import ElasticitySolver, patch_traction

COMM = MPI.COMM_WORLD
HEAD_FORCE_N = 2000.0
POISSON = MaterialOptions().poisson


@pytest.fixture(scope="module")
def femur():
    """The phantom femur (2 mm voxels, neck lesion) meshed at 6 mm, with CT moduli, supported
    distally and loaded by 2000 N on the head along −shaft axis; bonefe's strain energy."""
    volume, frame = make_phantom(PhantomSpec(voxel_mm=2.0))
    mesh = mesh_bone(volume, 6.0, COMM).mesh
    E = cell_material(mesh, volume, MaterialOptions()).E
    tags = boundary_tags(mesh, frame)
    support, head = tags.find(SUPPORT), tags.find(HEAD)
    force = -HEAD_FORCE_N * np.asarray(frame.shaft_axis)
    solver = ElasticitySolver(mesh, E, POISSON, support)
    u = solver.solve([(head, patch_traction(mesh, head, force))])
    return {"mesh": mesh, "E": E, "support": support, "patches": {"head": head}, "forces": {"head": force},
            "solver": solver, "energy": solver.strain_energy(u)}


def inp_moduli(path):
    """Per-element E (original element order) from an .inp read by meshio, with the materials'
    *ELASTIC values parsed from the text (meshio keeps element sets, not materials)."""
    import meshio

    model = meshio.read(path, file_format="abaqus")
    elastic = dict(re.findall(r"\*MATERIAL, NAME=MAT(\d+)\n\*ELASTIC\n(\S+),", path.read_text(encoding="utf-8")))
    E = np.full(len(model.cells[0].data), np.nan)
    for name, (cells,) in model.cell_sets.items():
        if name.startswith("EMAT"):
            E[cells] = float(elastic[name[4:]])
    return model, E


def export_folder(tmp_path_factory):
    return COMM.bcast(tmp_path_factory.mktemp("export") if COMM.rank == 0 else None, root=0)


def test_inp_round_trip_through_meshio(femur, tmp_path_factory):
    """meshio reads the binned .inp back: global node and element counts, node sets of the support
    and the head patch, and every element's E within the bin width (E_max/E_min)^(1/1000) of its
    own (module docstring bound)."""
    folder = export_folder(tmp_path_factory)
    path = export_inp(folder / "femur.inp", femur["mesh"], femur["E"], POISSON, femur["support"],
                      femur["patches"], femur["forces"], solver=femur["solver"])
    exact = gather_cells(femur["mesh"], femur["E"])
    mesh = femur["mesh"]
    n_nodes, n_cells = mesh.geometry.index_map().size_global, mesh.topology.index_map(3).size_global
    if COMM.rank != 0:
        return
    model, E = inp_moduli(path)
    assert len(model.points) == n_nodes and len(model.cells[0].data) == n_cells
    assert {"NFIX", "P_HEAD"} <= set(model.point_sets)
    width = (exact.max() / exact.min()) ** (1 / DEFAULT_E_BINS)
    assert not np.isnan(E).any()
    assert np.all(np.abs(np.log(E / exact)) <= np.log(width) + 1e-12)
    assert len(np.unique(E)) <= DEFAULT_E_BINS < len(np.unique(exact))


def test_bins_keep_each_class_sum_and_none_is_exact():
    """Binned moduli: each class's elements keep their sum (class mean), every E within the class
    width; bins=None returns E unchanged (exact reference: the input)."""
    E = np.exp(np.random.default_rng(0).uniform(np.log(10.0), np.log(25000.0), 5000))
    binned = bin_modulus(E, 50)
    width = (E.max() / E.min()) ** (1 / 50)
    assert np.all(np.abs(np.log(binned / E)) <= np.log(width) + 1e-12)
    assert len(np.unique(binned)) == 50
    assert binned.sum() == pytest.approx(E.sum(), rel=1e-12)
    assert np.array_equal(bin_modulus(E, None), E)


@pytest.mark.parametrize("suffix", [".vtu", ".vtk"])
def test_mesh_export_keeps_cells_and_modulus(femur, tmp_path_factory, suffix):
    """export_mesh → meshio.read: same node and tetrahedron counts and the exact E per element."""
    import meshio

    folder = export_folder(tmp_path_factory)
    path = export_mesh(folder / f"femur{suffix}", femur["mesh"], {"E": femur["E"]})
    exact = gather_cells(femur["mesh"], femur["E"])
    n_nodes = femur["mesh"].geometry.index_map().size_global
    if COMM.rank != 0:
        return
    model = meshio.read(path)
    assert len(model.points) == n_nodes and model.cells_dict["tetra"].shape == (len(exact), 4)
    assert np.allclose(model.cell_data_dict["E"]["tetra"], exact, rtol=1e-12)
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def ccx_energy(path):
    """Run CalculiX on an .inp; total internal (strain) energy from its .dat file (N·mm)."""
    run = subprocess.run([shutil.which("ccx"), "-i", path.stem], cwd=path.parent, capture_output=True,
                         encoding="utf-8", timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stdout[-2000:]
    text = path.with_suffix(".dat").read_text(encoding="utf-8")
    return float(re.search(r"total internal energy[^\n]*\n\s*\n\s*(\S+)", text).group(1))


def test_calculix_strain_energy_matches(femur, tmp_path_factory):
    """CalculiX on the exported femur vs bonefe's strain energy: exact moduli solve the same
    discrete system (1e-6: CG tolerance 1e-10 and ccx's 7-digit output); the default 1000 moduli
    classes within 1 % (each E within 0.8 % of its own, so the energy within about that)."""
    if shutil.which("ccx") is None:
        pytest.skip("CalculiX `ccx` not on PATH (apt-get install calculix-ccx)")
    folder = export_folder(tmp_path_factory)
    energies = {}
    for name, bins in (("exact", None), ("binned", DEFAULT_E_BINS)):
        path = export_inp(folder / f"{name}.inp", femur["mesh"], femur["E"], POISSON, femur["support"],
                          femur["patches"], femur["forces"], bins=bins, solver=femur["solver"])
        energies[name] = ccx_energy(path) if COMM.rank == 0 else None
    energies = COMM.bcast(energies, root=0)
    assert energies["exact"] == pytest.approx(femur["energy"], rel=1e-6)
    assert energies["binned"] == pytest.approx(femur["energy"], rel=0.01)


def awkward_box():
    """A 10×12×40 mm box (6×6×24 cells) whose coordinates need every number format: nodes on
    x = 0 moved to the 22-character %.17g value 4.1803588325228357e-06 that CalculiX 2.20 refused
    (issue 15), nodes on y = 0 to −3.7e-9, every node shifted by −12345.678901234 mm in z
    (negative, five integer digits) and the top moved to z ≈ −12305.67890123 mm."""
    import dolfinx

    mesh = dolfinx.mesh.create_box(COMM, [np.array([-5.0, -6.0, 0.0]), np.array([5.0, 6.0, 40.0])],
                                   [6, 6, 24], dolfinx.mesh.CellType.tetrahedron)
    x = mesh.geometry.x
    x[np.isclose(x[:, 0], 0.0), 0] = 4.1803588325228357e-06
    x[np.isclose(x[:, 1], 0.0), 1] = -3.7e-9
    x[:, 2] -= 12345.678901234
    return mesh


def test_inp_numbers_fit_calculix_fields_and_solve_identically(tmp_path_factory):
    """Regression (issue 15): every real of the .inp fits 20 characters, and CalculiX solves the
    export of a mesh with tiny, negative and exponent-sized coordinates. Reference: ccx's
    displacements and strain energy against bonefe's own solve of the same discrete system
    (1e-6: CG tolerance 1e-10, ccx's 7-digit output, the 13 digits written)."""
    import dolfinx

    from bonefe.export import gather_mesh, gather_nodal
    from bonefe.validation.calculix import dat_block, total_energy

    mesh = awkward_box()
    n = mesh.topology.index_map(3).size_local
    mid = dolfinx.mesh.compute_midpoints(mesh, 3, np.arange(n, dtype=np.int32))
    E = 3000.0 + 9000.0 * (mid[:, 2] - mid[:, 2].min()) / 40.0 + 0.123456789012345 * np.arange(n)
    bottom, top = mesh.geometry.x[:, 2].min(), mesh.geometry.x[:, 2].max()
    clamp = dolfinx.mesh.locate_entities_boundary(mesh, 2, lambda x: np.isclose(x[2], bottom))
    load = dolfinx.mesh.locate_entities_boundary(mesh, 2, lambda x: np.isclose(x[2], top))
    solver = ElasticitySolver(mesh, E, 0.3, clamp)
    forces = {"top": [1.0e-7, -60.0, -500.0]}
    u = solver.solve([(load, patch_traction(mesh, load, forces["top"]))])
    energy = solver.strain_energy(u)
    u_all = gather_nodal(solver.V, u.x.array)
    gather_mesh(mesh)  # collective: keeps ranks in step with export_inp's gathers
    folder = export_folder(tmp_path_factory)
    path = export_inp(folder / "awkward.inp", mesh, E, 0.3, clamp, {"top": load}, forces, bins=None, solver=solver)
    if COMM.rank != 0:
        return
    text = path.read_text(encoding="utf-8")
    fields = [f.strip() for line in text.splitlines() if not line.startswith("*") for f in line.split(",")]
    assert max(map(len, fields)) <= 20, max(fields, key=len)
    assert "4.180358832523E-06" in text and "-1.234567890123E+04" in text
    if shutil.which("ccx") is None:
        pytest.skip("CalculiX `ccx` not on PATH (apt-get install calculix-ccx)")
    run = subprocess.run([shutil.which("ccx"), "-i", path.stem], cwd=folder, capture_output=True, encoding="utf-8",
                         timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0 and path.with_suffix(".dat").exists(), run.stdout[-2000:]
    dat = path.with_suffix(".dat").read_text(encoding="utf-8")
    u_ccx = dat_block(dat, "displacements")[:, 1:4]
    assert u_ccx.shape == u_all.shape
    assert np.abs(u_ccx - u_all).max() / np.abs(u_all).max() < 1e-6
    assert total_energy(dat) == pytest.approx(energy, rel=1e-6)

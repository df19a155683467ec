"""Per-activity ParaView output (bonefe.fields): strain energies against independent references
and the written file read back with h5py. Asserts use global (MPI-reduced) numbers, so the file
also runs under ``mpirun -n 2 pytest``. Units: mm, N, MPa.
"""

import json
from pathlib import Path

import bonefe  # noqa: F401  (before dolfinx)

import dolfinx
import h5py
import numpy as np
import pytest
import ufl
from dolfinx import fem
from mpi4py import MPI

from bonefe.errors import BonefeError
from bonefe.fields import ENERGY_FILE, write_activity_fields
from bonefe.solver import ElasticitySolver, UnitLoadBasis, patch_traction

COMM = MPI.COMM_WORLD
WIDTH, LENGTH, E1, E2 = 2.0, 8.0, 1000.0, 15000.0
P = 100.0  # N, axial end load of the analytic case
F_TOP, F_SIDE = np.array([30.0, -70.0, 110.0]), np.array([45.0, 5.0, -20.0])  # N
A_TOP, B_SIDE = 1.5, -0.8  # activity "combined" = A_TOP·F_TOP + B_SIDE·F_SIDE


def boundary(mesh, marker):
    return dolfinx.mesh.locate_entities_boundary(mesh, 2, marker)


def external_work(mesh, facets, traction, u) -> float:
    """∫_Γ t·u ds over `facets` (N·mm), summed over ranks."""
    facets = np.unique(facets).astype(np.int32)
    tags = dolfinx.mesh.meshtags(mesh, 2, facets, np.ones_like(facets))
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags, subdomain_id=1)
    t = fem.Constant(mesh, np.asarray(traction, dtype=float))
    return COMM.allreduce(fem.assemble_scalar(fem.form(ufl.inner(t, u) * ds)), op=MPI.SUM)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """Bi-material bar (E1 for z < L/2, E2 beyond; ν = 0), clamped at z = 0, with a unit-load
    basis on its end face ("top") and on the upper half of the x = 0 face ("side"), written out
    for three activities."""
    mesh = dolfinx.mesh.create_box(COMM, [np.zeros(3), np.array([WIDTH, WIDTH, LENGTH])],
                                   [4, 4, 8], dolfinx.mesh.CellType.tetrahedron)
    n = mesh.topology.index_map(3).size_local
    mid = dolfinx.mesh.compute_midpoints(mesh, 3, np.arange(n, dtype=np.int32))
    E = np.where(mid[:, 2] < LENGTH / 2, E1, E2)
    solver = ElasticitySolver(mesh, E, 0.0, boundary(mesh, lambda p: np.isclose(p[2], 0.0)))
    patches = {"top": boundary(mesh, lambda p: np.isclose(p[2], LENGTH)),
               "side": boundary(mesh, lambda p: np.isclose(p[0], 0.0) & (p[2] > LENGTH / 2))}
    basis = UnitLoadBasis(solver, patches)
    activities = {"axial": {"top": np.array([0.0, 0.0, P])},
                  "top": {"top": F_TOP},
                  "combined": {"top": A_TOP * F_TOP, "side": B_SIDE * F_SIDE}}
    folder = Path(COMM.bcast(str(tmp_path_factory.mktemp("activity-fields")) if COMM.rank == 0
                             else None))
    cells = {"E": E, "density": 0.001 * E, "label": np.ones(n)}
    energies = write_activity_fields(folder / "activities.xdmf", mesh, basis, activities, cells)
    return {"mesh": mesh, "solver": solver, "patches": patches, "energies": energies,
            "folder": folder, "E": E}


def direct(model, forces):
    """Displacement of one direct solve with `forces` {patch: N} as uniform patch tractions."""
    mesh, patches = model["mesh"], model["patches"]
    return model["solver"].solve([(patches[k], patch_traction(mesh, patches[k], f))
                                  for k, f in forces.items()])


def test_axial_strain_energy_matches_bars_in_series(model):
    """Bars in series under end load P (ν = 0: exact in 3-D and in P1, see the solver
    verification): W = P²/2 · (L1/(E1 A) + L2/(E2 A)). Tolerance 1e-8: solver (rtol 1e-10)."""
    compliance = (LENGTH / 2) / (E1 * WIDTH**2) + (LENGTH / 2) / (E2 * WIDTH**2)
    reference = 0.5 * P**2 * compliance
    assert model["energies"]["axial"] == pytest.approx(reference, rel=1e-8)


def test_superposed_strain_energy_matches_direct_solve_and_reciprocity(model):
    """The strain energy of the superposed "combined" activity equals (a) ½∫σ:ε of one direct
    solve with both loads, and (b) the quadratic identity W(aF1 + bF2) = a²W1 + b²W2 + ab·C with
    W1, W2 from Clapeyron's theorem (W = ½ ∫ t·u ds of each direct solve) and the cross term
    C = ∫ t2·u1 ds (Betti's reciprocal work), all computed as boundary work, independently of the
    energy form. Tolerance 1e-7: each solve converges to rtol 1e-10 in the preconditioned norm."""
    mesh, patches, solver = model["mesh"], model["patches"], model["solver"]
    energy = model["energies"]["combined"]
    both = direct(model, {"top": A_TOP * F_TOP, "side": B_SIDE * F_SIDE})
    assert energy == pytest.approx(solver.strain_energy(both), rel=1e-7)
    t1 = patch_traction(mesh, patches["top"], F_TOP)
    t2 = patch_traction(mesh, patches["side"], F_SIDE)
    u1, u2 = direct(model, {"top": F_TOP}), direct(model, {"side": F_SIDE})
    W1 = 0.5 * external_work(mesh, patches["top"], t1, u1)
    W2 = 0.5 * external_work(mesh, patches["side"], t2, u2)
    cross = external_work(mesh, patches["side"], t2, u1)
    assert cross == pytest.approx(external_work(mesh, patches["top"], t1, u2), rel=1e-7)  # Betti
    assert model["energies"]["top"] == pytest.approx(W1, rel=1e-7)
    assert energy == pytest.approx(A_TOP**2 * W1 + B_SIDE**2 * W2 + A_TOP * B_SIDE * cross,
                                   rel=1e-7)


def test_file_reads_back_with_every_field(model):
    """The .h5 holds the mesh and, per activity, displacement (nodes × 3), strain tensor
    (cells × 9) and principal strains (cells × 3), plus E, density and label (cells × 1); E reads
    back with its exact global sum and the principal strains are sorted descending. The
    strain-energy JSON holds the returned numbers; no temporary file is left behind."""
    mesh, folder = model["mesh"], model["folder"]
    nodes = mesh.geometry.index_map().size_global
    cells = mesh.topology.index_map(3).size_global
    E_sum = COMM.allreduce(float(model["E"].sum()), op=MPI.SUM)
    if COMM.rank != 0:
        return
    assert sorted(p.name for p in folder.iterdir()) == [
        "activities.h5", "activities.xdmf", ENERGY_FILE]
    saved = json.loads((folder / ENERGY_FILE).read_text(encoding="utf-8"))["strain_energy"]
    assert saved == pytest.approx(model["energies"], rel=1e-15)
    with h5py.File(folder / "activities.h5") as h5:
        functions = h5["Function"]
        shapes = {name: functions[name]["0"].shape for name in functions}
        for activity in ("axial", "top", "combined"):
            assert shapes[f"{activity}_displacement"] == (nodes, 3)
            assert shapes[f"{activity}_strain"] == (cells, 9)
            assert shapes[f"{activity}_principal_strains"] == (cells, 3)
            principal = functions[f"{activity}_principal_strains"]["0"][:]
            assert np.all(np.diff(principal, axis=1) <= 0)
        assert {shapes[name] for name in ("E", "density", "label")} == {(cells, 1)}
        assert functions["E"]["0"][:].sum() == pytest.approx(E_sum, rel=1e-12)
    text = (folder / "activities.xdmf").read_text(encoding="utf-8")
    assert 'Name="combined_strain"' in text and 'AttributeType="Tensor"' in text


def test_activity_names_must_be_usable_as_field_names(model, tmp_path):
    with pytest.raises(BonefeError, match="activity name"):
        write_activity_fields(tmp_path / "x.xdmf", model["mesh"], None, {"stairs up": {}}, {})

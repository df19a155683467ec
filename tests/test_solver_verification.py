"""Verification of the elasticity solver against analytic solutions (a small verification manual).

Each test names its reference solution and the reason for its tolerance. Every assertion uses
global (MPI-reduced) quantities, so the file also runs under ``mpirun -n 2 pytest``.
Units: mm, N, MPa.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import bonefe  # noqa: F401  (before dolfinx)

import dolfinx
import gmsh
import h5py
import numpy as np
import pytest
import ufl
from dolfinx import fem
from mpi4py import MPI

from bonefe.errors import BonefeError
from bonefe.solver import (ElasticitySolver, UnitLoadBasis, cell_strain, cell_volumes,
                           cell_function, nodal_displacement, patch_area, patch_traction,
                           principal_strains, write_functions)

COMM = MPI.COMM_WORLD
E0, NU0 = 1000.0, 0.3


def n_cells(mesh) -> int:
    return mesh.topology.index_map(3).size_local


def boundary(mesh, marker) -> np.ndarray:
    return dolfinx.mesh.locate_entities_boundary(mesh, 2, marker)


def global_max(values) -> float:
    return COMM.allreduce(float(np.max(values, initial=-np.inf)), op=MPI.MAX)


def facet_integral(mesh, integrand, facets) -> float:
    """∫ integrand ds over `facets`, summed over ranks."""
    facets = np.unique(facets).astype(np.int32)
    tags = dolfinx.mesh.meshtags(mesh, 2, facets, np.ones_like(facets))
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags, subdomain_id=1)
    return COMM.allreduce(fem.assemble_scalar(fem.form(integrand * ds)), op=MPI.SUM)


def gmsh_mesh(build):
    """Mesh a gmsh OpenCASCADE model built by `build()` on rank 0, distributed over COMM."""
    gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    try:
        if COMM.rank == 0:
            build()
            gmsh.model.occ.synchronize()
            gmsh.model.addPhysicalGroup(3, [e[1] for e in gmsh.model.getEntities(3)], 1)
            gmsh.model.mesh.generate(3)
            gmsh.model.mesh.setOrder(2)  # curved (quadratic) geometry: exact circles to O(h³)
        model = gmsh.model if COMM.rank == 0 else None
        return dolfinx.io.gmsh.model_to_mesh(model, COMM, 0).mesh
    finally:
        gmsh.finalize()


# ---------------------------------------------------------------------------------------------
# Patch test
# ---------------------------------------------------------------------------------------------

def test_patch_test_uniform_strain_on_distorted_mesh():
    """Patch test: block under uniform traction σ on z = L with roller symmetry planes.

    Exact solution: uniform strain ε_zz = σ/E, ε_xx = ε_yy = −νσ/E, no shear, which P1 contains,
    so every cell must reproduce it on any mesh, here one with interior nodes displaced. Tolerance
    1e-8 relative: solver tolerance (rtol 1e-10) times the conditioning of the distorted mesh.
    """
    size = np.array([10.0, 12.0, 15.0])
    mesh = dolfinx.mesh.create_box(COMM, [np.zeros(3), size], [4, 5, 6],
                                   dolfinx.mesh.CellType.tetrahedron)
    x = mesh.geometry.x
    interior = np.all((x > 1e-9) & (x < size - 1e-9), axis=1)
    x[interior] += 0.6 * np.sin(np.array([1.3, 2.1, 0.7]) * x[interior][:, [1, 2, 0]])
    sigma = 2.5
    rollers = [(boundary(mesh, lambda p, i=i: np.isclose(p[i], 0.0)), i) for i in range(3)]
    top = boundary(mesh, lambda p: np.isclose(p[2], size[2]))
    solver = ElasticitySolver(mesh, np.full(n_cells(mesh), E0), NU0, [], rollers=rollers)
    eps = cell_strain(solver.solve([(top, [0.0, 0.0, sigma])]))
    exact = np.diag([-NU0 * sigma / E0, -NU0 * sigma / E0, sigma / E0])
    error = global_max(np.abs(eps - exact).max(axis=(1, 2))) / (sigma / E0)
    assert error < 1e-8, error


# ---------------------------------------------------------------------------------------------
# Beam theory: a circular tube in bending and torsion
# ---------------------------------------------------------------------------------------------

TUBE = {"ro": 6.0, "ri": 4.0, "length": 120.0}


@pytest.fixture(scope="module")
def tube_solver():
    """Cantilever tube (outer radius 6, inner 4, length 120 mm: L/D = 10), clamped at z = 0,
    curved quadratic tetrahedra of size 2 mm, P2 displacement (P1 locks in wall bending)."""
    ro, ri, length = TUBE["ro"], TUBE["ri"], TUBE["length"]

    def build():
        occ = gmsh.model.occ
        outer = occ.addCylinder(0, 0, 0, 0, 0, length, ro)
        inner = occ.addCylinder(0, 0, 0, 0, 0, length, ri)
        occ.cut([(3, outer)], [(3, inner)])
        gmsh.option.setNumber("Mesh.MeshSizeMax", 2.0)
        gmsh.option.setNumber("Mesh.MeshSizeMin", 2.0)

    mesh = gmsh_mesh(build)
    clamp = boundary(mesh, lambda p: np.isclose(p[2], 0.0))
    end = boundary(mesh, lambda p: np.isclose(p[2], length))
    return ElasticitySolver(mesh, np.full(n_cells(mesh), E0), NU0, clamp, degree=2), end


def test_tube_bending_tip_deflection_timoshenko(tube_solver):
    """Cantilever tube with end shear force P: mean tip deflection vs Timoshenko beam theory,
    δ = P L³/(3 E I) + P L/(κ G A), κ of a hollow circle from Cowper (1966).

    Tolerance 2 %: beam theory itself (clamped-end Poisson restraint, end-load distribution;
    the shear term is 1.3 % of δ here) and the discretisation.
    """
    solver, end = tube_solver
    ro, ri, length = TUBE["ro"], TUBE["ri"], TUBE["length"]
    P = 10.0
    u = solver.solve([(end, patch_traction(solver.mesh, end, [0.0, P, 0.0]))])
    tip = facet_integral(solver.mesh, u[1], end) / patch_area(solver.mesh, end)
    inertia, area = np.pi * (ro**4 - ri**4) / 4, np.pi * (ro**2 - ri**2)
    m, G = ri / ro, E0 / (2 * (1 + NU0))
    kappa = 6 * (1 + NU0) * (1 + m**2) ** 2 / ((7 + 6 * NU0) * (1 + m**2) ** 2
                                                 + (20 + 12 * NU0) * m**2)
    reference = P * length**3 / (3 * E0 * inertia) + P * length / (kappa * G * area)
    assert abs(tip / reference - 1) < 0.02, (tip, reference)


def test_tube_torsion_twist_angle(tube_solver):
    """Tube under torque T applied as the Saint-Venant shear traction τ = T r / J (tangential)
    on the end face: end rotation φ = T L / (G J), J = π (ro⁴ − ri⁴)/2 (no warping for a circle,
    so the clamp is exact).

    Tolerance 2 % (brief); measured ~1e-4, from discretisation of the curved geometry.
    """
    solver, end = tube_solver
    ro, ri, length = TUBE["ro"], TUBE["ri"], TUBE["length"]
    J, G, T = np.pi * (ro**4 - ri**4) / 2, E0 / (2 * (1 + NU0)), 500.0
    u = solver.solve([(end, lambda p: np.stack([-p[1], p[0], 0 * p[0]]) * T / J)])
    x = ufl.SpatialCoordinate(solver.mesh)
    rotation = (facet_integral(solver.mesh, x[0] * u[1] - x[1] * u[0], end)
                / facet_integral(solver.mesh, x[0] ** 2 + x[1] ** 2, end))
    reference = T * length / (G * J)
    assert abs(rotation / reference - 1) < 0.02, (rotation, reference)


# ---------------------------------------------------------------------------------------------
# Kirsch: stress concentration at a circular hole
# ---------------------------------------------------------------------------------------------

def test_kirsch_hole_stress_concentration():
    """Quarter of a plane-strain plate (half-width 20a) with a hole of radius a under remote
    uniaxial tension σ: σ_xx at the hole edge (0, a) = 3σ (Kirsch 1898, infinite plate; the
    ratio is the same in plane strain and plane stress).

    Plane strain: one layer of tetrahedra between two roller planes (u_z = 0); symmetry rollers
    on x = 0 and y = 0. P2 displacement on curved quadratic tetrahedra graded to a/20 at the
    hole; stress interpolated at the cell vertices (DG1). Tolerance 2 %: finite width raises the
    factor by ~0.3 % (Heywood's formula, d/W = 0.05), plus discretisation.
    """
    a, half, thick, fine, coarse = 1.0, 20.0, 0.1, 0.05, 2.0

    def build():
        occ = gmsh.model.occ
        (surface,), _ = occ.cut([(2, occ.addRectangle(0, 0, 0, half, half))],
                                [(2, occ.addDisk(0, 0, 0, a, a))])
        occ.extrude([surface], 0, 0, thick, numElements=[1], recombine=False)
        field = gmsh.model.mesh.field
        size = field.add("MathEval")
        field.setString(size, "F", f"{fine} + ({coarse} - {fine}) * "
                                   f"Min(1, (Sqrt(x*x + y*y) - {a}) / {4 * a})")
        field.setAsBackgroundMesh(size)
        for option in ("MeshSizeExtendFromBoundary", "MeshSizeFromPoints", "MeshSizeFromCurvature"):
            gmsh.option.setNumber(f"Mesh.{option}", 0)

    mesh = gmsh_mesh(build)
    rollers = [(boundary(mesh, lambda p: np.isclose(p[0], 0.0)), 0),
               (boundary(mesh, lambda p: np.isclose(p[1], 0.0)), 1),
               (boundary(mesh, lambda p: np.isclose(p[2], 0.0) | np.isclose(p[2], thick)), 2)]
    solver = ElasticitySolver(mesh, np.full(n_cells(mesh), E0), NU0, [], degree=2,
                              rollers=rollers)
    sigma = 1.0
    u = solver.solve([(boundary(mesh, lambda p: np.isclose(p[0], half)), [sigma, 0.0, 0.0])])
    W = fem.functionspace(mesh, ("DG", 1))
    sxx = fem.Function(W)
    sxx.interpolate(fem.Expression(solver.stress(u)[0, 0], W.element.interpolation_points))
    concentration = global_max(sxx.x.array) / sigma
    assert abs(concentration / 3.0 - 1) < 0.02, concentration


# ---------------------------------------------------------------------------------------------
# Convergence rate on a manufactured solution
# ---------------------------------------------------------------------------------------------

def manufactured_body_force(mu, lmbda):
    """f = −div σ(u) for u = φ (1, 1, 1), φ = sin πx sin πy sin πz (derived by hand):
    f_i = 3 μ π² φ − (λ + μ) ∂_i(φ_x + φ_y + φ_z)."""

    def f(x):
        s, c = np.sin(np.pi * x), np.cos(np.pi * x)
        phi = s[0] * s[1] * s[2]
        second = np.pi**2 * np.array([
            -phi + c[0] * c[1] * s[2] + c[0] * s[1] * c[2],
            c[0] * c[1] * s[2] - phi + s[0] * c[1] * c[2],
            c[0] * s[1] * c[2] + s[0] * c[1] * c[2] - phi])
        return 3 * mu * np.pi**2 * phi - (lmbda + mu) * second

    return f


def test_p1_l2_convergence_rate_manufactured_solution():
    """Unit cube, u = 0 on the boundary, body force of the manufactured solution above: the P1
    L2 error must fall as O(h²) (Ciarlet: optimal order k+1 for elliptic problems with a smooth
    solution). Measured rate ≥ 1.9 over the last two halvings of h."""
    mu, lmbda = E0 / (2 * (1 + NU0)), E0 * NU0 / ((1 + NU0) * (1 - 2 * NU0))
    errors = []
    for n in (8, 16, 32):
        mesh = dolfinx.mesh.create_unit_cube(COMM, n, n, n)
        walls = boundary(mesh, lambda p: np.full(p.shape[1], True))
        solver = ElasticitySolver(mesh, np.full(n_cells(mesh), E0), NU0, walls)
        u = solver.solve([], body_force=manufactured_body_force(mu, lmbda))
        x = ufl.SpatialCoordinate(mesh)
        phi = ufl.sin(ufl.pi * x[0]) * ufl.sin(ufl.pi * x[1]) * ufl.sin(ufl.pi * x[2])
        diff = u - ufl.as_vector([phi, phi, phi])
        dx = ufl.dx(metadata={"quadrature_degree": 6})
        errors.append(np.sqrt(COMM.allreduce(fem.assemble_scalar(fem.form(ufl.inner(diff, diff) * dx)),
                                             op=MPI.SUM)))
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(rates >= 1.9), rates


# ---------------------------------------------------------------------------------------------
# Heterogeneous material: bi-material bars
# ---------------------------------------------------------------------------------------------

BAR = {"width": 2.0, "length": 8.0, "E1": 1000.0, "E2": 15000.0}


def bar_mesh():
    w, length = BAR["width"], BAR["length"]
    mesh = dolfinx.mesh.create_box(COMM, [np.zeros(3), np.array([w, w, length])], [4, 4, 8],
                                   dolfinx.mesh.CellType.tetrahedron)
    mid = dolfinx.mesh.compute_midpoints(mesh, 3, np.arange(n_cells(mesh), dtype=np.int32))
    return mesh, mid, boundary(mesh, lambda p: np.isclose(p[2], 0.0))


def mean_end_displacement(mesh, u, facets) -> float:
    return facet_integral(mesh, u[2], facets) / patch_area(mesh, facets)


def test_bimaterial_bar_in_series():
    """Two halves (E1 then E2 along the axis), clamped at z = 0, uniform end traction: axial
    stiffness P/δ = 1/(L1/(E1 A) + L2/(E2 A)) exactly. ν = 0 makes this exact in 3-D: no lateral
    contraction, so the clamp and the interface impose no lateral stress and the exact solution
    (piecewise-linear u_z, kink on a mesh plane) lies in the P1 space. Tolerance 1e-8: solver."""
    mesh, mid, clamp = bar_mesh()
    w, length, E1, E2 = BAR["width"], BAR["length"], BAR["E1"], BAR["E2"]
    E = np.where(mid[:, 2] < length / 2, E1, E2)
    solver = ElasticitySolver(mesh, E, 0.0, clamp)
    end = boundary(mesh, lambda p: np.isclose(p[2], length))
    P, A = 100.0, w * w
    u = solver.solve([(end, patch_traction(mesh, end, [0.0, 0.0, P]))])
    stiffness = P / mean_end_displacement(mesh, u, end)
    reference = 1.0 / (length / 2 / (E1 * A) + length / 2 / (E2 * A))
    assert abs(stiffness / reference - 1) < 1e-8, (stiffness, reference)


def test_bimaterial_bar_in_parallel():
    """Two halves side by side (E1 for x < w/2, E2 beyond), clamped at z = 0, stretched to a
    uniform strain ε by the end tractions E1 ε and E2 ε on the two halves (two load patches):
    axial stiffness P/δ = (E1 A1 + E2 A2)/L exactly (ν = 0: no lateral stress at the clamp or
    the material interface, and the exact uniform strain is in P1). Tolerance 1e-8: solver."""
    mesh, mid, clamp = bar_mesh()
    w, length, E1, E2 = BAR["width"], BAR["length"], BAR["E1"], BAR["E2"]
    solver = ElasticitySolver(mesh, np.where(mid[:, 0] < w / 2, E1, E2), 0.0, clamp)
    left = boundary(mesh, lambda p: np.isclose(p[2], length) & (p[0] <= w / 2 + 1e-9))
    right = boundary(mesh, lambda p: np.isclose(p[2], length) & (p[0] >= w / 2 - 1e-9))
    strain = 1e-3
    u = solver.solve([(left, [0.0, 0.0, E1 * strain]), (right, [0.0, 0.0, E2 * strain])])
    P = strain * (E1 + E2) * w * w / 2
    stiffness = P / mean_end_displacement(mesh, u, np.concatenate([left, right]))
    reference = (E1 + E2) * (w * w / 2) / length
    assert abs(stiffness / reference - 1) < 1e-8, (stiffness, reference)


# ---------------------------------------------------------------------------------------------
# Superposition (unit-load basis)
# ---------------------------------------------------------------------------------------------

def test_unit_load_basis_matches_direct_solve():
    """Linearity: strain under forces F_top on the top face and F_side on a side face, built
    from the two unit-load bases, equals one direct solve with both loads. Heterogeneous E.
    Tolerance 1e-7 relative to the largest strain: each of the 7 solves is converged to
    rtol 1e-10 in the preconditioned norm."""
    mesh, mid, clamp = bar_mesh()
    E = 1000.0 + 4000.0 * (mid[:, 2] / BAR["length"]) + 500.0 * np.sin(mid[:, 0])
    solver = ElasticitySolver(mesh, E, 0.35, clamp)
    patches = {"top": boundary(mesh, lambda p: np.isclose(p[2], BAR["length"])),
               "side": boundary(mesh, lambda p: np.isclose(p[0], 0.0) & (p[2] > 4.0))}
    forces = {"top": np.array([30.0, -70.0, 110.0]), "side": np.array([45.0, 5.0, -20.0])}
    basis = UnitLoadBasis(solver, patches)
    direct = cell_strain(solver.solve(
        [(patches[name], patch_traction(mesh, patches[name], forces[name])) for name in patches]))
    scale = global_max(np.abs(direct))
    difference = global_max(np.abs(basis.strain(forces) - direct)) / scale
    assert difference < 1e-7, difference


# ---------------------------------------------------------------------------------------------
# Rank independence
# ---------------------------------------------------------------------------------------------

def rank_case() -> tuple[float, float, float]:
    """A heterogeneous box under an oblique end load: (strain energy, max principal strain,
    total volume). Global numbers that must not depend on the number of MPI ranks."""
    mesh, mid, clamp = bar_mesh()
    E = 800.0 + 3000.0 * np.abs(np.sin(mid[:, 0] + 2 * mid[:, 1] + 0.5 * mid[:, 2]))
    solver = ElasticitySolver(mesh, E, 0.3, clamp)
    end = boundary(mesh, lambda p: np.isclose(p[2], BAR["length"]))
    u = solver.solve([(end, patch_traction(mesh, end, [20.0, -10.0, 100.0]))])
    e1 = principal_strains(cell_strain(u))[:, 0]
    volume = COMM.allreduce(cell_volumes(mesh).sum(), op=MPI.SUM)
    return float(solver.strain_energy(u)), global_max(e1), float(volume)


def test_two_ranks_match_one_rank():
    """`mpirun -n 2` reproduces the serial strain energy and max principal strain to 1e-8
    (both converge to rtol 1e-10; partition-dependent round-off and AMG hierarchy only)."""
    mpirun = Path(sys.executable).with_name("mpirun")
    mpirun = str(mpirun) if mpirun.exists() else shutil.which("mpirun")
    if COMM.size > 1 or mpirun is None:
        pytest.skip("needs a serial pytest process and mpirun on PATH")
    here = Path(__file__).resolve().parent
    code = (f"import sys; sys.path.insert(0, {str(here)!r}); "
            "from test_solver_verification import rank_case, COMM; r = rank_case(); "
            "COMM.rank == 0 and print(*map(repr, r))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([mpirun, "-n", "2", sys.executable, "-c", code], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    parallel = np.array([float(v) for v in result.stdout.split()[-3:]])
    serial = np.array(rank_case())
    assert np.allclose(parallel, serial, rtol=1e-8, atol=0), (parallel, serial)


def test_write_functions_xdmf(tmp_path_factory):
    """ParaView output: an .xdmf/.h5 pair holding the displacement and each named cell field,
    written atomically (no temporary folder left behind)."""
    folder = Path(COMM.bcast(str(tmp_path_factory.mktemp("fields")) if COMM.rank == 0 else None))
    mesh, mid, clamp = bar_mesh()
    solver = ElasticitySolver(mesh, np.full(n_cells(mesh), E0), NU0, clamp)
    end = boundary(mesh, lambda p: np.isclose(p[2], BAR["length"]))
    u = solver.solve([(end, [0.0, 0.0, 1.0])])
    write_functions(folder / "result.xdmf", mesh, [
        nodal_displacement(u), cell_function(mesh, np.full(n_cells(mesh), E0), "E"),
        cell_function(mesh, principal_strains(cell_strain(u))[:, 0], "e1")])
    if COMM.rank == 0:
        assert sorted(p.name for p in folder.iterdir()) == ["result.h5", "result.xdmf"]
        text = (folder / "result.xdmf").read_text()
        assert all(f'Name="{name}"' in text for name in ("displacement", "E", "e1"))
        with h5py.File(folder / "result.h5") as h5:
            assert "Function" in h5


def test_clear_errors_for_unusable_models():
    """User-fixable problems raise BonefeError: no support, non-positive E, a solve that does not
    converge within the allowed iterations, and a preconditioner PETSc does not provide."""
    mesh, mid, clamp = bar_mesh()
    E = np.full(n_cells(mesh), E0)
    end = boundary(mesh, lambda p: np.isclose(p[2], BAR["length"]))
    with pytest.raises(BonefeError, match="no support"):
        ElasticitySolver(mesh, E, NU0, np.array([], dtype=np.int32))
    with pytest.raises(BonefeError, match="positive"):
        ElasticitySolver(mesh, np.where(mid[:, 2] < 1.0, 0.0, E0), NU0, clamp)
    with pytest.raises(BonefeError, match="diverged"):
        ElasticitySolver(mesh, E, NU0, clamp, petsc_options={"ksp_max_it": 2}).solve(
            [(end, [1.0, 0.0, 0.0])])
    with pytest.raises(BonefeError, match="PETSc could not set up"):
        ElasticitySolver(mesh, E, NU0, clamp, petsc_options={"pc_type": "no_such_pc"})

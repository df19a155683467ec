"""The solver against analytic solutions: every verification case of tests/test_solver_verification.py.

Each function builds one model (bonefe.validation.models), solves it with bonefe's
ElasticitySolver and returns the measured number; `analytic_section` tabulates them against their
closed-form references with the mesh size. The tests assert the same numbers with the same bounds.
Units: mm, N, MPa.
"""

from __future__ import annotations

import bonefe  # noqa: F401  (before dolfinx)

import dolfinx
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

from bonefe.solver import (ElasticitySolver, UnitLoadBasis, cell_strain, lame, patch_area,
                           patch_traction)
from bonefe.validation.checks import Check, Section, relative
from bonefe.validation.models import (BAR, COMM, E0, KIRSCH, NU0, TUBE, bar_mesh, boundary,
                                      facet_integral, global_max, kirsch_plate_mesh,
                                      manufactured_body_force, mean_end_displacement, n_cells,
                                      torsion_traction, tube_mesh)

PATCH_SIZE, PATCH_CELLS = np.array([10.0, 12.0, 15.0]), (4, 5, 6)
CONVERGENCE_CELLS = (8, 16, 32)


def patch_test_error() -> float:
    """Block under uniform traction σ on z = L, roller symmetry planes, interior nodes displaced:
    max over cells of |ε − ε_exact| / (σ/E), ε_exact = diag(−νσ/E, −νσ/E, σ/E)."""
    mesh = dolfinx.mesh.create_box(COMM, [np.zeros(3), PATCH_SIZE], list(PATCH_CELLS),
                                   dolfinx.mesh.CellType.tetrahedron)
    x = mesh.geometry.x
    interior = np.all((x > 1e-9) & (x < PATCH_SIZE - 1e-9), axis=1)
    x[interior] += 0.6 * np.sin(np.array([1.3, 2.1, 0.7]) * x[interior][:, [1, 2, 0]])
    sigma = 2.5
    rollers = [(boundary(mesh, lambda p, i=i: np.isclose(p[i], 0.0)), i) for i in range(3)]
    top = boundary(mesh, lambda p: np.isclose(p[2], PATCH_SIZE[2]))
    solver = ElasticitySolver(mesh, np.full(n_cells(mesh), E0), NU0, [], rollers=rollers)
    eps = cell_strain(solver.solve([(top, [0.0, 0.0, sigma])]))
    exact = np.diag([-NU0 * sigma / E0, -NU0 * sigma / E0, sigma / E0])
    return global_max(np.abs(eps - exact).max(axis=(1, 2))) / (sigma / E0)


def tube_model():
    """Cantilever tube of TUBE clamped at z = 0, P2 displacement (P1 locks in wall bending):
    (solver, end facets at z = L)."""
    mesh = tube_mesh(TUBE["ro"], TUBE["ri"], TUBE["length"], TUBE["size"])
    clamp = boundary(mesh, lambda p: np.isclose(p[2], 0.0))
    end = boundary(mesh, lambda p: np.isclose(p[2], TUBE["length"]))
    return ElasticitySolver(mesh, np.full(n_cells(mesh), E0), NU0, clamp, degree=2), end


def timoshenko_tip_deflection(P: float) -> float:
    """δ = P L³/(3 E I) + P L/(κ G A) of the TUBE cantilever under end shear P (mm), κ of a hollow
    circle from Cowper (1966)."""
    ro, ri, length = TUBE["ro"], TUBE["ri"], TUBE["length"]
    inertia, area = np.pi * (ro**4 - ri**4) / 4, np.pi * (ro**2 - ri**2)
    m, G = ri / ro, E0 / (2 * (1 + NU0))
    kappa = 6 * (1 + NU0) * (1 + m**2) ** 2 / ((7 + 6 * NU0) * (1 + m**2) ** 2 + (20 + 12 * NU0) * m**2)
    return P * length**3 / (3 * E0 * inertia) + P * length / (kappa * G * area)


def tube_tip_deflection(solver, end, P: float = 10.0) -> float:
    """Mean tip deflection u_y (mm) of the tube under an end shear force P (N) along y."""
    u = solver.solve([(end, patch_traction(solver.mesh, end, [0.0, P, 0.0]))])
    return facet_integral(solver.mesh, u[1], end) / patch_area(solver.mesh, end)


def tube_twist(solver, end, T: float = 500.0) -> tuple[float, float]:
    """End rotation (rad) of the tube under a torque T (N mm) applied as the Saint-Venant shear
    traction, and the reference φ = T L / (G J)."""
    ro, ri, length = TUBE["ro"], TUBE["ri"], TUBE["length"]
    u = solver.solve([(end, torsion_traction(T, ro, ri))])
    x = ufl.SpatialCoordinate(solver.mesh)
    rotation = (facet_integral(solver.mesh, x[0] * u[1] - x[1] * u[0], end)
                / facet_integral(solver.mesh, x[0] ** 2 + x[1] ** 2, end))
    J, G = np.pi * (ro**4 - ri**4) / 2, E0 / (2 * (1 + NU0))
    return rotation, T * length / (G * J)


def kirsch_concentration() -> float:
    """Peak σ_xx / σ at the hole of the plane-strain KIRSCH quarter plate under remote uniaxial
    tension σ (symmetry rollers on x = 0, y = 0; u_z = 0 on both faces), P2, stress at the
    cell vertices (DG1)."""
    k = KIRSCH
    mesh = kirsch_plate_mesh(k["a"], k["half"], k["thick"], k["fine"], k["coarse"])
    rollers = [(boundary(mesh, lambda p: np.isclose(p[0], 0.0)), 0),
               (boundary(mesh, lambda p: np.isclose(p[1], 0.0)), 1),
               (boundary(mesh, lambda p: np.isclose(p[2], 0.0) | np.isclose(p[2], k["thick"])), 2)]
    solver = ElasticitySolver(mesh, np.full(n_cells(mesh), E0), NU0, [], degree=2, rollers=rollers)
    sigma = 1.0
    u = solver.solve([(boundary(mesh, lambda p: np.isclose(p[0], k["half"])), [sigma, 0.0, 0.0])])
    W = fem.functionspace(mesh, ("DG", 1))
    sxx = fem.Function(W)
    sxx.interpolate(fem.Expression(solver.stress(u)[0, 0], W.element.interpolation_points))
    return global_max(sxx.x.array) / sigma


def manufactured_l2_errors(cells=CONVERGENCE_CELLS) -> list[float]:
    """P1 L2 displacement errors on the unit cube (n × n × n × 6 tetrahedra for each n in `cells`)
    against u = sin πx sin πy sin πz (1, 1, 1), u = 0 on the boundary."""
    mu, lmbda = lame(E0, NU0)
    errors = []
    for n in cells:
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
    return errors


def convergence_rates(errors) -> np.ndarray:
    """Observed orders log2(e_h / e_h/2) of successive halvings."""
    return np.log2(np.array(errors[:-1]) / np.array(errors[1:]))


def bimaterial_series() -> tuple[float, float]:
    """Axial stiffness P/δ (N/mm) of the bar with E1 then E2 along its axis (ν = 0) and the exact
    1/(L1/(E1 A) + L2/(E2 A))."""
    mesh, mid, clamp = bar_mesh()
    w, length, E1, E2 = BAR["width"], BAR["length"], BAR["E1"], BAR["E2"]
    solver = ElasticitySolver(mesh, np.where(mid[:, 2] < length / 2, E1, E2), 0.0, clamp)
    end = boundary(mesh, lambda p: np.isclose(p[2], length))
    P, A = 100.0, w * w
    u = solver.solve([(end, patch_traction(mesh, end, [0.0, 0.0, P]))])
    return P / mean_end_displacement(mesh, u, end), 1.0 / (length / 2 / (E1 * A) + length / 2 / (E2 * A))


def bimaterial_parallel() -> tuple[float, float]:
    """Axial stiffness of the bar with E1 and E2 side by side (ν = 0), stretched uniformly by the
    end tractions E1 ε and E2 ε, and the exact (E1 A1 + E2 A2)/L."""
    mesh, mid, clamp = bar_mesh()
    w, length, E1, E2 = BAR["width"], BAR["length"], BAR["E1"], BAR["E2"]
    solver = ElasticitySolver(mesh, np.where(mid[:, 0] < w / 2, E1, E2), 0.0, clamp)
    left = boundary(mesh, lambda p: np.isclose(p[2], length) & (p[0] <= w / 2 + 1e-9))
    right = boundary(mesh, lambda p: np.isclose(p[2], length) & (p[0] >= w / 2 - 1e-9))
    strain = 1e-3
    u = solver.solve([(left, [0.0, 0.0, E1 * strain]), (right, [0.0, 0.0, E2 * strain])])
    P = strain * (E1 + E2) * w * w / 2
    stiffness = P / mean_end_displacement(mesh, u, np.concatenate([left, right]))
    return stiffness, (E1 + E2) * (w * w / 2) / length


def superposition_difference() -> float:
    """Max |strain from the unit-load bases − strain of one direct solve| / max |direct strain|,
    heterogeneous bar, forces on the top face and a side patch."""
    mesh, mid, clamp = bar_mesh()
    E = 1000.0 + 4000.0 * (mid[:, 2] / BAR["length"]) + 500.0 * np.sin(mid[:, 0])
    solver = ElasticitySolver(mesh, E, 0.35, clamp)
    patches = {"top": boundary(mesh, lambda p: np.isclose(p[2], BAR["length"])),
               "side": boundary(mesh, lambda p: np.isclose(p[0], 0.0) & (p[2] > 4.0))}
    forces = {"top": np.array([30.0, -70.0, 110.0]), "side": np.array([45.0, 5.0, -20.0])}
    basis = UnitLoadBasis(solver, patches)
    direct = cell_strain(solver.solve(
        [(patches[name], patch_traction(mesh, patches[name], forces[name])) for name in patches]))
    return global_max(np.abs(basis.strain(forces) - direct)) / global_max(np.abs(direct))


def analytic_checks() -> list[Check]:
    """Every verification case as a Check with its documented bound (the tests' tolerances)."""
    tube, end = tube_model()
    rotation, twist_reference = tube_twist(tube, end)
    errors = manufactured_l2_errors()
    rates = convergence_rates(errors)
    series, series_ref = bimaterial_series()
    parallel, parallel_ref = bimaterial_parallel()
    patch, superposition = patch_test_error(), superposition_difference()
    box = f"{PATCH_CELLS[0]}×{PATCH_CELLS[1]}×{PATCH_CELLS[2]}×6 P1, distorted"
    bar = f"{BAR['cells'][0]}×{BAR['cells'][1]}×{BAR['cells'][2]}×6 P1 (h = 0.5 mm)"
    return [
        Check("patch test: uniform strain", patch, 0.0, patch, 1e-8, box,
              "exact uniform strain σ/E, −νσ/E", "max |ε − ε_exact| / (σ/E)"),
        relative("tube bending: tip deflection (mm)", tube_tip_deflection(tube, end), timoshenko_tip_deflection(10.0),
                 0.02, f"P2, curved tets h = {TUBE['size']:g} mm", "Timoshenko beam, κ of Cowper (1966)"),
        relative("tube torsion: end rotation (rad)", rotation, twist_reference, 0.02,
                 f"P2, curved tets h = {TUBE['size']:g} mm", "φ = T L / (G J)"),
        relative("Kirsch hole: stress concentration", kirsch_concentration(), 3.0, 0.02,
                 f"P2, h = {KIRSCH['fine']:g}a at the hole to {KIRSCH['coarse']:g}a", "Kirsch (1898): 3"),
        Check("manufactured solution: P1 L2 rate", float(rates.min()), 2.0, float(2.0 - rates.min()), 0.1,
              "P1, h = 1/" + ", 1/".join(map(str, CONVERGENCE_CELLS)), "O(h²) (Ciarlet)", "2 − min observed rate"),
        relative("bi-material bar in series: stiffness (N/mm)", series, series_ref, 1e-8, bar,
                 "1/(L1/(E1 A) + L2/(E2 A))"),
        relative("bi-material bar in parallel: stiffness (N/mm)", parallel, parallel_ref, 1e-8, bar,
                 "(E1 A1 + E2 A2)/L"),
        Check("superposition vs direct solve: strain", superposition, 0.0, superposition,
              1e-7, bar, "linearity (one direct solve)", "max |Δε| / max |ε|"),
    ]


def analytic_section() -> Section:
    """The analytic table."""
    text = ("Every verification case of the solver (`tests/test_solver_verification.py`, the same "
            "model builders in `bonefe/validation/models.py`), solved again by this run. The bound "
            "is the test's tolerance; its reason is given in the test's docstring (discretisation "
            "for the curved geometries, solver tolerance rtol 1e-10 for the cases whose exact "
            "solution lies in the finite-element space).")
    return Section("Analytic solutions", text, analytic_checks())

"""Model builders shared by the verification tests and the validation runner.

One implementation of each verification geometry (the tube of beam theory, the Kirsch plate, the
bi-material bar) and of the small MPI-aware helpers they need, so that `tests/` and
`bonefe validate` measure the same models. Units: mm, N, MPa. Every helper is collective over
``COMM`` and returns global (MPI-reduced) numbers where it returns numbers.
"""

from __future__ import annotations

import bonefe  # noqa: F401  (before dolfinx)

import dolfinx
import gmsh
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

COMM = MPI.COMM_WORLD
E0, NU0 = 1000.0, 0.3
"""Modulus (MPa) and Poisson ratio of the homogeneous verification models."""

TUBE = {"ro": 6.0, "ri": 4.0, "length": 120.0, "size": 2.0}
"""Cantilever tube of the beam-theory checks (mm): L/D = 10, 2 mm curved quadratic tetrahedra."""

BAR = {"width": 2.0, "length": 8.0, "E1": 1000.0, "E2": 15000.0, "cells": (4, 4, 8)}
"""Bi-material bar (mm, MPa) and its structured tetrahedral grid."""

KIRSCH = {"a": 1.0, "half": 20.0, "thick": 0.1, "fine": 0.05, "coarse": 2.0}
"""Quarter plate with a hole (mm): hole radius a, half-width 20a, one layer of thickness 0.1,
element size graded from a/20 at the hole to 2a beyond 4a from it."""


def n_cells(mesh) -> int:
    """Number of local owned cells."""
    return mesh.topology.index_map(3).size_local


def boundary(mesh, marker) -> np.ndarray:
    """Local exterior facets whose vertices all satisfy `marker(x)`."""
    return dolfinx.mesh.locate_entities_boundary(mesh, 2, marker)


def global_max(values) -> float:
    """Maximum of a per-rank array over all ranks (−inf when empty everywhere)."""
    return COMM.allreduce(float(np.max(values, initial=-np.inf)), op=MPI.MAX)


def facet_integral(mesh, integrand, facets) -> float:
    """∫ integrand ds over `facets`, summed over ranks."""
    facets = np.unique(facets).astype(np.int32)
    tags = dolfinx.mesh.meshtags(mesh, 2, facets, np.ones_like(facets))
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags, subdomain_id=1)
    return COMM.allreduce(fem.assemble_scalar(fem.form(integrand * ds)), op=MPI.SUM)


def gmsh_mesh(build, order: int = 2):
    """Mesh a gmsh OpenCASCADE model built by `build()` on rank 0, distributed over COMM.

    order 2 gives curved (quadratic) geometry: circles exact to O(h³)."""
    gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    try:
        if COMM.rank == 0:
            build()
            gmsh.model.occ.synchronize()
            gmsh.model.addPhysicalGroup(3, [e[1] for e in gmsh.model.getEntities(3)], 1)
            gmsh.model.mesh.generate(3)
            gmsh.model.mesh.setOrder(order)
        model = gmsh.model if COMM.rank == 0 else None
        return dolfinx.io.gmsh.model_to_mesh(model, COMM, 0).mesh
    finally:
        gmsh.finalize()


def _size_field(fine: float, coarse: float, distance_expression: str, ramp: float) -> None:
    """Background element size growing linearly from `fine` where the distance expression (mm)
    is 0 to `coarse` at distance `ramp`; other size sources off."""
    field = gmsh.model.mesh.field
    size = field.add("MathEval")
    field.setString(size, "F", f"{fine} + ({coarse} - {fine}) * Min(1, Max(0, {distance_expression}) / {ramp})")
    field.setAsBackgroundMesh(size)
    for option in ("MeshSizeExtendFromBoundary", "MeshSizeFromPoints", "MeshSizeFromCurvature"):
        gmsh.option.setNumber(f"Mesh.{option}", 0)


def tube_mesh(ro: float, ri: float, length: float, size: float, hole_diameter: float = 0.0,
              through: bool = False, hole_size: float | None = None):
    """Circular tube along z (outer/inner radius ro/ri, 0 ≤ z ≤ length, mm), curved quadratic
    tetrahedra of `size` mm.

    hole_diameter > 0 drills a radial hole along +x at mid-length through one wall (or through
    both walls when `through`), the element size falling to `hole_size` (default d/8, at most
    the wall thickness / 3) at its rim and back to `size` over two hole diameters.
    """

    def build():
        occ = gmsh.model.occ
        outer = occ.addCylinder(0, 0, 0, 0, 0, length, ro)
        inner = occ.addCylinder(0, 0, 0, 0, 0, length, ri)
        tube, _ = occ.cut([(3, outer)], [(3, inner)])
        if hole_diameter > 0:
            start = -2 * ro if through else 0.0
            drill = occ.addCylinder(start, 0, length / 2, 3 * ro - start, 0, 0, hole_diameter / 2)
            occ.cut(tube, [(3, drill)])
            fine = hole_size or min(hole_diameter / 8, (ro - ri) / 3)
            rim = f"Sqrt(y*y + (z - {length / 2})^2) - {hole_diameter / 2}"
            _size_field(fine, size, rim, 2 * hole_diameter)
        else:
            gmsh.option.setNumber("Mesh.MeshSizeMax", size)
            gmsh.option.setNumber("Mesh.MeshSizeMin", size)

    return gmsh_mesh(build)


def kirsch_plate_mesh(a: float, half: float, thick: float, fine: float, coarse: float):
    """Quarter of a square plate (half-width `half`) with a hole of radius `a` at the origin,
    one layer of tetrahedra of thickness `thick`, size graded from `fine` at the hole to
    `coarse` beyond 4a from it (mm)."""

    def build():
        occ = gmsh.model.occ
        (surface,), _ = occ.cut([(2, occ.addRectangle(0, 0, 0, half, half))],
                                [(2, occ.addDisk(0, 0, 0, a, a))])
        occ.extrude([surface], 0, 0, thick, numElements=[1], recombine=False)
        _size_field(fine, coarse, f"Sqrt(x*x + y*y) - {a}", 4 * a)

    return gmsh_mesh(build)


def l_bracket_mesh(leg: float, thick: float, fine: float, coarse: float):
    """L-shaped bracket: the square [0, 2 leg]² without its corner square [leg, 2 leg]², extruded
    `thick` along z (mm), linear tetrahedra of size `fine` at the re-entrant edge x = y = leg,
    growing to `coarse` over one leg length. The edge makes the elastic strain singular (∝ r^-0.46
    for a 270° corner, Williams 1952), so its peak grows without bound under refinement."""

    def build():
        occ = gmsh.model.occ
        occ.cut([(3, occ.addBox(0, 0, 0, 2 * leg, 2 * leg, thick))], [(3, occ.addBox(leg, leg, 0, leg, leg, thick))])
        _size_field(fine, coarse, f"Sqrt((x - {leg})^2 + (y - {leg})^2)", leg)

    return gmsh_mesh(build, order=1)


def bar_mesh():
    """The bi-material bar's box mesh (width × width × length), its local cell midpoints and the
    clamped facets at z = 0."""
    w, length = BAR["width"], BAR["length"]
    mesh = dolfinx.mesh.create_box(COMM, [np.zeros(3), np.array([w, w, length])], list(BAR["cells"]),
                                   dolfinx.mesh.CellType.tetrahedron)
    mid = dolfinx.mesh.compute_midpoints(mesh, 3, np.arange(n_cells(mesh), dtype=np.int32))
    return mesh, mid, boundary(mesh, lambda p: np.isclose(p[2], 0.0))


def manufactured_body_force(mu: float, lmbda: float):
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


def mean_end_displacement(mesh, u, facets) -> float:
    """Area-weighted mean axial displacement u_z (mm) over `facets`."""
    from bonefe.solver import patch_area

    return facet_integral(mesh, u[2], facets) / patch_area(mesh, facets)


def torsion_traction(torque: float, ro: float, ri: float):
    """Saint-Venant shear traction τ = T r / J (tangential, N/mm²) of a torque T (N mm) about z on
    a tube end, J = π (ro⁴ − ri⁴)/2, as a callable for ElasticitySolver loads."""
    J = np.pi * (ro**4 - ri**4) / 2
    return lambda p: np.stack([-p[1], p[0], 0 * p[0]]) * torque / J


def bending_traction(moment: float, ro: float, ri: float):
    """Axial traction σ_zz = M x / I (N/mm²) of a bending moment M (N mm) about y on a tube end,
    I = π (ro⁴ − ri⁴)/4: tension on +x for M > 0."""
    inertia = np.pi * (ro**4 - ri**4) / 4
    return lambda p: np.stack([0 * p[0], 0 * p[0], p[0] * moment / inertia])

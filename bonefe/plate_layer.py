"""A rigid plate bonded to the bone through a thin elastic layer (a disc, a PMMA cap or potting, a pad).

The layer is a bed of springs (Winkler foundation) per unit area: normal stiffness k_n = E / h
and shear stiffness k_s = G / h (N/mm³) for a layer of modulus E, Poisson ratio ν (G = E / (2(1 + ν)))
and thickness h. Where the plate's point moves w(x) = t + r × (x − c) and the bone's surface u, the
layer's traction on the bone is S (w − u), S = Σ_i k_i a_i a_iᵀ over the layer's axes (two in its
plane, the normal last). On the bone this is `ElasticitySolver(springs=layer_springs(...))` in the
operator and `plate_traction` on the right-hand side; `layer_reactions` integrates the force and
moment the layer puts on the bone. Departure from a meshed layer: a spring bed has no Poisson
coupling within the layer (no bulging). Used by the vertebra's endplates and the specimen rig.
"""

from dataclasses import dataclass

import bonefe  # noqa: F401  (orders dolfinx_solver before dolfinx/petsc4py)

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.mesh import meshtags
from mpi4py import MPI


@dataclass(frozen=True)
class Layer:
    """An elastic layer: modulus E_mpa (MPa), Poisson ratio nu, thickness_mm (mm)."""

    E_mpa: float
    nu: float
    thickness_mm: float

    def __post_init__(self):
        if not (self.E_mpa > 0 and self.thickness_mm > 0 and -1.0 < self.nu < 0.5):
            raise ValueError("a layer needs E_mpa > 0, thickness_mm > 0 and nu in (-1, 0.5)")

    @property
    def normal_stiffness(self) -> float:
        """k_n = E / h (N/mm³)."""
        return self.E_mpa / self.thickness_mm

    @property
    def shear_stiffness(self) -> float:
        """k_s = G / h (N/mm³)."""
        return self.E_mpa / (2.0 * (1.0 + self.nu)) / self.thickness_mm

    def stiffnesses(self) -> list[float]:
        """Spring stiffness along the layer's axes: shear, shear, normal (N/mm³)."""
        return [self.shear_stiffness, self.shear_stiffness, self.normal_stiffness]


def layer_axes(normal) -> np.ndarray:
    """Rows: two unit axes in the layer's plane, then the unit normal."""
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    helper = np.eye(3)[int(np.argmin(np.abs(n)))]
    first = np.cross(n, helper)
    first /= np.linalg.norm(first)
    return np.array([first, np.cross(n, first), n])


def layer_springs(facets, layer: Layer, axes) -> list:
    """`ElasticitySolver` springs of the layer on `facets`: (facets, k_i, a_i) along each axis."""
    return [(facets, k, axis) for k, axis in zip(layer.stiffnesses(), axes)]


def spring_matrix(layer: Layer, axes) -> np.ndarray:
    """S = Σ_i k_i a_i a_iᵀ (N/mm³): the layer's traction per unit relative motion."""
    return sum(k * np.outer(a, a) for k, a in zip(layer.stiffnesses(), axes))


def plate_traction(matrix: np.ndarray, t, r, centre):
    """The traction (N/mm²) on a bone held still when the plate moves by t + r × (x − c): a
    callable x (3, n) -> (3, n) for `ElasticitySolver.solve`."""
    t, r, centre = (np.asarray(v, float) for v in (t, r, centre))

    def traction(x):
        w = t[:, None] + np.cross(r, (x.T - centre)).T
        return matrix @ w
    return traction


def layer_reactions(mesh, facets, matrix: np.ndarray, centre, motions, displacements, axes=np.eye(3)) -> np.ndarray:
    """(6, n): the force along each of `axes` (N) and the moment about them through `centre` (N·mm)
    that the layer on `facets` puts on the bone, ∫ S (w_j − u_j) ds, for each plate motion
    motions[j] = (t, r) (w_j = t + r × (x − c); (0, 0) for a support at rest) and the bone's
    displacement u_j under it. Two forms, compiled once: the motion, axis, centre, S and u are
    their coefficients. Collective."""
    facets = np.unique(facets)
    tags = meshtags(mesh, 2, facets, np.ones_like(facets))
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags, subdomain_id=1)
    t, r, axis, c = (fem.Constant(mesh, np.zeros(3)) for _ in range(4))
    S = fem.Constant(mesh, np.asarray(matrix, float))
    c.value[:] = np.asarray(centre, float)
    u = fem.Function(displacements[0].function_space)
    arm = ufl.SpatialCoordinate(mesh) - c
    pull = S * (t + ufl.cross(r, arm) - u)
    forms = (fem.form(ufl.dot(pull, axis) * ds), fem.form(ufl.dot(ufl.cross(arm, pull), axis) * ds))
    reactions = np.zeros((6, len(motions)))
    for j, ((t_j, r_j), u_j) in enumerate(zip(motions, displacements)):
        t.value[:], r.value[:] = t_j, r_j
        u.x.array[:] = u_j.x.array
        for i, a in enumerate(axes):
            axis.value[:] = a
            for row, form in zip((i, 3 + i), forms):
                reactions[row, j] = mesh.comm.allreduce(float(fem.assemble_scalar(form)), op=MPI.SUM)
    return reactions

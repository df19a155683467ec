"""Endplate loading of a vertebra through a compliant disc-like layer (or a stiff PMMA-like one).

Each endplate carries an elastic layer (`bonefe.plate_layer`: a bed of springs, Winkler
foundation, of normal stiffness k_n = E_layer / h and shear stiffness k_s = G_layer / h per unit
area) between the bone and a rigid plate. The caudal plate is fixed; the cranial plate moves rigidly,
w(x) = t + r × (x − c) about the cranial endplate centre c. Six plate motions (three translations,
three rotations along the frame's anterior, left, cranial axes) are solved once; the layer's force
and moment on the bone, S q for plate motion q, give any load by q = S⁻¹ g (S is symmetric by
reciprocity, a check). So a load g = (force N, moment N·mm) in frame components costs no new solve.

Why layers: single-vertebra FE and ex-vivo tests load the endplates through PMMA (or Wood's metal)
caps, while in vivo the disc spreads the load (Yeni et al. 2013, "W-layer" vs "D-layer" models;
a disc layer of E = 8 MPa vs PMMA of E = 2,500 MPa changes where high-risk tissue lies, mildly in
compression and strongly in flexion — the micro-FE study of 22 T9 bodies at
https://pmc.ncbi.nlm.nih.gov/articles/PMC3415303, its abstract). LAYERS holds both; the thickness is
half a lumbar disc height (≈ 10 mm discs) for the disc and a typical potting depth for PMMA.
Departure from the sources: they mesh the layer as a solid; a spring bed ignores the layer's
Poisson coupling (its bulging), which is what makes a real disc's nucleus load the endplate centre.
"""

import bonefe  # noqa: F401  (orders dolfinx_solver before dolfinx/petsc4py)

import numpy as np
from dolfinx import fem
from mpi4py import MPI

from bonefe.boundary import ExteriorFacets
from bonefe.errors import BonefeError
from bonefe.plate_layer import Layer, layer_reactions, layer_springs, plate_traction, spring_matrix
from bonefe.sites.vertebra.anatomy import VertebraFrame
from bonefe.solver import ElasticitySolver, StrainBasis, cell_strain

ENDPLATE_SLAB_MM = 4.0
"""Exterior facets of the body within this distance of its most cranial (caudal) point, facing
cranially (caudally) within ENDPLATE_NORMAL_DEG, form the endplate (endplates are concave by 1–2 mm)."""
ENDPLATE_NORMAL_DEG = 45.0


LAYERS = {"disc": Layer(8.0, 0.45, 5.0), "pmma": Layer(2500.0, 0.3, 5.0)}
"""disc: E 8 MPa (PMC3415303), ν 0.45 (nearly incompressible hydrated tissue), half a ≈ 10 mm disc;
pmma: E 2,500 MPa (PMC3415303), ν 0.3, 5 mm cap."""

UNIT_LOADS = {
    "axial compression": ((0.0, 0.0, -1.0), (0.0, 0.0, 0.0)),
    "flexion": ((0.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "extension": ((0.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    "lateral bending": ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)),
    "axial torsion": ((0.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
}
"""Unit loads on the cranial plate: (force, moment) in frame components (anterior, left, cranial).
Flexion turns the plate about the left axis so that the anterior body is compressed; lateral
bending (to the right) about the anterior axis; torsion about the body axis. Forces in N, moments
in N·mm."""


def endplate_facets(mesh, frame: VertebraFrame) -> tuple[np.ndarray, np.ndarray]:
    """Local exterior facet indices of the cranial and caudal endplates. Raises when one is empty."""
    facets = ExteriorFacets.of(mesh)
    local = frame.local(facets.midpoint)
    body = local[:, 0] >= frame.posterior_wall
    comm = mesh.comm
    top = comm.allreduce(float(local[body, 2].max(initial=-np.inf)), op=MPI.MAX)
    bottom = comm.allreduce(float(local[body, 2].min(initial=np.inf)), op=MPI.MIN)
    facing = facets.normal @ frame.cranial
    cos = np.cos(np.radians(ENDPLATE_NORMAL_DEG))
    cranial = body & (facing >= cos) & (local[:, 2] >= top - ENDPLATE_SLAB_MM)
    caudal = body & (facing <= -cos) & (local[:, 2] <= bottom + ENDPLATE_SLAB_MM)
    for name, chosen in (("cranial", cranial), ("caudal", caudal)):
        if comm.allreduce(int(chosen.sum()), op=MPI.SUM) == 0:
            raise BonefeError(f"the {name} endplate was not found on the mesh: check the vertebra's "
                              "landmarks (landmarks.cranial) or the label")
    return facets.index[cranial].astype(np.int32), facets.index[caudal].astype(np.int32)


class EndplateLoading:
    """The vertebra on its two endplate layers: the six plate motions solved once, then any load.

    strain_basis(): cell strain tensors under unit force ("force") and unit moment ("moment")
    components (frame components; N, N·mm), by superposition of the plate motions."""

    def __init__(self, mesh, E, nu, frame: VertebraFrame, layer: Layer, degree: int = 1):
        self.mesh, self.frame, self.layer = mesh, frame, layer
        self.cranial_facets, self.caudal_facets = endplate_facets(mesh, frame)
        axes = np.ascontiguousarray(frame.basis().T)  # anterior, left, cranial (the layers' normal)
        springs = layer_springs(self.cranial_facets, layer, axes) + layer_springs(self.caudal_facets, layer, axes)
        self.solver = ElasticitySolver(mesh, E, nu, np.empty(0, np.int32), degree=degree, springs=springs)
        self._K = spring_matrix(layer, axes)
        centre = np.asarray(frame.superior_centre, float)
        self._motions = [(axis, np.zeros(3)) for axis in axes] + [(np.zeros(3), axis) for axis in axes]
        self.displacements = [self.solver.solve([(self.cranial_facets, plate_traction(self._K, t, r, centre))])
                              for t, r in self._motions]
        self.stiffness = layer_reactions(mesh, self.cranial_facets, self._K, centre, self._motions,
                                         self.displacements, axes)
        """6×6 S: frame force and moment (about the cranial endplate centre) that the cranial layer
        exerts on the bone per unit plate motion (N/mm, N, N·mm)."""
        self._compliance = np.linalg.inv(self.stiffness)
        self._strains = np.stack([cell_strain(u) for u in self.displacements])

    def motion(self, force, moment) -> np.ndarray:
        """Plate motion (6,) that puts `force` (N) and `moment` (N·mm, about the cranial endplate
        centre), frame components, on the bone."""
        return self._compliance @ np.concatenate([np.asarray(force, float), np.asarray(moment, float)])

    def strain_basis(self) -> "EndplateBasis":
        """Cell strains (and displacements) per unit frame force ("force") and moment ("moment") component."""
        return EndplateBasis(self)

    def stiffness_axial(self) -> float:
        """Axial stiffness of bone + layers (N/mm): the cranial plate's axial force per unit descent."""
        return float(1.0 / self._compliance[2, 2])


class EndplateBasis(StrainBasis):
    """The strain basis of an `EndplateLoading`: cell strains per unit frame force ("force", N) and
    moment ("moment", N·mm) component, by superposition of the plate motions; `displacement` and
    `solver` as `bonefe.solver.UnitLoadBasis`, for the per-activity fields."""

    def __init__(self, loading: EndplateLoading):
        self.loading, self.solver = loading, loading.solver
        unit = loading._compliance  # column g: motion per unit generalized load g
        fields = np.tensordot(unit.T, loading._strains, axes=1)  # (6, cells, 3, 3)
        super().__init__({"force": fields[:3], "moment": fields[3:]})

    def displacement(self, forces: dict) -> fem.Function:
        """Displacement (mm) of the bone under {"force": N, "moment": N·mm} (frame components)."""
        self._check(forces)
        motion = self.loading.motion(forces.get("force", np.zeros(3)), forces.get("moment", np.zeros(3)))
        u = fem.Function(self.solver.V, name="displacement")
        for q, unit in zip(motion, self.loading.displacements):
            u.x.array[:] += q * unit.x.array
        return u

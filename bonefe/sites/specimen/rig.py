"""The virtual test machine: fixed and loaded regions, plate motions, reactions and the strain basis.

The fixed region is clamped (u = 0). The loaded region is bonded to a rigid plate that translates
without rotating (a platen of a test machine): u = t on it. Three plate translations t = e_x,
e_y, e_z are solved once on one operator (`bonefe.solver.ElasticitySolver.solve_prescribed`);
linearity gives every other motion. The force the plate puts on the specimen under translation
e_j along e_k is K_kj = a(u_j, u_k) (`ElasticitySolver.work`: u_k is e_k on the plate and 0 on
the fixed region, and u_j is in equilibrium everywhere else), so K is the 3 × 3 stiffness matrix
of the rig (N/mm, symmetric by reciprocity). The moment about the pivot c is a(u, r_k) with r_k
= e_k × (x − c) on the plate's nodes and 0 elsewhere, and the force on the fixed region a(u, e_k
there): minus the plate's force (equilibrium, a check).

Displacement control d: plate force F = K d, stiffness along d: F·d / |d|² (N/mm).
Force control F: t = K⁻¹ F. Either way the failure reading sees the strain per newton of plate
force, ε_F = Σ_j (K⁻¹)_jk ε(u_j) per component k (`strain_basis`, the same superposition as the
vertebra's endplates), so the rig's load is the unit vector along F with its magnitude as peak,
and the failure load is |F| at the onset of failure by the strain criterion (`bonefe.assessment`).
"""

import bonefe  # noqa: F401  (orders dolfinx_solver before dolfinx/petsc4py)

import numpy as np
from dolfinx import fem
from dolfinx.mesh import entities_to_geometry, meshtags
from mpi4py import MPI

from bonefe.assessment import BoneModel, RiskOptions, away_from_patches
from bonefe.boundary import ExteriorFacets
from bonefe.errors import BonefeError
from bonefe.sites.specimen.case import Region, Rig
from bonefe.solver import ElasticitySolver, StrainBasis, cell_strain

FIXED, LOADED = 1, 2
"""Facet tags of the fixed and loaded regions."""


def region_facets(mesh, region: Region, where: str, label_map=None) -> np.ndarray:
    """Local exterior facets of a region: all vertices within depth_mm of the plane (on the specimen's
    side or beyond), or the midpoint within one voxel of the label (label_map: world points (n, 3)
    -> label values). Raises BonefeError (every rank) when the region holds no facet."""
    facets = ExteriorFacets.of(mesh)
    if region.plane is not None:
        corners = mesh.geometry.x[entities_to_geometry(mesh, 2, facets.index.astype(np.int32))]
        tolerance = 1e-6 * _diameter(mesh)
        chosen = np.all(region.plane.height(corners.reshape(-1, 3)).reshape(-1, 3) <= region.plane.depth_mm + tolerance,
                        axis=1)
    else:
        chosen = label_map(facets.midpoint) == region.label
    if mesh.comm.allreduce(int(chosen.sum()), op=MPI.SUM) == 0:
        if region.plane is not None:
            gap = mesh.comm.allreduce(float(region.plane.height(mesh.geometry.x).min(initial=np.inf)), op=MPI.MIN)
            raise BonefeError(f"rig.{where}: the plane misses the specimen (its nearest point lies {gap:.3g} mm "
                              "beyond the plane's depth, along the normal): move the plane's point or raise depth_mm")
        raise BonefeError(f"rig.{where}: no surface of the specimen touches label {region.label}: check the label value")
    return facets.index[chosen].astype(np.int32)


def _diameter(mesh) -> float:
    """Diagonal of the mesh's bounding box (mm), over every rank."""
    x = mesh.geometry.x
    bounds = np.array(mesh.comm.allgather((x.min(axis=0, initial=np.inf), x.max(axis=0, initial=-np.inf))))
    return float(np.linalg.norm(bounds[:, 1].max(axis=0) - bounds[:, 0].min(axis=0)))


def rig_tags(mesh, rig: Rig, label_map=None):
    """Facet MeshTags (FIXED, LOADED) of the rig; BonefeError when a region is empty or they share nodes."""
    fixed = region_facets(mesh, rig.fixed, "fixed", label_map)
    loaded = region_facets(mesh, rig.loaded, "loaded", label_map)
    shared = np.intersect1d(entities_to_geometry(mesh, 2, fixed).ravel(), entities_to_geometry(mesh, 2, loaded).ravel())
    if mesh.comm.allreduce(int(shared.size), op=MPI.SUM):
        raise BonefeError("rig: the fixed and loaded regions touch (they share surface nodes): move the planes "
                          "apart or lower their depth_mm")
    both = np.concatenate([fixed, loaded])
    values = np.concatenate([np.full(fixed.size, FIXED, np.int32), np.full(loaded.size, LOADED, np.int32)])
    order = np.argsort(both)
    return meshtags(mesh, 2, both[order], values[order])


class RigLoading:
    """The specimen in its rig: the three plate translations solved once (module docstring).

    K: the 3 × 3 stiffness (N/mm); moments: 3 × 3, column j the moment (N·mm) about `pivot` per
    unit translation e_j; fixed_force: 3 × 3, the force on the fixed region per unit translation."""

    def __init__(self, mesh, E, nu, tags, pivot=None, degree: int = 1):
        self.mesh = mesh
        self.fixed, self.loaded = tags.find(FIXED), tags.find(LOADED)
        self.solver = ElasticitySolver(mesh, E, nu, np.concatenate([self.fixed, self.loaded]), degree=degree)
        self.translations = [self.solver.solve_prescribed(self.loaded, axis) for axis in np.eye(3)]
        self.pivot = self._centroid() if pivot is None else np.asarray(pivot, float)
        self.K = np.array([[self.solver.work(u, w) for u in self.translations] for w in self.translations])
        plate, grip = (fem.locate_dofs_topological(self.solver.V, 2, facets) for facets in (self.loaded, self.fixed))
        rotations = [self._on(plate, lambda x, e=e: np.cross(e, x - self.pivot)) for e in np.eye(3)]
        self.moments = np.array([[self.solver.work(u, w) for u in self.translations] for w in rotations])
        grips = [self._on(grip, lambda x, e=e: np.broadcast_to(e, x.shape)) for e in np.eye(3)]
        self.fixed_force = np.array([[self.solver.work(u, w) for u in self.translations] for w in grips])
        strains = np.stack([cell_strain(u) for u in self.translations])  # per unit translation
        self.force_strains = np.tensordot(np.linalg.inv(self.K).T, strains, axes=1)
        """Cell strains (3, cells, 3, 3) per newton of plate force along x, y, z."""

    def _on(self, dofs: np.ndarray, value) -> fem.Function:
        """A P-k function equal to value(x) (x: dof coordinates (n, 3) -> (n, 3)) on the (block) dofs, 0 elsewhere."""
        V = self.solver.V
        w = fem.Function(V)
        w.x.array.reshape(-1, 3)[dofs] = value(V.tabulate_dof_coordinates()[dofs])
        return w

    def _centroid(self) -> np.ndarray:
        """Area centroid of the loaded region (mm)."""
        facets = ExteriorFacets.of(self.mesh)
        on = np.isin(facets.index, self.loaded)
        area = self.mesh.comm.allreduce(float(facets.area[on].sum()), op=MPI.SUM)
        moment = self.mesh.comm.allreduce((facets.area[on, None] * facets.midpoint[on]).sum(axis=0), op=MPI.SUM)
        return moment / area

    def motion(self, rig: Rig) -> np.ndarray:
        """The plate translation (mm) of the rig's load (displacement, or the one carrying the force)."""
        if rig.displacement_mm is not None:
            return np.asarray(rig.displacement_mm, float)
        return np.linalg.solve(self.K, np.asarray(rig.force_n, float))

    def readouts(self, rig: Rig) -> dict:
        """Plate force and moment, the fixed region's force, plate translation and stiffness along it."""
        t = self.motion(rig)
        force = self.K @ t
        return {"plate_translation_mm": t.tolist(), "reaction_force_n": force.tolist(),
                "reaction_moment_nmm": (self.moments @ t).tolist(), "moment_pivot_mm": self.pivot.tolist(),
                "fixed_region_force_n": (self.fixed_force @ t).tolist(),
                "stiffness_n_per_mm": float(force @ t / (t @ t)), "stiffness_matrix_n_per_mm": self.K.tolist()}

    def displacement(self, t) -> fem.Function:
        """Displacement (mm) under plate translation t (mm)."""
        u = fem.Function(self.solver.V, name="displacement")
        for component, unit in zip(np.asarray(t, float), self.translations):
            u.x.array[:] += component * unit.x.array
        return u

    def strain_basis(self) -> "RigBasis":
        return RigBasis(self)


class RigBasis(StrainBasis):
    """Cell strains per newton of plate force ("force", 3 world components); `displacement` and
    `solver` as `bonefe.solver.UnitLoadBasis`, for the fields."""

    def __init__(self, loading: RigLoading):
        self.loading, self.solver = loading, loading.solver
        super().__init__({"force": loading.force_strains})

    def displacement(self, forces: dict) -> fem.Function:
        self._check(forces)
        return self.loading.displacement(np.linalg.solve(self.loading.K, np.asarray(forces["force"], float)))


class RigModel(BoneModel):
    """The specimen in its rig: the generic failure reading (`bonefe.assessment.BoneModel`) over the
    rig's basis, cells within the failure options' exclusion distance of either region not evaluated."""

    def __init__(self, mesh, tags, E, labels, nu, options: RiskOptions, pivot=None, degree: int = 1, lesion=None):
        self.loading = RigLoading(mesh, E, nu, tags, pivot, degree)
        away = away_from_patches(mesh, tags, options.exclusion_mm)
        super().__init__(mesh, labels, options, self.loading.solver, self.loading.strain_basis(), away, lesion)

"""The virtual test machine: fixed and loaded regions, plate motions, reactions and the strain basis.

The fixed region is clamped (u = 0). The loaded region is bonded to a rigid plate: u = t + θ × (x − c)
on it, a translation t and (when the rig lets the plate rotate, `Rig.rotates`) a small rotation θ
about the pivot c. Each unit motion — the translations e_x, e_y, e_z and, if the plate rotates, the
rotations e_x, e_y, e_z about c — is solved once on one operator
(`bonefe.solver.ElasticitySolver.solve_prescribed`); linearity gives every other motion. The
generalised force the plate puts on the specimen (force N, moment N·mm about c) under unit motion j,
along unit motion k, is K_kj = a(u_j, w_k) (`ElasticitySolver.work`: w_k is the k-th unit motion on
the plate and 0 on the fixed region, and u_j is in equilibrium everywhere else), so K is the rig's
stiffness matrix (3 × 3 for a plate that only translates, 6 × 6 otherwise; symmetric by
reciprocity). The moment of a plate that does not rotate and the fixed region's force and moment
are read the same way (the fixed region's: minus the plate's, an equilibrium check). A region
may instead hold its support or plate through a compliant layer (`Region.layer`, `bonefe.plate_layer`:
a bed of springs S across its plane): the layer's springs join the operator, a unit plate motion w
is the traction S w on the bone, and the plate's generalised force is ∫ S (w − u) ds.

Each motion component is prescribed (displacement, rotation; a locked rotation is a zero one) or
carries a prescribed load (force, moment); the others follow from K (`RigLoading.state`). The
failure reading sees the strain per unit of generalised plate load, ε_Q = Σ_j (K⁻¹)_jk ε(u_j) per
component k (`strain_basis`: "force" per N and, with rotation, "moment" per N·mm — the vertebra's
superposition), so the rig's load is its generalised load scaled to unit magnitude and the
failure load is that magnitude at the onset of failure by the strain criterion (`bonefe.assessment`).
"""

import bonefe  # noqa: F401  (orders dolfinx_solver before dolfinx/petsc4py)

import numpy as np
from dolfinx import fem
from dolfinx.mesh import entities_to_geometry, meshtags
from mpi4py import MPI

from bonefe.assessment import BoneModel, RiskOptions, away_from_patches
from bonefe.boundary import ExteriorFacets
from bonefe.errors import BonefeError
from bonefe.plate_layer import layer_axes, layer_reactions, layer_springs, plate_traction, spring_matrix
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
    """The specimen in its rig: the plate's unit motions solved once (module docstring).

    K: the stiffness over the solved motions (3 × 3 or 6 × 6; N/mm, N/rad, N·mm/mm, N·mm/rad);
    plate: 6 × n, the plate's force (N) and moment about `pivot` (N·mm) per unit motion;
    fixed_reaction: 6 × n, the same for the fixed region."""

    def __init__(self, mesh, E, nu, tags, rig: Rig, degree: int = 1):
        self.mesh = mesh
        self.fixed, self.loaded = tags.find(FIXED), tags.find(LOADED)
        regions = [(self.fixed, _layer(rig.fixed)), (self.loaded, _layer(rig.loaded))]
        springs = [spring for facets, layer in regions if layer for spring in layer_springs(facets, *layer)]
        bonded = [facets for facets, layer in regions if layer is None]
        self.solver = ElasticitySolver(mesh, E, nu, np.concatenate([np.empty(0, np.int32), *bonded]),
                                       degree=degree, springs=springs)
        self.pivot = self._centroid() if rig.pivot is None else np.asarray(rig.pivot, float)
        every = [(e, np.zeros(3)) for e in np.eye(3)] + [(np.zeros(3), e) for e in np.eye(3)]
        units = every if rig.rotates else every[:3]
        (_, fixed_layer), (_, plate_layer) = regions
        if plate_layer is None:
            # a translation as a constant (exact), a rotation as a field on the dof points (x: (3, n))
            self.motions = [self.solver.solve_prescribed(self.loaded, t if not r.any() else
                                                         lambda x, r=r: np.cross(r, x.T - self.pivot).T)
                            for t, r in units]
            self.K = np.array([[self.solver.work(u, w) for u in self.motions] for w in self.motions])
            plate = fem.locate_dofs_topological(self.solver.V, 2, self.loaded)
            self.plate = np.vstack([self.K, self._reactions(plate, every[len(units):])])
        else:
            S = spring_matrix(*plate_layer)
            self.motions = [self.solver.solve([(self.loaded, plate_traction(S, t, r, self.pivot))]) for t, r in units]
            self.plate = layer_reactions(mesh, self.loaded, S, self.pivot, units, self.motions)
            self.K = self.plate[:len(units)]
        if fixed_layer is None:
            self.fixed_reaction = self._reactions(fem.locate_dofs_topological(self.solver.V, 2, self.fixed), every)
        else:
            self.fixed_reaction = layer_reactions(mesh, self.fixed, spring_matrix(*fixed_layer), self.pivot,
                                                  [(np.zeros(3), np.zeros(3))] * len(units), self.motions)
        strains = np.stack([cell_strain(u) for u in self.motions])  # per unit motion
        self.load_strains = np.tensordot(np.linalg.inv(self.K).T, strains, axes=1)
        """Cell strains (n, cells, 3, 3) per unit of each generalised plate load component."""

    def _reactions(self, dofs: np.ndarray, motions) -> np.ndarray:
        """(len(motions), n): a(u_j, w_k), w_k the k-th rigid motion (t, r) on `dofs` and 0 elsewhere."""
        V = self.solver.V
        x = V.tabulate_dof_coordinates()[dofs]
        rows = []
        for t, r in motions:
            w = fem.Function(V)
            w.x.array.reshape(-1, 3)[dofs] = _rigid(t, r, self.pivot)(x)
            rows.append([self.solver.work(u, w) for u in self.motions])
        return np.array(rows).reshape(len(motions), len(self.motions))

    def _centroid(self) -> np.ndarray:
        """Area centroid of the loaded region (mm)."""
        facets = ExteriorFacets.of(self.mesh)
        on = np.isin(facets.index, self.loaded)
        area = self.mesh.comm.allreduce(float(facets.area[on].sum()), op=MPI.SUM)
        moment = self.mesh.comm.allreduce((facets.area[on, None] * facets.midpoint[on]).sum(axis=0), op=MPI.SUM)
        return moment / area

    def state(self, rig: Rig) -> np.ndarray:
        """Amplitudes of the solved unit motions under the rig's load: the plate translation (mm) and,
        if it rotates, its rotation (rad); prescribed components as given, the others from K."""
        n = len(self.motions)
        known = np.array([rig.force_n is None] * 3 + [rig.rotation_deg is not None] * 3)[:n]
        rotation = np.radians(rig.rotation_load) if rig.rotation_deg is not None else rig.rotation_load
        given = np.concatenate([rig.translation_load, rotation])[:n]
        q = np.where(known, given, 0.0)
        free = ~known
        if free.any():
            q[free] = np.linalg.solve(self.K[np.ix_(free, free)], given[free] - self.K[np.ix_(free, known)] @ q[known])
        return q

    def plate_load(self, rig: Rig) -> np.ndarray:
        """The load along the solved motions under the rig's load: the plate force (N) and, when the
        plate rotates, its moment (N·mm); a locked plate's moment is a reaction, not part of the load."""
        return self.K @ self.state(rig)

    def readouts(self, rig: Rig) -> dict:
        """Plate force and moment, the fixed region's, plate translation and rotation, stiffnesses."""
        q = self.state(rig)
        load, fixed = self.plate @ q, self.fixed_reaction @ q
        t, theta = q[:3], np.concatenate([q[3:], np.zeros(3)])[:3]
        out = {"plate_translation_mm": t.tolist(), "plate_rotation_deg": np.degrees(theta).tolist(),
               "reaction_force_n": load[:3].tolist(), "reaction_moment_nmm": load[3:].tolist(),
               "moment_pivot_mm": self.pivot.tolist(), "fixed_region_force_n": fixed[:3].tolist(),
               "fixed_region_moment_nmm": fixed[3:].tolist(), "stiffness_matrix": self.K.tolist()}
        if t @ t > 0:
            out["stiffness_n_per_mm"] = float(load[:3] @ t / (t @ t))
        if theta @ theta > 0:
            out["rotational_stiffness_nmm_per_deg"] = float(load[3:] @ theta / (theta @ theta) * np.pi / 180.0)
        return out

    def displacement(self, q) -> fem.Function:
        """Displacement (mm) under the unit motions' amplitudes q (mm, rad)."""
        u = fem.Function(self.solver.V, name="displacement")
        for amplitude, unit in zip(np.asarray(q, float), self.motions):
            u.x.array[:] += amplitude * unit.x.array
        return u

    def strain_basis(self) -> "RigBasis":
        return RigBasis(self)


def _rigid(t, r, centre):
    """The rigid motion x (n, 3) -> t + r × (x − c) (n, 3) (small rotation r, rad)."""
    return lambda x: np.broadcast_to(t, np.shape(x)) + np.cross(r, x - centre)


def _layer(region: Region):
    """(Layer, its axes: two in the plane, the normal last) of a region with a layer, else None."""
    return None if region.layer is None else (region.layer, layer_axes(region.plane.normal))


class RigBasis(StrainBasis):
    """Cell strains per unit of plate load: "force" (3 world components, per N) and, with a rotating
    plate, "moment" (per N·mm about the pivot); `displacement` and `solver` as
    `bonefe.solver.UnitLoadBasis`, for the fields."""

    def __init__(self, loading: RigLoading):
        self.loading, self.solver = loading, loading.solver
        strains = loading.load_strains
        super().__init__({"force": strains[:3]} | ({"moment": strains[3:]} if len(strains) > 3 else {}))

    def displacement(self, forces: dict) -> fem.Function:
        self._check(forces)
        load = np.concatenate([np.asarray(forces.get(name, np.zeros(3)), float) for name in self._strain])
        return self.loading.displacement(np.linalg.solve(self.loading.K, load))


class RigModel(BoneModel):
    """The specimen in its rig: the generic failure reading (`bonefe.assessment.BoneModel`) over the
    rig's basis, cells within the failure options' exclusion distance of either region not evaluated."""

    def __init__(self, mesh, tags, E, labels, nu, options: RiskOptions, rig: Rig, degree: int = 1, lesion=None):
        self.loading = RigLoading(mesh, E, nu, tags, rig, degree)
        away = away_from_patches(mesh, tags, options.exclusion_mm)
        super().__init__(mesh, labels, options, self.loading.solver, self.loading.strain_basis(), away, lesion)

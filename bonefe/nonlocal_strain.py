"""Nonlocal strain: the strain tensor averaged over a sphere of bone, on a fixed lattice.

Why. The peak of a finite-element strain field keeps rising as the mesh resolves a stress
concentration, so a failure load read off the worst cells depends on the element size (phantom
femur: +13 % at 3 mm against 1.4 mm with an 8 mm³ worst-cell volume). The strain averaged over a
sphere of fixed radius R is a property of the continuum, not of the mesh (nonlocal continuum:
Pijaudier-Cabot & Bažant 1987, J Eng Mech 113:1512; CT-based femur strength with principal
strains averaged over a sphere of a few mm: Qasim et al. 2016, Osteoporos Int 27:2815, cited from
memory).

How. Bone is binned on a lattice of spacing R / LATTICE_PER_RADIUS anchored at the world origin,
so every mesh of a bone sees the same bins. Each owned cell spreads its volume over the bins that
hold its quadrature points (m³ Gauss-Jacobi points, m chosen so each stands for at most an eighth
of a bin, so every bin a cell overlaps gets its share). The nonlocal strain at a bin centre is the
volume-weighted mean strain of the bins whose centres lie within R of it: an integer stencil, so
rounding never decides membership. Only bone is averaged: the operator is built once per mesh and
radius (`sphere_average`, shared by the bone, its lesion-free twin and every what-if on that mesh)
and weighted by a bone indicator, nonlocal ε = A(bone·ε) / A(bone), so lesion tissue drops out and
the sphere is cut by the bone surface (the weight normalised over the material the sphere holds,
as in Pijaudier-Cabot & Bažant 1987). The indicator is taken per quadrature point
(`point_weights`; in bonefe the CT's label at the point, `bonefe.assessment.failure_points`) or,
for fields without a label map, per cell.

Lesions: by the CT, not by the tetrahedra. A lesion's outline cuts tetrahedra, and where failure
starts, on the lesion's rim where it breaches the cortex, the lattice point lies within a fraction
of a voxel of it. Weighting and evaluating by the tetrahedron's label (the majority of its CT
samples, `bonefe.materials`) made each mesh decide whether that point and its neighbours are bone:
the demo's femur (20 mm lytic lesion through the inferomedial neck cortex) and its remeshed mirror
image failed at 3424 / 2257 N on 3 mm meshes, 3406 / 2982 N on 5 mm ones
(`bonefe.validation.convergence.LESION_REMAINDER`). Reading the label at the lattice points and
weighting the quadrature points by theirs takes that decision from the CT, the same on every mesh:
every mesh from 5 to 1.75 mm then fails at the rim, both sides within 2328–2570 N.

Where it is evaluated. Failure is read at the points that lie in the mesh (`centred_in`) and, by the
CT, in bone (`bonefe.assessment.failure_points`): a bin cut by the surface whose centre lies outside
the bone still lends its bone to its neighbours' spheres but is not itself evaluated. Such a bin's
sphere reaches only the outermost bone, and which of them hold any bone, and how little, depends on
how deep the cells' quadrature points reach: deeper on a coarse mesh. Evaluating them made the
phantom femur's failure load fall by about 3 % per refinement (+6.8 % at 3 mm against 1.1 mm; at 1.4
mm the failing bin held 8 % bone). At the points in the bone it does not trend: 3 mm lies within 0.2
% of 1.1 mm, and meshes from 6 to 1.1 mm scatter by up to 4.5 % as the surface moves the outermost
points in or out (docs/validation.md).

The average is linear, so it is applied once to each unit-load strain and superposition holds.
MPI: bins straddling ranks are summed through a halo of the bins inside each rank's bounding box
grown by R; each bin is evaluated by the lowest rank holding part of it, so the result does not
depend on the partition beyond rounding.
"""

from __future__ import annotations

import weakref

import basix
import numpy as np
import scipy.sparse as sp
from mpi4py import MPI

DEFAULT_RADIUS_MM = 2.0
"""Radius (mm) of the averaging sphere: the radius whose strength ratios of bones with drill holes
lie within the documented bound of the experiments (3 mm over-smooths a 3 mm hole: torsion ratio
0.84 against 0.63 published); see docs/validation.md."""
LATTICE_PER_RADIUS = 2
"""Lattice bins per radius: spacing R / 2 (1 mm at the default), 33 bins in a full sphere. Three
(123 bins) moved the phantom femur's failure load by ~2 % (within its mesh-to-mesh scatter) but
costs 3.4x the bins and ~1 GB of stencil at 2 mm; the bin count, not the mesh, sets the cost."""

_BITS = 21
_SHIFT = 1 << (_BITS - 1)


def _keys(ijk: np.ndarray) -> np.ndarray:
    """One int64 per lattice index triple (each component within ±2^20 bins)."""
    ijk = np.asarray(ijk, np.int64) + _SHIFT
    return (ijk[:, 0] << (2 * _BITS)) | (ijk[:, 1] << _BITS) | ijk[:, 2]


def _ijk(keys: np.ndarray) -> np.ndarray:
    mask = (1 << _BITS) - 1
    return np.column_stack([keys >> (2 * _BITS), (keys >> _BITS) & mask, keys & mask]) - _SHIFT


def _stencil(reach: float) -> np.ndarray:
    """Integer offsets (k, 3) with |offset| <= reach bins."""
    r = int(np.floor(reach + 1e-9))
    axis = np.arange(-r, r + 1)
    offsets = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    return offsets[(offsets**2).sum(axis=1) <= reach**2 + 1e-9]


def _quadrature_points(vertices: np.ndarray, volumes: np.ndarray, bin_volume: float):
    """Points (n, q, 3) and volume shares (n, q) of tetrahedra `vertices` (n, 4, 3), grouped by m."""
    levels = np.maximum(1, np.ceil(np.cbrt(volumes / bin_volume))).astype(int)
    for m in np.unique(levels):
        cells = np.nonzero(levels == m)[0]
        reference, weights = basix.make_quadrature(basix.CellType.tetrahedron, 2 * int(m) - 1,
                                                   rule=basix.QuadratureType.gauss_jacobi)
        v = vertices[cells]
        points = v[:, None, 0] + np.einsum("qj,njx->nqx", reference, v[:, 1:] - v[:, None, 0])
        yield cells, points, volumes[cells, None] * (6.0 * np.asarray(weights))[None, :]


def _joined(parts: list, dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _containing(tree, vertices: np.ndarray, points: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    """A cell (row of `vertices` (n, 4, 3), the cells of the bounding-box `tree`) holding each point
    (m, 3), -1 for none: box candidates from dolfinx, then barycentric coordinates in numpy
    (dolfinx's GJK test took 11 s for the 230k points of the phantom femur, this 0.5 s)."""
    from dolfinx import geometry

    cell = np.full(len(points), -1, np.int32)
    for start in range(0, len(points), chunk):
        p = np.ascontiguousarray(points[start:start + chunk], dtype=np.float64)
        candidates = geometry.compute_collisions_points(tree, p)
        rows = np.repeat(np.arange(len(p)), np.diff(candidates.offsets))
        v = vertices[candidates.array]
        edges = np.transpose(v[:, 1:] - v[:, :1], (0, 2, 1))
        barycentric = np.linalg.solve(edges, (p[rows] - v[:, 0])[..., None])[..., 0]
        inside = (barycentric >= -1e-12).all(axis=1) & (barycentric.sum(axis=1) <= 1.0 + 1e-12)
        cell[start + rows[inside]] = candidates.array[inside]
    return cell


class SphereAverage:
    """The linear map from per-cell fields to their sphere averages at this rank's lattice points.

    mesh: dolfinx tetrahedral mesh (mm). radius_mm: R. Collective over mesh.comm.
    Attributes: points (m, 3) world mm, the centres of the bins this rank evaluates; keys (m,) their
    lattice keys; bin_volume (m,) the mesh volume in each bin (mm³).
    """

    def __init__(self, mesh, radius_mm: float = DEFAULT_RADIUS_MM):
        from bonefe.errors import BonefeError

        if not radius_mm > 0:
            raise BonefeError(f"the strain averaging radius must be positive in mm, got {radius_mm}")
        self.comm, self.radius_mm = mesh.comm, float(radius_mm)
        self._spacing = self.radius_mm / LATTICE_PER_RADIUS
        self._n = mesh.topology.index_map(3).size_local
        self._vertices = vertices = mesh.geometry.x[mesh.geometry.dofmaps[0][:self._n, :4]]
        self._volumes = np.abs(np.linalg.det(vertices[:, 1:] - vertices[:, :1])) / 6.0
        cells, keys, shares, points = [], [], [], []
        for c, p, share in self._quadrature():
            cells.append(c)
            keys.append(_keys(np.floor(p / self._spacing)))
            shares.append(share)
            points.append(p)
        self._partial_keys, rows = np.unique(_joined(keys, np.int64), return_inverse=True)
        self._quadrature_table = (rows, _joined(cells, int), _joined(shares, float))
        self.quadrature_points = np.concatenate(points) if points else np.zeros((0, 3))
        """This rank's quadrature points (k, 3), world mm, in the order `point_weights` takes weights."""
        self._cells_to_partials = self._matrix(*self._quadrature_table)
        self._plan(self._partial_keys, _stencil(LATTICE_PER_RADIUS))
        self.points = (_ijk(self.keys) + 0.5) * self._spacing
        self.bin_volume = self._bins(np.ones((self._n, 1)))[:, 0]
        self._locate(mesh, vertices)

    def _quadrature(self):
        """This rank's quadrature points, group by group: their cells (k,), points (k, 3) world mm and
        volume shares (k,) mm³ (`_quadrature_points`), in the same order on every call."""
        for cells, points, share in _quadrature_points(self._vertices, self._volumes, self._spacing**3 / 8.0):
            yield np.repeat(cells, points.shape[1]), points.reshape(-1, 3), share.ravel()

    def _matrix(self, rows: np.ndarray, cells: np.ndarray, shares: np.ndarray) -> sp.csr_matrix:
        """(partial bins x local cells) sums of the quadrature points' shares (mm³)."""
        return sp.csr_matrix((shares, (rows, cells)), shape=(len(self._partial_keys), self._n))

    def point_weights(self, weight) -> sp.csr_matrix:
        """Weights per quadrature point, for `__call__` and `fraction`: (this rank's partial bins x local
        cells), each cell's volume share in each bin (mm³) from its quadrature points p, each times
        weight(p): a callable on world points (k, 3) mm (e.g. 1 in bone and 0 in lesion tissue by the
        CT's label map), or the values (k,) at `quadrature_points` already."""
        rows, cells, shares = self._quadrature_table
        values = weight(self.quadrature_points) if callable(weight) else weight
        return self._matrix(rows, cells, shares * np.asarray(values, float))

    def _weights(self, weight) -> sp.csr_matrix:
        """`point_weights`' matrix as is; per-cell weights (n_local,) spread over the cells' shares."""
        if sp.issparse(weight):
            return weight
        return self._cells_to_partials @ sp.diags(np.asarray(weight, float)[:self._n])

    def _plan(self, partial_keys: np.ndarray, stencil: np.ndarray) -> None:
        """Halo plan, bin summation and the stencil sum, restricted to the bins this rank owns."""
        comm, reach = self.comm, int(np.abs(stencil).max())
        ijk = _ijk(partial_keys)
        box = (ijk.min(axis=0) - reach, ijk.max(axis=0) + reach) if len(ijk) else None
        boxes = comm.allgather(box)
        self._send = [np.zeros(0, np.int64) if q == comm.rank or b is None else
                      np.nonzero(np.all((ijk >= b[0]) & (ijk <= b[1]), axis=1))[0]
                      for q, b in enumerate(boxes)]
        received = comm.alltoall([partial_keys[s] for s in self._send])
        all_keys = np.concatenate([partial_keys, *received])
        sources = np.concatenate([np.full(len(partial_keys), comm.rank),
                                  *[np.full(len(k), q) for q, k in enumerate(received)]])
        bin_keys, bin_of = np.unique(all_keys, return_inverse=True)
        self._sum = sp.csr_matrix((np.ones(len(all_keys)), (bin_of, np.arange(len(all_keys)))),
                                  shape=(len(bin_keys), len(all_keys)))
        lowest = np.full(len(bin_keys), comm.size)
        np.minimum.at(lowest, bin_of, sources)
        owned = np.nonzero(np.isin(bin_keys, partial_keys) & (lowest == comm.rank))[0]
        neighbours = _keys((_ijk(bin_keys[owned])[:, None, :] + stencil[None, :, :]).reshape(-1, 3))
        position = np.clip(np.searchsorted(bin_keys, neighbours), 0, len(bin_keys) - 1)
        found = bin_keys[position] == neighbours
        row = np.repeat(np.arange(len(owned)), len(stencil))[found]
        stencil_sum = sp.csr_matrix((np.ones(found.sum()), (row, position[found])),
                                    shape=(len(owned), len(bin_keys)))
        self._sphere = (stencil_sum @ self._sum).tocsr()
        self._own = self._sum[owned]
        self.keys = bin_keys[owned]

    def _locate(self, mesh, vertices: np.ndarray) -> None:
        """Which owned cell, on which rank, holds each point: this rank's cells first, then the
        points left over are looked up on every other rank and go to the lowest that holds them."""
        from dolfinx import geometry

        comm = self.comm
        tree = geometry.bb_tree(mesh, 3, entities=np.arange(len(vertices), dtype=np.int32))
        self._home = _containing(tree, vertices, self.points)
        self._lost = np.flatnonzero(self._home < 0)
        asked = comm.allgather(self.points[self._lost])
        found = [np.full(len(p), -1, np.int32) if q == comm.rank else _containing(tree, vertices, p)
                 for q, p in enumerate(asked)]
        holder = np.concatenate([np.where(f >= 0, comm.rank, comm.size) for f in found]).astype(np.int32)
        comm.Allreduce(MPI.IN_PLACE, holder, op=MPI.MIN)
        holder = np.split(holder, np.cumsum([len(p) for p in asked])[:-1])
        self._lost_holder = holder[comm.rank]
        self._serve = [f[h == comm.rank] for f, h in zip(found, holder)]

    def centred_in(self, indicator: np.ndarray) -> np.ndarray:
        """True (m,) where the point lies in a cell (of any rank) whose per-local-cell `indicator` is
        True; False for points outside the mesh (bins cut by the surface whose centre is outside)."""
        indicator = np.asarray(indicator, bool)
        inside = np.zeros(len(self.keys), bool)
        local = self._home >= 0
        inside[local] = indicator[self._home[local]]
        for q, values in enumerate(self.comm.alltoall([indicator[cells] for cells in self._serve])):
            inside[self._lost[self._lost_holder == q]] = values
        return inside

    def _exchange(self, partials: np.ndarray) -> np.ndarray:
        """This rank's partial bin sums followed by those received from the other ranks."""
        received = self.comm.alltoall([partials[s] for s in self._send])
        return np.concatenate([partials, *received], axis=0)

    def _bins(self, field: np.ndarray) -> np.ndarray:
        """Volume integrals of a per-cell field (n, k) over each owned bin's bone (mm³ x field)."""
        return self._own @ self._exchange(self._cells_to_partials @ field)

    def __call__(self, field: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Weighted sphere averages (m, ...) of a per-cell field (n_local, ...) at this rank's points:
        A(weight·field) / A(weight), weight per local cell (e.g. 1 for bone, 0 for lesion tissue) or
        per quadrature point (`point_weights`); 0 where the sphere holds no weight."""
        field = np.asarray(field, float)
        weighted = self._weights(weight)
        partials = weighted @ field.reshape(len(field), -1)  # a view of the field: no dense copy
        integral = self._sphere @ self._exchange(np.column_stack([weighted.sum(axis=1).A1, partials]))
        total = integral[:, :1]
        mean = np.divide(integral[:, 1:], total, out=np.zeros_like(integral[:, 1:]), where=total > 0)
        return mean.reshape((len(self.keys),) + field.shape[1:])

    def fraction(self, weight) -> np.ndarray:
        """Weighted volume fraction (m,) of each owned bin: weight per local cell (e.g. True in bone
        cells) or per quadrature point (`point_weights`)."""
        inside = self._own @ self._exchange(self._weights(weight).sum(axis=1).A)
        return inside[:, 0] / self.bin_volume


_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def sphere_average(mesh, radius_mm: float = DEFAULT_RADIUS_MM) -> SphereAverage:
    """The SphereAverage of `mesh` at radius_mm, built once and shared while the mesh lives."""
    per_mesh = _CACHE.setdefault(mesh, {})
    if radius_mm not in per_mesh:
        per_mesh[radius_mm] = SphereAverage(mesh, radius_mm)
    return per_mesh[radius_mm]

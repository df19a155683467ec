"""Linear elasticity on a tetrahedral bone mesh: one operator, many load cases.

Physics: small-strain, isotropic linear elasticity with a modulus E per cell (MPa) and a Poisson
ratio ν (per cell or one value),

    σ(u) = 2 μ ε(u) + λ tr(ε(u)) I,   ε(u) = ½(∇u + ∇uᵀ),
    μ = E / (2(1 + ν)),   λ = E ν / ((1 + ν)(1 − 2ν)),

find u with u = 0 on the support facets (the distal cut, or single components on roller facets)
such that ∫ σ(u):ε(v) dx = Σ_k ∫_Γk t_k·v ds + ∫ f·v dx for all admissible v. Units: mm, N, MPa,
so tractions t are in N/mm² (= MPa) and body forces f in N/mm³.

Discretisation: vector Lagrange P1 (P2 selectable) on the dolfinx mesh. The stiffness matrix is
assembled once and one PETSc KSP is set up once (CG + smoothed-aggregation AMG, GAMG by default,
with the six rigid-body modes as near-nullspace, block size 3); every load case then costs one
right-hand side and one Krylov solve. Linearity makes any load a superposition of unit loads
(:class:`UnitLoadBasis`): ten activities on one contact patch cost three solves.

Per-cell arrays are over the local owned cells of the calling MPI rank; global numbers (areas,
energies) are MPI reductions, so results do not depend on the number of ranks.
"""

from __future__ import annotations

import gc
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path

import bonefe  # noqa: F401  (orders dolfinx_solver before dolfinx/petsc4py)

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from dolfinx import fem, la
from dolfinx.io import XDMFFile
from mpi4py import MPI
from petsc4py import PETSc

from bonefe.errors import BonefeError

#: Default PETSc options (keys without prefix). CG on the SPD stiffness matrix, preconditioned by
#: GAMG smoothed aggregation with Chebyshev/Jacobi smoothing (as in the dolfinx elasticity demo).
#: ``ksp_rtol`` = 1e-10 is relative to the preconditioned norm of the right-hand side (PETSc's
#: default norm for CG): far below any modelling error, so strains are converged to ~1e-9.
#: ``pc_gamg_coarse_eq_limit`` = 5000 (PETSc default 50) stops coarsening at a few thousand
#: unknowns, solved exactly by LU: on the phantom femur (119k and ~300k DOFs) CG iterations fell
#: from 24–33 to 21–23 and setup + six unit solves by 7–23 %; the level-0 Galerkin product, 80 %
#: of the GAMG setup, is unchanged. Tried and rejected there (benchmarks/solver.py):
#: pc_gamg_threshold 0.02/0.05/0/−1, pc_gamg_agg_nsmooths 0 (setup halved, 115 iterations),
#: pc_gamg_aggressive_coarsening 0 or 2, pc_gamg_aggressive_square_graph false,
#: mg_levels_ksp_max_it 1 or 3 (no gain beyond noise), pc_gamg_esteig_ksp_max_it 5 (Chebyshev
#: bounds too low: CG reports an indefinite preconditioner).
DEFAULT_PETSC_OPTIONS: dict[str, object] = {
    "ksp_type": "cg",
    "ksp_rtol": 1.0e-10,
    "ksp_atol": 1.0e-30,
    "ksp_max_it": 2000,
    "pc_type": "gamg",
    "pc_gamg_type": "agg",
    "pc_gamg_threshold": 0.01,
    "pc_gamg_coarse_eq_limit": 5000,
    "mg_levels_ksp_type": "chebyshev",
    "mg_levels_pc_type": "jacobi",
    "mg_levels_ksp_chebyshev_esteig_steps": 10,
}

#: Smoother settings for one retry when CG finds the GAMG preconditioner indefinite: the Chebyshev
#: smoothers' largest eigenvalue, estimated in 10 steps, can fall short on one rank's part of a
#: strongly heterogeneous operator (measured: a segmentation state of the demo's uncertainty study
#: on 2 ranks, DIVERGED_INDEFINITE_PC after 5 iterations, while 1 rank converged). More steps and
#: a wider upper margin (PETSc's default for GAMG is 1.1) make the bound safe at a little more work.
SAFER_SMOOTHER_OPTIONS: dict[str, object] = {
    "mg_levels_ksp_chebyshev_esteig_steps": 50,
    "mg_levels_ksp_chebyshev_esteig": "0,0.1,0,1.3",
}

#: Options that switch the preconditioner to hypre BoomerAMG (pass as ``petsc_options``); needs a
#: PETSc built with hypre (the dolfinx-solver wheel has none: a clear BonefeError then).
BOOMERAMG_OPTIONS: dict[str, object] = {
    "pc_type": "hypre",
    "pc_hypre_type": "boomeramg",
    "pc_hypre_boomeramg_strong_threshold": 0.7,
    "pc_hypre_boomeramg_nodal_coarsen": 6,
    "pc_hypre_boomeramg_vec_interp_variant": 3,
}

Traction = np.ndarray | Sequence[float] | Callable[[np.ndarray], np.ndarray]
Load = tuple[np.ndarray, Traction]

_prefix_counter = itertools.count()


def lame(E, nu):
    """Lamé parameters (μ, λ) in MPa from Young's modulus E (MPa) and Poisson ratio ν."""
    return E / (2.0 * (1.0 + nu)), E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))


def epsilon(u):
    """Small-strain tensor ε(u) = sym ∇u (UFL)."""
    return ufl.sym(ufl.grad(u))


def cell_function(mesh, values, name: str) -> fem.Function:
    """A DG0 function holding one value per local owned cell; ghost values filled by MPI.

    `values` is a scalar, an array (n_local,) or an array (n_local, *shape) for vector or tensor
    cell fields (e.g. (n_local, 3) principal strains, (n_local, 3, 3) strain tensors).
    """
    n_local = mesh.topology.index_map(mesh.topology.dim).size_local
    values = np.asarray(values, dtype=float)
    shape = values.shape[1:] if values.ndim > 1 else ()
    values = np.broadcast_to(values, (n_local, *shape)).reshape(n_local, -1)
    function = fem.Function(fem.functionspace(mesh, ("DG", 0, shape)), name=name)
    dofs = function.function_space.dofmap.list[:n_local, 0]
    function.x.array.reshape(-1, values.shape[1])[dofs] = values
    function.x.scatter_forward()
    return function


def rigid_body_modes(V: fem.FunctionSpace) -> PETSc.NullSpace:
    """The six rigid-body modes (3 translations, 3 rotations) of V as an orthonormal PETSc basis.

    They span the kernel of the unconstrained elasticity operator; GAMG uses them as the
    near-nullspace to build its coarse spaces. Works for any Lagrange degree (uses the dof
    coordinates); only the owned part of each vector goes to PETSc.
    """
    bs = V.dofmap.index_map_bs
    n_owned = V.dofmap.index_map.size_local
    basis = [la.vector(V.dofmap.index_map, bs=bs, dtype=PETSc.ScalarType) for _ in range(6)]
    arrays = [b.array.reshape(-1, bs) for b in basis]
    x = V.tabulate_dof_coordinates()
    for i in range(3):
        arrays[i][:, i] = 1.0
    # rotations about z, y and x: ω × x
    arrays[3][:, 0], arrays[3][:, 1] = -x[:, 1], x[:, 0]
    arrays[4][:, 0], arrays[4][:, 2] = x[:, 2], -x[:, 0]
    arrays[5][:, 1], arrays[5][:, 2] = -x[:, 2], x[:, 1]
    la.orthonormalize(basis)
    vectors = [
        PETSc.Vec().createWithArray(b.array[: bs * n_owned], bsize=bs, comm=V.mesh.comm)
        for b in basis
    ]
    return PETSc.NullSpace().create(vectors=vectors, comm=V.mesh.comm)


def _global_sum(comm, value: float) -> float:
    return comm.allreduce(float(value), op=MPI.SUM)


def _facet_measure(mesh, facets: np.ndarray):
    """A ds measure restricted to `facets` (local facet indices), tagged 1."""
    fdim = mesh.topology.dim - 1
    mesh.topology.create_connectivity(fdim, mesh.topology.dim)
    facets = np.unique(np.asarray(facets, dtype=np.int32))
    tags = dolfinx.mesh.meshtags(mesh, fdim, facets, np.ones_like(facets))
    return ufl.Measure("ds", domain=mesh, subdomain_data=tags, subdomain_id=1)


def patch_area(mesh, facets: np.ndarray) -> float:
    """Global area (mm²) of the boundary patch made of `facets` (local exterior facet indices)."""
    ds = _facet_measure(mesh, facets)
    one = fem.Constant(mesh, PETSc.ScalarType(1.0))
    return _global_sum(mesh.comm, fem.assemble_scalar(fem.form(one * ds)))


def patch_traction(mesh, facets: np.ndarray, force) -> np.ndarray:
    """Uniform traction (N/mm²) that puts the total force `force` (N, 3-vector) on the patch."""
    area = patch_area(mesh, facets)
    if area <= 0.0:
        raise BonefeError("load patch has zero area: no boundary facets were selected for it; "
                          "check the patch tags of the mesh")
    return np.asarray(force, dtype=float) / area


def patch_load_strain(mesh, E, nu, fixed_facets, patch_forces, degree: int = 1) -> np.ndarray:
    """Cell strain tensors (local cells, 3, 3) of one solve on a new operator: the bone fixed on
    fixed_facets, each (local facets, force N) of patch_forces spread as a uniform traction."""
    solver = ElasticitySolver(mesh, E, nu, fixed_facets, degree=degree)
    return cell_strain(solver.solve([(facets, patch_traction(mesh, facets, force)) for facets, force in patch_forces]))


def cell_volumes(mesh) -> np.ndarray:
    """Volume (mm³) of each local owned cell."""
    W = fem.functionspace(mesh, ("DG", 0))
    vector = fem.assemble_vector(fem.form(ufl.TestFunction(W) * ufl.dx))
    n_local = mesh.topology.index_map(mesh.topology.dim).size_local
    return vector.array[W.dofmap.list[:n_local, 0]].copy()


def cell_strain(u: fem.Function) -> np.ndarray:
    """Cell-average small-strain tensor ε(u) of each local owned cell, shape (n_local, 3, 3).

    The L2 projection onto piecewise constants, ∫_cell ε dx / |cell|: exact for P1 (constant
    gradient per cell) and the true cell average for P2.
    """
    mesh = u.function_space.mesh
    W = fem.functionspace(mesh, ("DG", 0, (3, 3)))
    integral = fem.assemble_vector(fem.form(ufl.inner(epsilon(u), ufl.TestFunction(W)) * ufl.dx))
    n_local = mesh.topology.index_map(mesh.topology.dim).size_local
    dofs = W.dofmap.list[:n_local, 0]
    blocks = integral.array.reshape(-1, 9)[dofs].reshape(-1, 3, 3)
    return blocks / cell_volumes(mesh)[:, None, None]


def principal_strains(eps: np.ndarray) -> np.ndarray:
    """Principal strains of symmetric tensors `eps` (n, 3, 3), sorted descending, shape (n, 3).

    Closed form (Smith 1961, Commun ACM 4:168): with q = tr ε / 3, p² = |ε − qI|²/6 and
    r = det((ε − qI)/p)/2 = cos 3φ, the eigenvalues are q + 2p cos(φ + 2πk/3). Vectorised, about 3×
    faster than LAPACK's per-matrix eigvalsh, which dominated the cost of superposing activities;
    the error is ~1e-8·p where two eigenvalues nearly coincide (arccos near ±1), ~1e-14 otherwise."""
    a = np.asarray(eps, float).reshape(-1, 9)
    a01, a02, a12 = a[:, 1], a[:, 2], a[:, 5]
    q = (a[:, 0] + a[:, 4] + a[:, 8]) / 3.0
    b00, b11, b22 = a[:, 0] - q, a[:, 4] - q, a[:, 8] - q
    p = np.sqrt((b00 * b00 + b11 * b11 + b22 * b22 + 2.0 * (a01 * a01 + a02 * a02 + a12 * a12)) / 6.0)
    det = b00 * (b11 * b22 - a12 * a12) - a01 * (a01 * b22 - a12 * a02) + a02 * (a01 * a12 - b11 * a02)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(p > 0.0, det / (2.0 * p**3), 0.0)
    phi = np.arccos(np.clip(r, -1.0, 1.0)) / 3.0
    e1 = q + 2.0 * p * np.cos(phi)
    e3 = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    return np.column_stack([e1, np.clip(3.0 * q - e1 - e3, e3, e1), e3])  # clip: rounding at ε1 = ε2


def release_petsc_garbage(comm) -> None:
    """Destroy the PETSc objects of solvers gone out of use on `comm` (collective).

    On more than one rank petsc4py does not destroy a parallel object when Python frees it (destroy
    is collective, freeing is not): it parks it until `PETSc.garbage_cleanup`. Each parked solver
    holds about 14 MPI communicators (GAMG's levels), and MPICH has about 2000: a process that sets
    up solver after solver on one mesh (what-if states, uncertainty draws, a test session) ran out
    of them and was killed."""
    gc.collect()
    PETSc.garbage_cleanup(comm)


RELEASE_EVERY = 8
"""Solvers set up on one communicator between two `release_petsc_garbage` calls: a full garbage
collection takes ~0.14 s in a case's process (15 per demo case, 2.1 s), while 8 parked solvers hold
about 110 of MPICH's ~2000 communicators."""
_SOLVERS_MADE = MPI.Comm.Create_keyval()
"""An MPI attribute of a communicator: the solvers set up on it so far."""


def _release_now_and_then(comm) -> None:
    """`release_petsc_garbage` before every RELEASE_EVERY-th solver on `comm`. Collective: the count
    is an attribute of the communicator itself, so every rank of it counts the same collective
    set-ups (a dict keyed by the communicator's handle is not: handles differ between ranks once one
    rank has made a communicator of its own, and the ranks then disagreed on when to release —
    a deadlock under mpirun -n 2)."""
    made = comm.Get_attr(_SOLVERS_MADE) or 0
    comm.Set_attr(_SOLVERS_MADE, made + 1)
    if made % RELEASE_EVERY == 0:
        release_petsc_garbage(comm)


class ElasticitySolver:
    """Linear elastic bone model with one assembled operator and one reusable KSP.

    mesh:          dolfinx tetrahedral mesh (mm).
    E:             Young's modulus per local owned cell (MPa), array of length n_local (or scalar).
    nu:            Poisson ratio, scalar or per local owned cell.
    fixed_facets:  local facet indices where u = 0 (all components): the distal support.
    degree:        Lagrange degree of the displacement (1 default, 2 for P2).
    petsc_options: options overriding :data:`DEFAULT_PETSC_OPTIONS` (keys without prefix).
    rollers:       optional (facets, component) pairs where only that displacement component is 0
                   (symmetry planes of verification models).
    springs:       optional (facets, stiffness N/mm³, unit direction) elastic supports: a traction
                   −k (u·n) n on those facets, i.e. ∫ k (u·n)(v·n) ds added to the operator (a
                   stiff pad or a roller in any direction, `bonefe.sites.femur.fall`).
    preconditioner: optional solver of the same unknowns whose set-up preconditioner this one
                   borrows instead of building its own (:class:`BorrowedPreconditioner`): the
                   model then costs an assembly and its solves, not an AMG set-up; the solution
                   is this operator's at ``ksp_rtol``, only the iteration count changes.
    stiffness:     optional `bone_stiffness` of another solver of the same material (no fixed
                   facets or rollers on either): this operator is that matrix plus the springs, so
                   models that differ only by their springs assemble the bone once.
    """

    def __init__(self, mesh, E, nu, fixed_facets, degree: int = 1,
                 petsc_options: Mapping[str, object] | None = None,
                 rollers: Sequence[tuple[np.ndarray, int]] = (),
                 springs: Sequence[tuple[np.ndarray, float, np.ndarray]] = (),
                 preconditioner: "ElasticitySolver | None" = None, stiffness: PETSc.Mat | None = None):
        self.mesh = mesh
        self.comm = mesh.comm
        _release_now_and_then(self.comm)
        self._check_material(E, nu)
        self.E = cell_function(mesh, E, "E")
        self.nu = cell_function(mesh, nu, "nu")
        self.V = fem.functionspace(mesh, ("Lagrange", degree, (mesh.geometry.dim,)))
        self._u, self._v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        self.bcs = self._supports(fixed_facets, rollers, has_springs=len(springs) > 0)
        self._forms = (ufl.inner(self.stress(self._u), epsilon(self._v)) * ufl.dx,
                       self._spring_form(springs) if springs else None)  # the bone's, the springs'
        self.A = self._operator(stiffness)
        self.A.setNearNullSpace(rigid_body_modes(self.V))
        self.A.setOption(PETSc.Mat.Option.SPD, True)
        self.ksp = self._make_ksp(petsc_options or {}, preconditioner)
        self.b = dolfinx.fem.petsc.create_vector(self.V)
        self.history: list[dict] = []

    @cached_property
    def a(self):
        """The operator's compiled form: the bone's plus the springs'."""
        bone, spring = self._forms
        return fem.form(bone if spring is None else bone + spring)

    def _operator(self, stiffness: PETSc.Mat | None) -> PETSc.Mat:
        """The assembled operator: `self.a`, or the shared bone `stiffness` plus the spring form."""
        if stiffness is None:
            return _assembled(self.a, self.bcs)
        if self.bcs:
            raise ValueError("a shared bone stiffness takes springs only, not fixed facets or rollers")
        A, spring = stiffness.copy(), self._forms[1]
        if spring is not None:
            A.axpy(1.0, _assembled(fem.form(spring)), structure=PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN)
        return A

    def bone_stiffness(self) -> PETSc.Mat:
        """The bone's assembled ∫ σ(u):ε(v) dx, without supports or springs (`stiffness`)."""
        return _assembled(fem.form(self._forms[0]))

    def _spring_form(self, springs):
        """Σ ∫ k (u·n)(v·n) ds over each spring's facets. One form takes one facet tagging, and
        spring patches may overlap: a facet's tag is the bit mask of the springs holding it."""
        fdim = self.mesh.topology.dim - 1
        self.mesh.topology.create_connectivity(fdim, self.mesh.topology.dim)
        every = np.unique(np.concatenate([np.asarray(f, np.int32) for f, _, _ in springs]))
        masks = np.zeros(every.size, np.int32)
        for bit, (facets, _, _) in enumerate(springs):
            masks[np.searchsorted(every, np.asarray(facets, np.int32))] |= 1 << bit
        ds = ufl.Measure("ds", domain=self.mesh,
                         subdomain_data=dolfinx.mesh.meshtags(self.mesh, fdim, every, masks))
        form = 0
        for bit, (_, stiffness, direction) in enumerate(springs):
            n = fem.Constant(self.mesh, np.asarray(direction, dtype=PETSc.ScalarType))
            tags = tuple(m for m in range(1, 1 << len(springs)) if m >> bit & 1)
            form += float(stiffness) * ufl.dot(self._u, n) * ufl.dot(self._v, n) * ds(tags)
        return form

    def _check_material(self, E, nu) -> None:
        n_local = self.mesh.topology.index_map(self.mesh.topology.dim).size_local
        E, nu = np.asarray(E, float), np.asarray(nu, float)
        for name, value in (("E", E), ("nu", nu)):
            if value.ndim and value.shape != (n_local,):
                raise BonefeError(f"{name} has {value.shape} values but the mesh has {n_local} "
                                  "local cells: give one value per local owned cell")
        bad_E = self.comm.allreduce(bool(np.any(~((E > 0) & np.isfinite(E)))), op=MPI.LOR)
        bad_nu = self.comm.allreduce(bool(np.any(~((nu > -1.0) & (nu < 0.5)))), op=MPI.LOR)
        if bad_E:
            raise BonefeError("Young's modulus must be positive and finite in every cell: "
                              "floor E at a small positive value")
        if bad_nu:
            raise BonefeError("Poisson ratio must lie in (-1, 0.5): fix nu in the case file")

    def stress(self, u):
        """Cauchy stress σ(u) (MPa) of a displacement u (UFL expression)."""
        mu, lmbda = lame(self.E, self.nu)
        eps = epsilon(u)
        return 2.0 * mu * eps + lmbda * ufl.tr(eps) * ufl.Identity(len(u))

    def _supports(self, fixed_facets, rollers, has_springs: bool = False) -> list:
        fdim = self.mesh.topology.dim - 1
        self.mesh.topology.create_connectivity(fdim, self.mesh.topology.dim)
        fixed = np.asarray(fixed_facets, dtype=np.int32)
        bcs = []
        n_constrained = 0
        if self.comm.allreduce(fixed.size, op=MPI.SUM) > 0:
            dofs = fem.locate_dofs_topological(self.V, fdim, fixed)
            bcs.append(fem.dirichletbc(np.zeros(3, dtype=PETSc.ScalarType), dofs, self.V))
            n_constrained += 3 * dofs.size
        for facets, component in rollers:
            sub = self.V.sub(int(component))
            dofs = fem.locate_dofs_topological(sub, fdim, np.asarray(facets, dtype=np.int32))
            bcs.append(fem.dirichletbc(PETSc.ScalarType(0.0), dofs, sub))
            n_constrained += dofs.size
        if self.comm.allreduce(n_constrained, op=MPI.SUM) < 6 and not has_springs:
            raise BonefeError("the model has no support (no fixed facets found): it would float; "
                              "check the distal support tag of the mesh")
        return bcs

    def _make_ksp(self, overrides: Mapping[str, object], source: "ElasticitySolver | None") -> PETSc.KSP:
        defaults = DEFAULT_PETSC_OPTIONS
        if overrides.get("pc_type", "gamg") != "gamg":  # drop the GAMG-only defaults
            defaults = {k: v for k, v in defaults.items() if not k.startswith(("pc_gamg", "mg_"))}
        settings = {**defaults, **overrides}
        if source is not None:  # the Krylov options only: the preconditioner is the source's
            settings = {k: v for k, v in settings.items() if k.startswith("ksp_")}
        ksp = PETSc.KSP().create(self.comm)
        ksp.setOperators(self.A)
        if source is not None:
            BorrowedPreconditioner.attach(ksp, source, self.A)
        prefix = f"bonefe_elasticity_{next(_prefix_counter)}_"
        options = PETSc.Options()
        for key, value in settings.items():
            options[prefix + key] = value
        ksp.setOptionsPrefix(prefix)
        try:
            ksp.setFromOptions()
            ksp.setUp()
        except PETSc.Error as error:
            raise BonefeError(f"PETSc could not set up the solver with options {dict(overrides)} "
                              f"(error {error.ierr}): check the option names and that the chosen "
                              "preconditioner is built into this PETSc (hypre may be absent)") from None
        self.options_prefix = prefix
        return ksp

    def _vector_function(self, value, name: str) -> fem.Function:
        """Interpolate a constant 3-vector or a callable x -> (3, n) array into V."""
        function = fem.Function(self.V, name=name)
        if callable(value):
            function.interpolate(value)
        else:
            constant = np.asarray(value, dtype=float).reshape(3, 1)
            function.interpolate(lambda x: np.tile(constant, (1, x.shape[1])))
        return function

    def load_vector(self, loads: Sequence[Load], body_force=None) -> PETSc.Vec:
        """Assemble the consistent nodal force vector (N) of `loads` into ``self.b``.

        Each load (facets, traction) is integrated on its own facet subset (its own one-tag
        meshtags), so patches may overlap. Constrained entries are left as assembled; use
        :meth:`solve` to solve.
        """
        with self.b.localForm() as local:
            local.set(0.0)
        for k, (facets, traction) in enumerate(loads):
            t = self._vector_function(traction, f"traction_{k}")
            ds = _facet_measure(self.mesh, facets)
            dolfinx.fem.petsc.assemble_vector(self.b, fem.form(ufl.inner(t, self._v) * ds))
        if body_force is not None:
            f = self._vector_function(body_force, "body_force")
            dolfinx.fem.petsc.assemble_vector(self.b, fem.form(ufl.inner(f, self._v) * ufl.dx))
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        return self.b

    def solve(self, loads: Sequence[Load], body_force=None) -> fem.Function:
        """Displacement (mm) under surface `loads` [(facets, traction N/mm²), ...] and an optional
        body force (N/mm³, constant or callable). Reuses the operator and preconditioner."""
        self.load_vector(loads, body_force)
        dolfinx.fem.petsc.set_bc(self.b, self.bcs)
        u = fem.Function(self.V, name="displacement")
        self._krylov_solve(u)
        return u

    def solve_prescribed(self, facets: np.ndarray, value) -> fem.Function:
        """Displacement (mm) with u = `value` on `facets`, which must be among the fixed facets the
        operator was built with (the others stay at 0), and no load: a rigid plate moved by `value`,
        a constant 3-vector (mm) or a callable x (3, n) -> u (3, n) (e.g. a small rotation). The
        right-hand side is lifted (b = −A g off the prescribed dofs), so the same operator and
        preconditioner serve every plate motion."""
        dofs = fem.locate_dofs_topological(self.V, self.mesh.topology.dim - 1, np.asarray(facets, np.int32))
        if callable(value):
            field = fem.Function(self.V)
            field.interpolate(value)
            moved = fem.dirichletbc(field, dofs)
        else:
            moved = fem.dirichletbc(np.asarray(value, dtype=PETSc.ScalarType), dofs, self.V)
        bcs = [*self.bcs, moved]  # applied in order: the plate's value overrides the zero there
        with self.b.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.apply_lifting(self.b, [self.a], bcs=[bcs])
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(self.b, bcs)
        u = fem.Function(self.V, name="displacement")
        self._krylov_solve(u)
        return u

    def work(self, u: fem.Function, w: fem.Function) -> float:
        """Global a(u, w) = ∫ σ(u):ε(w) dx (N·mm per unit of w). With u in equilibrium off its
        constrained dofs, this is Σ over the constrained nodes of the force holding them times w
        there: with w a unit translation on a plate (0 on the other supports) it is the plate's
        force along it (N), with w a unit rotation field its moment (N·mm)."""
        return _global_sum(self.comm, fem.assemble_scalar(fem.form(ufl.inner(self.stress(u), epsilon(w)) * ufl.dx)))

    def _krylov_solve(self, u: fem.Function) -> None:
        """Solve A u = b (b assembled), once more with `SAFER_SMOOTHER_OPTIONS` when CG finds the
        GAMG preconditioner indefinite; the safer smoothers are kept for the solver's later solves."""
        self.ksp.solve(self.b, u.x.petsc_vec)
        indefinite = self.ksp.getConvergedReason() == PETSc.KSP.ConvergedReason.DIVERGED_INDEFINITE_PC
        if indefinite and self.ksp.getPC().getType() == "gamg":
            options = PETSc.Options()
            for key, value in SAFER_SMOOTHER_OPTIONS.items():
                options[self.options_prefix + key] = value
            self.ksp.getPC().reset()
            self.ksp.setOperators(self.A)
            self.ksp.setFromOptions()
            self.ksp.setUp()
            u.x.petsc_vec.set(0.0)
            self.ksp.solve(self.b, u.x.petsc_vec)
        u.x.scatter_forward()
        self._record()

    def _record(self) -> None:
        reason = self.ksp.getConvergedReason()
        entry = {"iterations": self.ksp.getIterationNumber(),
                 "residual_norm": self.ksp.getResidualNorm(), "reason": reason}
        self.history.append(entry)
        if reason < 0:
            names = {v: k for k, v in vars(PETSc.KSP.ConvergedReason).items() if isinstance(v, int)}
            raise BonefeError(
                f"elasticity solve diverged ({names.get(reason, reason)} after "
                f"{entry['iterations']} iterations): check that E is positive everywhere and the "
                "support holds the bone, or raise ksp_max_it in the solver options")

    @property
    def iterations(self) -> int:
        """Krylov iterations of the last solve."""
        return self.history[-1]["iterations"]

    def strain_energy(self, u: fem.Function) -> float:
        """Global strain energy ½ ∫ σ(u):ε(u) dx (N·mm = mJ)."""
        energy = fem.form(0.5 * ufl.inner(self.stress(u), epsilon(u)) * ufl.dx)
        return _global_sum(self.comm, fem.assemble_scalar(energy))

    def num_dofs(self) -> int:
        """Global number of displacement unknowns."""
        index_map = self.V.dofmap.index_map
        return index_map.size_global * self.V.dofmap.index_map_bs


def _assembled(form, bcs=()) -> PETSc.Mat:
    A = dolfinx.fem.petsc.assemble_matrix(form, bcs=list(bcs))
    A.assemble()
    return A


class BorrowedPreconditioner:
    """A PETSc python-type preconditioner that applies another solver's set-up preconditioner
    (its AMG hierarchy built on its own operator) to this solver's residuals.

    CG on the new operator still converges to its own solution at ``ksp_rtol``; the borrowed
    hierarchy only has to be a good approximate inverse. It is where the operators differ by their
    supports on the same material (the sideways-fall directions, `bonefe.sites.femur.fall`: 27 → 37–43
    iterations, no AMG set-up). It is not where the material differs by orders of magnitude in a
    region (demo femur, 2 ranks: the lesion grown by 2 or 6 mm took 235–518 iterations against
    19–25 fresh, the lesion-free twin 895–961), so what-if states and the twin set up their own."""

    def __init__(self, source: ElasticitySolver):
        self.source = source  # keeps the borrowed KSP and its hierarchy alive
        self._pc = source.ksp.getPC()

    @classmethod
    def attach(cls, ksp: PETSc.KSP, source: ElasticitySolver, A: PETSc.Mat) -> None:
        """Make `ksp` (operator A) precondition with `source`'s preconditioner."""
        if source.A.getSizes() != A.getSizes():
            raise ValueError("a borrowed preconditioner must come from a solver of the same unknowns "
                             f"(sizes {source.A.getSizes()} against {A.getSizes()})")
        pc = ksp.getPC()
        pc.setType(PETSc.PC.Type.PYTHON)
        pc.setPythonContext(cls(source))

    def apply(self, pc, x, y) -> None:
        self._pc.apply(x, y)


class StrainBasis:
    """Strain tensors (points, 3, 3) under a unit force along world x, y and z on each load patch,
    combined by superposition: the strain under any patch forces is their linear combination."""

    def __init__(self, unit_strains: Mapping[str, np.ndarray]):
        self._strain = dict(unit_strains)
        self._norms: dict[str, np.ndarray] = {}

    def _check(self, forces: Mapping[str, object]) -> None:
        unknown = set(forces) - set(self._strain)
        if unknown:
            raise BonefeError(f"no unit-load basis for patch(es) {sorted(unknown)}: "
                              f"known patches are {sorted(self._strain)}")

    def strain(self, forces: Mapping[str, object], points: np.ndarray | None = None) -> np.ndarray:
        """Strain tensors (n_points, 3, 3) under `forces` {patch: world force in N}, at every point
        or at the indices `points`."""
        self._check(forces)
        total = 0.0
        for name, force in forces.items():
            units = self._strain[name] if points is None else self._strain[name][:, points]
            total = total + np.tensordot(np.asarray(force, float), units, axes=1)
        return total

    def norm_bound(self, forces: Mapping[str, object]) -> np.ndarray:
        """Per point an upper bound of the strain's Frobenius norm under `forces` (n_points,):
        Σ |f_k| |E_k|_F over the unit strains E_k (triangle inequality); ≥ every |principal strain|."""
        self._check(forces)
        total = 0.0
        for name, force in forces.items():
            if name not in self._norms:
                units = self._strain[name]
                self._norms[name] = np.sqrt(np.einsum("k...ij,k...ij->k...", units, units))
            total = total + np.abs(np.asarray(force, float)) @ self._norms[name]
        return total

    def mapped(self, operator) -> "StrainBasis":
        """The basis with every unit strain field passed through a linear map of per-point fields
        (points, ...) -> (new points, ...), e.g. `bonefe.nonlocal_strain.SphereAverage`."""
        return StrainBasis({name: np.stack([operator(unit) for unit in units])
                            for name, units in self._strain.items()})


class UnitLoadBasis(StrainBasis):
    """Strains (per cell) and displacements under unit forces on load patches.

    For each patch (name -> local facet indices), three solves with 1 N along world x, y and z,
    each spread as a uniform traction over the patch; the cell strain tensors and the
    displacements are stored and combined by superposition.
    """

    def __init__(self, solver: ElasticitySolver, patches: Mapping[str, np.ndarray]):
        self.solver = solver
        self.patches = dict(patches)
        self._displacement: dict[str, list[fem.Function]] = {}
        strains = {}
        for name, facets in self.patches.items():
            units = [patch_traction(solver.mesh, facets, axis) for axis in np.eye(3)]
            solutions = [solver.solve([(facets, traction)]) for traction in units]
            self._displacement[name] = solutions
            strains[name] = np.stack([cell_strain(u) for u in solutions])
        super().__init__(strains)

    def displacement(self, forces: Mapping[str, object]) -> fem.Function:
        """Displacement (mm) under `forces` {patch: world force in N}."""
        self._check(forces)
        u = fem.Function(self.solver.V, name="displacement")
        for name, force in forces.items():
            for component, unit in zip(np.asarray(force, float), self._displacement[name]):
                u.x.array[:] += component * unit.x.array
        return u


def nodal_displacement(u: fem.Function) -> fem.Function:
    """`u` itself when it is P1, else its interpolation to P1 (XDMF stores nodal fields on the
    mesh vertices), keeping the name."""
    if u.function_space.element.basix_element.degree == 1:
        return u
    mesh = u.function_space.mesh
    output = fem.Function(fem.functionspace(mesh, ("Lagrange", 1, (3,))), name=u.name)
    output.interpolate(u)
    return output


def write_functions(path, mesh, functions: Sequence[fem.Function]) -> None:
    """Write `functions` (P1 or DG0, each under its own name) on `mesh` to XDMF + HDF5, atomically.

    The pair is written in a temporary folder next to `path`; the .h5 and then the .xdmf replace
    the old ones, so readers never see a half-written file. Collective over ``mesh.comm``.
    """
    path = Path(path)
    comm = mesh.comm
    tmp = None
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.stem}.")
    tmp = Path(comm.bcast(tmp, root=0))
    try:
        with XDMFFile(comm, tmp / path.with_suffix(".xdmf").name, "w") as xdmf:
            xdmf.write_mesh(mesh)
            for function in functions:
                xdmf.write_function(function)
        comm.barrier()
        if comm.rank == 0:
            for suffix in (".h5", ".xdmf"):
                os.replace(tmp / path.with_suffix(suffix).name, path.with_suffix(suffix))
    finally:
        comm.barrier()
        if comm.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)

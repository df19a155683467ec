"""The finite-element assessment of one bone: every activity, the reference failure load, the twin.

Linear elasticity makes strain proportional to load, so the bone is solved once per unit load
component (the site's loading: `bonefe.sites.base.Setup.model`) and every activity is a
superposition. For a load (`bonefe.sites.base.Load`) with peak F, the strain under its unit load
gives the force F_allow at which the nonlocal strain (averaged over a sphere of bone,
`bonefe.nonlocal_strain`) first reaches the strain limit (`bonefe.risk.failure_load`); the safety
factor is F_allow / F. The failure load the report leads with is that of the site's reference load.

Where failure is read (`failure_points`): at the lattice points of the nonlocal strain that lie in
the mesh, in a cell away from the load and support patches (cells within `exclusion_mm` of a tagged
facet, where the idealised boundary conditions create strain artefacts: Saint-Venant; a site that
loads through its own operator without patches has none), and in bone by the CT: not in lesion
tissue, whose strain is that of soft tissue, not of bone. The spheres average over bone by the CT
too. "By the CT": the label map's label at the point, nearest voxel (`bonefe.materials.LesionMap`),
not the label of the tetrahedron holding it (the majority of its CT samples), which a lesion's rim
splits differently on every mesh (`bonefe.nonlocal_strain`).

Lesion-free twin and strain fold ratio (Sternheim et al. 2020): when the bone has lesion cells
and the caller gives the twin's moduli (`bonefe.materials.healthy_volume` → `cell_material`, same
mesh), the twin is solved under the reference load alone (`reference_load_strain`: one solve).
SFR = peak failure index near the lesion with the lesion / the same in the twin, both under the
reference load at its peak. "Near the lesion": the
lattice points evaluated for failure in the lesioned bone that lie within SFR_REGION_MM of a lesion
cell centre; the same points in both models. "Peak": the largest failure index max(ε1/ε_t, −ε3/ε_c)
(a principal strain magnitude scaled by its limit) of the nonlocal strain, so one distorted element
cannot set it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from mpi4py import MPI

from bonefe.materials import LesionMap
from bonefe.nonlocal_strain import DEFAULT_RADIUS_MM, SphereAverage, sphere_average
from bonefe.risk import (
    ActivityAssessment,
    FailureResult,
    failure_index,
    peak,
    strain_fold_ratio,
    RiskThresholds,
    StrainCriterion,
    VerdictPolicy,
    assess_activity,
    distance_mask,
    failure_under_unit_load,
)
from bonefe.solver import StrainBasis, principal_strains
from bonefe.volume import LESION_LABELS

if TYPE_CHECKING:  # the interface names only: sites import this module, not the other way round
    from bonefe.sites.base import Load, Setup

SFR_REGION_MM = 10.0
"""Bone cells within this distance (mm, centre to centre) of a lesion cell form the region whose
peak strain the strain fold ratio compares: about one cortical thickness plus one element around
the lesion, where a defect concentrates strain."""

CANDIDATE_PROBE = 256
"""Points of largest strain bound whose failure index sets the floor of `BoneModel.candidates`."""


@dataclass(frozen=True)
class RiskOptions:
    """How strain becomes risk (case-file section `risk`).

    criterion: principal strain limits (Schileo et al. 2008).
    averaging_radius_mm: radius of the sphere the strain is averaged over (`bonefe.nonlocal_strain`).
    exclusion_mm: cells closer than this to a load or support patch are not evaluated (mm).
    abductor: add the abductor force on the greater trochanter where the activity defines one.
    thresholds, verdict: risk categories (× BW) and safety-factor verdicts.
    calibration_file: a cohort calibration file (`bonefe.risk.thresholds_from_calibration`); when
        given, its thresholds replace `thresholds`.
    growth_steps_mm: what-if lesion growth steps (mm, each > 0); empty: no growth series (`bonefe.whatif`).
    remineralisation_steps: what-if re-mineralised fractions of the lesion (each in (0, 1]); empty: none.
        Each step costs one operator and the reference load's solves (`bonefe.whatif`).
    """

    criterion: StrainCriterion = field(default_factory=StrainCriterion)
    averaging_radius_mm: float = DEFAULT_RADIUS_MM
    exclusion_mm: float = 10.0
    abductor: bool = False
    thresholds: RiskThresholds = field(default_factory=RiskThresholds)
    verdict: VerdictPolicy = field(default_factory=VerdictPolicy)
    growth_steps_mm: list[float] = field(default_factory=list)
    remineralisation_steps: list[float] = field(default_factory=list)
    calibration_file: Path | None = None

    def __post_init__(self):
        if not self.averaging_radius_mm > 0:
            raise ValueError(f"averaging_radius_mm must be positive, mm (got {self.averaging_radius_mm})")
        if any(not d > 0 for d in self.growth_steps_mm):
            raise ValueError(f"growth_steps_mm must all be positive, mm (got {self.growth_steps_mm})")
        if any(not 0 < t <= 1 for t in self.remineralisation_steps):
            raise ValueError(f"remineralisation_steps must lie in (0, 1] (got {self.remineralisation_steps})")


@dataclass
class Assessment:
    """What the FE model says about one bone."""

    stance: FailureResult
    """Failure under the site's reference load (`bonefe.sites.base.Setup.reference`)."""
    activities: list[ActivityAssessment]
    stance_strain: np.ndarray
    """Max principal strain per local cell under the reference load's peak (dimensionless)."""
    stance_points: "NonlocalStance"
    """The nonlocal strain where failure is read, under the reference load's peak."""
    basis: StrainBasis
    """The unit-load solutions of the bone, for per-activity fields."""
    evaluated: np.ndarray
    """True for local bone cells (majority label) away from the patches: where failure is read,
    as a cell field for display (the points themselves follow the CT, `failure_points`)."""
    dofs: int
    iterations: list[int]
    twin: "TwinComparison | None" = None
    """Lesion-free twin and strain fold ratio; None without lesion cells or twin moduli."""
    model: "BoneModel | None" = None
    """The bone model itself, for further post-processes of its nonlocal strain (`bonefe.window`)."""
    extras: dict = field(default_factory=dict)
    """What the site adds (`bonefe.sites.base.Site.assess_more`), by results key."""


@dataclass(frozen=True)
class NonlocalStance:
    """This rank's evaluated lattice points under the stance peak load: points (m, 3) world mm,
    keys (m,) lattice keys, principal (m, 3) nonlocal principal strains (descending, dimensionless)
    and failure_index (m,): max(ε1/ε_t, −ε3/ε_c), 1 at the strain limit; its largest value is the
    stance peak force over the failure load, at the failure site."""

    points: np.ndarray
    keys: np.ndarray
    principal: np.ndarray
    failure_index: np.ndarray


@dataclass(frozen=True)
class TwinComparison:
    """The bone against its lesion-free twin under the stance activity.

    strain_fold_ratio: lesioned_peak / twin_peak (Sternheim et al. 2020; fracture above 1.48).
    lesioned_peak, twin_peak: peak failure index near the lesion at the stance peak load.
    twin_stance: the twin's stance failure load. region_mm, region_volume_mm3: the compared region
    (the bone in its lattice bins).
    """

    strain_fold_ratio: float
    lesioned_peak: float
    twin_peak: float
    twin_stance: FailureResult
    region_mm: float
    region_volume_mm3: float


def cell_centres(mesh) -> np.ndarray:
    """Centroids (n_local, 3) of the local owned tetrahedra, world mm."""
    n = mesh.topology.index_map(3).size_local
    return mesh.geometry.x[mesh.geometry.dofmaps[0][:n]].mean(axis=1)


def _patch_points(mesh, facet_tags) -> np.ndarray:
    """Midpoints of every tagged facet (load and support patches), gathered from every rank (world mm)."""
    from dolfinx.mesh import compute_midpoints

    facets = np.zeros(0, np.int32) if facet_tags is None else facet_tags.indices
    local = compute_midpoints(mesh, 2, facets.astype(np.int32))
    return np.concatenate(mesh.comm.allgather(local), axis=0)


def away_from_patches(mesh, facet_tags, exclusion_mm) -> np.ndarray:
    """True for local cells whose centre lies farther than exclusion_mm from every load and support
    patch (the tagged facets; every cell when facet_tags is None)."""
    return ~distance_mask(cell_centres(mesh), _patch_points(mesh, facet_tags), exclusion_mm)


@dataclass
class FailurePoints:
    """The lattice points of one mesh evaluated for failure and the nonlocal strain there.

    average: the mesh's sphere average (shared by every model on the mesh); weights: the bone the
    spheres average over, per local cell (1 bone, 0 not) or per quadrature point
    (`SphereAverage.point_weights`); selected: the average's points that are evaluated. points, keys,
    volumes: their centres (world mm), lattice keys and the bone volume in their bins (mm³).
    """

    average: SphereAverage
    weights: object
    selected: np.ndarray

    def __post_init__(self):
        self.points = self.average.points[self.selected]
        self.keys = self.average.keys[self.selected]
        self.volumes = (self.average.bin_volume * self.average.fraction(self.weights))[self.selected]

    def nonlocal_field(self, field: np.ndarray) -> np.ndarray:
        """The bone's sphere average of a per-cell field (n_local, ...) at the points (m, ...)."""
        return self.average(field, self.weights)[self.selected]


def failure_points(mesh, lesion: LesionMap | None, away: np.ndarray, radius_mm: float) -> FailurePoints:
    """The lattice points evaluated for failure and the bone their spheres average over.

    lesion: which world points (k, 3) mm lie in lesion tissue, True/False (k,): the CT's label at the
    point, nearest voxel (`bonefe.materials.LesionMap`), or any such callable; None: none do.
    away: per local cell, True away from the load and support patches.
    Evaluated: the points that lie in an `away` cell and not in lesion tissue; a bin cut by the bone
    surface whose centre lies outside the mesh is averaged over but not evaluated (which such bins
    hold bone, and how little, changes with the mesh). Averaged: the quadrature points of the
    sphere average that are not in lesion tissue. Why the point's own label and not its
    tetrahedron's: `bonefe.nonlocal_strain`."""
    average = sphere_average(mesh, radius_mm)
    if lesion is None:
        return FailurePoints(average, np.ones(len(away)), average.centred_in(away))
    in_lesion, centre_in_lesion = _lesion_at(average, lesion)
    return FailurePoints(average, average.point_weights(~in_lesion), average.centred_in(away) & ~centre_in_lesion)


_VOXEL_INDICES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _lesion_at(average: SphereAverage, lesion) -> tuple[np.ndarray, np.ndarray]:
    """`lesion` at the average's quadrature points and at its lattice points. For a `LesionMap` the
    points' voxel indices are kept per average and voxel grid: the twin and every what-if state of
    a mesh look up the same points in the same grid."""
    points = (average.quadrature_points, average.points)
    if not isinstance(lesion, LesionMap):
        return tuple(lesion(p) for p in points)
    grid = lesion.volume.affine.tobytes()
    known = _VOXEL_INDICES.get(average)
    if known is None or known[0] != grid:
        known = _VOXEL_INDICES[average] = (grid, [lesion.volume.to_index(p) for p in points])
    return tuple(lesion.at_index(ijk) for ijk in known[1])


def needs_lesion_map(mesh, labels, lesion: LesionMap | None) -> None:
    """A bone with lesion cells must come with its lesion map (collective)."""
    if lesion is None and has_lesion(mesh, labels):
        raise ValueError("a bone with lesion cells needs its lesion map (bonefe.materials.lesion_map)")


class BoneModel:
    """One bone on one mesh: its loading's solver and unit-load basis (given by the site,
    `bonefe.sites.base.Setup.model`), its nonlocal strain at the lattice points evaluated for failure.

    labels: the cells' labels (majority of their CT samples); basis: a `bonefe.solver.StrainBasis`
    over the site's load components; away: per local cell, True away from the load and support
    patches; lesion: the CT's lesion map (`bonefe.materials.lesion_map`), required when there are
    lesion cells. evaluated: per local cell, bone away from the patches (a display field: the points
    themselves follow the CT, `failure_points`)."""

    def __init__(self, mesh, labels, options: RiskOptions, solver, basis: StrainBasis, away: np.ndarray,
                 lesion: LesionMap | None = None):
        needs_lesion_map(mesh, labels, lesion)
        self.mesh, self.options, self.solver, self.basis = mesh, options, solver, basis
        self.centres, self.away = cell_centres(mesh), away
        self.evaluated = away & ~np.isin(labels, LESION_LABELS)
        self.lattice = failure_points(mesh, lesion, away, options.averaging_radius_mm)
        self.nonlocal_basis = self.basis.mapped(self.lattice.nonlocal_field)

    def principal(self, forces: dict) -> np.ndarray:
        """Nonlocal principal strains (n_points, 3), descending, under a load {component: value}."""
        return principal_strains(self.nonlocal_basis.strain(forces))

    def failure(self, unit_forces: dict) -> FailureResult:
        """Failure load (N) along a unit load (components summing to 1 N in magnitude), read at the
        points that can hold the peak failure index (`candidates`): the same load, place and mode as
        reading every point."""
        points = self.candidates(unit_forces)
        principal = principal_strains(self.nonlocal_basis.strain(unit_forces, points))
        return failure_under_unit_load(principal, self.lattice.points[points], self.mesh.comm,
                                       criterion=self.options.criterion)

    def candidates(self, forces: dict) -> np.ndarray:
        """Indices of this rank's points whose failure index under `forces` may be its largest. The
        index is at most |ε|_F / min(ε_t, ε_c) ≤ `StrainBasis.norm_bound` / min(ε_t, ε_c); the exact
        index at the CANDIDATE_PROBE points of largest bound is a floor under the peak, and a point
        whose bound lies below that floor cannot hold it (nor tie with it)."""
        limit = min(self.options.criterion.tensile_limit, self.options.criterion.compressive_limit)
        bound = self.nonlocal_basis.norm_bound(forces) / limit
        if bound.size <= CANDIDATE_PROBE:
            return np.arange(bound.size)
        probe = np.argpartition(bound, -CANDIDATE_PROBE)[-CANDIDATE_PROBE:]
        floor = failure_index(principal_strains(self.nonlocal_basis.strain(forces, probe)),
                              self.options.criterion).max()
        return np.flatnonzero(bound >= floor * (1.0 - 1e-9))

    def peak_index(self, forces: dict, region: np.ndarray) -> float:
        """Peak nonlocal failure index over `region` (this rank's points) under forces."""
        return peak(failure_index(self.principal(forces), self.options.criterion), self.mesh.comm, ~region)


class LoadStrain:
    """One material's nonlocal strain (points, 3, 3) at `lattice` under one load of 1 N, from its cell
    strain tensors (local cells, 3, 3): the failure reading of a state solved for that load alone
    (the lesion-free twin, what-if and uncertainty states: `reference_load_strain`)."""

    def __init__(self, mesh, lattice: FailurePoints, cell_strain: np.ndarray, options: RiskOptions):
        self.mesh, self.lattice, self.options = mesh, lattice, options
        self.strain = lattice.nonlocal_field(cell_strain)

    def failure(self) -> FailureResult:
        """Failure load (N), place and mode of the load."""
        return failure_under_unit_load(principal_strains(self.strain), self.lattice.points, self.mesh.comm,
                                       criterion=self.options.criterion)

    def peak_index(self, magnitude: float, region: np.ndarray) -> float:
        """Peak failure index over `region` (this rank's points) under the load of `magnitude` (N)."""
        return peak(failure_index(principal_strains(magnitude * self.strain), self.options.criterion),
                    self.mesh.comm, ~region)


def reference_load_strain(setup: Setup, mesh, facet_tags, lattice: FailurePoints, E, nu, options: RiskOptions,
                          degree: int = 1) -> LoadStrain:
    """The site's reference load scaled to 1 N with moduli E, read at `lattice`: solved alone
    (`bonefe.sites.base.Setup.reference_strain`; one solve for a patch-loaded site)."""
    return LoadStrain(mesh, lattice, setup.reference_strain(mesh, facet_tags, E, nu, degree), options)


def reference_failure(setup: Setup, mesh, facet_tags, lattice: FailurePoints, E, nu, options: RiskOptions,
                      degree: int = 1) -> FailureResult:
    """The reference load's failure read at `lattice` with moduli E (`reference_load_strain`)."""
    return reference_load_strain(setup, mesh, facet_tags, lattice, E, nu, options, degree).failure()


def lesion_region(model: BoneModel, labels, region_mm: float = SFR_REGION_MM) -> np.ndarray:
    """The evaluated lattice points of `model` within region_mm of any lesion cell centre (any rank)."""
    lesion = np.concatenate(model.mesh.comm.allgather(model.centres[np.isin(labels, LESION_LABELS)]), axis=0)
    return distance_mask(model.lattice.points, lesion, region_mm)


def compare_twin(model: BoneModel, twin: LoadStrain, region: np.ndarray, stance: dict, magnitude: float,
                 region_mm: float = SFR_REGION_MM) -> TwinComparison | None:
    """Strain fold ratio and twin failure load; None when the region holds no evaluated point.
    region: the lesioned model's points; the twin is compared at the points with the same lattice
    keys. twin: the twin under `stance`, unit patch forces; magnitude: the stance peak (N)."""
    comm = model.mesh.comm
    keys = np.concatenate(comm.allgather(model.lattice.keys[region]))
    if len(keys) == 0:
        return None
    volume = comm.allreduce(float(model.lattice.volumes[region].sum()), op=MPI.SUM)
    forces = {k: f * magnitude for k, f in stance.items()}
    lesioned = model.peak_index(forces, region)
    healthy = twin.peak_index(magnitude, np.isin(twin.lattice.keys, keys))
    return TwinComparison(strain_fold_ratio(lesioned, healthy), lesioned, healthy, twin.failure(), region_mm, volume)


def has_lesion(mesh, labels) -> bool:
    """Whether any rank holds lesion cells."""
    return mesh.comm.allreduce(bool(np.isin(labels, LESION_LABELS).any()), op=MPI.LOR)


def assess(setup: Setup, mesh, facet_tags, E, labels, nu, loads: list[Load], options: RiskOptions,
           degree: int = 1, twin_E: np.ndarray | None = None, lesion: LesionMap | None = None) -> Assessment:
    """Solve the site's unit loads once and assess every load, the reference failure load and, given
    the lesion-free twin's moduli twin_E on the same mesh and lesion cells in `labels`, the strain
    fold ratio. lesion: the CT's lesion map (`BoneModel`)."""
    model = setup.model(mesh, facet_tags, E, labels, nu, options, degree, lesion)
    rows = [assess_activity(load.name, load.label, load.peak_n, model.failure(load.unit).failure_load_n,
                            load.reference, options.verdict) for load in loads]
    reference = setup.reference()
    stance = model.failure(reference.unit)
    stance_strain = principal_strains(model.basis.strain(reference.unit))[:, 0] * reference.peak_n
    principal = model.principal(reference.peak)
    stance_points = NonlocalStance(model.lattice.points, model.lattice.keys, principal,
                                   failure_index(principal, options.criterion))
    twin = None
    if twin_E is not None and has_lesion(mesh, labels):
        lattice = failure_points(mesh, None, model.away, options.averaging_radius_mm)
        twin_strain = reference_load_strain(setup, mesh, facet_tags, lattice, twin_E, nu, options, degree)
        twin = compare_twin(model, twin_strain, lesion_region(model, labels), reference.unit, reference.peak_n)
    return Assessment(stance, rows, stance_strain, stance_points, model.basis, model.evaluated, model.solver.num_dofs(),
                      [h["iterations"] for h in model.solver.history], twin, model)

"""The finite-element assessment of one bone: unit loads, every activity, the failure load.

Linear elasticity makes strain proportional to load, so the bone is solved once per unit force
component on each load patch (head contact, greater trochanter: six solves with one operator) and
every activity is a superposition (`bonefe.solver.UnitLoadBasis`). For an activity with contact
force F, the strain at unit magnitude along its direction gives the force F_allow at which a
critical bone volume first exceeds the strain limit (`bonefe.risk.failure_load`); the safety
factor is F_allow / |F|.

Cells that are not evaluated for failure: lesion tissue itself (its strain is that of soft tissue,
not of bone) and cells within `exclusion_mm` of a load or support patch, where the idealised
boundary conditions create strain artefacts (Saint-Venant).
"""

from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI

from bonefe.anatomy import HEAD, SUPPORT, TROCHANTER, FemurFrame
from bonefe.loads import ACTIVITIES, STANCE_ACTIVITY, Activity, force_world, patch_forces
from bonefe.risk import (
    DEFAULT_CRITICAL_VOLUME_MM3,
    ActivityAssessment,
    FailureResult,
    RiskThresholds,
    StrainCriterion,
    VerdictPolicy,
    assess_activity,
    distance_mask,
    failure_under_unit_load,
)
from bonefe.solver import ElasticitySolver, UnitLoadBasis, cell_volumes, principal_strains
from bonefe.volume import LESION_LABELS

PATCH_TAGS = {"head": HEAD, "trochanter": TROCHANTER}


@dataclass(frozen=True)
class RiskOptions:
    """How strain becomes risk (case-file section `risk`).

    criterion: principal strain limits (Schileo et al. 2008).
    critical_volume_mm3: bone volume that must exceed the limit to call it failure.
    exclusion_mm: cells closer than this to a load or support patch are not evaluated (mm).
    abductor: add the abductor force on the greater trochanter where the activity defines one.
    thresholds, verdict: risk categories (× BW) and safety-factor verdicts.
    """

    criterion: StrainCriterion = field(default_factory=StrainCriterion)
    critical_volume_mm3: float = DEFAULT_CRITICAL_VOLUME_MM3
    exclusion_mm: float = 10.0
    abductor: bool = False
    thresholds: RiskThresholds = field(default_factory=RiskThresholds)
    verdict: VerdictPolicy = field(default_factory=VerdictPolicy)


@dataclass
class Assessment:
    """What the FE model says about one bone."""

    stance: FailureResult
    activities: list[ActivityAssessment]
    stance_strain: np.ndarray
    """Max principal strain per local cell under the stance activity's peak load (dimensionless)."""
    stance_displacement: object
    """Displacement (dolfinx Function, mm) under the stance activity's peak load."""
    evaluated: np.ndarray
    """True for local cells evaluated for failure."""
    dofs: int
    iterations: list[int]


def cell_centres(mesh) -> np.ndarray:
    """Centroids (n_local, 3) of the local owned tetrahedra, world mm."""
    n = mesh.topology.index_map(3).size_local
    return mesh.geometry.x[mesh.geometry.dofmaps[0][:n]].mean(axis=1)


def _patch_points(mesh, facet_tags, tags) -> np.ndarray:
    """Midpoints of the facets carrying `tags`, gathered from every rank (world mm)."""
    from dolfinx.mesh import compute_midpoints

    facets = np.concatenate([facet_tags.find(tag) for tag in tags])
    local = compute_midpoints(mesh, 2, facets.astype(np.int32))
    return np.concatenate(mesh.comm.allgather(local), axis=0)


def evaluated_cells(mesh, facet_tags, labels, exclusion_mm) -> np.ndarray:
    """True for local cells evaluated for failure: bone, away from load and support patches."""
    points = _patch_points(mesh, facet_tags, (SUPPORT, HEAD, TROCHANTER))
    near = distance_mask(cell_centres(mesh), points, exclusion_mm)
    return ~near & ~np.isin(labels, LESION_LABELS)


def activity_list(names: list[str] | None, custom: list[Activity]) -> list[Activity]:
    """The library activities named (all when `names` is None) followed by the case's own."""
    from bonefe.errors import BonefeError

    chosen = list(ACTIVITIES) if names is None else names
    unknown = [n for n in chosen if n not in ACTIVITIES]
    if unknown:
        raise BonefeError(f"unknown activity '{unknown[0]}': choose from {', '.join(ACTIVITIES)}")
    return [ACTIVITIES[n] for n in chosen] + list(custom)


def assess(mesh, facet_tags, E, labels, nu, frame: FemurFrame, body_mass_kg: float,
           activities: list[Activity], options: RiskOptions, degree: int = 1) -> Assessment:
    """Solve the unit loads once and assess the stance failure load and every activity."""
    solver = ElasticitySolver(mesh, E, nu, facet_tags.find(SUPPORT), degree=degree)
    basis = UnitLoadBasis(solver, {name: facet_tags.find(tag) for name, tag in PATCH_TAGS.items()})
    volumes, centres = cell_volumes(mesh), cell_centres(mesh)
    evaluated = evaluated_cells(mesh, facet_tags, labels, options.exclusion_mm)

    def allowed(activity: Activity) -> tuple[FailureResult, np.ndarray, float]:
        forces = patch_forces(activity, frame, body_mass_kg, abductor=options.abductor)
        magnitude = float(np.linalg.norm(force_world(activity, frame, body_mass_kg)))
        principal = principal_strains(basis.strain({k: f / magnitude for k, f in forces.items()}))
        result = failure_under_unit_load(principal, volumes, centres, mesh.comm, ~evaluated,
                                         options.critical_volume_mm3, options.criterion)
        return result, principal[:, 0] * magnitude, magnitude

    rows = []
    for activity in activities:
        result, _, magnitude = allowed(activity)
        rows.append(assess_activity(activity.name, activity.label, magnitude,
                                    result.failure_load_n, activity.reference, options.verdict))
    stance_activity = ACTIVITIES[STANCE_ACTIVITY]
    stance, stance_strain, _ = allowed(stance_activity)
    displacement = basis.displacement(patch_forces(stance_activity, frame, body_mass_kg, options.abductor))
    return Assessment(stance, rows, stance_strain, displacement, evaluated, solver.num_dofs(),
                      [h["iterations"] for h in solver.history])

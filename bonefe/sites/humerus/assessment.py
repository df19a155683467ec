"""The humerus's model: the distal cut fixed, a unit force along world x, y and z on the head patch
(`bonefe.solver.UnitLoadBasis`), failure read away from both patches; its activities as `Load`s."""

import numpy as np

from bonefe.activities import Activity, force_world
from bonefe.assessment import BoneModel, RiskOptions, away_from_patches
from bonefe.errors import BonefeError
from bonefe.sites.base import Load
from bonefe.sites.humerus.anatomy import HEAD, SUPPORT, HumerusFrame
from bonefe.sites.humerus.loads import ACTIVITIES, humerus_activity
from bonefe.solver import ElasticitySolver, UnitLoadBasis


def humerus_model(mesh, facet_tags, E, labels, nu, options: RiskOptions, degree: int = 1, lesion=None) -> BoneModel:
    """SUPPORT fixed, three unit forces on the head patch, cells within options.exclusion_mm of a
    patch not evaluated; lesion: the CT's lesion map (`bonefe.assessment.BoneModel`)."""
    solver = ElasticitySolver(mesh, E, nu, facet_tags.find(SUPPORT), degree=degree)
    basis = UnitLoadBasis(solver, {"head": facet_tags.find(HEAD)})
    return BoneModel(mesh, labels, options, solver, basis, away_from_patches(mesh, facet_tags, options.exclusion_mm),
                     lesion)


def activity_load(activity: Activity, frame: HumerusFrame, body_mass_kg: float) -> Load:
    """An activity as a `Load`: the unit head force (world) and the contact force's magnitude (N)."""
    force = force_world(activity, frame, body_mass_kg)
    magnitude = float(np.linalg.norm(force))
    return Load(activity.name, activity.label, {"head": force / magnitude}, magnitude, activity.reference,
                source=activity)


def activity_list(names: list[str] | None, custom: list[dict]) -> list[Activity]:
    """The library activities named (all when None), then the case's own (`humerus_activity`)."""
    chosen = list(ACTIVITIES) if names is None else names
    unknown = [n for n in chosen if n not in ACTIVITIES]
    if unknown:
        raise BonefeError(f"unknown humerus activity '{unknown[0]}': choose from {', '.join(ACTIVITIES)}")
    return [ACTIVITIES[n] for n in chosen] + [humerus_activity(c) for c in custom]

"""The femur's part of the assessment: its model (distal support fixed, unit loads on the head and
trochanter patches), its activities as loads, and the hip-contact force envelope.

Envelope: the allowed hip-contact force on the head patch along directions of the frontal
(inferior → lateral) and sagittal (inferior → posterior) planes every `step_deg`, each the
failure load along that direction from the unit-load basis (contact force alone, no abductor).
"""

from dataclasses import dataclass

import numpy as np

from bonefe.activities import Activity, force_world
from bonefe.assessment import BoneModel, RiskOptions, away_from_patches
from bonefe.errors import BonefeError
from bonefe.materials import LesionMap
from bonefe.risk import ActivityAssessment
from bonefe.sites.base import Load
from bonefe.sites.femur.anatomy import HEAD, SUPPORT, TROCHANTER, FemurFrame
from bonefe.sites.femur.loads import ACTIVITIES, patch_forces
from bonefe.solver import ElasticitySolver, UnitLoadBasis
from bonefe.window import BAND, CARRIED

PATCH_TAGS = {"head": HEAD, "trochanter": TROCHANTER}
"""The load patches' facet tags (the support is SUPPORT)."""

ACCIDENTAL = ("stumbling",)
"""Library activities that are accidents, not exercise: kept in the safety table, left out of the window."""
DOSES = {"walking": CARRIED, "knee_bend": CARRIED, "squat_bodyweight": CARRIED, "step_up": CARRIED,
         "hip_band_exercises": BAND}
"""Library activities whose load a patient can set, and how (`bonefe.window`)."""

ENVELOPE_STEP_DEG = 5.0
ENVELOPE_PLANES = {
    "frontal": ("lateral", np.array([-1.0, 0.0, 0.0])),
    "sagittal": ("posterior", np.array([0.0, -1.0, 0.0])),
}
"""Envelope planes: name -> (direction that angle 90° points to, its frame components
(medial, anterior, superior)); angle 0° points inferiorly, along the main hip-contact force."""
INFERIOR = np.array([0.0, 0.0, -1.0])


@dataclass(frozen=True)
class EnvelopePlane:
    """Allowed hip-contact force (N) along directions of one anatomical plane.

    Angle 0° points inferiorly (frame −superior), 90° towards `towards` ("lateral" or "posterior").
    """

    plane: str
    towards: str
    angles_deg: list[float]
    allowed_force_n: list[float]


@dataclass(frozen=True)
class EnvelopeMark:
    """A head-contact activity on the envelope plots: its direction's angle in each plane (of its
    projection there), its peak force and its allowed force along its own direction (N)."""

    label: str
    angles_deg: dict[str, float]
    peak_force_n: float
    allowed_force_n: float


def femur_model(mesh, facet_tags, E, labels, nu, options: RiskOptions, degree: int = 1,
                lesion: LesionMap | None = None) -> BoneModel:
    """The femur on one mesh: SUPPORT fixed, three unit forces on each load patch, cells within
    options.exclusion_mm of a patch not evaluated; lesion: the CT's lesion map (`BoneModel`)."""
    solver = ElasticitySolver(mesh, E, nu, facet_tags.find(SUPPORT), degree=degree)
    basis = UnitLoadBasis(solver, {name: facet_tags.find(tag) for name, tag in PATCH_TAGS.items()})
    return BoneModel(mesh, labels, options, solver, basis,
                     away_from_patches(mesh, facet_tags, options.exclusion_mm), lesion)


def unit_forces(activity: Activity, frame: FemurFrame, body_mass_kg: float, abductor: bool) -> tuple[dict, float]:
    """The activity's patch forces scaled to 1 N of contact force, and its contact force (N)."""
    forces = patch_forces(activity, frame, body_mass_kg, abductor=abductor)
    magnitude = float(np.linalg.norm(force_world(activity, frame, body_mass_kg)))
    return {k: f / magnitude for k, f in forces.items()}, magnitude


def activity_load(activity: Activity, frame: FemurFrame, body_mass_kg: float, abductor: bool) -> Load:
    """A library or custom activity as a `Load` (its contact force the peak)."""
    unit, magnitude = unit_forces(activity, frame, body_mass_kg, abductor)
    return Load(activity.name, activity.label, unit, magnitude, activity.reference,
                accidental=activity.name in ACCIDENTAL, dose=DOSES.get(activity.name), source=activity)


def activity_list(names: list[str] | None, custom: list[Activity]) -> list[Activity]:
    """The library activities named (all when `names` is None) followed by the case's own."""
    chosen = list(ACTIVITIES) if names is None else names
    unknown = [n for n in chosen if n not in ACTIVITIES]
    if unknown:
        raise BonefeError(f"unknown activity '{unknown[0]}': choose from {', '.join(ACTIVITIES)}")
    return [ACTIVITIES[n] for n in chosen] + list(custom)


def plane_direction(plane: str, angle_deg: float) -> np.ndarray:
    """Unit direction (medial, anterior, superior) at angle_deg in an envelope plane (ENVELOPE_PLANES)."""
    towards = ENVELOPE_PLANES[plane][1]
    angle = np.radians(angle_deg)
    return np.cos(angle) * INFERIOR + np.sin(angle) * towards


def allowed_head_force(model: BoneModel, frame: FemurFrame, direction) -> float:
    """Allowed hip-contact force (N) on the head patch along a frame direction (medial, anterior, superior)."""
    world = frame.basis() @ (np.asarray(direction, float) / np.linalg.norm(direction))
    return model.failure({"head": world}).failure_load_n


def force_envelope(model: BoneModel, frame: FemurFrame, step_deg: float = ENVELOPE_STEP_DEG) -> list[EnvelopePlane]:
    """Allowed hip-contact force every step_deg over the full circle of each envelope plane."""
    angles = [float(a) for a in np.arange(0.0, 360.0, step_deg)]
    return [EnvelopePlane(plane, towards, angles,
                          [allowed_head_force(model, frame, plane_direction(plane, a)) for a in angles])
            for plane, (towards, _) in ENVELOPE_PLANES.items()]


def envelope_marks(activities: list[Activity], rows: list[ActivityAssessment]) -> list[EnvelopeMark]:
    """Marks for the head-contact activities (the envelope is of hip-contact force alone)."""
    marks = []
    for activity, row in zip(activities, rows):
        if activity.patch == "head":
            d = np.asarray(activity.force, float)
            angles = {plane: float(np.degrees(np.arctan2(d @ towards, d @ INFERIOR)) % 360.0)
                      for plane, (_, towards) in ENVELOPE_PLANES.items()}
            marks.append(EnvelopeMark(row.label, angles, row.peak_force_n, row.allowed_force_n))
    return marks

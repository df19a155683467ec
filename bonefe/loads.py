"""Activity library: peak hip-contact forces measured with instrumented implants, in the femur frame.

Every activity is the force acting ON the femoral head (or, for a fall, on the greater
trochanter) at the instant of its peak, given as components along the femur frame of
:meth:`bonefe.anatomy.FemurFrame.basis`, columns (medial, anterior, superior). That frame means the
same on left and right femurs (it is mirrored for a right one), so one table serves both sides.

Sign convention, translated from the sources
--------------------------------------------
Bergmann et al. present the in vivo contact force in a femur-fixed frame (z along the shaft) for
one side, with left-sided data mirrored onto it. We do not copy their axis letters; we map the
published numbers by their physical meaning, which the papers state unambiguously:

* the force on the head points distally (−z, the large component): our ``superior`` < 0;
* "perpendicular to the long femoral axis the peak force acted predominantly from medial to
  lateral" (Bergmann et al. 1993, abstract): our ``medial`` < 0;
* its antero-posterior component points "from ventral to dorsal" and grows with load
  (Bergmann 1993) and it twists the stem inwards, more on stairs than in walking (Bergmann et al.
  2001, abstract; the inward torsion of the stem about the shaft axis is produced by a
  posteriorly directed force on the medially offset head): our ``anterior`` < 0.

The full 3-D vectors used are the peak-instant components of the "average patient" of
Bergmann et al. (2001) for walking and stair climbing as tabulated for pre-clinical testing by
Heller et al. (2005): walking 54.0 / 32.8 / 229.2 %BW (lateral / posterior / distal),
|F| = 238 %BW; stairs up 59.3 / 60.6 / 236.3 %BW, |F| = 251 %BW. For activities whose sources give
only the resultant magnitude, the direction of the closest fully documented activity is used
and the entry says so (``direction_note``).

Magnitudes are percent of body weight (BW = body mass × 9.81 N), except the fall, which is an
impact force in newtons (it depends on fall height and soft tissue more than on body weight).

References
----------
Bergmann G, Graichen F, Rohlmann A (1993) Hip joint loading during walking and running, measured
    in two patients. J Biomech 26:969–990.
Bergmann G, Deuretzbacher G, Heller M, et al. (2001) Hip contact forces and gait patterns from
    routine activities. J Biomech 34:859–871.
Heller MO, Bergmann G, Kassi J-P, et al. (2005) Determination of muscle loading at the hip joint
    for use in pre-clinical testing. J Biomech 38:1155–1163.
Bergmann G, Bender A, Dymke J, Duda G, Damm P (2016) Standardized loads acting in hip implants.
    PLoS One 11:e0155612.
Schwachmeyer V, Damm P, Bender A, et al. (2013) In vivo hip joint loading during post-operative
    physiotherapeutic exercises. PLoS One 8:e77807.
Robinovitch SN, Hayes WC, McMahon TA (1991) Prediction of femoral impact forces in falls on the
    hip. J Biomech Eng 113:366–374.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bonefe.errors import BonefeError

G = 9.81  # m/s², BW = mass × G
PATCHES = ("head", "trochanter")
UNITS = ("%BW", "N")

_B1993 = "Bergmann et al. 1993, J Biomech 26:969"
_B2001 = "Bergmann et al. 2001, J Biomech 34:859"
_H2005 = "components: Heller et al. 2005, J Biomech 38:1155 (average patient of Bergmann 2001)"
_S2013 = "Schwachmeyer et al. 2013, PLoS One 8:e77807"

#: Peak-instant directions (unit vectors, medial/anterior/superior) of the fully documented
#: activities; see the module docstring for the sign mapping.
WALKING_DIRECTION = np.array([-54.0, -32.8, -229.2]) / np.linalg.norm([54.0, 32.8, 229.2])
STAIRS_DIRECTION = np.array([-59.3, -60.6, -236.3]) / np.linalg.norm([59.3, 60.6, 236.3])

#: Abductor muscle force at the walking peak (gluteus medius + minimus + tensor fasciae latae,
#: summed), %BW, on the greater trochanter, pulling proximally and medially: Heller et al. 2005
#: (58.0 medial, 4.3 anterior, 86.5 superior; same sign mapping as the contact force).
ABDUCTOR_WALKING_BW = (58.0, 4.3, 86.5)


@dataclass(frozen=True)
class Activity:
    """One loading scenario.

    name:       identifier (also the key in :data:`ACTIVITIES` and in case files).
    label:      human-readable name for reports.
    force:      (medial, anterior, superior) components of the force on the patch, in `unit`.
    patch:      "head" (hip contact) or "trochanter" (fall impact, abductors).
    reference:  source of the magnitude (and direction).
    unit:       "%BW" (percent body weight) or "N".
    direction_note: how the direction was obtained when the source gives only a magnitude.
    abductor:   optional abductor force (medial, anterior, superior) in %BW on the trochanter
                patch, applied together with the contact force when requested.
    """

    name: str
    label: str
    force: tuple[float, float, float]
    patch: str = "head"
    reference: str = ""
    unit: str = "%BW"
    direction_note: str = ""
    abductor: tuple[float, float, float] | None = field(default=None)

    @property
    def magnitude(self) -> float:
        """Resultant of the contact force, in `unit`."""
        return float(np.linalg.norm(self.force))


def _resultant(name, label, magnitude, direction, reference, note, **extra) -> Activity:
    """An activity known by its resultant only, along a documented direction."""
    force = tuple(float(c) for c in magnitude * np.asarray(direction))
    return Activity(name, label, force, reference=reference, direction_note=note, **extra)


_WALK_NOTE = "resultant from the source; direction of the walking peak (Bergmann 2001/Heller 2005)"
_STAIR_NOTE = "resultant from the source; direction of the stairs-up peak (flexed hip; Heller 2005)"


def _library() -> dict[str, Activity]:
    walking = Activity("walking", "Walking (~4 km/h)", (-54.0, -32.8, -229.2),
                       reference=f"{_B2001}: 238 %BW; {_H2005}",
                       abductor=ABDUCTOR_WALKING_BW)
    stairs_up = Activity("stairs_up", "Stairs up", (-59.3, -60.6, -236.3),
                         reference=f"{_B2001}: 251 %BW; {_H2005}")
    fall = Activity("sideways_fall", "Sideways fall on the greater trochanter", (4000.0, 0.0, 0.0),
                    patch="trochanter", unit="N",
                    reference="Robinovitch et al. 1991, J Biomech Eng 113:366 (predicted impact "
                              "forces of several kN on the trochanter); 4 kN is a representative "
                              "round value, not a patient-specific prediction",
                    direction_note="lateral to medial, perpendicular to the shaft (the femur "
                                   "frame's medial axis)")
    entries = [
        walking,
        stairs_up,
        _resultant("stairs_down", "Stairs down", 260.0, STAIRS_DIRECTION, _B2001, _STAIR_NOTE),
        _resultant("sit_to_stand", "Standing up from a chair", 190.0, STAIRS_DIRECTION, _B2001,
                   _STAIR_NOTE),
        _resultant("stand_to_sit", "Sitting down on a chair", 156.0, STAIRS_DIRECTION, _B2001,
                   _STAIR_NOTE),
        _resultant("one_leg_stance", "Standing on one leg", 231.0, WALKING_DIRECTION, _B2001,
                   _WALK_NOTE, abductor=ABDUCTOR_WALKING_BW),
        _resultant("knee_bend", "Knee bend (both legs)", 143.0, STAIRS_DIRECTION, _B2001,
                   _STAIR_NOTE),
        _resultant("jogging", "Jogging", 550.0, WALKING_DIRECTION,
                   f"{_B1993}: about 550 %BW jogging and very fast walking (patient 1)",
                   _WALK_NOTE + "; Bergmann 1993: frontal-plane direction nearly constant at "
                                "high forces"),
        _resultant("stumbling", "Stumbling", 720.0, WALKING_DIRECTION,
                   f"{_B1993}: 720 %BW (patient 1; 870 %BW in patient 2)",
                   _WALK_NOTE + "; Bergmann 1993: frontal-plane direction nearly constant at "
                                "high forces"),
        _resultant("physio_weight_bearing", "Weight-bearing physiotherapy exercise (peak)",
                   441.0, WALKING_DIRECTION,
                   f"{_S2013}: weight-bearing exercises, peak values up to 441 %BW", _WALK_NOTE),
        _resultant("physio_long_lever", "Long-lever-arm exercise (e.g. straight-leg raise)",
                   119.0, WALKING_DIRECTION,
                   f"{_S2013}: long-lever-arm exercises about 50 % of walking (0.5 × 238 %BW)",
                   _WALK_NOTE),
        _resultant("physio_dynamic", "Dynamic exercise (e.g. bicycle ergometer, leg swings)",
                   119.0, WALKING_DIRECTION,
                   f"{_S2013}: dynamic exercises about 50 % of walking (0.5 × 238 %BW)",
                   _WALK_NOTE),
        fall,
    ]
    return {activity.name: activity for activity in entries}


#: The built-in activities by name.
ACTIVITIES: dict[str, Activity] = _library()

#: Reference load for the failure load (× BW): the walking peak, the stance-phase maximum of the
#: most frequent activity and the only ADL whose full 3-D vector is published for the average
#: patient (Bergmann 2001, Heller 2005); one-leg stance has a similar resultant (231 %BW).
STANCE_ACTIVITY = "walking"


def _vector(d: dict, key: str) -> tuple[float, float, float]:
    value = d[key]
    try:
        vector = tuple(float(c) for c in value)
    except (TypeError, ValueError):
        vector = ()
    if len(vector) != 3 or not np.all(np.isfinite(vector)):
        raise BonefeError(f"activity '{d.get('name', '?')}': '{key}' must be three numbers "
                          "(medial, anterior, superior)")
    return vector


def activity_from_dict(d: dict) -> Activity:
    """A user-defined activity from a case file mapping.

    Keys: name (required), label, reference, patch ("head"|"trochanter"), unit ("%BW"|"N"), and
    either ``force`` = [medial, anterior, superior] or ``magnitude`` with ``direction`` (any
    non-zero 3-vector, normalised here); optional ``abductor`` = [medial, anterior, superior] %BW.
    """
    if not isinstance(d, dict) or not d.get("name"):
        raise BonefeError("each activity needs a 'name' (and 'force' or 'magnitude'+'direction')")
    known = {"name", "label", "reference", "patch", "unit", "force", "magnitude", "direction",
             "abductor", "direction_note"}
    unknown = set(d) - known
    if unknown:
        raise BonefeError(f"activity '{d['name']}': unknown key(s) {sorted(unknown)}; "
                          f"allowed: {sorted(known)}")
    patch, unit = d.get("patch", "head"), d.get("unit", "%BW")
    if patch not in PATCHES:
        raise BonefeError(f"activity '{d['name']}': patch must be one of {PATCHES}, got {patch!r}")
    if unit not in UNITS:
        raise BonefeError(f"activity '{d['name']}': unit must be one of {UNITS}, got {unit!r}")
    if "force" in d:
        force = _vector(d, "force")
    elif "magnitude" in d and "direction" in d:
        direction = np.asarray(_vector(d, "direction"))
        if not np.linalg.norm(direction) > 0 or not float(d["magnitude"]) >= 0:
            raise BonefeError(f"activity '{d['name']}': direction must be non-zero and "
                              "magnitude non-negative")
        force = tuple(float(d["magnitude"]) * direction / np.linalg.norm(direction))
    else:
        raise BonefeError(f"activity '{d['name']}': give 'force' or 'magnitude' and 'direction'")
    abductor = _vector(d, "abductor") if d.get("abductor") is not None else None
    return Activity(name=str(d["name"]), label=str(d.get("label", d["name"])), force=force,
                    patch=patch, reference=str(d.get("reference", "user-defined")), unit=unit,
                    direction_note=str(d.get("direction_note", "")), abductor=abductor)


def _to_world(components, unit: str, frame, body_mass_kg: float) -> np.ndarray:
    scale = body_mass_kg * G / 100.0 if unit == "%BW" else 1.0
    return frame.basis() @ (scale * np.asarray(components, dtype=float))


def force_world(activity: Activity, frame, body_mass_kg: float) -> np.ndarray:
    """Contact force of `activity` in world coordinates (N) for a patient of `body_mass_kg`."""
    if not body_mass_kg > 0:
        raise BonefeError(f"body mass must be positive (kg), got {body_mass_kg}")
    return _to_world(activity.force, activity.unit, frame, body_mass_kg)


def patch_forces(activity: Activity, frame, body_mass_kg: float,
                 abductor: bool = False) -> dict[str, np.ndarray]:
    """World forces (N) per load patch: the contact force, plus the abductor force on the
    trochanter when `abductor` is true and the activity defines one (an option: by default only
    the contact force is applied)."""
    forces = {activity.patch: force_world(activity, frame, body_mass_kg)}
    if abductor and activity.abductor is not None:
        pull = _to_world(activity.abductor, "%BW", frame, body_mass_kg)
        forces["trochanter"] = forces.get("trochanter", 0.0) + pull
    return forces

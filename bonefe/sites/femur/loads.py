"""Activity library: peak hip-contact forces in the femur frame, each line with its source.

Every activity is the force acting ON the femoral head at the instant of its peak, given as
components along the femur frame of :meth:`bonefe.sites.femur.anatomy.FemurFrame.basis`, columns (medial,
anterior, superior). That frame means the same on left and right femurs (it is mirrored for a
right one), so one table serves both sides. The sideways fall is not an activity: it has its own
supports and its own operator.

Sign convention, translated from the sources
--------------------------------------------
Bergmann et al. present the in vivo contact force in a femur-fixed frame with +x lateral,
+y anterior, +z superior along the shaft (left sides mirrored onto right; OrthoLoad "Additional
Data": "F_x' acts laterally, F_y' anteriorly, and -F_z' distally"). Our components are therefore
(medial, anterior, superior) = (-Fx, Fy, Fz). All three are negative for the activities here: the
force on the head points distally, from medial to lateral and from ventral to dorsal (Bergmann et
al. 1993, abstract).

Directions
----------
* walking: peak-instant components of the "average patient" of Bergmann et al. (2001), tabulated
  by Heller et al. (2005): 54.0 / 32.8 / 229.2 %BW lateral / posterior / distal, |F| = 238 %BW.
  It is also the stance load of the failure load (`STANCE_ACTIVITY`), unchanged in this revision;
  the ten-patient OrthoLoad walking mean (below) lies 3.7 degrees from it.
* stairs: Heller et al. (2005), stairs up 59.3 / 60.6 / 236.3 %BW, |F| = 251 %BW.
* stand-up and one-leg stance: the mean peak-phase vectors of the OrthoLoad "Hip III" subjects of
  Bergmann et al. (2016) (9 subjects standing up, 10 in one-leg stance), as re-extracted from the
  published data collection by Fischer et al. (2021, RWTH HipJointForceModel, files
  data/OrthoLoad/Forces/H*_{SU,OLS}.xml): stand-up 86.1 / 23.4 / 194.5 and one-leg stance
  73.6 / 15.0 / 248.8 %BW lateral / posterior / distal.
Activities whose source gives a resultant only take the direction of the closest fully documented
activity and say so (``direction_note``): sitting down and the knee bend take the stand-up
direction (hip flexed over the seat, both legs loaded), not the stairs direction.

Magnitudes and scaling
----------------------
Magnitudes are percent of body weight (BW = body mass x 9.81 N). Values measured in a single
patient whose own walking load differs from the average patient's are scaled by that patient's
walking (``walking_ratio``), or kept unscaled and labelled worst case. Bergmann et al. (1993)
patient 1 walked at about 280 %BW at 1 km/h and 480 %BW at 5 km/h; at the 4 km/h of the reference
walking, linear interpolation gives 430 %BW, so a value V of that patient becomes 238 x V / 430.
Exercise entries (`bonefe/data/exercises.csv`) follow the same rules; model-derived values are
scaled by the same model's walking.

References
----------
Bergmann G, Graichen F, Rohlmann A (1993) Hip joint loading during walking and running, measured
    in two patients. J Biomech 26:969-990.
Bergmann G, Deuretzbacher G, Heller M, et al. (2001) Hip contact forces and gait patterns from
    routine activities. J Biomech 34:859-871.
Heller MO, Bergmann G, Kassi J-P, et al. (2005) Determination of muscle loading at the hip joint
    for use in pre-clinical testing. J Biomech 38:1155-1163.
Bergmann G, Bender A, Dymke J, Duda G, Damm P (2016) Standardized loads acting in hip implants.
    PLoS One 11:e0155612.
Inai T, et al. (2018) BioMed Eng OnLine, doi 10.1186/s12938-018-0610-5: Table 2 quotes the
    Bergmann 2016 "Average75" stand-up force, 1600 N for 75 kg.
Fischer MCM, et al. (2021) Effect of the underlying cadaver data and patient-specific adaptation
    of the femur and pelvis on the prediction of the hip joint force estimated using static
    models. J Biomech, doi 10.1016/j.jbiomech.2021.110526 (OrthoLoad peak-phase vectors in
    github.com/RWTHmediTEC/HipJointForceModel).
Schwachmeyer V, Damm P, Bender A, et al. (2013) In vivo hip joint loading during post-operative
    physiotherapeutic exercises. PLoS One 8:e77807.
"""

from __future__ import annotations

import csv
from importlib.resources import files

import numpy as np

from bonefe.activities import Activity, force_world, to_world

PATCHES = ("head", "trochanter")

_B1993 = "Bergmann et al. 1993, J Biomech 26:969"
_B2001 = "Bergmann et al. 2001, J Biomech 34:859"
_B2016 = "Bergmann et al. 2016, PLoS One 11:e0155612"
_H2005 = "components: Heller et al. 2005, J Biomech 38:1155 (average patient of Bergmann 2001)"
_ORTHOLOAD = ("direction: mean OrthoLoad Hip III peak-phase vector of Bergmann 2016 "
              "(Fischer et al. 2021, RWTH HipJointForceModel)")
_S2013 = "Schwachmeyer et al. 2013, PLoS One 8:e77807"


def _unit(lateral: float, posterior: float, distal: float) -> np.ndarray:
    """Unit (medial, anterior, superior) vector from Bergmann's lateral/posterior/distal magnitudes."""
    v = -np.array([lateral, posterior, distal], dtype=float)
    return v / np.linalg.norm(v)


#: Peak-instant directions (unit vectors, medial/anterior/superior); see the module docstring.
WALKING_DIRECTION = _unit(54.0, 32.8, 229.2)
STAIRS_DIRECTION = _unit(59.3, 60.6, 236.3)
STAND_UP_DIRECTION = _unit(86.1, 23.4, 194.5)
ONE_LEG_STANCE_DIRECTION = _unit(73.6, 15.0, 248.8)
DIRECTIONS = {"walking": WALKING_DIRECTION, "stairs": STAIRS_DIRECTION,
              "stand_up": STAND_UP_DIRECTION, "one_leg_stance": ONE_LEG_STANCE_DIRECTION}

#: Reference walking peak (%BW) that single-patient and model values are scaled to (Bergmann 2001).
WALKING_BW = 238.0
#: Walking peak (%BW) of Bergmann 1993 patient 1 at ~4 km/h: linear between 280 (1 km/h) and
#: 480 (5 km/h), the two speeds the abstract reports.
B1993_WALKING_BW = 280.0 + (480.0 - 280.0) * (4.0 - 1.0) / (5.0 - 1.0)

#: Abductor muscle force at the walking peak (gluteus medius + minimus + tensor fasciae latae,
#: summed), %BW, on the greater trochanter, pulling proximally and medially: Heller et al. 2005
#: (58.0 medial, 4.3 anterior, 86.5 superior; same sign mapping as the contact force).
ABDUCTOR_WALKING_BW = (58.0, 4.3, 86.5)


def _resultant(name, label, magnitude, direction, reference, note, **extra) -> Activity:
    """An activity known by its resultant only, along a documented direction."""
    force = tuple(float(c) for c in magnitude * np.asarray(direction))
    return Activity(name, label, force, reference=reference, direction_note=note, **extra)


_WALK_NOTE = "resultant from the source; direction of the walking peak (Heller 2005)"
_STAIR_NOTE = "resultant from the source; direction of the stairs-up peak (Heller 2005)"
_CHAIR_NOTE = ("resultant from the source; direction of the OrthoLoad stand-up peak (hip flexed "
               "over the seat, both legs loaded; Bergmann 2016 data)")
_FAST_NOTE = (_WALK_NOTE + "; Bergmann 1993: the frontal-plane direction hardly changes at high "
              "forces while the posterior component grows (not modelled)")


def _scaled_1993(value_bw: float) -> float:
    """A Bergmann 1993 patient-1 value scaled to the reference walking: 238 × V / 430 (%BW)."""
    return WALKING_BW * value_bw / B1993_WALKING_BW


def _daily_living() -> list[Activity]:
    """Activities of daily living and physiotherapy classes (instrumented implants)."""
    return [
        Activity("walking", "Walking (~4 km/h)", (-54.0, -32.8, -229.2),
                 reference=f"{_B2001}: 238 %BW; {_H2005}", abductor=ABDUCTOR_WALKING_BW),
        Activity("stairs_up", "Stairs up", (-59.3, -60.6, -236.3),
                 reference=f"{_B2001}: 251 %BW; {_H2005}"),
        _resultant("stairs_down", "Stairs down", 260.0, STAIRS_DIRECTION, f"{_B2001}: 260 %BW",
                   _STAIR_NOTE + " (no published stairs-down vector read)"),
        _resultant("sit_to_stand", "Standing up from a chair", 217.0, STAND_UP_DIRECTION,
                   f"{_B2016}: 'Average75' stand up 1600 N for 75 kg = 217 %BW (quoted by Inai "
                   f"et al. 2018, Table 2); {_ORTHOLOAD}", "direction of its own peak (stand-up)"),
        _resultant("stand_to_sit", "Sitting down on a chair", 156.0, STAND_UP_DIRECTION,
                   f"{_B2001}: 156 %BW, average patient (table value; not re-read for this revision)", _CHAIR_NOTE),
        _resultant("one_leg_stance", "Standing on one leg", 261.0, ONE_LEG_STANCE_DIRECTION,
                   f"{_B2016}: mean of the 10 OrthoLoad subjects' plateau forces 261 ± 29 %BW; "
                   f"{_ORTHOLOAD}", "direction of its own peak (one-leg stance)",
                   abductor=ABDUCTOR_WALKING_BW),
        _resultant("knee_bend", "Knee bend (both legs)", 143.0, STAND_UP_DIRECTION,
                   f"{_B2001}: 143 %BW, average patient (table value; not re-read for this revision)", _CHAIR_NOTE),
        _resultant("jogging", "Jogging", _scaled_1993(550.0), WALKING_DIRECTION,
                   f"{_B1993}: about 550 %BW jogging in patient 1, scaled by that patient's own "
                   "walking: 238 × 550 / 430 = 304 %BW", _FAST_NOTE),
        _resultant("stumbling", "Stumbling (worst case, single patient)", 720.0, WALKING_DIRECTION,
                   f"{_B1993}: 720 %BW in patient 1 (870 %BW in patient 2), unscaled: worst case "
                   "(238 × 720 / 430 = 399 %BW if scaled like jogging)", _FAST_NOTE),
        _resultant("physio_weight_bearing", "Weight-bearing physiotherapy exercise (maximum)",
                   441.0, WALKING_DIRECTION,
                   f"{_S2013}: weight-bearing exercises, peak values up to 441 %BW (the maximum "
                   "over 6 patients, not a typical value)", _WALK_NOTE),
        _resultant("physio_long_lever", "Long-lever-arm physiotherapy exercise",
                   0.5 * WALKING_BW, WALKING_DIRECTION,
                   f"{_S2013}: long-lever-arm exercises about 50 % of the same patients' walking "
                   "(0.5 × 238 %BW)", _WALK_NOTE),
        _resultant("physio_dynamic", "Dynamic physiotherapy exercise",
                   0.5 * WALKING_BW, WALKING_DIRECTION,
                   f"{_S2013}: dynamic exercises about 50 % of the same patients' walking "
                   "(0.5 × 238 %BW)", _WALK_NOTE),
    ]


def _ratio(text: str) -> float:
    """A number or a quotient 'a/b' from the exercise table."""
    numerator, _, denominator = text.partition("/")
    return float(numerator) / float(denominator or 1.0)


def _exercises() -> list[Activity]:
    """Exercise-oncology entries from bonefe/data/exercises.csv (columns documented there).

    value: %BW when `per` is "%BW", else a ratio to the walking of the same study ("walking"),
    multiplied by the reference walking WALKING_BW.
    """
    text = files("bonefe").joinpath("data/exercises.csv").read_text("utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    entries = []
    for row in rows:
        scale = 1.0 if row["per"] == "%BW" else WALKING_BW
        entries.append(_resultant(row["name"], row["label"], scale * _ratio(row["value"]),
                                  DIRECTIONS[row["direction"]], row["reference"], row["direction_note"]))
    return entries


def _library() -> dict[str, Activity]:
    return {activity.name: activity for activity in _daily_living() + _exercises()}


#: The built-in activities by name.
ACTIVITIES: dict[str, Activity] = _library()

#: Reference load for the failure load (× BW): the walking peak, the stance-phase maximum of the
#: most frequent activity and the only ADL whose full 3-D vector is published for the average
#: patient (Bergmann 2001, Heller 2005).
STANCE_ACTIVITY = "walking"


def patch_forces(activity: Activity, frame, body_mass_kg: float,
                 abductor: bool = False) -> dict[str, np.ndarray]:
    """World forces (N) per load patch: the contact force, plus the abductor force on the
    trochanter when `abductor` is true and the activity defines one (an option: by default only
    the contact force is applied)."""
    forces = {activity.patch: force_world(activity, frame, body_mass_kg)}
    if abductor and activity.abductor is not None:
        pull = to_world(activity.abductor, "%BW", frame, body_mass_kg)
        forces["trochanter"] = forces.get("trochanter", 0.0) + pull
    return forces

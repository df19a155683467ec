"""Activity library of the humerus: peak glenohumeral contact forces on the humeral head (% BW).

Each activity is the force acting ON the humeral head at its peak, as components along the humerus
frame (`bonefe.sites.humerus.anatomy.HumerusFrame.basis`, columns medial, anterior, superior; the
same on left and right), in percent of body weight (BW = body mass × 9.81 N), as the femur's
activities (`bonefe.activities.Activity`, here with the head patch only).

Magnitudes (each read in the source's abstract in this session)
---------------------------------------------------------------
* arm_elevation: 238 %BW, the largest force measured with instrumented shoulder implants in 6
  patients during forward flexion and abduction of the straight arm (Bergmann et al. 2011, J Biomech
  44:1543, abstract: "Forces of up to 238%BW"). A maximum over patients, not a typical value.
* walking_with_crutches: 170 %BW, the largest force measured in 6 patients walking with axillary
  or forearm crutches with complete or partial unloading of the legs (Westerhoff et al. 2012, Clin
  Biomech 27:711, abstract: "Maximum loads of up 170% of the bodyweight"; higher with forearm
  crutches in most patients). A maximum over patients and crutch types.
* lifting_pot_straight_arm: 153.4 %BW, the largest of 4 patients setting down a 1.5 kg coffee pot
  with the straight arm (Westerhoff et al. 2009, J Biomech 42:1840, abstract: "setting down the
  coffee pot in the same position led to higher forces of 122.9%BW on the average (105.3-153.4%BW)";
  lifting it: 105.0, 90-124.6 %BW).
* lifting_2kg_head_height: 144.1 %BW, the largest of 4 patients setting 2 kg down on a board from
  head height (same abstract: "Lifting up 2kg from a board up to head height caused a contact force
  of 98.3%BW (93-103.6%BW); again, setting it down on the board led to higher forces of 131.5%BW
  (118.8-144.1%BW)").
* lifting_10kg_belt_height: 95 %BW, the largest of 4 patients lifting 10 kg to belt height (same
  abstract: "when lifting it up to belt height it increased to 91.5%BW (87-95%BW)").
* holding_10kg_hanging_arm: 17.9 %BW, the largest of 4 patients holding 10 kg with the arm hanging
  (same abstract: "passive holding of a 10kg weight laterally was only 12.3%BW (9.2-17.9%BW)").
* steering: 60 %BW, the in-vivo mean peak glenohumeral force of driving quoted by a 2015 Clin
  Biomech musculoskeletal study of driving (UK National Shoulder Model; PubMed Central PMC4577652,
  abstract: "60 SD 1% body weight mean peak", against which the model gave 61 ± 8 %BW; its authors
  were not shown: unconfirmed); the in-vivo study the number comes from is not named in the abstract
  (presumably the OrthoLoad shoulder data; unconfirmed).

Directions (assumptions: no force components were read in this session)
----------------------------------------------------------------------
The contact force passes through the head centre (a ball joint; the measured friction moments are
ignored). Bergmann et al. 2011 report that the force direction relative to the humerus "remained
quite constant throughout the whole motion" (abstract), without components read here. bonefe
therefore takes:
* arm elevation, lifting, holding and steering: along the articular axis into the head (the glenoid
  at the middle of the articular surface, `ARTICULAR`): medial and superior components negative, at the frame's
  inclination (`bonefe.sites.humerus.anatomy.INCLINATION_DEG`);
* walking aids: along the shaft, distally (`ALONG_SHAFT`): the body weight taken through the hand
  pushes the humerus up into the glenoid. Westerhoff et al. 2012 (abstract) hypothesised a force
  "more in the direction of the long humeral axis" with axillary crutches; their findings in the
  abstract do not give the direction: unconfirmed.

Not in the library: no number could be checked in a source itself for combing hair (a vendor page
summarising the same implants gives 59.3-105.1 %BW, very probably Westerhoff et al. 2009's table,
whose full text was not found: unconfirmed), pushing up from a chair, walking with a walker or a
cane, elastic-band, light-dumbbell or wall push-up exercises. A case may add them as `custom_activities`
(`magnitude` and `direction` in the humerus frame, patch "head") with its own source.
"""

import numpy as np

from bonefe.activities import Activity, activity_from_dict
from bonefe.errors import BonefeError
from bonefe.sites.humerus.anatomy import INCLINATION_DEG

_ANGLE = np.radians(INCLINATION_DEG)
ARTICULAR = -np.array([np.sin(_ANGLE), 0.0, np.cos(_ANGLE)])
"""Unit force on the head along the articular axis, into the bone (medial, anterior, superior)."""
ALONG_SHAFT = np.array([0.0, 0.0, -1.0])
"""Unit force on the head along the shaft, distally."""

B2011 = "Bergmann et al. 2011, J Biomech 44:1543 (abstract: forces up to 238 %BW, 6 patients)"
W2009 = "Westerhoff et al. 2009, J Biomech 42:1840 (abstract: mean and range of 4 patients)"
W2012 = "Westerhoff et al. 2012, Clin Biomech 27:711 (abstract: up to 170 %BW, 6 patients)"
P2015 = ("Clin Biomech 2015 driving study, PubMed Central PMC4577652 (abstract: in-vivo mean peak "
         "60 ± 1 %BW; authors and in-vivo source unconfirmed)")
_ARTICULAR_NOTE = "assumed along the articular axis into the head (components not read: unconfirmed)"
_SHAFT_NOTE = ("assumed along the shaft, distally (Westerhoff 2012 hypothesis for axillary crutches; "
               "unconfirmed)")


def _activity(name: str, label: str, percent_bw: float, direction: np.ndarray, reference: str,
              note: str) -> Activity:
    return Activity(name, label, tuple(float(c) for c in percent_bw * direction), reference=reference,
                    direction_note=note)


ACTIVITIES: dict[str, Activity] = {a.name: a for a in (
    _activity("arm_elevation", "Raising the straight arm (flexion or abduction), maximum", 238.0, ARTICULAR,
              B2011, _ARTICULAR_NOTE),
    _activity("walking_with_crutches", "Walking with crutches (legs unloaded), maximum", 170.0, ALONG_SHAFT,
              W2012, _SHAFT_NOTE),
    _activity("lifting_pot_straight_arm", "Lifting or setting down a 1.5 kg pot, straight arm, maximum", 153.4,
              ARTICULAR, W2009, _ARTICULAR_NOTE),
    _activity("lifting_2kg_head_height", "Lifting 2 kg to head height or setting it down, maximum", 144.1,
              ARTICULAR, W2009, _ARTICULAR_NOTE),
    _activity("lifting_10kg_belt_height", "Lifting 10 kg to belt height, maximum", 95.0, ARTICULAR, W2009,
              _ARTICULAR_NOTE),
    _activity("holding_10kg_hanging_arm", "Holding 10 kg with the arm hanging, maximum", 17.9, ARTICULAR, W2009,
              _ARTICULAR_NOTE),
    _activity("steering", "Steering a car", 60.0, ARTICULAR, P2015, _ARTICULAR_NOTE),
)}
"""The built-in activities by name (module docstring)."""

REFERENCE_ACTIVITY = "walking_with_crutches"
"""The load of the failure load (× BW) and of the risk category: walking with crutches, the load a
patient sent to crutches puts through the whole humerus (hand → elbow → shaft → glenoid), which the
model's fixed distal cut represents. The arm-elevation loads are balanced in the body by the deltoid
and rotator-cuff muscles on the proximal humerus, which the model does not apply: with the distal
cut fixed their force bends the whole shaft as a cantilever, so their verdicts are conservative and
their failure tends to start at the cut (`bonefe.sites.humerus.site` assumptions)."""
PATCHES = ("head",)
"""The humerus's load patch."""
WALKING_AIDS = ("walking_with_crutches",)
"""Library activities that are walking aids (the patient report weighs them against the legs)."""


def humerus_activity(d: dict) -> Activity:
    """A case's own activity (`bonefe.activities.activity_from_dict`) on the humeral head:
    force or magnitude and direction in the humerus frame (medial, anterior, superior)."""
    if d.get("patch", "head") != "head" or d.get("abductor") is not None:
        raise BonefeError(f"activity '{d.get('name', '?')}': a humerus loads only its head (patch 'head', "
                          "no abductor)")
    return activity_from_dict(d, PATCHES)

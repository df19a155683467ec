"""The activities of one patient across bones: which site activities are the same thing the patient
does, and which are walking aids. The one place that knows activity names across sites.

A site's activity is identified by its `name` in the site's library (report.json `activities[].name`).
The same name in two sites means the same activity of the patient (e.g. `sit_to_stand`); `ALIASES`
joins the few that the sites name differently. A name this module does not know is its own activity,
so a new site plugs in without a change here as long as it uses these names for what it shares.

Walking aids: the lower-limb advice of a site (`walking` not safe, or partial weight bearing)
sends the patient to a walking aid; the aid's own activity loads the upper limbs. The names are
fixed here for the upper-limb sites (the humerus: walking with crutches, a walker or a cane, whose
shoulder loads are measured in vivo, issue 17).
"""

WALKING = "walking"
"""Unaided walking: the activity whose verdict (or partial weight bearing) sends a patient to an aid."""

WALKING_AIDS = {
    "walking_with_crutches": "Walking with crutches",
    "walking_with_walker": "Walking with a walker",
    "walking_with_cane": "Walking with a cane",
}
"""Aid activity name -> its words. A site that models an aid names its activity so."""

ALIASES = {
    "standing_two_legs": "standing",
}
"""Site activity name -> the patient's activity: the femur's "Standing on both legs" (Bergmann et al.
2001, 141 %BW) and the vertebra's "Relaxed standing" (Wilke et al. 1999) are the same posture."""


def identity(name: str) -> str:
    """The patient-level activity of a site activity name."""
    return ALIASES.get(name, name)

"""Published exercise guidance for people with bone metastases, beside the FE verdict per activity.

The rule table is the modular multimodal programme of Galvão et al. (as tabulated in Trials 2018,
doi 10.1186/s13063-018-3091-8, Table 4; variant in Pilot Feasibility Stud 2020, doi
10.1186/s40814-020-00763-2, Table 2): per metastasis site, which exercise classes the programme
includes or excludes. The International Bone Metastases Exercise Working Group (Campbell KL et al.
2022, JCO Oncol Pract, doi 10.1200/OP.21.00454) adds, for everyone with bone metastases, advice on
safe movement patterns in daily living and an individual risk assessment; it is the advice shown
for daily-living activities, which the programme does not address.

bonefe models femora, so a femoral lesion takes the programme's "proximal femur" row (its only
femoral row; for a shaft lesion this is a departure, said in the report). Each library activity
is put in one exercise class by `ACTIVITY_CLASSES` (bonefe's classification, not the programme's:
water exercise counts as non-weight-bearing for its buoyancy). Activities not listed (stumbling,
the vibration platform, the dynamic physiotherapy class, custom activities) have no rule.
"""

from __future__ import annotations

from dataclasses import dataclass

GALVAO = ("Galvão et al. modular programme (Trials 2018, doi 10.1186/s13063-018-3091-8, Table 4)")
IBMEWG = "Campbell et al. 2022, JCO Oncol Pract, doi 10.1200/OP.21.00454 (IBMEWG)"

WB_AEROBIC = "weight-bearing aerobic exercise"
NWB_AEROBIC = "non-weight-bearing aerobic exercise"
HIP_FLEX_EXT = "loaded hip flexion/extension"
DAILY_LIVING = "daily living"

EXCLUDED, NOT_INCLUDED, ALLOWED = "excluded", "not in the programme", "included"

#: Per metastasis site: advice per exercise class (Galvão programme, Trials 2018 Table 4: lower-body
#: resistance "exclusion of hip extension/flexion, inclusion of knee extension/flexion" for the
#: pelvis and proximal femur; weight-bearing aerobic exercise (e.g. walking) not included for the
#: pelvis, lumbar spine and proximal femur; non-weight-bearing aerobic exercise (e.g. cycling)
#: included everywhere).
SITE_RULES = {
    "proximal femur": {WB_AEROBIC: NOT_INCLUDED, NWB_AEROBIC: ALLOWED, HIP_FLEX_EXT: EXCLUDED},
    "pelvis": {WB_AEROBIC: NOT_INCLUDED, NWB_AEROBIC: ALLOWED, HIP_FLEX_EXT: EXCLUDED},
    "lumbar spine": {WB_AEROBIC: NOT_INCLUDED, NWB_AEROBIC: ALLOWED, HIP_FLEX_EXT: ALLOWED},
    "thoracic spine or ribs": {WB_AEROBIC: ALLOWED, NWB_AEROBIC: ALLOWED, HIP_FLEX_EXT: ALLOWED},
}

DAILY_LIVING_ADVICE = "no programme rule; advise safe movement patterns (IBMEWG)"

#: Exercise class of each library activity (bonefe.sites.femur.loads.ACTIVITIES).
ACTIVITY_CLASSES = {
    **dict.fromkeys(("walking", "walking_slow", "walking_fast", "jogging", "ski_simulator"), WB_AEROBIC),
    **dict.fromkeys(("aquatic_walking", "aquatic_dynamic", "aquatic_fast_fins"), NWB_AEROBIC),
    **dict.fromkeys(("knee_bend", "squat_bodyweight", "step_up", "physio_weight_bearing",
                     "physio_long_lever", "hip_band_exercises"), HIP_FLEX_EXT),
    **dict.fromkeys(("stairs_up", "stairs_down", "sit_to_stand", "stand_to_sit", "one_leg_stance",
                     "standing_two_legs"), DAILY_LIVING),
}

FEMORAL_SITE = "proximal femur"


@dataclass(frozen=True)
class GuidelineRow:
    """One activity: the FE verdict, the guideline's advice, whether they differ, in words."""

    label: str
    fe: str
    guideline: str
    comparison: str
    differ: bool
    source: str


def advice(activity_name: str, site: str) -> tuple[str, str] | None:
    """(advice, source) of the guideline for an activity at a metastasis site, None without a rule."""
    kind = ACTIVITY_CLASSES.get(activity_name)
    if kind is None:
        return None
    if kind == DAILY_LIVING:
        return DAILY_LIVING_ADVICE, IBMEWG
    return f"{SITE_RULES[site][kind]} ({kind}, {site} lesion)", GALVAO


def _compare(verdict: str, rule: str) -> tuple[str, bool]:
    """The FE verdict against the guideline's advice, in words, and whether they differ."""
    if rule.startswith(ALLOWED):
        if verdict == "safe":
            return "agree", False
        return f"differ: the programme includes it, the FE model says {verdict}", True
    if rule.startswith((EXCLUDED, NOT_INCLUDED)):
        if verdict == "safe":
            return ("differ: the FE model finds it safe for this bone, the programme leaves it out "
                    "(a conservative rule for the site)"), True
        return "agree: both restrict it", False
    return "no programme rule to compare", False


def guideline_rows(activities, site: str = FEMORAL_SITE) -> list[GuidelineRow]:
    """One row per activity with a rule (`bonefe.risk.ActivityAssessment` rows in)."""
    rows = []
    for a in activities:
        found = advice(a.name, site)
        if found is None:
            continue
        rule, source = found
        comparison, differ = _compare(a.verdict, rule)
        rows.append(GuidelineRow(a.label, f"{a.verdict} (safety factor {a.safety_factor:.2f})", rule,
                                 comparison, differ, source))
    return rows

"""Published exercise guidance for people with bone metastases, beside the FE verdict per activity.

The rule table is the modular multimodal programme of Galvão et al. (as tabulated in Trials 2018,
doi 10.1186/s13063-018-3091-8, Table 4; variant in Pilot Feasibility Stud 2020, doi
10.1186/s40814-020-00763-2, Table 2): per metastasis site, which exercise classes the programme
includes or excludes. The International Bone Metastases Exercise Working Group (Campbell KL et al.
2022, JCO Oncol Pract, doi 10.1200/OP.21.00454) adds, for everyone with bone metastases, advice on
safe movement patterns in daily living and an individual risk assessment; it is the advice shown
for daily-living activities, which the programme does not address.

A femoral lesion takes the programme's "proximal femur" row (its only femoral row; for a shaft
lesion this is a departure, said in the report); a vertebra the "lumbar spine" or "thoracic spine or
ribs" row by its level (`spinal_site`; the cervical row of the 2020 variant was not read: no rule);
a humerus the "proximal humerus" row of the 2020 variant, whose only rule is "exclusion of elbow
flexion/extension" (side and column unconfirmed in the source notes; no library activity is one).
Table 4 rules on trunk resistance exercise for the spine: not included for a lumbar or a thoracic
lesion; its "no spine flexion/extension/rotation" concerns static flexibility (stretching), which
no library activity is, so the spinal postures of daily living take the IBMEWG advice. Each library activity
is put in one exercise class by `ACTIVITY_CLASSES` (bonefe's classification, not the programme's:
water exercise counts as non-weight-bearing for its buoyancy, hops and jumps as weight-bearing). Activities not listed (stumbling,
the vibration platform, the dynamic physiotherapy class, custom activities) have no rule.
"""

from __future__ import annotations

from dataclasses import dataclass

GALVAO = ("Galvão et al. modular programme (Trials 2018, doi 10.1186/s13063-018-3091-8, Table 4)")
GALVAO_2020 = ("Galvão et al. modular programme, ExerciseGuide variant (Pilot Feasibility Stud 2020, "
               "doi 10.1186/s40814-020-00763-2, Table 2)")
IBMEWG = "Campbell et al. 2022, JCO Oncol Pract, doi 10.1200/OP.21.00454 (IBMEWG)"

WB_AEROBIC = "weight-bearing aerobic exercise"
NWB_AEROBIC = "non-weight-bearing aerobic exercise"
HIP_FLEX_EXT = "loaded hip flexion/extension"
DAILY_LIVING = "daily living"
TRUNK_RESISTANCE = "loaded trunk exercise (lifting, holding a weight)"
ARM_RAISING = "raising the arm (shoulder flexion/abduction)"
ELBOW_FLEX_EXT = "elbow flexion/extension"

EXCLUDED, NOT_INCLUDED, ALLOWED = "excluded", "not in the programme", "included"

#: Per metastasis site: advice per exercise class (Galvão programme, Trials 2018 Table 4: lower-body
#: resistance "exclusion of hip extension/flexion, inclusion of knee extension/flexion" for the
#: pelvis and proximal femur; weight-bearing aerobic exercise (e.g. walking) not included for the
#: pelvis, lumbar spine and proximal femur; non-weight-bearing aerobic exercise (e.g. cycling)
#: included everywhere).
SITE_RULES = {
    "proximal femur": {WB_AEROBIC: NOT_INCLUDED, NWB_AEROBIC: ALLOWED, HIP_FLEX_EXT: EXCLUDED},
    "pelvis": {WB_AEROBIC: NOT_INCLUDED, NWB_AEROBIC: ALLOWED, HIP_FLEX_EXT: EXCLUDED},
    "lumbar spine": {WB_AEROBIC: NOT_INCLUDED, NWB_AEROBIC: ALLOWED, HIP_FLEX_EXT: ALLOWED,
                     TRUNK_RESISTANCE: NOT_INCLUDED},
    "thoracic spine or ribs": {WB_AEROBIC: ALLOWED, NWB_AEROBIC: ALLOWED, HIP_FLEX_EXT: ALLOWED,
                               TRUNK_RESISTANCE: NOT_INCLUDED},
    "proximal humerus": {ELBOW_FLEX_EXT: EXCLUDED},
}
"""Trials 2018 Table 4 rows, with its trunk column (not included for the lumbar and thoracic rows);
"proximal humerus" is the 2020 variant's row (`ROW_SOURCE`)."""
ROW_SOURCE = {"proximal humerus": GALVAO_2020}
"""Rows not from Trials 2018 Table 4 (GALVAO)."""
HUMERAL_SITE = "proximal humerus"

NO_RULE = "no programme rule"
DAILY_LIVING_ADVICE = "no programme rule; advise safe movement patterns (IBMEWG)"

#: Exercise class of each library activity (bonefe.sites.femur.loads.ACTIVITIES).
ACTIVITY_CLASSES = {
    **dict.fromkeys(("walking", "walking_slow", "walking_fast", "jogging", "ski_simulator", "hopping", "jumping"),
                    WB_AEROBIC),
    **dict.fromkeys(("aquatic_walking", "aquatic_dynamic", "aquatic_fast_fins"), NWB_AEROBIC),
    **dict.fromkeys(("knee_bend", "squat_bodyweight", "step_up", "physio_weight_bearing",
                     "physio_long_lever", "hip_band_exercises"), HIP_FLEX_EXT),
    **dict.fromkeys(("stairs_up", "stairs_down", "sit_to_stand", "stand_to_sit", "one_leg_stance",
                     "standing_two_legs"), DAILY_LIVING),
    # the vertebra (bonefe.sites.vertebra.activities) and the humerus (bonefe.sites.humerus.loads)
    **dict.fromkeys(("standing", "sitting", "sitting_flexed", "forward_flexion", "upper_body_flexion",
                     "lifting_from_ground", "walking_with_crutches", "steering", "holding_10kg_hanging_arm"),
                    DAILY_LIVING),
    **dict.fromkeys(("carrying", "lifting_knees", "lifting_round_back"), TRUNK_RESISTANCE),
    **dict.fromkeys(("arm_elevation", "lifting_pot_straight_arm", "lifting_2kg_head_height"), ARM_RAISING),
    "lifting_10kg_belt_height": ELBOW_FLEX_EXT,  # assumed: from the hanging arm to the belt the elbow bends
}

FEMORAL_SITE = "proximal femur"
GUIDELINE_HEADER = ("Activity", "FE verdict", "Guideline", "FE vs guideline", "Source")


def spinal_site(level: str) -> str:
    """The programme's row for a vertebra at `level` (e.g. "L1", "T8", "C5")."""
    return {"L": "lumbar spine", "T": "thoracic spine or ribs"}.get(level[:1], "cervical spine")


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
    rule = SITE_RULES.get(site, {}).get(kind)
    source = ROW_SOURCE.get(site, GALVAO)
    if rule is None:
        return f"{NO_RULE} ({kind}, {site} lesion)", source
    return f"{rule} ({kind}, {site} lesion)", source


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


def guidance_summary(rows: list[GuidelineRow], where: str) -> str:
    """One sentence: for how many of the activities the programme rules on, FE and guideline differ;
    where: the site and source in words ("for a lumbar spine lesion (...)")."""
    ruled = [row for row in rows if not row.guideline.startswith(NO_RULE)]
    differing = [row.label for row in ruled if row.differ]
    if not ruled:
        return f"Exercise guidance {where} rules on none of these activities."
    if differing:
        return (f"Exercise guidance {where} and the FE verdicts differ for {len(differing)} of the {len(ruled)} "
                f"activities it rules on: {', '.join(differing)}.")
    return f"Exercise guidance {where} and the FE verdicts agree for every activity it rules on ({len(ruled)})."


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

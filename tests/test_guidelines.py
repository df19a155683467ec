"""Exercise guidance beside the FE verdicts: the rule table follows the Galvão modular programme
(Trials 2018, doi 10.1186/s13063-018-3091-8, Table 4) and the IBMEWG consensus (Campbell 2022).

Programme, proximal femur row: lower-body resistance "exclusion of hip extension/flexion", aerobic
exercise non-weight-bearing only (cycling), weight-bearing aerobic (walking) not included. Thoracic
spine/ribs: weight-bearing aerobic included. Trunk resistance: not included ("—") for the lumbar
spine and for the thoracic spine/ribs. Proximal humerus (ExerciseGuide variant, Pilot Feasibility
Stud 2020, doi 10.1186/s40814-020-00763-2, Table 2): "exclusion of elbow flexion/extension", its only
rule. (Transcribed in ../shared/research/loads-exercise.md, section 3.)
"""

import pytest

from bonefe.guidelines import ACTIVITY_CLASSES, advice, guideline_rows, spinal_site
from bonefe.sites.femur.loads import ACTIVITIES
from bonefe.sites.humerus.loads import ACTIVITIES as HUMERUS_ACTIVITIES
from bonefe.sites.vertebra.activities import ACTIVITIES as SPINAL_ACTIVITIES
from bonefe.risk import VerdictPolicy, assess_activity


@pytest.mark.parametrize("name, site, expected", [
    ("squat_bodyweight", "proximal femur", "excluded"),
    ("step_up", "pelvis", "excluded"),
    ("walking", "proximal femur", "not in the programme"),
    ("jogging", "lumbar spine", "not in the programme"),
    ("walking", "thoracic spine or ribs", "included"),
    ("aquatic_walking", "proximal femur", "included"),
    ("squat_bodyweight", "lumbar spine", "included"),
])
def test_programme_rules_per_site(name, site, expected):
    rule, source = advice(name, site)
    assert rule.startswith(expected) and f"{site} lesion" in rule and "Galvão" in source


def test_daily_living_gets_ibmewg_advice_and_accidents_no_rule():
    rule, source = advice("stairs_up", "proximal femur")
    assert "safe movement patterns" in rule and "Campbell et al. 2022" in source
    assert advice("stumbling", "proximal femur") is None
    assert advice("vibration_platform", "proximal femur") is None
    assert set(ACTIVITY_CLASSES) <= set(ACTIVITIES) | set(SPINAL_ACTIVITIES) | set(HUMERUS_ACTIVITIES)


@pytest.mark.parametrize("level, name, expected, source", [
    ("L1", "lifting_knees", "not in the programme", "Trials 2018"),   # lumbar: trunk "—"
    ("L3", "carrying", "not in the programme", "Trials 2018"),
    ("T8", "lifting_round_back", "not in the programme", "Trials 2018"),  # thoracic: trunk "—"
    ("T12", "forward_flexion", "no programme rule; advise safe movement patterns", "Campbell et al. 2022"),
    ("L1", "standing", "no programme rule; advise safe movement patterns", "Campbell et al. 2022"),
    ("C5", "lifting_knees", "no programme rule", "Trials 2018"),  # the cervical row was not read
])
def test_a_vertebra_takes_its_levels_row(level, name, expected, source):
    rule, cited = advice(name, spinal_site(level))
    assert rule.startswith(expected) and source in cited


@pytest.mark.parametrize("name, expected, source", [
    ("arm_elevation", "no programme rule", "Pilot Feasibility Stud 2020"),  # only elbow flexion/extension ruled
    ("walking_with_crutches", "no programme rule; advise safe movement patterns", "Campbell et al. 2022"),
    ("steering", "no programme rule; advise safe movement patterns", "Campbell et al. 2022"),
])
def test_a_humerus_takes_the_proximal_humerus_row(name, expected, source):
    rule, cited = advice(name, "proximal humerus")
    assert rule.startswith(expected) and source in cited
    assert not rule.startswith(("included", "excluded", "not in the programme"))


def test_rows_state_where_fe_and_guideline_differ():
    """SF 3 (safe, ≥ 2) against an excluded squat: differ; SF 0.8 (avoid, < 1) on an excluded squat:
    agree; SF 0.8 in water (included): differ; SF 3 in water: agree (VerdictPolicy defaults 2 and 1)."""
    policy = VerdictPolicy()
    rows = guideline_rows([
        assess_activity("squat_bodyweight", "Squat", 1000.0, 3000.0, "", policy),
        assess_activity("knee_bend", "Knee bend", 1000.0, 800.0, "", policy),
        assess_activity("aquatic_walking", "Water walking", 1000.0, 800.0, "", policy),
        assess_activity("aquatic_dynamic", "Water jogging", 1000.0, 3000.0, "", policy),
        assess_activity("stumbling", "Stumbling", 1000.0, 800.0, "", policy),
    ])
    assert [r.label for r in rows] == ["Squat", "Knee bend", "Water walking", "Water jogging"]
    assert [r.differ for r in rows] == [True, False, True, False]
    assert rows[0].fe == "safe (safety factor 3.00)" and rows[0].comparison.startswith(
        "differ: the FE model finds it safe for this bone, the programme leaves it out")
    assert rows[1].comparison == "agree: both restrict it"
    assert rows[2].comparison == "differ: the programme includes it, the FE model says avoid"

"""Exercise guidance beside the FE verdicts: the rule table follows the Galvão modular programme
(Trials 2018, doi 10.1186/s13063-018-3091-8, Table 4) and the IBMEWG consensus (Campbell 2022).

Programme, proximal femur row: lower-body resistance "exclusion of hip extension/flexion", aerobic
exercise non-weight-bearing only (cycling), weight-bearing aerobic (walking) not included. Thoracic
spine/ribs: weight-bearing aerobic included.
"""

import pytest

from bonefe.guidelines import ACTIVITY_CLASSES, advice, guideline_rows
from bonefe.sites.femur.loads import ACTIVITIES
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
    assert set(ACTIVITY_CLASSES) <= set(ACTIVITIES)


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

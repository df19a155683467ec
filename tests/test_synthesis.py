"""The synthesised headline against its rule, for every combination of indicators.

Rule (bonefe/synthesis.py, docs/theory.md): some high and a primary indicator (failure load, strain
fold ratio) low → indeterminate; some high and no primary low → high (a supporting indicator's low
vote — fall, Mirels, axial involvement — never outweighs a warning); no high and some borderline →
moderate; all low → low. Thresholds: SFR 1.48
(Sternheim 2020), Mirels ≥ 9 fixation / ≤ 7 radiotherapy (Mirels 1989), axial involvement 30 mm
(Van der Linden 2004), fall factor of risk ≥ 1 (Bouxsein 2007).
"""

import itertools
from types import SimpleNamespace

import pytest

from bonefe.synthesis import synthesis_of

FE = {"high": 4.0, "moderate": 7.0, "low": 12.0}                  # × BW with that category
SFR = {None: None, "high": 1.63, "low": 1.20}
FALL = {None: None, "high": {"fall_strength_n": 3000.0, "impact_force_n": 4000.0},
        "low": {"fall_strength_n": 5000.0, "impact_force_n": 3000.0}}
MIRELS = {None: None, "high": (10, 12), "borderline": (8, 8), "range": (7, 9), "low": (5, 6)}
AXIAL = {None: None, "high": 35.0, "low": 10.0}
NAMES = ("failure load", "strain fold ratio", "fall", "Mirels score", "axial cortical involvement")


def results(fe, sfr, fall, mirels, axial) -> dict:
    m = MIRELS[mirels]
    return {"risk_category": fe, "failure_load_bw": FE[fe], "strain_fold_ratio": SFR[sfr],
            "fall": FALL[fall],
            "mirels": None if m is None else SimpleNamespace(total_min=m[0], total_max=m[1]),
            "axial_involvement": None if AXIAL[axial] is None else
            SimpleNamespace(length_mm=AXIAL[axial], high_risk=AXIAL[axial] > 30.0)}


def votes(fe, sfr, fall, mirels, axial) -> list[str]:
    """The vote of each available indicator, written out independently of the module."""
    fe_vote = {"high": "high", "moderate": "borderline", "low": "low"}[fe]
    mirels_vote = {"high": "high", "borderline": "borderline", "range": "borderline", "low": "low"}.get(mirels)
    return [v for v in (fe_vote, sfr, fall, mirels_vote, axial) if v is not None]


COMBINATIONS = list(itertools.product(FE, SFR, FALL, MIRELS, AXIAL))


@pytest.mark.parametrize("combination", COMBINATIONS, ids=["-".join(map(str, c)) for c in COMBINATIONS])
def test_headline_and_sentence_follow_the_rule(combination):
    v = votes(*combination)
    fe, sfr = combination[0], combination[1]
    primary_low = fe == "low" or sfr == "low"
    expected = ("indeterminate" if "high" in v and primary_low else "high" if "high" in v
                else "moderate" if "borderline" in v else "low")
    s = synthesis_of(results(*combination))
    assert s.level == expected
    assert s.headline == {"indeterminate": "INDETERMINATE: indicators disagree", "high": "HIGH fracture risk",
                          "moderate": "MODERATE fracture risk", "low": "LOW fracture risk"}[expected]
    # the sentence names every available indicator once and never contradicts the headline
    available = [n for n, value in zip(NAMES, (combination[0], *combination[1:])) if value is not None]
    assert [i.name for i in s.indicators] == available
    for name in available:
        assert s.sentence.lower().count(f"{name.lower()} (") == 1, name
    assert ("disagree" in s.sentence) == (expected == "indeterminate")
    assert ("to high risk" in s.sentence and "No indicator points to high" not in s.sentence) == ("high" in v)
    assert ("low risk" in s.sentence) == ("low" in v)
    assert ("borderline" in s.sentence) == ("borderline" in v)
    assert "both point" not in s.sentence


def test_demo_case_reads_indeterminate():
    """The demo before this change: failure load 'low', SFR 1.63 > 1.48 and Mirels 10–12 (fixation)
    were shown as a green LOW; now the headline is amber and says the indicators disagree."""
    s = synthesis_of(results("low", "high", None, "high", "low"))
    assert s.level == "indeterminate" and s.headline == "INDETERMINATE: indicators disagree"
    assert s.sentence.startswith("Indicators disagree: strain fold ratio (1.63 vs 1.48) and Mirels score "
                                 "(10–12) point to high risk, failure load (12.0 × BW) and axial "
                                 "cortical involvement (10 mm) to low risk.")


def test_fall_factor_of_risk_and_absence():
    """Fall strength 3000 N against an impact of 4000 N: factor of risk 1.33 ≥ 1, high. Without a fall
    result (or with an empty one) the indicator is left out."""
    s = synthesis_of(results("low", None, "high", None, None))
    assert s.indicators[1].value == "factor of risk 1.33" and s.level == "indeterminate"
    r = results("low", None, None, None, None)
    r["fall"] = {"fall_strength_n": None, "impact_force_n": 4000.0}
    assert [i.name for i in synthesis_of(r).indicators] == ["failure load"]
    assert synthesis_of(r).sentence == "The only indicator on low risk: failure load (12.0 × BW)."


def test_supporting_low_votes_never_outweigh_a_primary_warning():
    """The demo's pattern (inferomedial neck lesion; README, docs/theory.md: failure load 4.2 × BW and
    SFR 4.4 primary, Mirels 10–12 high; a sideways fall, factor of risk 0.72, and axial involvement,
    14 mm, low), here with stand-in values. The fall is a different mechanism and axial involvement a
    supporting score: the headline is HIGH, and the sentence still names the two low votes."""
    s = synthesis_of(results("high", "high", "low", "high", "low"))
    assert s.level == "high" and s.headline == "HIGH fracture risk"
    assert s.sentence == ("Failure load (4.0 × BW), strain fold ratio (1.63 vs 1.48) and Mirels score (10–12) "
                          "point to high risk; fall (factor of risk 0.60) and axial cortical involvement (10 mm) "
                          "point to low risk, which does not outweigh the warning.")

"""One headline from every fracture-risk indicator: agree → say so; disagree → say that instead.

Each available indicator casts one vote, "high", "borderline" or "low":

* failure load (FE): its category (`bonefe.risk.RiskThresholds`), "moderate" being borderline;
* strain fold ratio (FE): high above 1.48 (Sternheim et al. 2020), else low;
* fall (FE): factor of risk Φ = impact force / fall strength, high from 1 (Bouxsein et al. 2007);
* Mirels score: high from 9 (prophylactic fixation), low up to 7, borderline at 8 or when the
  pain-dependent range spans 8 (Mirels 1989);
* axial cortical involvement: high above 30 mm (Van der Linden et al. 2004), else low.

Failure load and strain fold ratio are the *primary* indicators: both were validated on femora
with metastases under daily loading and outperformed clinical judgement and Mirels there (Eggermont
et al. 2018; Sternheim et al. 2020). The fall (a validated predictor of osteoporotic hip fracture, a
different mechanism), Mirels and axial involvement are *supporting* indicators. The rule
(conservative: a warning is never outvoted into a green LOW, and a supporting indicator's low vote
never outweighs a primary warning):

* some high, and a primary indicator low   → INDETERMINATE, indicators disagree (amber);
* some high, no primary indicator low      → HIGH (red); supporting low votes are named;
* no high, some borderline                 → MODERATE (amber);
* all low                                  → LOW (green).

The fall indicator is read from ``results["fall"]`` with ``fall_strength_n`` and
``impact_force_n`` when the fall case was computed (absent otherwise).

References: Sternheim A et al. 2020, Bone Joint J 102-B(5); Mirels H 1989, Clin Orthop Relat Res
249:256-264; Van der Linden YM et al. 2004, J Bone Joint Surg Br 86-B:566-573; Bouxsein ML et al.
2007, J Bone Miner Res 22:825 (factor of risk = fall force / femoral strength); Eggermont F et al.
2018, Bone Joint Res 7:430-439 (FE failure load better than clinical assessment).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bonefe.risk import STERNHEIM_SFR_THRESHOLD

Vote = Literal["high", "borderline", "low"]
Level = Literal["high", "indeterminate", "moderate", "low"]

HEADLINES = {
    "high": "HIGH fracture risk",
    "indeterminate": "INDETERMINATE: indicators disagree",
    "moderate": "MODERATE fracture risk",
    "low": "LOW fracture risk",
}

MIRELS_FIXATION = 9
"""Mirels score from which prophylactic fixation is recommended (Mirels 1989); ≤ 7 radiotherapy."""


@dataclass(frozen=True)
class Indicator:
    """One indicator's reading: what it is, its value in words, and its vote."""

    name: str
    value: str
    vote: Vote


@dataclass(frozen=True)
class Synthesis:
    """The headline of a report: level (CSS/colour key), headline text, the sentence that explains
    it, and the indicators it was drawn from."""

    level: Level
    headline: str
    sentence: str
    indicators: tuple[Indicator, ...]


def _get(source, key: str):
    """A field of a results dict or of a record (ReportResults, a fall result), None when absent."""
    if isinstance(source, Mapping):
        return source.get(key)
    return getattr(source, key, None)


def indicators(results) -> list[Indicator]:
    """The indicators available in a results dict or `bonefe.report.results.ReportResults`."""
    category = _get(results, "risk_category")
    found = [Indicator("failure load", f"{_get(results, 'failure_load_bw'):.1f} × BW",
                       {"high": "high", "low": "low"}.get(category, "borderline"))]
    sfr = _get(results, "strain_fold_ratio")
    if sfr is not None:
        threshold = _get(results, "sfr_threshold") or STERNHEIM_SFR_THRESHOLD
        found.append(Indicator("strain fold ratio", f"{sfr:.2f} vs {threshold:g}",
                               "high" if sfr > threshold else "low"))
    fall = _get(results, "fall")
    if fall is not None and _get(fall, "fall_strength_n") and _get(fall, "impact_force_n"):
        factor = _get(fall, "impact_force_n") / _get(fall, "fall_strength_n")
        found.append(Indicator("fall", f"factor of risk {factor:.2f}", "high" if factor >= 1.0 else "low"))
    mirels = _get(results, "mirels")
    if mirels is not None:
        lo, hi = mirels.total_min, mirels.total_max
        vote = "high" if lo >= MIRELS_FIXATION else "low" if hi < MIRELS_FIXATION - 1 else "borderline"
        found.append(Indicator("Mirels score", str(lo) if lo == hi else f"{lo}–{hi}", vote))
    axial = _get(results, "axial_involvement")
    if axial is not None:
        found.append(Indicator("axial cortical involvement", f"{axial.length_mm:.0f} mm",
                               "high" if axial.high_risk else "low"))
    return found


def _listed(group: list[Indicator]) -> str:
    """'A (x)', 'A (x) and B (y)', 'A (x), B (y) and C (z)'."""
    items = [f"{i.name} ({i.value})" for i in group]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _verb(group: list[Indicator], singular: str, plural: str) -> str:
    return singular if len(group) == 1 else plural


PRIMARY = ("failure load", "strain fold ratio")
"""Indicators validated on metastatic femora under daily loading (see the module docstring)."""


def synthesise(found: list[Indicator]) -> Synthesis:
    """Apply the rule of the module docstring to the indicators."""
    high = [i for i in found if i.vote == "high"]
    low = [i for i in found if i.vote == "low"]
    borderline = [i for i in found if i.vote == "borderline"]
    middle = (f"; {_listed(borderline)} {_verb(borderline, 'is', 'are')} borderline" if borderline else "")
    if high and any(i.name in PRIMARY for i in low):
        level = "indeterminate"
        sentence = (f"Indicators disagree: {_listed(high)} {_verb(high, 'points', 'point')} to high risk, "
                    f"{_listed(low)} to low risk{middle}. Weigh them before deciding; no single "
                    "indicator settles it.")
    elif high:
        level = "high"
        others = (f"; {_listed(low)} {_verb(low, 'points', 'point')} to low risk, which does not outweigh "
                  "the warning" if low else "; none points the other way")
        sentence = f"{_listed(high)} {_verb(high, 'points', 'point')} to high risk{middle}{others}."
    elif borderline:
        level = "moderate"
        rest = f"; {_listed(low)} {_verb(low, 'points', 'point')} to low risk" if low else ""
        sentence = (f"No indicator points to high risk: {_listed(borderline)} "
                    f"{_verb(borderline, 'is', 'are')} borderline{rest}.")
    else:
        level = "low"
        sentence = (f"{'All indicators agree' if len(low) > 1 else 'The only indicator'} on low risk: "
                    f"{_listed(low)}.")
    return Synthesis(level, HEADLINES[level], sentence[0].upper() + sentence[1:], tuple(found))


def synthesis_of(results) -> Synthesis:
    """The synthesised headline of a results dict or `ReportResults`."""
    return synthesise(indicators(results))

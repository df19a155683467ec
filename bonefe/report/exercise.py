"""The report section "Exercise that may build bone" (`bonefe.window`) as text: a summary, one row
per activity with the published guidance beside it, and the section's assumptions and references.

Nothing here judges safety: every verdict is the activity table's (`bonefe.risk`), and an activity
that is not safe is reported out of the window whatever its stimulus.
"""

from __future__ import annotations

from bonefe.guidelines import FEMORAL_SITE, advice
from bonefe.stimulus import MES_HIGH, MES_LOW
from bonefe.window import ExerciseWindow, WindowRow

WINDOW_HEADER = ("Activity", "Safety factor",
                 f"Bone around the lesion at ≥ {1e6 * MES_HIGH:.0f} µε (≥ {1e6 * MES_LOW:.0f} µε)",
                 "Daily stimulus ψ", "In the window", "Dose (scalable exercises)", "Published guidance")


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.1f} %"


def _window_cell(row: WindowRow) -> str:
    """Yes, or why not: the verdict first (it is never overridden), then the stimulus."""
    if row.in_window:
        return "yes"
    if row.verdict != "safe":
        return f"no: {row.verdict} by its safety factor"
    return "no: stimulus below the threshold"


def _guidance(name: str, with_lesion: bool) -> str:
    """The programme's advice for a femoral lesion (`bonefe.guidelines`)."""
    if not with_lesion:
        return "no lesion: no site rule"
    found = advice(name, FEMORAL_SITE)
    return found[0] if found else "no programme rule"


def window_rows(w: ExerciseWindow, with_lesion: bool) -> list[tuple[str, ...]]:
    """One row per activity: safety, stimulus, window, dose and the guidance for the site."""
    return [(
        row.label,
        f"{row.safety_factor:.2f} ({row.verdict})",
        f"{_percent(row.stimulus.region_above_high)} ({_percent(row.stimulus.region_above_low)})",
        f"{row.stimulus.region_psi_mpa:.1f} MPa/day ({row.stimulus.cycles:.0f} cycles)",
        _window_cell(row),
        row.dose.text if row.dose else "",
        _guidance(row.name, with_lesion),
    ) for row in w.rows]


def window_summary(w: ExerciseWindow) -> str:
    """Which activities are in the window, why the others are not, and the scalable doses."""
    inside = [row.label for row in w.rows if row.in_window]
    unsafe = [row for row in w.rows if row.verdict != "safe"]
    weak = len(w.rows) - len(inside) - len(unsafe)
    rule = (f"safe (safety factor ≥ {w.safe_factor:g}) and at least {100 * w.target_fraction:g} % of the "
            f"{w.region} ({w.region_volume_mm3 / 1000:.1f} cm³) strained to {1e6 * w.mes_high:.0f} µε or more")
    head = (f"In the window at their library load: {', '.join(inside)}." if inside else
            "No activity is in the window at its library load.")
    doses = [f"{row.label}: {row.dose.text}" for row in w.rows if row.dose]
    return (f"{head} The window: {rule}. {weak} safe activities do not strain that bone enough; {len(unsafe)} "
            "are not safe and stay out of the window whatever their stimulus."
            + (f" Where the load can be set, the model's dose range (an extrapolation from the library load, "
               f"not a prescription): {'; '.join(doses)}." if doses else ""))


def window_notes(w: ExerciseWindow) -> list[str]:
    """The section's assumptions, then its references."""
    return [
        f"Strain: the principal strain of largest magnitude of the nonlocal strain (the one the safety "
        f"factor reads), in the {w.region}. Threshold: Frost's modelling threshold, quoted between "
        f"{1e6 * w.mes_low:.0f} and {1e6 * w.mes_high:.0f} µε; the window uses {1e6 * w.mes_high:.0f} µε "
        f"(conservative for 'may build bone'), the bracket gives {1e6 * w.mes_low:.0f} µε. The share of "
        f"{100 * w.target_fraction:g} % of the region is bonefe's choice, not a published value.",
        "Daily stimulus ψ = (n σ⁴)^(1/4) with σ = sqrt(2 E U) (Carter and Beaupré), for one session: 1500 "
        "cycles of aerobic exercise (30 min at about 100 steps/min), 2 × 10 repetitions otherwise. It grows "
        "only as the fourth root of the repetitions, and 36 loading cycles a day gave a maximal osteogenic "
        "response in animal experiments: more repetitions add little. ψ is reported, not thresholded.",
        "Dose: the hip-contact force taken proportional to the weight carried (body weight plus the load) "
        "or to the band load, its direction unchanged; linear elasticity makes the safety factor fall and "
        "the stimulus rise in proportion. Loads far from the library value are extrapolations the sources "
        "did not measure.",
        "Strain magnitude is one of the factors of bone adaptation; strain rate, rest between cycles and "
        "unusual strain distributions matter too and are not modelled. Whether exercise helps a femoral "
        "lesion re-mineralise is not established: this section says where the bone around it is strained "
        "like bone that models, within the safety verdict, and never replaces it.",
        *(f"Reference: {reference}" for reference in w.references),
    ]

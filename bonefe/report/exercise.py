"""The report section "Exercise that may build bone" (`bonefe.window`) as text: a summary, one row
per activity with the published guidance beside it, and the section's assumptions and references.

Nothing here judges safety: every verdict is the activity table's (`bonefe.risk`), and an activity
that is not safe is reported out of the window whatever its stimulus.
"""

from __future__ import annotations

from bonefe.guidelines import advice
from bonefe.report.pictures import Picture, png_bytes, window_chart
from bonefe.stimulus import MES_HIGH, MES_LOW
from bonefe.window import SET_CYCLES, ExerciseWindow, WindowRow

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


def _guidance(name: str, site: str | None) -> str:
    """The programme's advice for a lesion at `site` (`bonefe.guidelines`; None: no lesion)."""
    if site is None:
        return "no lesion: no site rule"
    found = advice(name, site)
    return found[0] if found else "no programme rule"


def window_rows(w: ExerciseWindow, site: str | None) -> list[tuple[str, ...]]:
    """One row per activity: safety, stimulus, window, dose and the guidance for a lesion at `site`
    (a `bonefe.guidelines.SITE_RULES` row; None: the bone has no lesion)."""
    return [(
        row.label,
        f"{row.safety_factor:.2f} ({row.verdict})",
        f"{_percent(row.stimulus.region_above_high)} ({_percent(row.stimulus.region_above_low)})",
        f"{row.stimulus.region_psi_mpa:.1f} MPa/day ({row.stimulus.cycles:.0f} cycles)",
        _window_cell(row),
        row.dose.text if row.dose else "",
        _guidance(row.name, site),
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


def cycles_note(activities: str, remark: str) -> str:
    """The assumption on cycles for a library without published daily cycle counts (`activities`: its
    activities in words; remark: what the assumption misses for them)."""
    return (f"Cycles: no source read gives daily cycle counts for {activities}; each is counted as one "
            f"session of {SET_CYCLES:.0f} cycles (bonefe's assumption): {remark}. The window does not depend on "
            "the cycles.")


def window_notes(w: ExerciseWindow, lesion: str, dose: str = "", cycles: str = "") -> list[str]:
    """The section's assumptions, then its references. lesion: the site's lesion in words ("a femoral
    lesion"); dose: how the site's scalable loads scale ("" when it has none); cycles: the site's
    assumption on cycles beyond the session counts (`cycles_note`, "" when none)."""
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
        *(note for note in (cycles, dose) if note),
        "Strain magnitude is one of the factors of bone adaptation; strain rate, rest between cycles and "
        f"unusual strain distributions matter too and are not modelled. Whether exercise helps {lesion} "
        "re-mineralise is not established: this section says where the bone around it is strained "
        "like bone that models, within the safety verdict, and never replaces it.",
        *(f"Reference: {reference}" for reference in w.references),
    ]


def window_picture(w: ExerciseWindow, safe_factor: float, avoid_factor: float) -> Picture:
    """Safety factor against osteogenic stimulus per activity, the window shaded (`window_chart`)."""
    image = window_chart(w.rows, safe_factor, avoid_factor)
    return Picture(
        "exercise-window",
        "Exercise that may build bone",
        f"Each activity at its library load: safety factor (colour: verdict) against its stimulus ratio, the "
        f"peak load over the load that strains {100 * w.target_fraction:g} % of the {w.region} to "
        f"{1e6 * w.mes_high:.0f} µε. Shaded: the window (safe and stimulating)."
        + (" Black-edged points and grey lines: exercises whose load can be set, moving along their line as "
           "the load changes." if any(row.dose for row in w.rows) else ""),
        png_bytes(image),
    )


def has_chart(w: ExerciseWindow) -> bool:
    """Whether any activity has a stimulus ratio to plot."""
    return any(row.stimulus.scale_high for row in w.rows)

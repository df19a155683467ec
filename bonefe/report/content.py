"""What the report says, as text: shared by the HTML and PDF layouts so both say the same thing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bonefe.guidelines import FEMORAL_SITE, GALVAO, guidance_summary, guideline_rows
from bonefe.report.exercise import window_notes, window_rows, window_summary
from bonefe.report.results import ReportResults
from bonefe.synthesis import synthesis_of
from bonefe.uncertainty import dominant_factor, factor_group, samples_needed

DISCLAIMER = (
    "Research software, not a certified medical device. The numbers come from a linear-elastic "
    "finite-element model of this CT scan and published criteria; they support, and never replace, "
    "clinical judgement."
)


@dataclass(frozen=True)
class Content:
    """The report's text in reading order. Table rows are tuples of strings."""

    title: str
    level: str
    headline: str
    summary: str
    walking_advice: str
    agreement: str
    key_rows: list[tuple[str, str, str, str]]
    activity_rows: list[tuple[str, str, str, str, str, str]]
    activity_verdicts: list[str]
    guideline_summary: str
    guideline_rows: list[tuple[str, str, str, str, str]]
    input_rows: list[tuple[str, str]]
    assumptions: list[str]
    provenance_text: str
    disclaimer: str = DISCLAIMER
    window_summary: str = ""
    window_rows: list[tuple[str, ...]] = field(default_factory=list)
    window_notes: list[str] = field(default_factory=list)


FEMUR_LESION = "a femoral lesion"
FEMUR_DOSE = ("Dose: the hip-contact force taken proportional to the weight carried (body weight plus the load) "
              "or to the band load, its direction unchanged; linear elasticity makes the safety factor fall and "
              "the stimulus rise in proportion. Loads far from the library value are extrapolations the sources "
              "did not measure.")
"""The femur's words in the window's notes (`bonefe.report.exercise.window_notes`)."""

KEY_HEADER = ("Quantity", "Value", "Threshold", "Reference")
ACTIVITY_HEADER = ("Activity", "Peak hip force", "Allowed force", "Safety factor", "Verdict", "Source")
INPUT_HEADER = ("Input", "Value")


def _newtons(force_n: float, body_weight: float) -> str:
    """'1,234 N (1.8 x BW)'."""
    return f"{force_n:,.0f} N ({force_n / body_weight:.1f} × BW)"


def _location(r: ReportResults) -> str:
    """Failure site in words (if given) and world coordinates."""
    x, y, z = r.failure_location_mm
    where = f"{r.failure_site}, " if r.failure_site else ""
    return f"{where}({x:.1f}, {y:.1f}, {z:.1f}) mm, LPS world"


def _walking_advice(r: ReportResults) -> str:
    """Full or partial weight bearing for walking, as a fraction of body weight and in kg."""
    factor = r.verdict_policy.safe_factor
    if r.walking_weight_bearing_fraction >= 1.0:
        return f"Walking: full weight bearing keeps a safety factor of at least {factor:g}."
    percent = 100.0 * r.walking_weight_bearing_fraction
    kilograms = r.walking_weight_bearing_fraction * r.body_mass_kg
    return (
        f"Walking: partial weight bearing, at most {percent:.0f} % of body weight "
        f"(about {kilograms:.0f} kg on this leg), keeps a safety factor of {factor:g}."
    )


def _key_rows(r: ReportResults) -> list[tuple[str, str, str, str]]:
    """Key numbers with their thresholds and references."""
    t, c = r.risk_thresholds, r.strain_criterion
    rows = [
        (
            f"Failure load ({r.failure_load_case})",
            _newtons(r.failure_load_n, r.body_weight_n),
            f"high risk below {t.high_below_bw:g} × BW; low risk from {t.low_from_bw:g} × BW. {t.note}",
            t.reference,
        ),
        ("Failure starts at", f"{_location(r)}; {r.failure_mode}", "", ""),
        (
            "Strain criterion",
            f"strain averaged over {r.averaging_radius_mm:g} mm spheres of bone reaches the limit",
            f"tensile {100 * c.tensile_limit:.2f} %, compressive {100 * c.compressive_limit:.2f} %",
            c.reference,
        ),
    ]
    if r.strain_fold_ratio is not None:
        rows.append(
            (
                "Strain fold ratio",
                f"{r.strain_fold_ratio:.2f}: "
                + ("above" if r.strain_fold_ratio > r.sfr_threshold else "not above")
                + " the threshold",
                f"fracture predicted above {r.sfr_threshold:g}",
                r.sfr_reference,
            )
        )
    if r.twin_failure_load_n is not None:
        rows.append(("Failure load of the lesion-free twin", _newtons(r.twin_failure_load_n, r.body_weight_n),
                     f"same bone with the lesion replaced by the surrounding healthy bone; the lesion "
                     f"keeps {100 * r.failure_load_n / r.twin_failure_load_n:.0f} % of its strength",
                     r.sfr_reference))
    rows += _fall_rows(r)
    rows += _uncertainty_rows(r)
    rows += _score_rows(r)
    rows += _whatif_rows(r)
    rows.append(
        (
            "Walking: allowed weight bearing",
            f"{100 * min(r.walking_weight_bearing_fraction, 1.0):.0f} % of body weight",
            f"safety factor ≥ {r.verdict_policy.safe_factor:g}",
            "",
        )
    )
    return rows


def _fall_rows(r: ReportResults) -> list[tuple[str, str, str, str]]:
    """Sideways fall (bonefe.sites.femur.fall): strength, this patient's impact force, factor of risk."""
    fall = r.fall
    if fall is None:
        return []
    x, y, z = fall.location_mm
    tissue = ("not attenuated" if fall.soft_tissue_mm is None
              else f"{fall.soft_tissue_mm:g} mm trochanteric soft tissue")
    fragile = ", ".join(f"≤ {force:,.0f} N ({who})" for who, force in fall.fragile_threshold_n.items())
    return [
        ("Fall strength (sideways fall on the hip)", _newtons(fall.fall_strength_n, r.body_weight_n),
         f"BCT fragile bone strength {fragile}; ours is the onset of failure, so these err on the cautious side",
         "Keaveny et al. 2020, Osteoporos Int 31:1025"),
        ("Fall: weakest direction",
         f"shaft {fall.direction['tilt_deg']:g}° to the ground, {fall.direction['internal_rotation_deg']:g}° internal "
         f"rotation; {fall.mode} failure starts at ({x:.1f}, {y:.1f}, {z:.1f}) mm, LPS world", "",
         "Courtney et al. 1995, J Bone Joint Surg Am 77:387 (set-up)"),
        ("Expected fall impact force", f"{fall.impact_force_n:,.0f} N (height {fall.height_m:g} m, {tissue})", "",
         "van den Kroonenberg et al. 1995, J Biomech Eng 117:309; Robinovitch et al. 1995, J Orthop Res 13:956"),
        ("Fall: factor of risk (impact ÷ strength)", f"{fall.factor_of_risk:.2f}",
         "above 1: a sideways fall from standing height is expected to break the bone",
         "Bouxsein et al. 2007, J Bone Miner Res 22:825"),
    ]


def interval_text(r: ReportResults) -> str:
    """'90 % interval 2,100–3,900 N (3.1–5.7 × BW)', or '' without an uncertainty study; with too
    few samples for the asked probability, the sample range and its expected coverage."""
    u = r.uncertainty
    if u is None:
        return ""
    loads = f"{u.lower_n:,.0f}–{u.upper_n:,.0f} N ({u.lower_bw:.1f}–{u.upper_bw:.1f} × BW)"
    if u.expected_coverage + 1e-9 >= u.interval:
        return f"{100 * u.interval:g} % interval {loads}"
    return (f"range of {len(u.samples)} samples {loads}, expected to hold {100 * u.expected_coverage:.0f} % "
            f"of outcomes ({samples_needed(u.interval)} samples give a {100 * u.interval:g} % interval)")


def robustness(r: ReportResults) -> str:
    """Whether the risk category holds over the whole interval, in words."""
    u = r.uncertainty
    if u.robust:
        return f"the risk category ({r.risk_category}) holds over the whole interval"
    crossed = " and ".join(f"{t:g} × BW" for t in u.thresholds_crossed_bw)
    return (f"NOT robust: the interval crosses the risk boundary at {crossed} "
            f"(from {u.categories[1]} to {u.categories[2]} risk)")


COVERAGE_CHECK = ("Checked on a synthetic truth (docs/validation.md, theory manual): 110 of 120 such intervals "
                  "held the true failure load; the ten misses all lay below the lower end, which may be a "
                  "little optimistic.")


def _uncertainty_rows(r: ReportResults) -> list[tuple[str, str, str, str]]:
    """The failure load's interval with its robustness, what moves it most and what would narrow it."""
    u = r.uncertainty
    if u is None:
        return []
    names = sorted({factor_group(e.name) for e in u.factors})
    ranked = sorted(u.factors, key=lambda e: e.share, reverse=True)
    effects = "; ".join(f"{e.name.replace('_', ' ')} {e.low_n:,.0f}–{e.high_n:,.0f} N ({100 * e.share:.0f} %)"
                        for e in ranked)
    _, dominant = dominant_factor(u.factors)
    return [
        ("Failure load: uncertainty", interval_text(r), robustness(r),
         f"{len(u.samples)} computed failure loads (Monte Carlo, seed {u.seed}) drawing {', '.join(names)} "
         f"together; the interval runs from {_rank(u.order_k)}lowest to {_rank(u.order_k)}highest of them, "
         f"each computed on one shared mesh as a ratio to its own nominal load ({u.shared_nominal_n:,.0f} N) "
         f"times the failure load (theory manual, uncertainty). {COVERAGE_CHECK}"),
        ("What moves the failure load most", f"{u.dominant_words} ({100 * dominant:.0f} % of the one-at-a-time "
         "spread)", f"would narrow it: {u.narrowed_by}",
         f"one input at a time at −1/+1 SD: {effects}; calibration: {u.calibration_source}"),
    ]


def _rank(k: int) -> str:
    """'the ' for k = 1, else 'the 2nd ', 'the 3rd ', 'the 4th ' …"""
    return "the " + {1: "", 2: "2nd ", 3: "3rd "}.get(k, f"{k}th ")


def _whatif_rows(r: ReportResults) -> list[tuple[str, str, str, str]]:
    """What-if results, when computed: the growth that first brings high risk, the healed strength."""
    rows = []
    threshold = f"high risk below {r.risk_thresholds.high_below_bw:g} × BW"
    if r.whatif_growth is not None:
        g = r.whatif_growth
        last = g.steps[-1]
        if g.high_risk_from is None:
            value = (f"not high up to +{last.value:g} mm (equivalent diameter {last.equivalent_diameter_mm:.0f} mm): "
                     f"{_newtons(last.failure_load_n, r.body_weight_n)}")
        else:
            step = next(s for s in g.steps if s.value == g.high_risk_from)
            value = (f"high from +{step.value:g} mm (equivalent diameter {step.equivalent_diameter_mm:.0f} mm): "
                     f"{_newtons(step.failure_load_n, r.body_weight_n)}")
        rows.append(("What if the lesion grows", value, threshold,
                     "same mesh, lesion grown inside the bone; the lowest load it passes through"))
    if r.whatif_remineralisation is not None:
        healed = r.whatif_remineralisation.steps[-1]
        rows.append(("What if the lesion re-mineralises",
                     f"{100 * healed.value:.0f} % re-mineralised: {_newtons(healed.failure_load_n, r.body_weight_n)}",
                     threshold, "lesion HU and modulus moved towards the lesion-free twin"))
    return rows


def _score_rows(r: ReportResults) -> list[tuple[str, str, str, str]]:
    """Mirels score and axial cortical involvement, when the bone has a lesion."""
    rows = []
    if r.mirels is not None:
        m = r.mirels
        total = f"{m.total_min}" if m.total_min == m.total_max else f"{m.total_min}–{m.total_max} (pain unknown)"
        pain = "unknown" if m.pain is None else str(m.pain)
        rows.append(("Mirels score", f"{total}: {m.recommendation} (site {m.site}, pain {pain}, type "
                                     f"{m.lesion_type}, size {m.size} = {100 * m.size_fraction:.0f} % of the "
                                     f"bone diameter)",
                     "≥ 9 prophylactic fixation; 8 borderline; ≤ 7 radiotherapy", m.reference))
    if r.axial_involvement is not None:
        a = r.axial_involvement
        rows.append(("Axial cortical involvement", f"{a.length_mm:.0f} mm: "
                     + ("high" if a.high_risk else "not high") + " risk",
                     f"high risk above {a.threshold_mm:g} mm", a.reference))
    return rows


def _guidelines(r: ReportResults) -> tuple[str, list[tuple[str, str, str, str, str]]]:
    """Published exercise guidance beside each FE verdict, for a bone with a lesion (else none)."""
    if r.mirels is None:
        return "", []
    rows = guideline_rows(r.activities)
    summary = guidance_summary(rows, f"for a {FEMORAL_SITE} lesion ({GALVAO}; its only femoral row)")
    return summary, [(row.label, row.fe, row.guideline, row.comparison, row.source) for row in rows]


def _activity_rows(r: ReportResults) -> list[tuple[str, str, str, str, str, str]]:
    """One row per activity: forces, safety factor, verdict, source."""
    return [
        (
            a.label,
            _newtons(a.peak_force_n, r.body_weight_n),
            _newtons(a.allowed_force_n, r.body_weight_n),
            f"{a.safety_factor:.2f}",
            a.verdict,
            a.reference,
        )
        for a in r.activities
    ]


def _input_rows(r: ReportResults) -> list[tuple[str, str]]:
    """Inputs and run facts the reader may check."""
    rows = [
        ("Case", r.case_name),
        ("Body mass", f"{r.body_mass_kg:g} kg (body weight {r.body_weight_n:,.0f} N)"),
        ("Material law", r.material_law),
        ("Verdict rule", f"safe if safety factor ≥ {r.verdict_policy.safe_factor:g}, "
                         f"avoid below {r.verdict_policy.avoid_factor:g}, caution in between"),
    ]
    rows += [(f"Mesh {name}", f"{count:,}") for name, count in r.mesh.items()]
    rows += [(f"Time: {stage}", f"{seconds:.1f} s") for stage, seconds in r.timings_s.items()]
    return rows


def build_content(r: ReportResults, software: dict) -> Content:
    """All text of the report for one case."""
    interval = f" [{interval_text(r)}; {robustness(r)}]" if r.uncertainty is not None else ""
    summary = (
        f"Failure load {_newtons(r.failure_load_n, r.body_weight_n)}{interval} under {r.failure_load_case}; "
        f"{r.failure_mode} failure starts at {_location(r)}."
    )
    provenance = {**r.provenance, "software": software}
    synthesis = synthesis_of(r)
    guideline_summary, guideline_table = _guidelines(r)
    w = r.exercise_window
    return Content(
        title=f"bonefe fracture-risk report: {r.case_name}",
        level=synthesis.level,
        headline=synthesis.headline,
        summary=summary,
        walking_advice=_walking_advice(r),
        agreement=synthesis.sentence,
        key_rows=_key_rows(r),
        activity_rows=_activity_rows(r),
        activity_verdicts=[a.verdict for a in r.activities],
        guideline_summary=guideline_summary,
        guideline_rows=guideline_table,
        input_rows=_input_rows(r),
        assumptions=list(r.assumptions),
        provenance_text=json.dumps(provenance, indent=2, sort_keys=True),
        window_summary=window_summary(w) if w else "",
        window_rows=window_rows(w, FEMORAL_SITE if r.mirels is not None else None) if w else [],
        window_notes=window_notes(w, FEMUR_LESION, FEMUR_DOSE) if w else [],
    )

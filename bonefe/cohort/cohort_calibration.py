"""`bonefe calibrate OUTCOMES.csv`: risk predictors of a cohort against who actually fractured.

Inputs
    OUTCOMES.csv: columns `case`, `fractured` (yes/no, 1/0, true/false) and optionally
    `follow_up_months`. The cohort summary of `bonefe batch` (DIR/cohort-summary.csv): columns
    `case`, `status` and the predictors below (empty cells = missing). Only cases that are in both
    files and "done" in the cohort are analysed; the others are listed in a warning and left out.

Predictors (direction: which end flags a case)
    failure_load_bw       stance failure load in x body weight; lower is riskier
    strain_fold_ratio     Sternheim et al. 2020; higher is riskier
    mirels                Mirels score, the midpoint (mirels_min + mirels_max) / 2: the score itself
                          when the pain is known (min = max), and the score with moderate pain (2
                          points, the middle of 1-3) when it is not; higher is riskier
    axial_involvement_mm  axial cortical involvement (mm); higher is riskier
A case without a value of a predictor (e.g. no lesion: no strain fold ratio) is left out of that
predictor only. For each: ROC, Mann-Whitney AUC with a stratified bootstrap interval, the Youden
and the target-sensitivity cut-points and the full sensitivity/specificity table (`bonefe.cohort.roc`).

Calibrated risk thresholds (written to calibration.json, read by
`bonefe.risk.thresholds_from_calibration`), both from failure_load_bw:
    high_below_bw = the Youden cut-point: the single best separation of fractured from intact
        cases, so "high" is the group a clinician should treat as likely to fracture;
    low_from_bw = max(Youden cut-point, target-sensitivity cut-point): every bone below it is at
        least "moderate", so at least the target fraction of the fractured cases (all of them at
        the default 1.0) would not have been called "low". The max keeps high <= low when the
        Youden cut-point is itself at least as sensitive as the target (the moderate band is then
        empty).
The file carries no date (same inputs, same bytes) and no identifier but the case ids given.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bonefe import __version__
from bonefe.errors import BonefeError
from bonefe.outputs import atomic_path, atomic_write_json, atomic_write_text
from bonefe.risk import CALIBRATION_SCHEMA
from bonefe.cohort.roc import (
    CutPoint,
    RocCurve,
    auc,
    bootstrap_auc_ci,
    roc_curve,
    target_sensitivity_point,
    youden_point,
)

SUMMARY_NAME = "cohort-summary.csv"
MIN_PER_CLASS = 2
"""Fewest fractured and fewest non-fractured cases a predictor needs to be analysed."""
TRUE_WORDS, FALSE_WORDS = ("yes", "1", "true"), ("no", "0", "false")
CALIBRATED_PREDICTOR = "failure_load_bw"


@dataclass(frozen=True)
class Predictor:
    """A predictor column of the cohort summary: name, plot label, direction, summary columns."""

    name: str
    label: str
    higher_is_riskier: bool
    columns: tuple[str, ...]

    def value(self, row: dict) -> float | None:
        """The predictor of one summary row (the mean of its columns), None when any is empty."""
        cells = [row[c] for c in self.columns]
        return None if any(c is None for c in cells) else float(np.mean(cells))


PREDICTORS = (
    Predictor("failure_load_bw", "failure load (x BW)", False, ("failure_load_bw",)),
    Predictor("strain_fold_ratio", "strain fold ratio", True, ("strain_fold_ratio",)),
    Predictor("mirels", "Mirels score (midpoint)", True, ("mirels_min", "mirels_max")),
    Predictor("axial_involvement_mm", "axial involvement (mm)", True, ("axial_involvement_mm",)),
)


@dataclass(frozen=True)
class PredictorResult:
    """The ROC analysis of one predictor over the cases that have it."""

    predictor: Predictor
    cases: list[str]
    curve: RocCurve
    auc: float
    auc_ci: tuple[float, float]
    youden: CutPoint
    target: CutPoint


@dataclass(frozen=True)
class Calibration:
    """Everything `calibrate` found: analysed predictors, thresholds and the cases used/left out."""

    results: dict[str, PredictorResult]
    skipped: dict[str, str]
    high_below_bw: float
    low_from_bw: float
    cases: list[str]
    fractured: list[bool]
    excluded: dict[str, str]
    follow_up_months: list[float]


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------

def read_csv(path: Path, required: tuple[str, ...], what: str) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV file as (line number, {column: stripped text}), checking required columns."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            missing = [c for c in required if c not in header]
            if missing:
                raise BonefeError(f"{path.name}: missing column(s) {', '.join(missing)}; {what} needs "
                                  f"the columns {', '.join(required)}")
            return [(reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items() if k is not None})
                    for row in reader]
    except FileNotFoundError:
        raise BonefeError(f"{path} not found: give the path to the {what} CSV file") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise BonefeError(f"{path.name} is not a readable CSV file ({error})") from None


def number(text: str, where: str) -> float | None:
    """A finite number from a CSV cell; None for an empty cell."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise BonefeError(f"{where}: '{text}' is not a number") from None
    if not np.isfinite(value):
        raise BonefeError(f"{where}: '{text}' is not a finite number")
    return value


def fractured_value(text: str, where: str) -> bool:
    """True/False from yes/no, 1/0 or true/false (any case)."""
    word = text.lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise BonefeError(f"{where}: fractured must be yes/no, 1/0 or true/false (got '{text}')")


def unique_cases(rows: list[tuple[int, dict]], path: Path) -> None:
    """Refuse empty or repeated case ids."""
    seen: dict[str, int] = {}
    for line, row in rows:
        case = row["case"]
        if not case:
            raise BonefeError(f"{path.name} line {line}: empty case id")
        if case in seen:
            raise BonefeError(f"{path.name}: case '{case}' appears twice (lines {seen[case]} and {line})")
        seen[case] = line


def read_outcomes(path: Path) -> dict[str, tuple[bool, float | None]]:
    """case -> (fractured, follow-up in months or None) from an outcomes CSV."""
    path = Path(path)
    rows = read_csv(path, ("case", "fractured"), "an outcomes file (case, fractured[, follow_up_months])")
    unique_cases(rows, path)
    outcomes = {}
    for line, row in rows:
        where = f"{path.name} line {line}"
        follow = number(row.get("follow_up_months", ""), f"{where}, follow_up_months")
        if follow is not None and follow < 0:
            raise BonefeError(f"{where}: follow_up_months must not be negative (got {follow})")
        outcomes[row["case"]] = (fractured_value(row["fractured"], where), follow)
    return outcomes


def summary_path(cohort: Path) -> Path:
    """The cohort summary CSV of a batch folder, or the file itself."""
    cohort = Path(cohort)
    return cohort / SUMMARY_NAME if cohort.is_dir() else cohort


def read_summary(path: Path, numeric: tuple[str, ...]) -> dict[str, dict]:
    """case -> summary row with `status` (text) and the `numeric` columns as float or None."""
    path = Path(path)
    rows = read_csv(path, ("case", "status", *numeric), f"a cohort summary ({SUMMARY_NAME} of bonefe batch)")
    unique_cases(rows, path)
    return {row["case"]: {"status": row["status"],
                          **{c: number(row[c], f"{path.name} line {line}, {c}") for c in numeric}}
            for line, row in rows}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------
# Analysis
# ----------------------------------------------------------------------------------------------

def join(outcomes: dict, summary: dict, warn) -> tuple[list[str], dict[str, str]]:
    """Cases with an outcome that are done in the cohort (outcome-file order), and the left-out
    cases with the reason; one warning line per reason."""
    excluded = {}
    for case in outcomes:
        if case not in summary:
            excluded[case] = "not in the cohort"
        elif summary[case]["status"] != "done":
            excluded[case] = f"not done in the cohort ({summary[case]['status'] or 'no status'})"
    for reason in sorted(set(excluded.values())):
        names = [c for c, r in excluded.items() if r == reason]
        warn(f"{len(names)} case(s) {reason}, left out: {', '.join(names)}")
    unmatched = [c for c in summary if c not in outcomes]
    if unmatched:
        warn(f"{len(unmatched)} cohort case(s) without an outcome, ignored: {', '.join(unmatched)}")
    return [c for c in outcomes if c not in excluded], excluded


def analyse(predictor: Predictor, cases: list[str], fractured: np.ndarray, values: list[float | None],
            target: float, replicates: int, seed: int) -> PredictorResult | str:
    """ROC analysis of one predictor, or the reason it cannot be analysed."""
    have = np.array([v is not None for v in values])
    scores = np.array([v for v in values if v is not None], dtype=float)
    outcome = fractured[have]
    counts = int(outcome.sum()), int((~outcome).sum())
    if min(counts) < MIN_PER_CLASS:
        return (f"{counts[0]} fractured and {counts[1]} non-fractured cases have a value; "
                f"at least {MIN_PER_CLASS} of each are needed")
    curve = roc_curve(scores, outcome, predictor.higher_is_riskier)
    if len(curve.cuts) < 3:
        return "every case has the same value"
    return PredictorResult(
        predictor, [c for c, h in zip(cases, have) if h], curve,
        auc(scores, outcome, predictor.higher_is_riskier),
        bootstrap_auc_ci(scores, outcome, predictor.higher_is_riskier, replicates, seed),
        youden_point(curve), target_sensitivity_point(curve, target))


def risk_thresholds(result: PredictorResult, target: float) -> tuple[float, float]:
    """(high_below_bw, low_from_bw) from the failure_load_bw analysis; see the module docstring."""
    low = max(result.youden.cut, result.target.cut)
    if not np.isfinite(low):
        raise BonefeError(f"only flagging every case reaches sensitivity {target:g} (a fractured case has the "
                          "highest failure load of the cohort), so low_from_bw would be infinite: lower "
                          "--target-sensitivity")
    return result.youden.cut, low


def calibrate_cohort(outcomes_path: Path, cohort: Path, target: float = 1.0, replicates: int = 2000,
                     seed: int = 0, warn=print) -> Calibration:
    """Join outcomes with a cohort summary and analyse every predictor (see the module docstring)."""
    columns = tuple(dict.fromkeys(c for p in PREDICTORS for c in p.columns))
    outcomes = read_outcomes(outcomes_path)
    summary = read_summary(summary_path(cohort), columns)
    cases, excluded = join(outcomes, summary, warn)
    fractured = np.array([outcomes[c][0] for c in cases], dtype=bool)
    if fractured.sum() < MIN_PER_CLASS or (~fractured).sum() < MIN_PER_CLASS:
        raise BonefeError(f"{int(fractured.sum())} fractured and {int((~fractured).sum())} non-fractured cases "
                          f"remain after the join; calibration needs at least {MIN_PER_CLASS} of each")
    results, skipped = {}, {}
    for predictor in PREDICTORS:
        values = [predictor.value(summary[c]) for c in cases]
        found = analyse(predictor, cases, fractured, values, target, replicates, seed)
        if isinstance(found, str):
            if predictor.name == CALIBRATED_PREDICTOR:
                raise BonefeError(f"{CALIBRATED_PREDICTOR} cannot be calibrated: {found}")
            warn(f"{predictor.name} not analysed: {found}")
            skipped[predictor.name] = found
        else:
            results[predictor.name] = found
    high, low = risk_thresholds(results[CALIBRATED_PREDICTOR], target)
    follow = [outcomes[c][1] for c in cases if outcomes[c][1] is not None]
    return Calibration(results, skipped, high, low, cases, fractured.tolist(), excluded, follow)


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

def _finite(values) -> list[float | None]:
    """JSON-safe list: ±inf sentinel cut-points become null."""
    return [float(v) if np.isfinite(v) else None for v in values]


def _point_json(point: CutPoint) -> dict:
    return {"cut": point.cut if np.isfinite(point.cut) else None, "sensitivity": point.sensitivity,
            "specificity": point.specificity, "youden_j": point.youden}


def calibration_json(cal: Calibration, cohort_file: Path, outcomes_file: Path, target: float,
                     replicates: int, seed: int) -> dict:
    """The calibration file's content (schema bonefe-calibration/1)."""
    predictors = {}
    for name, r in cal.results.items():
        predictors[name] = {
            "direction": "higher is riskier" if r.predictor.higher_is_riskier else "lower is riskier",
            "columns": list(r.predictor.columns), "n_cases": len(r.cases),
            "n_fractured": r.curve.n_fractured, "auc": r.auc, "auc_ci95": list(r.auc_ci),
            "youden": _point_json(r.youden), "target_sensitivity": _point_json(r.target),
            "roc": {"cut": _finite(r.curve.cuts), "sensitivity": r.curve.sensitivity.tolist(),
                    "specificity": r.curve.specificity.tolist()},
        }
    return {
        "schema": CALIBRATION_SCHEMA,
        "risk_thresholds": {"high_below_bw": cal.high_below_bw, "low_from_bw": cal.low_from_bw},
        "provenance": {
            "cohort": Path(cohort_file).name, "cohort_sha256": sha256(cohort_file),
            "outcomes": Path(outcomes_file).name, "outcomes_sha256": sha256(outcomes_file),
            "predictor": CALIBRATED_PREDICTOR,
            "method": (f"ROC against fracture outcomes; high_below_bw = Youden-optimal cut-point, "
                       f"low_from_bw = max(Youden, cut-point of highest specificity with sensitivity >= "
                       f"{target:g}); AUC Mann-Whitney, {replicates} stratified bootstrap replicates "
                       f"(seed {seed}), 95 % percentile interval"),
            "target_sensitivity": target, "bootstrap_replicates": replicates, "seed": seed,
            "n_cases": len(cal.cases), "n_fractured": int(sum(cal.fractured)),
            "cases": cal.cases, "excluded": cal.excluded,
            "follow_up_months_median": float(np.median(cal.follow_up_months)) if cal.follow_up_months else None,
            "bonefe_version": __version__,
        },
        "predictors": predictors,
        "skipped_predictors": cal.skipped,
    }


def write_png(figure, path: Path) -> None:
    """Render a matplotlib Figure (Agg, no pyplot) to a PNG file atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def roc_figure(cal: Calibration):
    """One ROC curve per analysed predictor, AUC and interval in the legend, Youden points marked."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 6.0), dpi=100)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance (AUC 0.5)")
    for i, r in enumerate(cal.results.values()):
        low, high = r.auc_ci
        # straight segments: a cut-point passing tied cases of both outcomes moves diagonally, and the
        # area under this polyline (trapezoids) is the Mann-Whitney AUC
        axes.plot(1.0 - r.curve.specificity, r.curve.sensitivity, color=f"C{i}",
                  label=f"{r.predictor.label}: AUC {r.auc:.2f} [{low:.2f}, {high:.2f}] (n {len(r.cases)})")
        axes.plot(1.0 - r.youden.specificity, r.youden.sensitivity, "o", color=f"C{i}")
    axes.set_xlabel("1 - specificity (intact cases flagged)")
    axes.set_ylabel("sensitivity (fractured cases flagged)")
    axes.set_title("ROC against fracture outcomes (dots: Youden cut-points)", fontsize=10)
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.02)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def _cut_text(cut: float, higher: bool) -> str:
    if not np.isfinite(cut):
        return "flag none" if (cut > 0) == higher else "flag all"
    return f"{'>' if higher else '<'} {cut:.4g}"


def report_markdown(cal: Calibration, data: dict) -> str:
    """calibration-report.md: summary, thresholds, and one sensitivity/specificity table per predictor."""
    p = data["provenance"]
    lines = [
        "# bonefe calibration against fracture outcomes", "",
        f"Cohort `{p['cohort']}` (sha256 {p['cohort_sha256'][:16]}…), outcomes `{p['outcomes']}` "
        f"(sha256 {p['outcomes_sha256'][:16]}…): {p['n_cases']} cases, {p['n_fractured']} fractured; "
        f"bonefe {p['bonefe_version']}.", "",
        f"Method: {p['method']}.", "",
        "## Calibrated risk thresholds (failure load x BW)", "",
        f"- high risk below **{cal.high_below_bw:.4g} BW** (Youden cut-point)",
        f"- low risk from **{cal.low_from_bw:.4g} BW** (sensitivity >= {p['target_sensitivity']:g} for "
        "'not low')", "",
        "Use them in a case file: `risk: {calibration_file: calibration.json}`.", "",
        "## Predictors", "",
        "| predictor | direction | n | fractured | AUC | 95 % CI | Youden cut | sens | spec "
        "| target cut | sens | spec |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in cal.results.values():
        h = r.predictor.higher_is_riskier
        lines.append(
            f"| {r.predictor.name} | {'higher' if h else 'lower'} is riskier | {len(r.cases)} | "
            f"{r.curve.n_fractured} | {r.auc:.3f} | {r.auc_ci[0]:.3f}–{r.auc_ci[1]:.3f} | "
            f"{_cut_text(r.youden.cut, h)} | {r.youden.sensitivity:.2f} | {r.youden.specificity:.2f} | "
            f"{_cut_text(r.target.cut, h)} | {r.target.sensitivity:.2f} | {r.target.specificity:.2f} |")
    for name, reason in cal.skipped.items():
        lines.append(f"\n{name}: not analysed ({reason}).")
    if cal.excluded:
        lines += ["", "Left out: " + "; ".join(f"{c} ({why})" for c, why in cal.excluded.items()) + "."]
    lines += ["", "An AUC below 0.5 means the predictor works opposite to its assumed direction.",
              "", "![ROC curves](roc.png)"]
    for r in cal.results.values():
        h = r.predictor.higher_is_riskier
        lines += ["", f"### {r.predictor.label}: sensitivity and specificity", "",
                  "| flag when | flagged | sensitivity | specificity | Youden J |", "|---|---|---|---|---|"]
        for i, cut in enumerate(r.curve.cuts):
            lines.append(f"| {_cut_text(cut, h)} | {r.curve.flagged[i]} | {r.curve.sensitivity[i]:.3f} | "
                         f"{r.curve.specificity[i]:.3f} | {r.curve.youden[i]:.3f} |")
    return "\n".join(lines) + "\n"


def write_calibration(cal: Calibration, out: Path, cohort_file: Path, outcomes_file: Path, target: float,
                      replicates: int, seed: int) -> dict[str, Path]:
    """Write calibration.json, roc.png and calibration-report.md into `out`, each atomically."""
    out = Path(out)
    data = calibration_json(cal, cohort_file, outcomes_file, target, replicates, seed)
    paths = {"calibration": out / "calibration.json", "plot": out / "roc.png",
             "report": out / "calibration-report.md"}
    write_png(roc_figure(cal), paths["plot"])
    atomic_write_text(paths["report"], report_markdown(cal, data))
    atomic_write_json(paths["calibration"], data)
    return paths


def run_calibration(outcomes: Path, cohort: Path, out: Path, target: float = 1.0, replicates: int = 2000,
                    seed: int = 0, warn=print) -> tuple[Calibration, dict[str, Path]]:
    """`bonefe calibrate OUTCOMES.csv --cohort ... --out CALDIR`: analyse and write."""
    cal = calibrate_cohort(outcomes, cohort, target, replicates, seed, warn)
    return cal, write_calibration(cal, out, summary_path(cohort), outcomes, target, replicates, seed)

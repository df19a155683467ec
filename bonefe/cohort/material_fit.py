"""`bonefe calibrate --specimens`: fit a modulus scale factor to mechanical tests of whole bones.

Model. With every element's modulus multiplied by s (`MaterialOptions.modulus_scale`), the
stiffness matrix is s K, so under the same loads the displacements and strains are those of the
unscaled model divided by s (linear elasticity; Poisson's ratio unchanged). The failure criterion
is on strain (`bonefe.risk`): failure starts when the nonlocal strain reaches the limit,
which therefore takes s times the load:

    F_pred(s E) = s F_pred(E)                        exactly, for any s > 0.

The same s is equivalently a scale on both strain limits (ε_t, ε_c) → (s ε_t, s ε_c), so the fit
calibrates "stiffness x strain limit" and cannot tell the two apart.

Fit. Load errors are multiplicative (failure loads of femora span a factor of ~5 and the scatter
grows with the load), so the fit is least squares on log loads:

    ln F_meas,i = ln s + ln F_pred,i + e_i,   y_i = ln F_meas,i - ln F_pred,i,
    ln ŝ = mean(y),   SE(ln ŝ) = sd(y) / √n (sd with n - 1 degrees of freedom),
    95 % CI of s = exp(ln ŝ ± t_{0.975, n-1} SE(ln ŝ))  (Student t; asymmetric in s),
    SE(ŝ) ≈ ŝ SE(ln ŝ)  (delta method).

Goodness of fit: R² = 1 - SS_res / SS_tot and RMSE = √(SS_res / n), of log loads (residuals
e_i = y_i - ln ŝ, total about the mean of ln F_meas) and of loads in N (residuals F_meas - ŝ F_pred).

Predicted loads come from a cohort summary (`failure_load_n` of `bonefe batch`, the stance failure
load), or by running the specimens' case files with the batch machinery. Set each specimen's case
(activities, landmarks) so that its stance loading is the test's loading. If the predictions were
made with modulus_scale m ≠ 1, the value to use is m ŝ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from bonefe import __version__
from bonefe.cohort.cohort_calibration import number, read_csv, read_summary, sha256, summary_path, unique_cases, write_png
from bonefe.errors import BonefeError
from bonefe.outputs import atomic_write_json, atomic_write_text

MATERIAL_FIT_SCHEMA = "bonefe-material-fit/1"
MEASURED = "measured_failure_load_n"


@dataclass(frozen=True)
class ScaleFit:
    """Fitted modulus scale s (dimensionless) with its uncertainty and goodness of fit.

    se, ci95: standard error (delta method) and 95 % t interval of s; r2_log, rmse_log: of ln loads;
    r2_n, rmse_n: of loads in N; r2 values are nan when every measured load is the same.
    """

    scale: float
    se: float
    ci95: tuple[float, float]
    n: int
    r2_log: float
    rmse_log: float
    r2_n: float
    rmse_n: float


def _r2(residual: np.ndarray, observed: np.ndarray) -> float:
    total = float(np.sum((observed - observed.mean()) ** 2))
    return 1.0 - float(residual @ residual) / total if total > 0 else float("nan")


def fit_modulus_scale(predicted_n, measured_n) -> ScaleFit:
    """Least-squares s on log loads, ln F_meas = ln s + ln F_pred (see the module docstring)."""
    predicted, measured = np.asarray(predicted_n, float).ravel(), np.asarray(measured_n, float).ravel()
    if predicted.shape != measured.shape or predicted.size < 2:
        raise BonefeError("the material fit needs a predicted and a measured failure load for at least 2 specimens")
    if not (np.all(predicted > 0) and np.all(measured > 0) and np.all(np.isfinite(predicted * measured))):
        raise BonefeError("failure loads must be positive finite numbers in N")
    y = np.log(measured) - np.log(predicted)
    log_scale, n = float(y.mean()), y.size
    residual_log = y - log_scale
    se_log = float(np.std(y, ddof=1)) / np.sqrt(n)
    half = float(stats.t.ppf(0.975, n - 1)) * se_log
    scale = float(np.exp(log_scale))
    residual_n = measured - scale * predicted
    return ScaleFit(scale, scale * se_log, (float(np.exp(log_scale - half)), float(np.exp(log_scale + half))), n,
                    _r2(residual_log, np.log(measured)), float(np.sqrt(np.mean(residual_log**2))),
                    _r2(residual_n, measured), float(np.sqrt(np.mean(residual_n**2))))


# ----------------------------------------------------------------------------------------------
# Specimens and their predicted loads
# ----------------------------------------------------------------------------------------------

def read_specimens(path: Path) -> list[tuple[str, float]]:
    """(case, measured failure load N) rows of a specimens CSV (columns case, measured_failure_load_n)."""
    path = Path(path)
    rows = read_csv(path, ("case", MEASURED), f"a specimens file (case, {MEASURED})")
    unique_cases(rows, path)
    specimens = []
    for line, row in rows:
        measured = number(row[MEASURED], f"{path.name} line {line}, {MEASURED}")
        if measured is None or not measured > 0:
            raise BonefeError(f"{path.name} line {line}: {MEASURED} must be a positive load in N")
        specimens.append((row["case"], measured))
    return specimens


def predicted_from_summary(cases: list[str], cohort: Path) -> list[float]:
    """Each case's failure_load_n from a cohort summary; every case must be there and done."""
    summary = read_summary(summary_path(cohort), ("failure_load_n",))
    missing = [c for c in cases if c not in summary or summary[c]["status"] != "done"
               or summary[c]["failure_load_n"] is None]
    if missing:
        raise BonefeError(f"{len(missing)} specimen(s) without a finished result in the cohort: "
                          f"{', '.join(missing)}; run them (bonefe batch run) or fix the case ids")
    return [summary[c]["failure_load_n"] for c in cases]


def predicted_by_running(case_files: list[str], base: Path, folder: Path) -> tuple[list[str], list[float]]:
    """Run the specimens' case files (paths relative to `base`) as a batch in `folder`; returns the
    case names and their failure_load_n. Finished cases are not rerun."""
    from bonefe.cohort.batch import prepare, run_local

    paths = [(base / f).resolve() for f in case_files]
    cohort = prepare(paths, folder)
    rows = {row["case"]: row for row in run_local(cohort, max(1, len(os.sched_getaffinity(0))))}
    names = {path: name for name, path in cohort.cases.items()}
    failed = [names[p] for p in paths if rows[names[p]]["status"] != "done"]
    if failed:
        raise BonefeError(f"specimen case(s) failed: {', '.join(failed)}; see {folder / 'logs'} and rerun")
    return [names[p] for p in paths], [rows[names[p]]["failure_load_n"] for p in paths]


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

def fit_figure(fit: ScaleFit, predicted: np.ndarray, measured: np.ndarray):
    """Measured against predicted failure load (kN, log-log), before and after scaling by ŝ."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 6.0), dpi=100)
    axes = figure.add_subplot()
    p, m = np.asarray(predicted) / 1000.0, np.asarray(measured) / 1000.0
    axes.loglog(p, m, "o", markerfacecolor="white", color="grey", label="predicted (scale 1)")
    axes.loglog(fit.scale * p, m, "o", color="C0",
                label=f"predicted x {fit.scale:.3g} (R² log {fit.r2_log:.3f}, RMSE {fit.rmse_n:.0f} N)")
    bounds = [min(p.min(), fit.scale * p.min(), m.min()) / 1.2, max(p.max(), fit.scale * p.max(), m.max()) * 1.2]
    axes.plot(bounds, bounds, color="black", linestyle=":", label="measured = predicted")
    axes.set_xlabel("predicted failure load (kN)")
    axes.set_ylabel("measured failure load (kN)")
    axes.set_title(f"modulus scale s = {fit.scale:.3g} (95 % CI {fit.ci95[0]:.3g}–{fit.ci95[1]:.3g})", fontsize=10)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return figure


def fit_json(fit: ScaleFit, cases: list[str], predicted, measured, sources: dict[str, str]) -> dict:
    """material-fit.json: the value to put in case files, the fit, the specimens and provenance."""
    def clean(value):
        return None if np.isnan(value) else value

    return {
        "schema": MATERIAL_FIT_SCHEMA,
        "material": {"modulus_scale": fit.scale},
        "fit": {"modulus_scale": fit.scale, "standard_error": fit.se, "ci95": list(fit.ci95), "n": fit.n,
                "r2_log": clean(fit.r2_log), "rmse_log": fit.rmse_log, "r2_n": clean(fit.r2_n),
                "rmse_n": fit.rmse_n},
        "specimens": [{"case": c, "predicted_failure_load_n": float(p), "measured_failure_load_n": float(m)}
                      for c, p, m in zip(cases, predicted, measured)],
        "provenance": {"method": "least squares on log loads, ln F_meas = ln s + ln F_pred; 95 % CI from "
                                 "Student t with n - 1 degrees of freedom; SE of s by the delta method",
                       **sources, "bonefe_version": __version__},
    }


def report_markdown(fit: ScaleFit, data: dict) -> str:
    """material-fit.md: the fitted value, its uncertainty, goodness of fit and the specimen table."""
    r2 = [("n/a" if v is None else f"{v:.4f}") for v in (data["fit"]["r2_log"], data["fit"]["r2_n"])]
    lines = [
        "# bonefe material calibration against mechanical tests", "",
        f"Modulus scale **s = {fit.scale:.4g}** (standard error {fit.se:.3g}; 95 % CI {fit.ci95[0]:.4g}–"
        f"{fit.ci95[1]:.4g}) from {fit.n} specimens; {data['provenance']['method']}.", "",
        f"- log loads: R² {r2[0]}, RMSE {fit.rmse_log:.4f} (ln units, about {100 * np.expm1(fit.rmse_log):.1f} %)",
        f"- loads: R² {r2[1]}, RMSE {fit.rmse_n:.1f} N", "",
        f"Use it in a case file: `material: {{modulus_scale: {fit.scale:.4g}}}`.", "",
        "| case | predicted (N) | predicted x s (N) | measured (N) |", "|---|---|---|---|",
    ]
    for row in data["specimens"]:
        p, m = row["predicted_failure_load_n"], row["measured_failure_load_n"]
        lines.append(f"| {row['case']} | {p:.0f} | {fit.scale * p:.0f} | {m:.0f} |")
    return "\n".join(lines + ["", "![predicted vs measured](material-fit.png)"]) + "\n"


def run_material_fit(specimens: Path, cohort: Path | None, out: Path) -> tuple[ScaleFit, dict[str, Path]]:
    """`bonefe calibrate --specimens S.csv [--cohort DIR] --out CALDIR`: predicted loads from the
    cohort summary, or (no --cohort) by running the case files named in S.csv into CALDIR/specimen-runs."""
    specimens, out = Path(specimens), Path(out)
    rows = read_specimens(specimens)
    cases, measured = [c for c, _ in rows], np.array([m for _, m in rows])
    sources = {"specimens": specimens.name, "specimens_sha256": sha256(specimens)}
    if cohort is not None:
        predicted = predicted_from_summary(cases, cohort)
        sources.update(cohort=summary_path(cohort).name, cohort_sha256=sha256(summary_path(cohort)))
    else:
        cases, predicted = predicted_by_running(cases, specimens.resolve().parent, out / "specimen-runs")
    fit = fit_modulus_scale(predicted, measured)
    data = fit_json(fit, cases, predicted, measured, sources)
    paths = {"fit": out / "material-fit.json", "plot": out / "material-fit.png", "report": out / "material-fit.md"}
    write_png(fit_figure(fit, np.array(predicted), measured), paths["plot"])
    atomic_write_text(paths["report"], report_markdown(fit, data))
    atomic_write_json(paths["fit"], data)
    return fit, paths

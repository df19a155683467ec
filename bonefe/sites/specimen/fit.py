"""`bonefe calibrate --specimens S.csv` for specimen cases: every specimen run in its rig, then the
material law's scale (and exponent) fitted to measured stiffnesses and the strain limits to
measured failure loads, with 95 % intervals and leave-one-out prediction errors.

S.csv: a `case` column (a specimen case file, relative to the CSV) and `measured_stiffness_n_per_mm`
and/or `measured_failure_load_n` (empty cells allowed). The specimens share one law: s multiplies
every case's modulus (floor included, like `MaterialOptions.modulus_scale`), and the exponent b,
when fitted, replaces every case's `grey_power.exponent`.

Stiffness (N/mm, along the rig's plate travel) is proportional to s, so for a given b,
ln k_meas,i = ln s + ln k_i(b) + e_i: ln ŝ(b) = mean(ln k_meas − ln k(b)). The exponent is fitted
when at least MIN_FOR_EXPONENT specimens have a stiffness: ln k_i(b) is solved on a grid of b
(EXPONENT_GRID over EXPONENT_RANGE, a cubic spline between; ln k is smooth in b) and b̂ minimises
the residual sum of squares of the profile. Intervals: nonlinear least squares (Gauss–Newton
covariance s²(JᵀJ)⁻¹, s² = RSS / (n − p), Student t with n − p degrees of freedom) on (ln s, b);
the exponent counts as "not identified" when its interval leaves the grid, and is then left at the
cases' value. Failure (the strain criterion, `bonefe.risk`): at the fitted modulus each specimen's
nonlocal peak strains per newton of plate force, p_t = max ε1 and p_c = max(−ε3), give
F_i = min(ε_t / p_t, ε_c / p_c). ln ε_c (ln ε_t) is the mean of ln(F_meas p_c) (ln(F_meas p_t)) over
the specimens that fail in compression (tension) — assigned by the current limits and iterated to a
fixed point; a limit no specimen's failure is governed by is not identified and stays at the cases'
value. Leave-one-out: each specimen predicted from a refit on the others (the exponent included).
Goodness of fit: R² = 1 − SS_res / SS_tot of measured against predicted, the OLS slope (and
intercept) of measured on predicted, RMSE; all in N/mm or N.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from mpi4py import MPI
from scipy import interpolate, optimize, stats

from bonefe import __version__
from bonefe.errors import BonefeError
from bonefe.risk import StrainCriterion
from bonefe.solver import release_petsc_garbage

STIFFNESS, FAILURE = "measured_stiffness_n_per_mm", "measured_failure_load_n"
MIN_FOR_EXPONENT = 3
"""Stiffnesses needed before the exponent is fitted (two parameters and one residual degree of freedom)."""
EXPONENT_RANGE = (1.0, 3.5)
"""Exponents searched: published density–modulus laws lie within (Morgan 2003 1.49–1.56, Keller 1994
2.29, Carter & Hayes 1977 3; ciclope's micro-CT example 2.5)."""
EXPONENT_GRID = 7
"""Exponents solved per specimen (a cubic spline between)."""
FIT_SCHEMA = "bonefe-specimen-fit/1"


@dataclass(frozen=True)
class Specimen:
    """One row of S.csv: the case, its measured stiffness (N/mm) and failure load (N), None when not measured."""

    name: str
    case: object
    stiffness: float | None
    failure: float | None


def read_specimen_table(path: Path) -> list[Specimen]:
    """The rows of S.csv with their specimen cases read (module docstring)."""
    from bonefe.cohort.cohort_calibration import number, read_csv, unique_cases
    from bonefe.sites.specimen.case import load_specimen_case

    rows = read_csv(path, ("case",), "a specimens file (case, measured_stiffness_n_per_mm, measured_failure_load_n)")
    unique_cases(rows, path)
    specimens = []
    for line, row in rows:
        values = [number(row.get(column) or "", f"{path.name} line {line}, {column}") for column in (STIFFNESS, FAILURE)]
        if any(v is not None and not v > 0 for v in values) or all(v is None for v in values):
            raise BonefeError(f"{path.name} line {line}: give a positive {STIFFNESS} and/or {FAILURE}")
        case = load_specimen_case(path.resolve().parent / row["case"])
        specimens.append(Specimen(case.name, case, *values))
    return specimens


def _with_law(case, scale: float, exponent: float | None):
    """The case with its modulus multiplied by `scale` and, given, the grey-power exponent replaced."""
    material = case.material
    if material.grey_power is not None:
        law = material.grey_power
        law = replace(law, scale_mpa=law.scale_mpa * scale, min_modulus_mpa=law.min_modulus_mpa * scale,
                      exponent=law.exponent if exponent is None else exponent)
        return replace(case, material=replace(material, grey_power=law))
    if exponent is not None:
        raise BonefeError(f"{case.name}: the exponent is fitted for grey_power laws only; give grey_power in its case")
    density = replace(material.density, modulus_scale=material.density.modulus_scale * scale)
    return replace(case, material=replace(material, density=density))


class Runs:
    """The specimens' volumes and meshes, kept, and their rig solved at any (scale, exponent)."""

    def __init__(self, specimens: list[Specimen], comm=MPI.COMM_WORLD):
        from bonefe.sites.specimen.reading import read_specimen
        from bonefe.sites.specimen.site import SPECIMEN

        self.specimens, self.comm = specimens, comm
        self.volumes = [read_specimen(s.case.image, s.case.specimen) for s in specimens]
        self.meshes = [SPECIMEN.setup(s.case, None).mesh(v, s.case.mesh, comm) for s, v in zip(specimens, self.volumes)]

    def solve(self, i: int, exponent: float | None, scale: float = 1.0):
        from bonefe.sites.specimen.run import solve_specimen

        case = _with_law(self.specimens[i].case, scale, exponent)
        return solve_specimen(case, self.volumes[i], self.comm, self.meshes[i])

    def release(self) -> None:
        """Destroy the rigs' parked PETSc objects while the meshes live (`bonefe.solver.release_petsc_garbage`)."""
        for bone, _ in self.meshes:
            release_petsc_garbage(bone.mesh.comm)

    def stiffness(self, i: int, exponent: float | None) -> float:
        """Stiffness (N/mm) along the plate travel at scale 1: the rig's solves alone (no failure reading)."""
        from bonefe.sites.specimen.rig import RigLoading
        from bonefe.sites.specimen.run import specimen_material

        case = _with_law(self.specimens[i].case, 1.0, exponent)
        bone, tags = self.meshes[i]
        E = specimen_material(bone.mesh, self.volumes[i], case.material).E
        loading = RigLoading(bone.mesh, E, case.material.poisson, tags, case.rig, case.mesh.degree)
        return loading.readouts(case.rig)["stiffness_n_per_mm"]


# ----------------------------------------------------------------------------------------------
# Fits (plain numbers; no FE)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    """A fitted parameter, its 95 % interval, and whether the data identify it (else: the cases' value)."""

    value: float
    ci95: tuple[float, float] | None
    identified: bool


def _t(dof: int) -> float:
    return float(stats.t.ppf(0.975, dof)) if dof > 0 else float("inf")


def fit_scale(measured, predicted) -> Estimate:
    """s of ln k_meas = ln s + ln k_pred with its t interval (n − 1 degrees of freedom)."""
    y = np.log(measured) - np.log(predicted)
    log_s, n = float(y.mean()), y.size
    half = _t(n - 1) * float(np.std(y, ddof=1)) / np.sqrt(n) if n > 1 else float("inf")
    return Estimate(float(np.exp(log_s)), (float(np.exp(log_s - half)), float(np.exp(log_s + half))), True)


def fit_scale_exponent(measured, log_k) -> tuple[Estimate, Estimate]:
    """(s, b) minimising Σ (ln k_meas − ln s − ln k_i(b))²; log_k(b) -> (n,) the predictions at scale 1
    (a smooth function on EXPONENT_RANGE). Intervals: Gauss–Newton covariance, t with n − 2 dof."""
    y = np.log(measured)

    def rss(b):
        r = y - log_k(b)
        return float(np.sum((r - r.mean()) ** 2))

    b = optimize.minimize_scalar(rss, bounds=EXPONENT_RANGE, method="bounded", options={"xatol": 1e-6}).x
    log_s = float(np.mean(y - log_k(b)))
    h = 1e-4
    jacobian = np.column_stack([np.ones_like(y), (log_k(b + h) - log_k(b - h)) / (2 * h)])
    n, p = y.size, 2
    if np.linalg.matrix_rank(jacobian, tol=1e-9 * np.abs(jacobian).max()) < p:  # every specimen alike in b
        return fit_scale(measured, np.exp(log_k(b))), Estimate(float(b), None, False)
    variance = rss(b) / (n - p) * np.linalg.inv(jacobian.T @ jacobian)
    half_s, half_b = _t(n - p) * np.sqrt(np.diag(variance))
    low_b, high_b = b - half_b, b + half_b
    identified = bool(EXPONENT_RANGE[0] <= low_b and high_b <= EXPONENT_RANGE[1])
    return (Estimate(float(np.exp(log_s)), (float(np.exp(log_s - half_s)), float(np.exp(log_s + half_s))), True),
            Estimate(float(b), (float(low_b), float(high_b)), identified))


def fit_limits(measured, p_t, p_c, start: StrainCriterion, iterations: int = 20) -> tuple[Estimate, Estimate]:
    """(ε_t, ε_c) of F = min(ε_t/p_t, ε_c/p_c) (module docstring): mean log per failure mode, iterated."""
    measured, p_t, p_c = (np.asarray(v, float) for v in (measured, p_t, p_c))
    limits = np.array([start.tensile_limit, start.compressive_limit])
    peaks = np.column_stack([np.maximum(p_t, 1e-300), p_c])
    for _ in range(iterations):
        mode = np.argmin(limits / peaks, axis=1)  # 0 tension, 1 compression
        new = limits.copy()
        for m in (0, 1):
            if np.any(mode == m):
                new[m] = np.exp(np.mean(np.log(measured[mode == m] * peaks[mode == m, m])))
        if np.allclose(new, limits, rtol=1e-12):
            break
        limits = new
    mode = np.argmin(limits / peaks, axis=1)
    residual = np.log(measured) - np.log(np.min(limits / peaks, axis=1))
    fitted = [m for m in (0, 1) if np.any(mode == m)]
    dof = residual.size - len(fitted)
    sd = np.sqrt(residual @ residual / dof) if dof > 0 else float("inf")
    estimates = []
    for m in (0, 1):
        if m not in fitted:
            estimates.append(Estimate(float(limits[m]), None, False))
            continue
        half = _t(dof) * sd / np.sqrt(np.count_nonzero(mode == m))
        estimates.append(Estimate(float(limits[m]), (float(limits[m] * np.exp(-half)), float(limits[m] * np.exp(half))), True))
    return estimates[0], estimates[1]


def agreement(measured, predicted) -> dict:
    """R², OLS slope and intercept of measured on predicted, RMSE (units of the data)."""
    measured, predicted = np.asarray(measured, float), np.asarray(predicted, float)
    residual = measured - predicted
    total = float(np.sum((measured - measured.mean()) ** 2))
    slope, intercept = np.polyfit(predicted, measured, 1) if predicted.size > 1 and np.ptp(predicted) > 0 else (np.nan, np.nan)
    return {"r2": 1.0 - float(residual @ residual) / total if total > 0 else None, "slope": _plain(slope),
            "intercept": _plain(intercept), "rmse": float(np.sqrt(np.mean(residual**2))), "n": int(measured.size)}


def _plain(value):
    return None if not np.isfinite(value) else float(value)


# ----------------------------------------------------------------------------------------------
# The whole calibration
# ----------------------------------------------------------------------------------------------

def _log_stiffness(runs: Runs, rows: list[int]):
    """b -> ln k_i(b) (len(rows),) at scale 1: a cubic spline through EXPONENT_GRID solves per specimen."""
    grid = np.linspace(*EXPONENT_RANGE, EXPONENT_GRID)
    values = np.array([[np.log(runs.stiffness(i, b)) for b in grid] for i in rows])
    spline = interpolate.CubicSpline(grid, values, axis=1)
    return lambda b, keep=slice(None): spline(b)[keep]


def _fit_stiffness(runs: Runs, rows: list[int], measured: np.ndarray) -> dict:
    """Scale (and exponent), their intervals, and the leave-one-out predictions of the stiffness rows."""
    laws = {runs.specimens[i].case.material.grey_power is not None for i in rows}
    if len(rows) >= MIN_FOR_EXPONENT and laws == {True}:
        log_k = _log_stiffness(runs, rows)
        scale, exponent = fit_scale_exponent(measured, log_k)
        if exponent.identified:
            loo = []
            for j in range(len(rows)):
                others = np.delete(np.arange(len(rows)), j)
                s_j, b_j = fit_scale_exponent(measured[others], lambda b: log_k(b, others))
                loo.append(s_j.value * np.exp(log_k(b_j.value)[j]))
            return {"scale": scale, "exponent": exponent, "loo": np.array(loo)}
    else:
        exponent = None
    k = np.array([runs.stiffness(i, None) for i in rows])
    scale = fit_scale(measured, k)
    loo = [fit_scale(np.delete(measured, j), np.delete(k, j)).value * k[j] for j in range(len(rows))]
    fixed = Estimate(float("nan"), None, False) if exponent is None else exponent
    return {"scale": scale, "exponent": fixed, "loo": np.array(loo)}


def calibrate_specimens(specimens: list[Specimen], comm=MPI.COMM_WORLD) -> dict:
    """Run every specimen in its rig and fit (module docstring); the results as plain data."""
    runs = Runs(specimens, comm)
    result = _calibrate(runs, specimens, comm)
    runs.release()
    return result


def _calibrate(runs: Runs, specimens: list[Specimen], comm) -> dict:
    n = len(specimens)
    stiff_rows = [i for i, s in enumerate(specimens) if s.stiffness is not None]
    fail_rows = [i for i, s in enumerate(specimens) if s.failure is not None]
    result = {"schema": FIT_SCHEMA, "bonefe": __version__, "n": n}
    scale, exponent = 1.0, None
    if stiff_rows:
        measured = np.array([specimens[i].stiffness for i in stiff_rows])
        stiffness = _fit_stiffness(runs, stiff_rows, measured)
        scale = stiffness["scale"].value
        exponent = stiffness["exponent"].value if stiffness["exponent"].identified else None
        result["modulus_scale"] = _estimate(stiffness["scale"])
        result["exponent"] = _estimate(stiffness["exponent"])
    solved = [runs.solve(i, exponent, scale) for i in range(n)]
    predicted_k = np.array([x.model.loading.readouts(x.setup.rig)["stiffness_n_per_mm"] for x in solved])
    if stiff_rows:
        result["stiffness"] = _table(specimens, stiff_rows, measured, predicted_k[stiff_rows], stiffness["loo"])
    if fail_rows:
        from bonefe.risk import peak

        principal = [solved[i].model.principal(solved[i].setup.reference().unit) for i in fail_rows]
        p_t = np.array([peak(p[:, 0], comm) for p in principal])
        p_c = np.array([peak(-p[:, 2], comm) for p in principal])
        measured_f = np.array([specimens[i].failure for i in fail_rows])
        start = specimens[fail_rows[0]].case.failure.criterion
        tensile, compressive = fit_limits(measured_f, p_t, p_c, start)
        predict = lambda t, c, rows: np.minimum(t / np.maximum(p_t[rows], 1e-300), c / p_c[rows])  # noqa: E731
        loo = []
        for j in range(len(fail_rows)):
            others = np.delete(np.arange(len(fail_rows)), j)
            t_j, c_j = fit_limits(measured_f[others], p_t[others], p_c[others], start)
            loo.append(float(predict(t_j.value, c_j.value, [j])[0]))
        result["tensile_limit"], result["compressive_limit"] = _estimate(tensile), _estimate(compressive)
        result["failure"] = _table(specimens, fail_rows, measured_f,
                                   predict(tensile.value, compressive.value, slice(None)), np.array(loo))
    return result


def _estimate(estimate: Estimate) -> dict:
    return {"value": _plain(estimate.value), "ci95": None if estimate.ci95 is None else list(estimate.ci95),
            "identified": estimate.identified}


def _table(specimens, rows, measured, predicted, loo) -> dict:
    """Agreement of the fit and of the leave-one-out predictions, and the specimen rows."""
    loo_error = (loo - measured) / measured
    return {"fit": agreement(measured, predicted), "leave_one_out": {**agreement(measured, loo),
            "mean_abs_relative_error": float(np.mean(np.abs(loo_error)))},
            "specimens": [{"case": specimens[i].name, "measured": float(m), "predicted": float(p), "loo": float(q)}
                          for i, m, p, q in zip(rows, measured, predicted, loo)]}


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

QUANTITIES = (("stiffness", "stiffness (N/mm)", "N/mm"), ("failure", "failure load (N)", "N"))


def fit_figure(result: dict):
    """Measured against predicted (fitted: filled; leave-one-out: open), one panel per measured quantity."""
    from matplotlib.figure import Figure

    panels = [q for q in QUANTITIES if q[0] in result]
    figure = Figure(figsize=(5.0 * len(panels), 5.0), dpi=100)
    for k, (key, label, unit) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), k)
        rows = result[key]["specimens"]
        measured = np.array([r["measured"] for r in rows])
        fit, loo = result[key]["fit"], result[key]["leave_one_out"]
        r2 = "n/a" if fit["r2"] is None else f"{fit['r2']:.3f}"
        axes.plot([r["predicted"] for r in rows], measured, "o", color="C0", label=f"fitted (R² {r2}, RMSE {fit['rmse']:.3g} {unit})")
        axes.plot([r["loo"] for r in rows], measured, "o", markersize=10, markerfacecolor="none", color="C1",
                  label=f"leave-one-out (RMSE {loo['rmse']:.3g} {unit})")
        bounds = [0.0, 1.1 * max(measured.max(), max(max(r["predicted"], r["loo"]) for r in rows))]
        axes.plot(bounds, bounds, ":", color="black", label="measured = predicted")
        axes.set_xlabel(f"predicted {label}")
        axes.set_ylabel(f"measured {label}")
        axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return figure


def _estimate_line(name: str, estimate: dict | None, digits: str = ".4g") -> str:
    if estimate is None:
        return f"- {name}: not fitted (no measurement of it)"
    if not estimate["identified"]:
        kept = "" if estimate["value"] is None else f" (best {estimate['value']:{digits}})"
        return f"- {name}: not identified by these tests{kept}: the cases' value is kept"
    low, high = estimate["ci95"]
    return f"- {name}: **{estimate['value']:{digits}}** (95 % CI {low:{digits}}–{high:{digits}})"


def report_markdown(result: dict) -> str:
    """specimen-fit.md: the fitted parameters, the agreement, the specimen tables."""
    lines = ["# bonefe material and failure calibration against specimen tests", "",
             f"{result['n']} specimens, each run in its rig (`bonefe.sites.specimen.fit` documents the method).", "",
             _estimate_line("modulus scale s (multiplies every case's modulus)", result.get("modulus_scale")),
             _estimate_line("grey-power exponent b", result.get("exponent"), ".3f"),
             _estimate_line("tensile strain limit", result.get("tensile_limit")),
             _estimate_line("compressive strain limit", result.get("compressive_limit")), ""]
    for key, label, unit in QUANTITIES:
        if key not in result:
            continue
        fit, loo = result[key]["fit"], result[key]["leave_one_out"]
        r2 = "n/a" if fit["r2"] is None else f"{fit['r2']:.4f}"
        slope = "n/a" if fit["slope"] is None else f"{fit['slope']:.4f}"
        lines += [f"## {label[0].upper() + label[1:]}", "",
                  f"Fitted: R² {r2}, slope {slope}, RMSE {fit['rmse']:.4g} {unit}. Leave-one-out: RMSE "
                  f"{loo['rmse']:.4g} {unit}, mean absolute error {100 * loo['mean_abs_relative_error']:.2f} %.", "",
                  f"| specimen | measured ({unit}) | predicted ({unit}) | leave-one-out ({unit}) |", "|---|---|---|---|"]
        lines += [f"| {r['case']} | {r['measured']:.5g} | {r['predicted']:.5g} | {r['loo']:.5g} |"
                  for r in result[key]["specimens"]]
        lines.append("")
    return "\n".join(lines + ["![measured against predicted](specimen-fit.png)"]) + "\n"


def is_specimen_table(path: Path) -> bool:
    """Whether S.csv names specimen cases (site: specimen) rather than clinical ones."""
    from bonefe.cohort.cohort_calibration import read_csv
    from bonefe.sites import SPECIMEN
    from bonefe.sites.specimen.case import case_site

    rows = read_csv(path, ("case",), "a specimens file")
    return bool(rows) and case_site(Path(path).resolve().parent / rows[0][1]["case"]) == SPECIMEN


def run_specimen_fit(specimens: Path, out: Path, comm=MPI.COMM_WORLD) -> tuple[dict, dict[str, Path]]:
    """`bonefe calibrate --specimens S.csv --out DIR` for specimen cases: specimen-fit.json/.md/.png."""
    from bonefe.cohort.cohort_calibration import sha256, write_png
    from bonefe.outputs import atomic_write_json, atomic_write_text

    specimens, out = Path(specimens), Path(out)
    result = calibrate_specimens(read_specimen_table(specimens), comm)
    result["provenance"] = {"specimens": specimens.name, "specimens_sha256": sha256(specimens), "mpi_ranks": comm.size}
    paths = {"fit": out / "specimen-fit.json", "plot": out / "specimen-fit.png", "report": out / "specimen-fit.md"}
    if comm.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_png(fit_figure(result), paths["plot"])
        atomic_write_text(paths["report"], report_markdown(result))
        atomic_write_json(paths["fit"], result)
    comm.barrier()
    return result, paths


def summary(result: dict) -> str:
    """The line `bonefe calibrate --specimens` prints."""
    parts = []
    for key, name in (("modulus_scale", "modulus scale"), ("exponent", "exponent"),
                      ("tensile_limit", "tensile limit"), ("compressive_limit", "compressive limit")):
        estimate = result.get(key)
        if estimate is not None and estimate["identified"]:
            parts.append(f"{name} {estimate['value']:.4g} [{estimate['ci95'][0]:.4g}, {estimate['ci95'][1]:.4g}]")
    for key, unit in (("stiffness", "N/mm"), ("failure", "N")):
        if key in result:
            parts.append(f"{key} LOO RMSE {result[key]['leave_one_out']['rmse']:.3g} {unit}")
    return "; ".join(parts)

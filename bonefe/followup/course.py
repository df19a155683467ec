"""The lesion's course between scans and its projection: rates, their intervals, failure load against time.

Growth: exponential, V(t) = V₀·e^{kt}; volume doubling time T_d = ln 2 / k (Schwartz M 1961, "A
biomathematical approach to clinical tumor growth", Cancer 14; pages unconfirmed). Two scans:
k = ln(V₁/V₀)/Δt, its interval from the volume measurement error of each scan, ± half a voxel over
the lesion surface (δV = ½·h·A, h the mean voxel size, A the surface of the sphere of volume V).
Three or more: least-squares line of ln V against days; 95 % interval of the slope (Student t,
n − 2 degrees of freedom) and R².

Healing (re-mineralisation): the healing fraction h (`bonefe.followup.lesion_change`) grows
linearly from 0 at the baseline, h(t) = r·t capped at 1. Three or more scans: least-squares slope
through the origin, its 95 % interval and R². One follow-up: r = h₁/Δt, and the interval spans r
and the literature rate (LITERATURE_HEALING_HU_PER_DAY over the lesion's HU gap to healthy bone).

The course is "growth" when the last volume exceeds the first by more than the two measurement
errors together, else "healing" when the last healing fraction exceeds HEALING_DETECTION, else
"stable". Projection: failure load against days from the last scan, every PROJECTION_STEP_DAYS up to
the horizon, by interpolating the what-if series of the last scan's state (failure load against
lesion volume for growth, against healing fraction for healing) at the projected state, for the
rate and both ends of its interval. Beyond the largest what-if step the load is held at that
step's value and the projection says so (`beyond_whatif_from_days`).
"""

from dataclasses import dataclass

import numpy as np
from scipy import stats

LITERATURE_HEALING_HU_PER_DAY = 250.3 / 182.6
"""Typical re-mineralisation of osteolytic metastases after radiotherapy: mean density rose by
145.8 HU at 3 months and 250.3 HU at 6 months (135 lesions; Foerster et al. 2015, Radiat Oncol
10:62, doi:10.1186/s13014-015-0368-x; spinal metastases of breast cancer) — 250.3 HU over 6 months
(182.6 days), about 1.4 HU/day (confirmed against the abstract). Used only when a single follow-up
gives the healing rate, as a fraction of the lesion's own HU gap to healthy bone per day. Departure:
measured in spinal lytic metastases of breast cancer (mean 194.8 HU before radiotherapy); applied
here to any lytic lesion of any site (a departure for the femur), whose HU gap differs."""
HEALING_DETECTION = 0.10
"""Smallest healing fraction counted as re-mineralisation: 10 % of the HU gap to healthy bone
(≈ 50–100 HU for a lytic lesion in trabecular bone, above scan-to-scan HU noise of a few tens)."""
PROJECTION_STEP_DAYS = 15.0
"""Spacing of the projected points (days)."""
DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True)
class Rate:
    """A rate (per day) with its 95 % interval; r2 and points when fitted (None for one interval)."""

    value: float
    low: float
    high: float
    r2: float | None = None
    points: int = 2


def volume_error_mm3(volume_mm3: float, voxel_mm: float) -> float:
    """δV = ½·h·A, A the surface of the sphere of volume V (mm³)."""
    return 0.5 * voxel_mm * float(np.cbrt(36.0 * np.pi * volume_mm3 ** 2))


def _fit(x: np.ndarray, y: np.ndarray, through_origin: bool) -> Rate:
    """Least-squares slope of y on x with its 95 % t interval and R²."""
    if through_origin:
        slope = float(x @ y / (x @ x))
        residual = y - slope * x
        dof = len(x) - 1
        se = np.sqrt(residual @ residual / max(dof, 1) / (x @ x))
        total = y @ y
    else:
        fit = stats.linregress(x, y)
        slope, se, dof = float(fit.slope), float(fit.stderr), len(x) - 2
        residual = y - (fit.intercept + slope * x)
        total = float(((y - y.mean()) ** 2).sum())
    half = float(stats.t.ppf(0.975, max(dof, 1)) * se)
    r2 = 1.0 - float(residual @ residual) / total if total > 0 else 1.0
    return Rate(slope, slope - half, slope + half, r2, len(x))


def growth_rate(days, volumes_mm3, voxel_mm: float) -> Rate:
    """Exponential growth rate k (1/day) of the lesion volume (module docstring)."""
    days, volumes = np.asarray(days, float), np.maximum(np.asarray(volumes_mm3, float), 1e-9)
    if len(days) >= 3:
        return _fit(days, np.log(volumes), through_origin=False)
    (d0, d1), (v0, v1) = days, volumes
    e0, e1 = volume_error_mm3(v0, voxel_mm), volume_error_mm3(v1, voxel_mm)
    dt = d1 - d0
    return Rate(np.log(v1 / v0) / dt, np.log(max(v1 - e1, 1e-9) / (v0 + e0)) / dt, np.log((v1 + e1) / max(v0 - e0, 1e-9)) / dt)


def doubling_time_days(rate_per_day: float) -> float | None:
    """ln 2 / k (days); None when the lesion is not growing."""
    return float(np.log(2.0) / rate_per_day) if rate_per_day > 0 else None


def healing_rate(days, fractions, hu_gap: float) -> Rate:
    """Healing rate r (fraction per day) from the baseline (module docstring); hu_gap: twin − lesion HU."""
    days, fractions = np.asarray(days, float), np.asarray(fractions, float)
    if len(days) >= 3:
        return _fit(days - days[0], fractions - fractions[0], through_origin=True)
    measured = (fractions[1] - fractions[0]) / (days[1] - days[0])
    literature = LITERATURE_HEALING_HU_PER_DAY / hu_gap if hu_gap > 0 else measured
    return Rate(measured, min(measured, literature), max(measured, literature))


def course_kind(volumes_mm3, healing, voxel_mm: float) -> str:
    """"growth", "healing" or "stable" (module docstring)."""
    first, last = volumes_mm3[0], volumes_mm3[-1]
    if last - first > volume_error_mm3(first, voxel_mm) + volume_error_mm3(last, voxel_mm):
        return "growth"
    return "healing" if healing[-1] > HEALING_DETECTION else "stable"


@dataclass(frozen=True)
class Projection:
    """Failure load (N) against days after the last scan: nominal, lower and upper (the rate interval)."""

    days: list[float]
    failure_load_n: list[float]
    low_n: list[float]
    high_n: list[float]
    beyond_whatif_from_days: float | None


def project(state_now: float, rate: Rate, horizon_days: float, states, loads, kind: str) -> Projection:
    """Project the failure load: state (lesion volume mm³ for growth, healing fraction otherwise)
    at each day from the last scan, looked up in the what-if series (states increasing, loads)."""
    days = np.arange(0.0, horizon_days + 1e-9, PROJECTION_STEP_DAYS)
    states, loads = np.asarray(states, float), np.asarray(loads, float)

    def state(k):
        if kind == "growth":
            return state_now * np.exp(k * days)
        return np.minimum(state_now + k * days, 1.0) if kind == "healing" else np.full_like(days, state_now)

    curves = [np.interp(state(k), states, loads) for k in (rate.value, rate.low, rate.high)]
    beyond = days[state(max(rate.value, rate.low, rate.high) if kind != "stable" else 0.0) > states[-1] + 1e-12]
    low, high = np.minimum.reduce(curves), np.maximum.reduce(curves)
    return Projection(days.tolist(), curves[0].tolist(), low.tolist(), high.tolist(),
                      float(beyond[0]) if len(beyond) else None)


def first_day_below(days, loads, threshold_n: float) -> float | None:
    """First day (linear between points) the load falls below threshold_n; None if it never does."""
    days, loads = np.asarray(days, float), np.asarray(loads, float)
    if loads[0] < threshold_n:
        return 0.0
    below = np.flatnonzero(loads < threshold_n)
    if not len(below):
        return None
    i = below[0]
    return float(days[i - 1] + (loads[i - 1] - threshold_n) / (loads[i - 1] - loads[i]) * (days[i] - days[i - 1]))

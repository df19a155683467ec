"""The therapeutic window of exercise: safe for the bone, and loading the bone around the lesion
enough that it may build bone.

Per activity, at its peak load, side by side: the safety factor with its verdict
(`bonefe.risk.VerdictPolicy`, unchanged) and the osteogenic stimulus (`bonefe.stimulus`) in the
region of interest: the bone within REGION_MM of a lesion cell centre, lesion tissue excluded (the
whole evaluated bone when there is no lesion). Accidents (`Load.accidental`: stumbling) are left out.
An activity is **in the window** when its verdict is
"safe" and at least TARGET_FRACTION of the region's bone volume reaches the upper modelling
threshold MES_HIGH (1500 µε). The window never overrides a verdict: an activity that is not safe is
never in it.

Dose. Where the load scales (`Load.dose`: carried weight, band resistance), the contact force is
taken proportional to the dose: s × the activity's peak (s = 1: the library value). Linear
elasticity makes both ends divisions: the safety factor at scale s is SF/s, so the largest safe
scale is SF / safe_factor; the smallest stimulating scale is `Stimulus.scale_high`. When the
stimulating scale exceeds the safe one the exercise has **no window** and the report says so.
For carried weight, s × body weight is the weight the leg supports (body + load), so the load is
(s − 1) × body mass in kg (negative: unloaded, e.g. hands on a support); for a band, s is the
multiple of the band load of the source. Proportionality is an assumption (as for partial weight
bearing, `bonefe.risk.weight_bearing_fraction`); the direction of the force is kept.

Cycles per day (for ψ only; the window itself is decided on strain magnitude, which Frost's
threshold concerns, and few cycles suffice: 36 loading cycles a day gave a maximal osteogenic
response in the turkey ulna, Rubin CT, Lanyon LE 1984, J Bone Joint Surg Am 66:397-402, as quoted
by Cullen et al. 2001, J Appl Physiol 91:1971): one session as recommended for cancer survivors by
Campbell KL et al. 2019, Med Sci Sports Exerc 51:2375-2390 — aerobic exercise 30 min at moderate
intensity, about 100 steps/min (Tudor-Locke C et al. 2018, Br J Sports Med 52:776-788), i.e. 1500
cycles of one leg (AEROBIC_CYCLES); resistance exercise 2 sets of 8-15 repetitions, here 2 × 10 = 20
(SET_CYCLES; bonefe's choice within the range).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from bonefe.assessment import lesion_region
from bonefe.guidelines import ACTIVITY_CLASSES, NWB_AEROBIC, WB_AEROBIC
from bonefe.risk import ActivityAssessment, VerdictPolicy
from bonefe.stimulus import (
    CARTER_BEAUPRE,
    FROST_2003,
    MES_HIGH,
    MES_LOW,
    Stimulus,
    StrainField,
    measure,
    total_volume,
)
from bonefe.volume import LESION_LABELS

REGION_MM = 10.0
"""Bone points within this distance (mm) of a lesion cell centre form the region of interest: about
one cortical thickness plus one element around the lesion, the region of the strain fold ratio
(`bonefe.assessment.SFR_REGION_MM`)."""
TARGET_FRACTION = 0.10
"""Share of the region's bone volume that must reach the threshold: bonefe's choice (no published
value), a measurable part of the region rather than one point, as the failure load reads a sphere
of bone rather than a node."""
AEROBIC_CYCLES = 1500.0
"""Loading cycles of one leg in a 30-min aerobic session at ~100 steps/min (module docstring)."""
SET_CYCLES = 20.0
"""Repetitions in a resistance session of 2 sets × 10 (module docstring)."""
CAMPBELL_2019 = ("Campbell KL et al. 2019, Med Sci Sports Exerc 51:2375-2390 (30 min aerobic; 2 sets of "
                 "8-15 repetitions)")
RUBIN_LANYON = "Rubin CT, Lanyon LE 1984, J Bone Joint Surg Am 66:397-402 (36 cycles/day suffice)"

CARRIED, BAND = "carried weight", "band resistance"
"""How a patient scales a load (`bonefe.sites.base.Load.dose`; the site says which of its activities scale)."""
DOSE_LIMIT = {CARRIED: 1.5, BAND: 2.0}
"""Largest scale s considered (bonefe's choice): carried weight up to half the body mass, a band up to
twice the source's resistance. Beyond it the proportionality of contact force to dose is unsupported and
the loads leave what programmes for bone metastases prescribe (moderate loads; no 6-8 RM lifting,
Galvão et al. 2018, Trials 19:702): a stimulus that needs more is reported as out of reach."""


@dataclass(frozen=True)
class Dose:
    """How far the load of a scalable exercise may go (multiples s of its library peak).

    kind: CARRIED or BAND; safe_scale: the largest s keeping the safety factor ≥ the safe factor;
    stimulus_scale / stimulus_scale_low: the smallest s at which the region reaches MES_HIGH /
    MES_LOW over TARGET_FRACTION of its volume (None: never); window: stimulus_scale ≤ min(safe_scale, DOSE_LIMIT);
    text: the dose range (or "no window") in the patient's units, within DOSE_LIMIT. Along the dose, safety factor ×
    stimulus ratio (s / stimulus_scale) is constant: a line of slope −1 on log-log axes.
    """

    kind: str
    safe_scale: float
    stimulus_scale: float | None
    stimulus_scale_low: float | None
    window: bool
    text: str


@dataclass(frozen=True)
class WindowRow:
    """One activity at its peak load: safety (from the activity table) and stimulus side by side."""

    name: str
    label: str
    peak_force_n: float
    safety_factor: float
    verdict: str
    stimulus: Stimulus
    in_window: bool
    dose: Dose | None = None


@dataclass(frozen=True)
class ExerciseWindow:
    """The window of one bone: the region, the thresholds and one row per activity."""

    region: str
    region_volume_mm3: float
    mes_low: float
    mes_high: float
    target_fraction: float
    safe_factor: float
    rows: list[WindowRow]
    references: list[str]


def cycles_per_day(name: str) -> float:
    """AEROBIC_CYCLES for aerobic activities (`bonefe.guidelines` classes), else SET_CYCLES."""
    return AEROBIC_CYCLES if ACTIVITY_CLASSES.get(name) in (WB_AEROBIC, NWB_AEROBIC) else SET_CYCLES


def _dose_words(kind: str, scale: float, body_mass_kg: float) -> str:
    if kind == BAND:
        return f"{100 * scale:.0f} % of the source's band load"
    extra = (scale - 1.0) * body_mass_kg
    return f"{extra:.0f} kg carried" if extra >= 0 else f"{-extra:.0f} kg unloaded"


def dose(stimulus: Stimulus, row: ActivityAssessment, kind: str, body_mass_kg: float,
         policy: VerdictPolicy) -> Dose:
    """The dose range of a scalable activity from its stimulus and safety factor at its peak."""
    safe = row.safety_factor / policy.safe_factor
    limit = DOSE_LIMIT[kind]
    stimulating = stimulus.scale_high
    window = stimulating is not None and stimulating <= min(safe, limit)
    if stimulating is None:
        text = "no window: the bone around the lesion does not reach the threshold under this load"
    elif window:
        text = (f"window: from {_dose_words(kind, stimulating, body_mass_kg)} to "
                f"{_dose_words(kind, min(safe, limit), body_mass_kg)}"
                + (" (the largest dose considered)" if limit < safe else ""))
    elif stimulating > safe:
        text = (f"no window: the stimulus needs {_dose_words(kind, stimulating, body_mass_kg)}, safety allows "
                f"at most {_dose_words(kind, safe, body_mass_kg)}")
    else:
        text = (f"no window within the doses considered: the stimulus needs "
                f"{_dose_words(kind, stimulating, body_mass_kg)}, more than "
                f"{_dose_words(kind, limit, body_mass_kg)}")
    return Dose(kind, safe, stimulating, stimulus.scale_low, window, text)


def window_row(field: StrainField, row: ActivityAssessment, body_mass_kg: float, policy: VerdictPolicy,
               target_fraction: float = TARGET_FRACTION, comm=None, kind: str | None = None) -> WindowRow:
    """Safety factor and stimulus of one activity at its peak; its dose range when it scales (kind:
    CARRIED, BAND or None)."""
    stimulus = measure(field, row.peak_force_n, cycles_per_day(row.name), target_fraction, comm)
    in_window = row.verdict == "safe" and stimulus.region_above_high >= target_fraction
    found = dose(stimulus, row, kind, body_mass_kg, policy) if kind else None
    return WindowRow(row.name, row.label, row.peak_force_n, row.safety_factor, row.verdict, stimulus,
                     in_window, found)


def exercise_window(model, E, labels, loads, rows: list[ActivityAssessment], body_mass_kg: float,
                    nu: float, region_mm: float = REGION_MM) -> ExerciseWindow:
    """The window of a bone model (`bonefe.assessment.BoneModel`) with per-cell moduli E (MPa),
    cell labels and Poisson ratio nu, for `loads` (`bonefe.sites.base.Load`) and their assessed
    `rows`; accidental loads are left out."""
    comm = model.mesh.comm
    lattice = model.lattice
    has_lesion = comm.allreduce(bool(np.isin(labels, LESION_LABELS).any()), op=MPI.LOR)
    region = lesion_region(model, labels, region_mm) if has_lesion else np.ones(len(lattice.points), bool)
    where = (f"bone within {region_mm:g} mm of the lesion, lesion tissue excluded" if has_lesion
             else "all bone evaluated for failure (no lesion)")
    modulus = lattice.nonlocal_field(np.asarray(E, float))
    policy = model.options.verdict
    result = []
    for load, row in zip(loads, rows):
        if load.accidental:
            continue
        field = StrainField(model.principal(load.unit), lattice.volumes, modulus, nu, region)
        result.append(window_row(field, row, body_mass_kg, policy, TARGET_FRACTION, comm, load.dose))
    return ExerciseWindow(where, total_volume(lattice.volumes[region], comm), MES_LOW, MES_HIGH, TARGET_FRACTION,
                          policy.safe_factor, result, [FROST_2003, CARTER_BEAUPRE, CAMPBELL_2019, RUBIN_LANYON])

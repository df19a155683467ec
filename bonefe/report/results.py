"""The numbers a report shows: one flat, typed record built from the pipeline's `results` dict.

`ReportResults` is the schema. The pipeline passes a plain dict with these keys (numpy scalars
and arrays are accepted); unknown keys are refused, so nothing reaches a report that the schema
does not name. Results must never carry DICOM header fields or other patient identifiers:
`case_name` is a pseudonym chosen by the user, and keys that look like DICOM identifiers
(PatientName, PatientID, StudyDate, ...) anywhere in `provenance` are refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from bonefe.errors import BonefeError
from bonefe.risk import (
    STERNHEIM_2020,
    STERNHEIM_SFR_THRESHOLD,
    ActivityAssessment,
    RiskThresholds,
    StrainCriterion,
    VerdictPolicy,
    body_weight_n,
    risk_category,
)
from bonefe.sites.femur.assessment import EnvelopeMark, EnvelopePlane
from bonefe.sites.femur.fall import FallRisk
from bonefe.guidelines import guideline_rows
from bonefe.schema import as_plain, build, plain_values
from bonefe.sites.long_bone.scores import AxialInvolvement, MirelsScore
from bonefe.synthesis import synthesis_of
from bonefe.uncertainty import UncertaintyResult
from bonefe.whatif import WhatIfSeries
from bonefe.window import ExerciseWindow

SCHEMA = "bonefe-report/2"
"""2: failure read from the nonlocal strain (`averaging_radius_mm` replaced `critical_volume_mm3`)."""


@dataclass(frozen=True)
class ReportResults:
    """Everything a report shows. Units: N, mm, kg, s; strain limits dimensionless.

    case_name: pseudonymous case label (never a patient name or ID).
    body_mass_kg: patient's body mass; body weight BW = 9.81 N/kg x mass.
    failure_load_n / failure_load_bw: failure load under `failure_load_case` (N and x BW).
    failure_load_case: the loading the failure load refers to, e.g. "walking (~4 km/h) direction".
    failure_location_mm: where failure starts, world mm (LPS); failure_site: words for it.
    failure_mode: "tensile" or "compressive".
    risk_category: "high", "moderate" or "low" (must agree with risk_thresholds).
    averaging_radius_mm (nonlocal strain sphere), strain_criterion, risk_thresholds, verdict_policy: the rules applied.
    walking_weight_bearing_fraction: fraction (0..1) of full weight bearing allowed for walking.
    activities: one row per activity (bonefe.risk.ActivityAssessment fields).
    strain_fold_ratio: lesion / lesion-free twin peak strain, or None when not computed.
    twin_failure_load_n: stance failure load of the lesion-free twin (N), or None.
    mirels, axial_involvement: clinical scores of the worst lesion (bonefe.sites.long_bone.scores), or None.
    envelope: allowed hip-contact force per direction in the frontal and sagittal planes;
    envelope_marks: the head-contact activities placed on it (bonefe.sites.femur.assessment).
    whatif_growth, whatif_remineralisation: stance failure load as the lesion grows (mm) and as it
    re-mineralises (fraction), or None when not computed (bonefe.whatif).
    uncertainty: interval of the failure load and each input's effect, or None (bonefe.uncertainty).
    fall: sideways-fall strength, impact force and factor of risk, or None (bonefe.sites.femur.fall).
    exercise_window: safety factor and osteogenic stimulus per activity, doses, or None (bonefe.window).
    mesh: counts such as {"cells": ..., "dofs": ...}; material_law: name of the density-modulus law.
    timings_s: wall time per stage; provenance: input hashes and parameters as given.
    assumptions: sentences the reader should know (loads, supports, limitations).
    """

    case_name: str
    body_mass_kg: float
    failure_load_n: float
    failure_load_bw: float
    failure_load_case: str
    failure_location_mm: tuple[float, float, float]
    failure_mode: Literal["tensile", "compressive"]
    risk_category: Literal["high", "moderate", "low"]
    averaging_radius_mm: float
    strain_criterion: StrainCriterion
    risk_thresholds: RiskThresholds
    verdict_policy: VerdictPolicy
    walking_weight_bearing_fraction: float
    activities: list[ActivityAssessment]
    mesh: dict[str, int]
    material_law: str
    timings_s: dict[str, float]
    provenance: dict[str, Any]
    failure_site: str = ""
    strain_fold_ratio: float | None = None
    sfr_threshold: float = STERNHEIM_SFR_THRESHOLD
    sfr_reference: str = STERNHEIM_2020
    twin_failure_load_n: float | None = None
    mirels: MirelsScore | None = None
    axial_involvement: AxialInvolvement | None = None
    envelope: list[EnvelopePlane] = field(default_factory=list)
    envelope_marks: list[EnvelopeMark] = field(default_factory=list)
    whatif_growth: WhatIfSeries | None = None
    whatif_remineralisation: WhatIfSeries | None = None
    uncertainty: UncertaintyResult | None = None
    fall: FallRisk | None = None
    exercise_window: ExerciseWindow | None = None
    assumptions: list[str] = field(default_factory=list)

    def __post_init__(self):
        expected_bw = self.failure_load_n / body_weight_n(self.body_mass_kg)
        if not math.isclose(self.failure_load_bw, expected_bw, rel_tol=1e-6):
            raise BonefeError(
                f"failure_load_bw {self.failure_load_bw:.4g} disagrees with failure_load_n / body weight "
                f"= {expected_bw:.4g}: pass both from the same numbers"
            )
        expected = risk_category(self.failure_load_bw, self.risk_thresholds)
        if self.risk_category != expected:
            raise BonefeError(
                f"risk_category '{self.risk_category}' disagrees with the thresholds ('{expected}')"
            )
        _refuse_identifiers(self.provenance, "provenance")

    @property
    def body_weight_n(self) -> float:
        """Body weight in N."""
        return body_weight_n(self.body_mass_kg)


# DICOM attributes that identify a patient or a study (PS3.15 Annex E basic profile, abridged).
_IDENTIFIER_KEYS = {
    "patientname", "patientid", "otherpatientids", "patientbirthdate", "patientbirthtime",
    "patientsex", "patientage", "patientaddress", "patienttelephonenumbers", "accessionnumber",
    "studyinstanceuid", "seriesinstanceuid", "sopinstanceuid", "studyid", "studydate", "studytime",
    "seriesdate", "acquisitiondate", "contentdate", "institutionname", "institutionaddress",
    "referringphysicianname", "performingphysicianname", "operatorsname", "medicalrecordlocator",
}


def _refuse_identifiers(data, where: str) -> None:
    """Raise if any mapping key below `data` names a DICOM patient/study identifier."""
    if isinstance(data, dict):
        for key, value in data.items():
            if re.sub(r"[^a-z]", "", str(key).lower()) in _IDENTIFIER_KEYS:
                raise BonefeError(
                    f"{where}.{key} looks like a patient identifier: reports must not carry DICOM "
                    "header fields; remove it"
                )
            _refuse_identifiers(value, f"{where}.{key}")
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            _refuse_identifiers(value, f"{where}[{i}]")


def build_results(results: dict) -> ReportResults:
    """Check the pipeline's results dict against the schema; one-line BonefeError on any problem."""
    return build(ReportResults, plain_values(results), "results")


def results_json(results: ReportResults, software: dict) -> dict:
    """The report.json payload: every field, body weight, the synthesised headline
    (`bonefe.synthesis`), the exercise guidance beside each FE verdict when the bone has a lesion
    (`bonefe.guidelines`), and provenance extended by `software`."""
    payload = {"schema": SCHEMA, **as_plain(results), "body_weight_n": results.body_weight_n,
               "synthesis": as_plain(synthesis_of(results)),
               "exercise_guidance": as_plain(guideline_rows(results.activities) if results.mirels else [])}
    payload["provenance"] = {**payload["provenance"], "software": software}
    return payload

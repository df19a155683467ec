"""One answer per patient from the single-bone reports: per bone the risk, failure load and site;
per activity the worst verdict over every bone and the bone that limits it; walking-aid advice
checked across bones. Pure functions of the report.json payloads (no files, no sites).

Verdicts rank safe < not modelled = no result < caution < avoid: an activity a bone's site does not
model ("not modelled"), or a bone without a result ("no result"), is never counted as safe, and an
activity is "safe" for the patient only when it is safe for every bone. Among bones with the worst
verdict the lowest safety factor limits. Risks rank low < moderate < indeterminate < high (a
bone's risk is its report's headline, `synthesis.level`, else its `risk_category`).
"""

from dataclasses import dataclass

from bonefe.patient.vocabulary import WALKING, WALKING_AIDS, identity
from bonefe.risk import body_weight_n

SCHEMA = "bonefe-patient-report/1"
NOT_MODELLED, NO_RESULT = "not modelled", "no result"
VERDICT_RANK = {"safe": 0, NOT_MODELLED: 1, NO_RESULT: 1, "caution": 2, "avoid": 3}
RISK_RANK = {"low": 0, "moderate": 1, "indeterminate": 2, "high": 3}
UNSAFE = ("caution", "avoid")


@dataclass(frozen=True)
class BoneResult:
    """One bone of the patient: bone (e.g. femur-left), site, case name, its report.json payload
    when it ran (else None), status ("done", "failed", "pending") and why it has no result."""

    bone: str
    site: str
    case: str
    report: dict | None
    status: str = "done"
    error: str = ""


def bone_summary(result: BoneResult) -> dict:
    """Per bone: status, risk (headline and by failure load), failure load (N, × BW), where and how
    failure starts; the error when it has no result."""
    row = {"bone": result.bone, "site": result.site, "case": result.case, "status": result.status}
    r = result.report
    if r is None:
        return {**row, "error": result.error or "no result"}
    synthesis = r.get("synthesis") or {}
    return {**row, "risk": synthesis.get("level", r["risk_category"]), "risk_by_failure_load": r["risk_category"],
            "failure_load_n": r["failure_load_n"], "failure_load_bw": r["failure_load_bw"],
            "failure_load_case": r.get("failure_load_case", ""),
            "failure_site": r.get("failure_site") or r.get("failure_region") or "",
            "failure_location_mm": r["failure_location_mm"], "failure_mode": r["failure_mode"],
            "walking_weight_bearing_fraction": r.get("walking_weight_bearing_fraction")}


def _cells(result: BoneResult) -> dict[str, dict]:
    """The bone's activities by patient activity; the lowest safety factor where two map to one."""
    cells: dict[str, dict] = {}
    for a in (result.report or {}).get("activities", []):
        key = identity(a["name"])
        if key not in cells or a["safety_factor"] < cells[key]["safety_factor"]:
            cells[key] = {"name": a["name"], "label": a["label"], "verdict": a["verdict"],
                          "safety_factor": a["safety_factor"], "peak_force_n": a["peak_force_n"],
                          "allowed_force_n": a["allowed_force_n"]}
    return cells


def activity_rows(results: list[BoneResult]) -> list[dict]:
    """Per patient activity (walking and the aids first, then in the bones' order): each bone's cell,
    the worst verdict, the limiting bone and its safety factor, the bones not modelled / without result."""
    cells = {r.bone: _cells(r) for r in results}
    names = [WALKING, *WALKING_AIDS]
    names += [n for bone in cells.values() for n in bone if n not in names]
    rows = []
    for name in dict.fromkeys(n for n in names if any(n in bone for bone in cells.values())):
        per_bone = {r.bone: cells[r.bone].get(name) or {"verdict": NO_RESULT if r.report is None else NOT_MODELLED}
                    for r in results}
        limiting = max(per_bone, key=lambda b: (VERDICT_RANK[per_bone[b]["verdict"]],
                                                -per_bone[b].get("safety_factor", float("inf"))))
        label = next(c["label"] for c in per_bone.values() if "label" in c)
        rows.append({"activity": name, "label": WALKING_AIDS.get(name, label), "verdict": per_bone[limiting]["verdict"],
                     "limiting_bone": limiting, "safety_factor": per_bone[limiting].get("safety_factor"),
                     "bones": per_bone,
                     "not_modelled": [b for b, c in per_bone.items() if c["verdict"] == NOT_MODELLED],
                     "no_result": [b for b, c in per_bone.items() if c["verdict"] == NO_RESULT]})
    return rows


def _aid_reasons(result: BoneResult, walking: dict | None) -> str:
    """Why this bone's advice sends the patient to a walking aid ('' when it does not): its walking is
    not safe, or the weight bearing its walking allows is partial. A bone that does not model walking
    (walking: None or not modelled) sends nobody to an aid, whatever else its report holds."""
    if not walking or "safety_factor" not in walking:
        return ""
    reasons = []
    if walking["verdict"] in UNSAFE:
        reasons.append(f"walking {walking['verdict']} (safety factor {walking['safety_factor']:.2f})")
    fraction = (result.report or {}).get("walking_weight_bearing_fraction")
    if fraction is not None and fraction < 1.0:
        reasons.append(f"partial weight bearing, at most {100 * fraction:.0f} % of body weight")
    return "; ".join(reasons)


def walking_aids(results: list[BoneResult], rows: list[dict]) -> dict:
    """Walking-aid consistency: which bones send the patient to an aid and why, and each aid's
    verdict per bone; `flag` when an aid is advised but is not safe (caution or avoid) for a bone."""
    by_name = {row["activity"]: row for row in rows}
    walking = by_name.get(WALKING, {"bones": {}})["bones"]
    advised = [{"bone": r.bone, "reason": reason} for r in results if (reason := _aid_reasons(r, walking.get(r.bone)))]
    aids, conflicts = [], []
    for aid, label in WALKING_AIDS.items():
        row = by_name.get(aid)
        cells = row["bones"] if row else {r.bone: {"verdict": NOT_MODELLED if r.report else NO_RESULT} for r in results}
        unsafe = [b for b, c in cells.items() if c["verdict"] in UNSAFE]
        aids.append({"aid": aid, "label": label, "verdict": row["verdict"] if row else NOT_MODELLED,
                     "unsafe_for": unsafe, "modelled_for": [b for b, c in cells.items() if "label" in c]})
        conflicts += [{"aid": aid, "label": label, "bone": b, "verdict": cells[b]["verdict"],
                       "safety_factor": cells[b]["safety_factor"]} for b in unsafe]
    flag = bool(advised and conflicts)
    return {"advised_by": advised, "aids": aids, "conflicts": conflicts if advised else [], "flag": flag,
            "message": _aid_message(advised, aids, conflicts, flag)}


def _aid_message(advised: list[dict], aids: list[dict], conflicts: list[dict], flag: bool) -> str:
    """The walking-aid sentence of the report."""
    clash = "; ".join(f"{c['label'].lower()} is {c['verdict'].upper()} for {c['bone']} (safety factor "
                      f"{c['safety_factor']:.2f})" for c in conflicts)
    if not advised:
        return "No bone's result calls for a walking aid" + (f"; if the patient uses one: {clash}." if clash else ".")
    who = "; ".join(f"{a['bone']} ({a['reason']})" for a in advised)
    if flag:
        safe = [f"{a['label'].lower()} (safe for {', '.join(a['modelled_for'])})" for a in aids
                if a["modelled_for"] and not a["unsafe_for"]]
        alternative = f" Safe for every bone that models it: {'; '.join(safe)}." if safe else ""
        return f"WALKING AID CONFLICT: a walking aid is advised for {who}, but {clash}.{alternative}"
    modelled = [a for a in aids if a["modelled_for"]]
    if not modelled:
        return (f"A walking aid is advised for {who}; no bone of this patient models a walking aid's loads "
                "(the upper limbs were not assessed), so no aid is known to be safe.")
    return (f"A walking aid is advised for {who}; " + "; ".join(f"{a['label'].lower()}: {a['verdict']}"
                                                               for a in modelled) + ".")


def patient_report(patient: str, body_mass_kg: float, results: list[BoneResult]) -> dict:
    """The patient.json payload: per bone, the worst risk and its bone, per activity, walking aids."""
    bones = [bone_summary(r) for r in results]
    done = [b for b in bones if b["status"] == "done"]
    worst = max(done, key=lambda b: (RISK_RANK[b["risk"]], -b["failure_load_bw"]), default=None)
    rows = activity_rows(results)
    return {"schema": SCHEMA, "patient": patient, "body_mass_kg": body_mass_kg,
            "body_weight_n": body_weight_n(body_mass_kg),
            "risk": worst and worst["risk"], "limiting_bone": worst and worst["bone"],
            "missing": [{"bone": b["bone"], "status": b["status"], "error": b["error"]} for b in bones if "error" in b],
            "bones": bones, "activities": rows, "walking_aids": walking_aids(results, rows)}

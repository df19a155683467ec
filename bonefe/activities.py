"""An activity: the peak force a daily activity, exercise or accident puts on a bone's load patch,
as components along the bone's frame (medial, anterior, superior: `basis()` of the site's frame),
in percent of body weight (BW = body mass × G) or N; the activity libraries of the long bones
(`bonefe.sites.femur.loads`, `bonefe.sites.humerus.loads`) and the case's own activities are
Activity records."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bonefe.errors import BonefeError

G = 9.81  # m/s², BW = mass × G
UNITS = ("%BW", "N")


@dataclass(frozen=True)
class Activity:
    """One loading scenario.

    name:       identifier (also the key in the site's activity library and in case files).
    label:      human-readable name for reports.
    force:      (medial, anterior, superior) components of the force on the patch, in `unit`.
    patch:      the site's load patch, e.g. "head" (hip or glenohumeral contact) or "trochanter".
    reference:  source of the magnitude (and direction), with its scaling.
    unit:       "%BW" (percent body weight) or "N".
    direction_note: how the direction was obtained when the source gives only a magnitude.
    abductor:   optional abductor force (medial, anterior, superior) in %BW on the trochanter
                patch, applied together with the contact force when requested.
    """

    name: str
    label: str
    force: tuple[float, float, float]
    patch: str = "head"
    reference: str = ""
    unit: str = "%BW"
    direction_note: str = ""
    abductor: tuple[float, float, float] | None = field(default=None)

    @property
    def magnitude(self) -> float:
        """Resultant of the contact force, in `unit`."""
        return float(np.linalg.norm(self.force))


def _vector(d: dict, key: str) -> tuple[float, float, float]:
    value = d[key]
    try:
        vector = tuple(float(c) for c in value)
    except (TypeError, ValueError):
        vector = ()
    if len(vector) != 3 or not np.all(np.isfinite(vector)):
        raise BonefeError(f"activity '{d.get('name', '?')}': '{key}' must be three numbers "
                          "(medial, anterior, superior)")
    return vector


def activity_from_dict(d: dict, patches: tuple[str, ...]) -> Activity:
    """A user-defined activity from a case file mapping, on one of the site's `patches`.

    Keys: name (required), label, reference, patch (one of `patches`, default "head"), unit ("%BW"|"N"), and
    either ``force`` = [medial, anterior, superior] or ``magnitude`` with ``direction`` (any
    non-zero 3-vector, normalised here); optional ``abductor`` = [medial, anterior, superior] %BW.
    """
    if not isinstance(d, dict) or not d.get("name"):
        raise BonefeError("each activity needs a 'name' (and 'force' or 'magnitude'+'direction')")
    known = {"name", "label", "reference", "patch", "unit", "force", "magnitude", "direction",
             "abductor", "direction_note"}
    unknown = set(d) - known
    if unknown:
        raise BonefeError(f"activity '{d['name']}': unknown key(s) {sorted(unknown)}; "
                          f"allowed: {sorted(known)}")
    patch, unit = d.get("patch", "head"), d.get("unit", "%BW")
    if patch not in patches:
        raise BonefeError(f"activity '{d['name']}': patch must be one of {patches}, got {patch!r}")
    if unit not in UNITS:
        raise BonefeError(f"activity '{d['name']}': unit must be one of {UNITS}, got {unit!r}")
    if "force" in d:
        force = _vector(d, "force")
    elif "magnitude" in d and "direction" in d:
        direction = np.asarray(_vector(d, "direction"))
        if not np.linalg.norm(direction) > 0 or not float(d["magnitude"]) >= 0:
            raise BonefeError(f"activity '{d['name']}': direction must be non-zero and "
                              "magnitude non-negative")
        force = tuple(float(d["magnitude"]) * direction / np.linalg.norm(direction))
    else:
        raise BonefeError(f"activity '{d['name']}': give 'force' or 'magnitude' and 'direction'")
    abductor = _vector(d, "abductor") if d.get("abductor") is not None else None
    return Activity(name=str(d["name"]), label=str(d.get("label", d["name"])), force=force,
                    patch=patch, reference=str(d.get("reference", "user-defined")), unit=unit,
                    direction_note=str(d.get("direction_note", "")), abductor=abductor)


def to_world(components, unit: str, frame, body_mass_kg: float) -> np.ndarray:
    """Frame components (medial, anterior, superior) in `unit` as a world force (N)."""
    scale = body_mass_kg * G / 100.0 if unit == "%BW" else 1.0
    return frame.basis() @ (scale * np.asarray(components, dtype=float))


def force_world(activity: Activity, frame, body_mass_kg: float) -> np.ndarray:
    """Contact force of `activity` in world coordinates (N) for a patient of `body_mass_kg`."""
    if not body_mass_kg > 0:
        raise BonefeError(f"body mass must be positive (kg), got {body_mass_kg}")
    return to_world(activity.force, activity.unit, frame, body_mass_kg)

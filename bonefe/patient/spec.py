"""patient.yaml: one patient (a pseudonymous id, body mass) and the case of each of their bones.

    patient: P-0042              # pseudonym: letters, digits, . _ - (never a name, ID or date)
    body_mass_kg: 70             # optional when the cases give it; cases that leave it out inherit it
    output: runs/P-0042          # optional; default runs/<patient>, relative to this file
    bones:
      - femur-left.yaml          # an ordinary case file (relative to this file) ...
      - name: spine-l1           # ... or a case written inline (paths relative to this file)
        site: vertebra
        ...

The patient's own numbers (`SHARED`: body mass, height) must agree between patient.yaml and every
case that gives them; a case that leaves one out inherits it. A bone is its site with its level
(when the case has one) or its side: two cases of one bone, or two cases with one name, are refused.
"""

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from bonefe.case import Case, case_from_data, read_yaml
from bonefe.errors import BonefeError
from bonefe.outputs import atomic_write_text
from bonefe.schema import as_plain, build

SHARED = ("body_mass_kg", "height_m")
"""Keys of a case's `patient` section that belong to the patient, not to one bone."""
PSEUDONYM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class PatientFile:
    """patient.yaml as written (module docstring). bones: case file paths or inline cases."""

    patient: str
    bones: list[str | dict[str, Any]]
    body_mass_kg: float | None = None
    height_m: float | None = None
    output: Path | None = None


@dataclass(frozen=True)
class Bone:
    """One bone of the patient: its name (site-level or site-side), its case, where it was given."""

    bone: str
    case: Case
    source: str


@dataclass(frozen=True)
class Patient:
    """A validated patient: id, body mass (kg), bones in the file's order, output folder."""

    patient: str
    body_mass_kg: float
    bones: list[Bone]
    output: Path


def _entries(given: PatientFile, base: Path, name: str) -> list[tuple[str, dict, Path, Path | None]]:
    """(where, raw case mapping, base folder of its paths, its file or None) per entry of `bones`."""
    entries = []
    for i, entry in enumerate(given.bones):
        if isinstance(entry, str):
            file = (base / entry).resolve()
            if not file.is_file():
                raise BonefeError(f"{name}: bones[{i}]: case file {file} not found: give the path to a case "
                                  "file (relative to the patient file) or the case inline")
            data, where, folder = read_yaml(file), file.name, file.parent
        else:
            data, where, folder, file = entry, f"{name}: bones[{i}]", base, None
        if not isinstance(data, dict) or not isinstance(data.get("patient") or {}, dict):
            raise BonefeError(f"{where}: a case (and its patient section) must be a mapping of keys to values")
        entries.append((where, data, folder, file))
    return entries


def _shared(given: PatientFile, entries, name: str) -> dict:
    """The patient's SHARED values: patient.yaml's, or those the cases agree on; refuses mixed patients."""
    values = {}
    for key in SHARED:
        stated = [(name, getattr(given, key))] if getattr(given, key) is not None else []
        stated += [(where, data["patient"][key]) for where, data, *_ in entries if key in (data.get("patient") or {})]
        for where, value in stated[1:]:
            if value != stated[0][1]:
                raise BonefeError(f"{where} gives {key} {value} but {stated[0][0]} gives {stated[0][1]}: a patient "
                                  "file holds one patient's bones (mixed patients?); make them agree or leave it out "
                                  "of the case to inherit it")
        if stated:
            values[key] = stated[0][1]
    if "body_mass_kg" not in values:
        raise BonefeError(f"{name}: no body mass: give body_mass_kg in the patient file (the cases inherit it)")
    return values


def load_patient(path: str | Path) -> Patient:
    """Read and validate patient.yaml and every bone's case (module docstring)."""
    path = Path(path)
    given = build(PatientFile, read_yaml(path, "patient"), path.name)
    if not PSEUDONYM.fullmatch(given.patient):
        raise BonefeError(f"{path.name}: patient '{given.patient}' must be a pseudonym of letters, digits, '.', '_' "
                          "and '-' (at most 64; never a name, hospital number or date)")
    if not given.bones:
        raise BonefeError(f"{path.name}: bones is empty: list the case of each bone")
    base = path.resolve().parent
    entries = _entries(given, base, path.name)
    shared = _shared(given, entries, path.name)
    bones: dict[str, Bone] = {}
    names: dict[str, str] = {}
    for where, data, folder, file in entries:
        data = {**data, "patient": {**(data.get("patient") or {}), **shared}}
        case = case_from_data(data, folder, where, file)
        bone = f"{case.site}-{case.level or case.patient.side}"
        if bone in bones:
            raise BonefeError(f"{where} and {bones[bone].source} are both the {bone}: give each bone once "
                              "(set patient.side or level when they are different bones)")
        if case.name in names:
            raise BonefeError(f"{where} and {names[case.name]} are both named '{case.name}': give every case a "
                              "unique name")
        bones[bone], names[case.name] = Bone(bone, case, where), where
    output = (base / (given.output or Path("runs") / given.patient)).resolve()
    return Patient(given.patient, shared["body_mass_kg"], list(bones.values()), output)


def write_inputs(patient: Patient, folder: Path) -> list[Path]:
    """Each bone's case as a complete case file (absolute paths, the patient's values, output in the
    batch's cases/<name>) in folder/inputs/<bone>.yaml, for the batch machinery; returns the paths."""
    paths = []
    for bone in patient.bones:
        case = replace(bone.case, output=folder / "cases" / bone.case.name)
        paths.append(folder / "inputs" / f"{bone.bone}.yaml")
        header = f"# {bone.bone} of patient {patient.patient}, from {bone.source} (written by bonefe patient run)\n"
        atomic_write_text(paths[-1], header + yaml.safe_dump(as_plain(case), sort_keys=False))
    return paths

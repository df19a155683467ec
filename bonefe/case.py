"""The case file: one patient's bone, its inputs and every option, validated with clear errors.

A case file is YAML; relative paths are relative to the case file. Only `name`, `ct`, `labels` and
`patient.body_mass_kg` are required; every other value has a documented default in the dataclass
that uses it. `activities` names activities of the library (`bonefe.sites.femur.loads.ACTIVITIES`, all when
omitted); `custom_activities` adds the case's own (see `bonefe.activities.activity_from_dict`);
`exports` (none by default) writes what the report does not need: "fields" (per-activity
displacement and strains for ParaView, `bonefe.fields`; 65–110 MB at the 3 mm demo), and the model
for other solvers where the site supports it, "inp" (CalculiX/Abaqus, per-element material, walking
load) and "vtu" (mesh with E, for ParaView); `uncertainty` (optional, off when absent)
asks for the sensitivity study and interval of the failure load (`bonefe.uncertainty`);
`ct_series` picks one series of a DICOM folder (`bonefe.dicom_series`); `checks` may turn an input
plausibility check off, which the run then reports (`bonefe.plausibility`).
`calibration: internal` calibrates HU on the patient's own tissues (`bonefe.internal_calibration`);
`suitability` holds the limits and overrides of the scan checks (`bonefe.suitability`). See
`cases/femur-neck-lytic.yaml` for a complete example.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import yaml

from bonefe.errors import BonefeError
from bonefe.materials import MaterialOptions
from bonefe.risk import thresholds_from_calibration
from bonefe.assessment import RiskOptions
from bonefe.calibration import CalibrationOptions
from bonefe.plausibility import InputChecks
from bonefe.schema import build
from bonefe.sites import SITES
from bonefe.sites.vertebra.levels import LEVELS
from bonefe.sites.vertebra.options import SpineOptions
from bonefe.suitability import SuitabilityOptions
from bonefe.uncertainty import UncertaintyOptions

Vector = tuple[float, float, float]


@dataclass(frozen=True)
class Patient:
    """What the model needs of the patient — never a name, ID or date.

    body_mass_kg: body mass (kg); body weight BW = mass × 9.81 N scales every activity load.
    side: which femur or humerus ("left" or "right").
    pain: Mirels pain component when the clinician supplies it.
    height_m: body height (m) for the sideways-fall impact force; default 1.70 m, the reference
        height of the impact formula (`bonefe.sites.femur.fall.impact_force`, van den Kroonenberg et al. 1995).
    trochanteric_soft_tissue_mm: soft tissue over the greater trochanter (mm, from the CT) that
        attenuates the fall impact (Robinovitch et al. 1995); None: not attenuated (cautious).
    """

    body_mass_kg: float
    side: Literal["left", "right"] = "left"
    pain: Literal["mild", "moderate", "functional"] | None = None
    height_m: float = 1.70
    trochanteric_soft_tissue_mm: float | None = None

    def __post_init__(self):
        if not 20 <= self.body_mass_kg <= 300:
            raise ValueError(f"body_mass_kg must be between 20 and 300 kg (got {self.body_mass_kg})")
        if not 1.0 <= self.height_m <= 2.3:
            raise ValueError(f"height_m must be between 1.0 and 2.3 m (got {self.height_m}); give metres, not cm")
        tissue = self.trochanteric_soft_tissue_mm
        if tissue is not None and not 0 <= tissue <= 100:
            raise ValueError(f"trochanteric_soft_tissue_mm must be between 0 and 100 mm (got {tissue})")


@dataclass(frozen=True)
class LabelValues:
    """Which values of the label map mean bone, lytic lesion and blastic lesion (one value or a list).

    Without this section the bonefe convention applies (bone 1, lytic 2, blastic 3). With it, only
    the classes named count, so a multi-label map (e.g. TotalSegmentator, femur_left = 75) does
    not turn other organs' labels into lesions. Under the bonefe values (1, 2, 3) any other value is
    refused as a damaged map unless the case names it: under `other` (structures read as background,
    e.g. a phantom's tissue regions) or in the calibration section (rods, tissue labels).
    """

    bone: int | list[int] | None = None
    lytic: int | list[int] | None = None
    blastic: int | list[int] | None = None
    other: int | list[int] | None = None

    def as_dict(self) -> dict[str, list[int]] | None:
        """The named classes as lists of values; None (the default convention) when none is named."""
        named = {k: v if isinstance(v, list) else [v] for k, v in vars(self).items()
                 if v is not None and k != "other"}
        return named or None

    def other_values(self) -> list[int]:
        """Values named under `other`: known structures, read as background."""
        return [] if self.other is None else self.other if isinstance(self.other, list) else [self.other]

    @property
    def lesion_named(self) -> bool:
        """Whether the case names a lesion class (then the label map must hold lesion voxels)."""
        return self.lytic is not None or self.blastic is not None


@dataclass(frozen=True)
class MeshOptions:
    """Mesh resolution (mm).

    size_mm: target tetrahedron edge length; lesion_size_mm: finer size in and around lesions
    (default size_mm/2); cortex_size_mm: finest size where the cortex is thinner than
    thin_cortex_mm (default size_mm/2; thin_cortex_mm 0 turns this off); cortex_hu: HU from which
    bone voxels count as cortex. See `bonefe.meshing.mesh_bone`.
    """

    size_mm: float = 3.0
    lesion_size_mm: float | None = None
    cortex_size_mm: float | None = None
    thin_cortex_mm: float = 3.0
    cortex_hu: float = 700.0

    def __post_init__(self):
        if not 0.3 <= self.size_mm <= 20:
            raise ValueError(f"size_mm must be between 0.3 and 20 mm (got {self.size_mm})")
        if self.lesion_size_mm is not None and not 0.2 <= self.lesion_size_mm <= self.size_mm:
            raise ValueError(f"lesion_size_mm must be between 0.2 mm and size_mm (got {self.lesion_size_mm})")


@dataclass(frozen=True)
class SolverOptions:
    """degree: Lagrange degree of the displacement (1 = linear tetrahedra, 2 = quadratic)."""

    degree: Literal[1, 2] = 1


@dataclass(frozen=True)
class Landmarks:
    """Optional overrides of the femur frame found from the anatomy (world mm, LPS)."""

    head_centre: Vector | None = None
    head_radius: float | None = None
    shaft_axis: Vector | None = None
    neck_axis: Vector | None = None
    distal_centre: Vector | None = None
    knee_centre: Vector | None = None

    def overrides(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class Case:
    """A whole case; `load_case` reads one from YAML."""

    name: str
    ct: Path
    labels: Path
    patient: Patient
    output: Path | None = None
    ct_series: str | int | None = None
    """Which series of a DICOM folder `ct` is the CT, by SeriesNumber or SeriesInstanceUID
    (`bonefe.dicom_series`); needed only when the folder holds several."""
    label_values: LabelValues = field(default_factory=LabelValues)
    resample_labels: bool = False
    mesh: MeshOptions = field(default_factory=MeshOptions)
    calibration: CalibrationOptions = field(default_factory=CalibrationOptions)
    material: MaterialOptions = field(default_factory=MaterialOptions)
    landmarks: Landmarks = field(default_factory=Landmarks)
    solver: SolverOptions = field(default_factory=SolverOptions)
    risk: RiskOptions = field(default_factory=RiskOptions)
    activities: list[str] | None = None
    custom_activities: list[dict] = field(default_factory=list)
    exports: list[Literal["fields", "inp", "vtu"]] = field(default_factory=list)
    uncertainty: UncertaintyOptions | None = None
    """The uncertainty study (`bonefe.uncertainty`); None (no section) turns it off."""
    checks: InputChecks = field(default_factory=InputChecks)
    """Input plausibility checks (`bonefe.plausibility`), all on by default; turning one off is reported."""
    suitability: SuitabilityOptions = field(default_factory=SuitabilityOptions)
    """Scan checks before meshing and their overrides (`bonefe.suitability`)."""
    site: str = "femur"
    """The bone (`bonefe.sites.SITES`); femur by default, so older case files keep working."""
    level: str | None = None
    """The vertebra's level (C1–L5) when site is vertebra."""
    spine: SpineOptions = field(default_factory=SpineOptions)
    days_since_baseline: float | None = None
    """Days from the patient's first scan to this one, for `bonefe followup` (0 or absent for the
    first); an interval the case author gives, never a date."""

    def __post_init__(self):
        # "." and ".." would make the output folder (runs/<name>) the runs folder or the case's own
        # folder, which a finished run replaces and deletes
        if (not self.name or self.name in (".", "..") or not self.name.isprintable()
                or any(c in self.name for c in '/\\:*?"<>|')):
            raise ValueError(f"name must be a non-empty folder-safe text, not '.' or '..' (got {self.name!r})")
        if self.site not in SITES:
            raise ValueError(f"site must be one of {', '.join(SITES)} (got {self.site!r})")
        if self.site == "vertebra" and self.level not in LEVELS:
            raise ValueError(f"a vertebra case needs level: one of {LEVELS[0]}…{LEVELS[-1]}, e.g. L1 "
                             f"(got {self.level!r})")

    @property
    def body_weight(self) -> float:
        """Body weight (N)."""
        return self.patient.body_mass_kg * 9.81


def read_yaml(path: Path, kind: str = "case"):
    """The parsed content of a YAML file; one-line BonefeError when it is missing or not YAML."""
    if not path.is_file():
        raise BonefeError(f"{kind} file {path} not found: give the path to a .yaml {kind} file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BonefeError(f"{path.name}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None


def load_case(path: str | Path) -> Case:
    """Read and validate a case file; relative paths become relative to the file's folder."""
    path = Path(path)
    return case_from_data(read_yaml(path), path.resolve().parent, path.name, path.resolve())


def case_from_data(data, base: Path, where: str, path: Path | None = None) -> Case:
    """A case from its parsed YAML mapping (`load_case`, or a case written inline in a patient file):
    relative paths become relative to `base`; `where` names it in messages; path: its file, if any."""
    if isinstance(data, dict) and data.get("calibration") == "internal":
        data = {**data, "calibration": {"internal": {}}}  # the short form of calibration.internal with its defaults
    case = build(Case, data, where)
    output = case.output or Path("runs") / case.name
    risk = case.risk
    if risk.calibration_file is not None:
        calibration_file = base / risk.calibration_file
        risk = replace(risk, calibration_file=calibration_file,
                       thresholds=thresholds_from_calibration(calibration_file))
    output = (base / output).resolve()
    inside = [f for f in (path, base / case.ct, base / case.labels) if f and f.resolve().is_relative_to(output)]
    if inside:
        raise BonefeError(f"{where}: output folder {output} holds {inside[0].name}, but a finished run replaces "
                          "that whole folder: choose an output folder of its own (e.g. runs/<name>)")
    return replace(case, ct=base / case.ct, labels=base / case.labels, output=output, risk=risk)

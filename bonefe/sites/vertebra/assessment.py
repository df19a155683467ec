"""What the FE model says about one vertebra: failure under the unit loads, per activity, the
load-line envelope, and the strain fold ratio against its lesion-free twin.

Failure: the femur's criterion unchanged — maximum principal strain limits (Schileo et al. 2008,
0.73 % tension, 1.04 % compression) on the strain averaged over spheres of bone
(`bonefe.nonlocal_strain`), read at every lattice point in bone by the CT (lesion tissue excluded,
`bonefe.assessment.failure_points`). No cells are excluded
near the endplates: the layers spread the load, so there is no concentrated patch to keep away from.
The vertebra-specific alternative of the literature — peak force of a non-linear model at 1.9 %
apparent strain in PMMA-capped compression (Costa 2019) — needs a non-linear solver bonefe lacks;
linear onset-of-failure is what the femur's validation supports.

Risk category: high when a daily activity (not an exercise) is to be avoided (safety factor < 1),
moderate when one needs caution (< 2, `bonefe.risk.VerdictPolicy`), else low; the femur's
Nijmegen × BW thresholds are not used (they were derived on femora).
"""

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from bonefe.assessment import (BoneModel, RiskOptions, TwinComparison, cell_centres, compare_twin, failure_points,
                               lesion_region, needs_lesion_map)
from bonefe.materials import LesionMap
from bonefe.risk import ActivityAssessment, FailureResult, assess_activity
from bonefe.sites.vertebra.activities import ACTIVITIES, REFERENCE_ACTIVITY
from bonefe.sites.vertebra.anatomy import VertebraFrame
from bonefe.sites.vertebra.loading import UNIT_LOADS, EndplateLoading, Layer
from bonefe.solver import principal_strains
from bonefe.volume import BONE, LESION_LABELS

OFFSETS_MM = tuple(float(e) for e in np.arange(-15.0, 15.1, 2.5))
"""Load-line offsets of the envelope (mm from the cranial endplate centre)."""
COMPRESSION = {"force": np.array([0.0, 0.0, -1.0])}


class VertebraModel(BoneModel):
    """A vertebra on its endplate layers: the same failure reading as the femur's `BoneModel`
    (principal, failure, peak_index), with the endplate loading instead of fixed + patch loads."""

    def __init__(self, mesh, E, labels, nu, frame: VertebraFrame, layer: Layer, options: RiskOptions,
                 degree: int = 1, lesion: LesionMap | None = None):
        needs_lesion_map(mesh, labels, lesion)
        self.mesh, self.options, self.frame = mesh, options, frame
        self.loading = EndplateLoading(mesh, E, nu, frame, layer, degree)
        self.solver = self.loading.solver
        self.basis = self.loading.strain_basis()
        self.centres = cell_centres(mesh)
        self.evaluated = ~np.isin(labels, LESION_LABELS)
        self.lattice = failure_points(mesh, lesion, np.ones(len(self.centres), bool), options.averaging_radius_mm)
        self.nonlocal_basis = self.basis.mapped(self.lattice.nonlocal_field)

    def region(self, location_mm) -> str:
        """'vertebral body' or 'posterior elements' for a failure location."""
        return "vertebral body" if self.frame.in_body(np.atleast_2d(location_mm))[0] else "posterior elements"


@dataclass
class UnitLoadFailure:
    """Failure under one unit load: the load (N, or N·m for moments), where and how, and in which part."""

    name: str
    failure_load: float
    unit: str
    location_mm: tuple
    mode: str
    region: str


@dataclass
class VertebraAssessment:
    compression: FailureResult
    unit_loads: list[UnitLoadFailure]
    activities: list[ActivityAssessment]
    envelope: dict
    twin: TwinComparison | None
    risk_category: str
    axial_stiffness_n_per_mm: float
    dofs: int
    iterations: list[int]
    evaluated: np.ndarray
    compression_strain: np.ndarray
    basis: object


def _unit_failures(model: VertebraModel) -> list[UnitLoadFailure]:
    rows = []
    for name, (force, moment) in UNIT_LOADS.items():
        result = model.failure({"force": np.asarray(force), "moment": np.asarray(moment)})
        is_moment = not np.any(force)
        rows.append(UnitLoadFailure(name, result.failure_load_n / (1000.0 if is_moment else 1.0),
                                    "N·m" if is_moment else "N", result.location_mm, result.mode,
                                    model.region(result.location_mm)))
    return rows


def load_line_envelope(model: VertebraModel) -> dict:
    """Allowed compressive force (N) when the load line is offset by e mm anteriorly ("sagittal",
    + anterior) or to the left ("frontal", + left) of the cranial endplate centre."""
    envelope = {}
    for plane, axis in (("sagittal", 0), ("frontal", 1)):
        allowed = []
        for e in OFFSETS_MM:
            arm = np.zeros(3)
            arm[axis] = e
            forces = {"force": COMPRESSION["force"], "moment": np.cross(arm, COMPRESSION["force"])}
            allowed.append(model.failure(forces).failure_load_n)
        envelope[plane] = {"offset_mm": list(OFFSETS_MM), "allowed_force_n": allowed}
    return envelope


def _risk(rows: list[ActivityAssessment]) -> str:
    daily = [r.verdict for r in rows if not ACTIVITIES[r.name].exercise]
    return "high" if "avoid" in daily else "moderate" if "caution" in daily else "low"


def assess_vertebra(mesh, E, labels, nu, frame: VertebraFrame, layer: Layer, level: str, body_mass_kg: float,
                    options: RiskOptions, degree: int = 1, twin_E: np.ndarray | None = None,
                    lesion: LesionMap | None = None) -> VertebraAssessment:
    """Solve the six plate motions once and assess everything (see the module docstring); lesion: the
    CT's lesion map (`bonefe.materials.lesion_map`), required with lesion cells."""
    model = VertebraModel(mesh, E, labels, nu, frame, layer, options, degree, lesion)
    compression = model.failure(COMPRESSION)
    rows = [assess_activity(a.name, a.label, a.force_n(body_mass_kg, level), compression.failure_load_n,
                            a.reference, options.verdict) for a in ACTIVITIES.values()]
    twin = None
    lesioned = mesh.comm.allreduce(bool(np.isin(labels, LESION_LABELS).any()), op=MPI.LOR)
    if twin_E is not None and lesioned:
        twin_model = VertebraModel(mesh, twin_E, np.full_like(np.asarray(labels), BONE), nu, frame, layer, options,
                                   degree)
        reference = ACTIVITIES[REFERENCE_ACTIVITY].force_n(body_mass_kg, level)
        twin = compare_twin(model, twin_model, lesion_region(model, labels), COMPRESSION, reference)
    strain = principal_strains(model.basis.strain(COMPRESSION))[:, 0]
    return VertebraAssessment(compression, _unit_failures(model), rows, load_line_envelope(model), twin, _risk(rows),
                              model.loading.stiffness_axial(), model.solver.num_dofs(),
                              [h["iterations"] for h in model.solver.history], model.evaluated, strain, model.basis)

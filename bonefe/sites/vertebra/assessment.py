"""The vertebra's part of the assessment: its model on the endplate layers, the failure under each
unit load and the load-line envelope.

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
Nijmegen × BW thresholds are not used (they were derived on femora). As failure-load thresholds
(`bonefe.risk.activity_thresholds`): high below the largest daily peak × avoid factor, low from it × safe factor.
"""

from dataclasses import dataclass

import numpy as np

from bonefe.assessment import BoneModel, RiskOptions
from bonefe.materials import LesionMap
from bonefe.plate_layer import Layer
from bonefe.sites.vertebra.anatomy import VertebraFrame
from bonefe.sites.vertebra.loading import UNIT_LOADS, EndplateLoading

OFFSETS_MM = tuple(float(e) for e in np.arange(-15.0, 15.1, 2.5))
"""Load-line offsets of the envelope (mm from the cranial endplate centre)."""
COMPRESSION = {"force": np.array([0.0, 0.0, -1.0])}
"""Unit axial compression on the cranial plate (frame components: anterior, left, cranial)."""


class VertebraModel(BoneModel):
    """A vertebra on its endplate layers: the generic failure reading (`bonefe.assessment.BoneModel`)
    over the endplate loading's basis, no patch excluded; lesion: the CT's lesion map."""

    def __init__(self, mesh, E, labels, nu, frame: VertebraFrame, layer: Layer, options: RiskOptions,
                 degree: int = 1, lesion: LesionMap | None = None):
        self.frame = frame
        self.loading = EndplateLoading(mesh, E, nu, frame, layer, degree)
        super().__init__(mesh, labels, options, self.loading.solver, self.loading.strain_basis(),
                         np.ones(len(labels), bool), lesion)

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


def unit_failures(model: VertebraModel) -> list[UnitLoadFailure]:
    """Failure under each of `bonefe.sites.vertebra.loading.UNIT_LOADS`."""
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

"""The phantom femur as the pipeline models it: mesh, CT material, patches, stance failure load.

Used by the CalculiX cross-check, the mesh convergence study and the neck-lesion experiments.
Units: mm, N, MPa; body mass 75 kg for the activity loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import bonefe  # noqa: F401  (before dolfinx)

import numpy as np
from mpi4py import MPI

from bonefe.sites.femur.anatomy import FemurFrame, boundary_tags
from bonefe.assessment import BoneModel, RiskOptions
from bonefe.sites.femur.assessment import femur_model, unit_forces
from bonefe.sites.femur.loads import ACTIVITIES, STANCE_ACTIVITY, WALKING_DIRECTION
from bonefe.materials import MaterialOptions, cell_material, lesion_map
from bonefe.meshing import mesh_bone
from bonefe.risk import FailureResult, failure_under_unit_load, peak
from bonefe.solver import principal_strains
from bonefe.volume import Volume

BODY_MASS_KG = 75.0
COMM = MPI.COMM_WORLD


@dataclass
class Femur:
    """One meshed femur: its BoneModel (P1 solver + unit-load basis), facet tags, frame, material, mesh size."""

    model: BoneModel
    tags: object
    frame: FemurFrame
    E: np.ndarray
    labels: np.ndarray
    nu: float
    size_mm: float
    cells: int

    def stance(self) -> tuple[dict, float]:
        """Stance patch forces scaled to 1 N of contact force, and the stance peak force (N)."""
        return unit_forces(ACTIVITIES[STANCE_ACTIVITY], self.frame, BODY_MASS_KG, False)

    def stance_failure(self) -> FailureResult:
        """bonefe's failure load (N) along the stance direction (bonefe.risk, nonlocal strain)."""
        return self.model.failure(self.stance()[0])

    def cell_failure(self) -> FailureResult:
        """The failure load from the peak cell strain, without averaging: the mesh-dependent
        quantity the nonlocal strain replaces, for comparison."""
        principal = principal_strains(self.model.basis.strain(self.stance()[0]))
        return failure_under_unit_load(principal, self.model.centres, COMM, ~self.model.evaluated)

    def peak_strain(self) -> float:
        """Peak nonlocal max principal strain (µε) over the evaluated points at the stance peak load."""
        forces, magnitude = self.stance()
        e1 = self.model.principal({k: f * magnitude for k, f in forces.items()})[:, 0]
        return 1e6 * peak(e1, COMM)


def femur(volume: Volume, frame: FemurFrame, size_mm: float, options: RiskOptions = RiskOptions(),
          material: MaterialOptions = MaterialOptions()) -> Femur:
    """Mesh `volume` at size_mm (bonefe.meshing defaults), map the CT material and build the model
    with the pipeline's patches (head cap about the walking direction, trochanter, distal support)."""
    bone = mesh_bone(volume, size_mm, COMM)
    tags = boundary_tags(bone.mesh, frame, cap_axis=-(frame.basis() @ WALKING_DIRECTION))
    cells = cell_material(bone.mesh, volume, material)
    model = femur_model(bone.mesh, tags, cells.E, cells.label, material.poisson, options, lesion=lesion_map(volume))
    return Femur(model, tags, frame, cells.E, cells.label, material.poisson, size_mm, int(bone.quality["tets"]))

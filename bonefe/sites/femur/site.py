"""The femur as a bone site (`bonefe.sites.base`): the femur frame, the distal support with the head
and trochanter patches, the hip activities, the hip-force envelope, the sideways fall, Mirels and
axial involvement, and the femur report."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bonefe.activities import Activity, activity_from_dict
from bonefe.assessment import Assessment, RiskOptions, assess as assess_bone
from bonefe.materials import FEMORAL_LAWS, LesionMap
from bonefe.meshing import mesh_bone
from bonefe.risk import RiskThresholds, weight_bearing_fraction
from bonefe.schema import as_plain
from bonefe.sites.base import Anatomy, Load, twin_clause
from bonefe.sites.femur.anatomy import SUPPORT, FemurFrame, boundary_tags, femur_frame
from bonefe.sites.femur.assessment import (
    ENVELOPE_STEP_DEG,
    PATCH_TAGS,
    activity_list,
    activity_load,
    envelope_marks,
    femur_model,
    force_envelope,
)
from bonefe.sites.femur.loads import ACTIVITIES, PATCHES, STANCE_ACTIVITY, WALKING_DIRECTION

def mesh_case(volume, options, frame: FemurFrame, comm):
    """The femur's mesh stage: `bonefe.meshing.mesh_bone` at the case's mesh options and the
    boundary patches of the femur frame (head cap around the walking force). Returns (BoneMesh, facet tags)."""
    bone = mesh_bone(volume, options.size_mm, comm, options.lesion_size_mm,
                     cortex_size_mm=options.cortex_size_mm, thin_cortex_mm=options.thin_cortex_mm,
                     cortex_hu=options.cortex_hu)
    return bone, boundary_tags(bone.mesh, frame, cap_axis=-(frame.basis() @ WALKING_DIRECTION))


@dataclass(frozen=True)
class FemurSetup:
    """The femur of one case: its frame, the body mass (kg) and whether the abductor pulls on the
    trochanter (`risk.abductor`)."""

    frame: FemurFrame
    body_mass_kg: float
    abductor: bool = False
    laws: tuple[str, ...] = FEMORAL_LAWS

    def mesh(self, volume, options, comm):
        return mesh_case(volume, options, self.frame, comm)

    def model(self, mesh, facet_tags, E, labels, nu, risk, degree: int = 1, lesion=None):
        return femur_model(mesh, facet_tags, E, labels, nu, risk, degree, lesion)

    def _load(self, activity) -> Load:
        return activity_load(activity, self.frame, self.body_mass_kg, self.abductor)

    def reference(self) -> Load:
        """Walking: the stance peak of the hip-contact force."""
        return self._load(ACTIVITIES[STANCE_ACTIVITY])

    def loads(self, names: list[str] | None, custom: list[dict]) -> list[Load]:
        return [self._load(a) for a in activity_list(names, [activity_from_dict(c, PATCHES) for c in custom])]

    def thresholds(self, risk) -> RiskThresholds:
        """The case's failure-load thresholds (× BW)."""
        return risk.thresholds

    def reference_strain(self, mesh, facet_tags, E, nu, degree: int = 1):
        """One operator, one solve of the walking patch forces scaled to 1 N of contact force."""
        from bonefe.solver import patch_load_strain

        forces = [(facet_tags.find(PATCH_TAGS[patch]), f) for patch, f in self.reference().unit.items()]
        return patch_load_strain(mesh, E, nu, facet_tags.find(SUPPORT), forces, degree)


@dataclass(frozen=True)
class FemurSite:
    name: str = "femur"
    scores: tuple[str, ...] = ("mirels", "axial_involvement")
    camera: str = "anterior"
    exports: tuple[str, ...] = ("inp", "vtu")

    @property
    def lesion_sites(self) -> tuple[str, ...]:
        from bonefe.sites.femur.lesions import SITE_NAMES

        return tuple(SITE_NAMES)

    def write_phantom(self, options: dict, out_dir: Path, fmt: str) -> dict[str, Path]:
        from bonefe.schema import build
        from bonefe.sites.femur.phantom import PhantomSpec, write_phantom

        return write_phantom(build(PhantomSpec, options, "phantom"), out_dir, fmt=fmt)

    def suitability(self, options):
        """The scan checks as the case sets them (their defaults are the femur's)."""
        return options

    def anatomy(self, case, volume, raw_labels) -> Anatomy:
        """The femur frame from the label map, with the case's landmark overrides."""
        return Anatomy(volume, femur_frame(volume, case.patient.side, case.landmarks.overrides()))

    def setup(self, case, frame) -> FemurSetup:
        return FemurSetup(frame, case.patient.body_mass_kg, case.risk.abductor)

    def bone(self, case) -> str:
        return f"{case.patient.side} femur"

    def assess_more(self, setup: FemurSetup, model, loads: list[Load], rows: list) -> dict:
        """The hip-contact force envelope and the head-contact activities on it."""
        return {"envelope": force_envelope(model, setup.frame),
                "envelope_marks": envelope_marks([load.source for load in loads], rows)}

    def analyses(self, case, setup: FemurSetup, mesh, facet_tags, material, lesion) -> dict:
        """The sideways fall (`bonefe.sites.femur.fall`)."""
        from bonefe.sites.femur.fall import fall_risk, fall_strength

        patient = case.patient
        strength = fall_strength(mesh, facet_tags, material.E, material.label, case.material.poisson, setup.frame,
                                 case.risk, case.solver.degree, lesion=lesion)
        return {"fall": as_plain(fall_risk(strength, patient.body_mass_kg, patient.height_m,
                                           patient.trochanteric_soft_tissue_mm))}

    def scores_of(self, case, anatomy: Anatomy, twin_volume) -> dict:
        from bonefe.sites.femur.scores import femur_site_points
        from bonefe.sites.long_bone.scores import axial_involvement, mirels_score

        return {"mirels": mirels_score(anatomy.volume, anatomy.frame, case.patient.pain,
                                       site_points=femur_site_points),
                "axial_involvement": axial_involvement(anatomy.volume, anatomy.frame, twin_volume)}

    def results(self, case, anatomy: Anatomy, assessment, setup: FemurSetup) -> dict:
        walking = next((a for a in assessment.activities if a.name == "walking"), None)
        return {
            "failure_load_case": setup.reference().label.lower() + " direction",
            "walking_weight_bearing_fraction": (
                weight_bearing_fraction(walking.allowed_force_n, walking.peak_force_n, case.risk.verdict)
                if walking else 1.0),
        }

    def assumptions(self, case) -> list[str]:
        return [
            "Activities: distal end of the model fixed; hip-contact forces spread uniformly over a "
            "surface patch of the femoral head. Sideways fall: the head loaded through the acetabulum, the "
            "greater trochanter supported, the distal femur pinned (the cadaver test of Courtney et al. 1995), "
            "shaft tilted 10-30 deg and internally rotated 10-30 deg.",
            f"Cells within {case.risk.exclusion_mm:g} mm of a load or support patch and lesion tissue "
            "itself are not evaluated for failure.",
            "Activity forces are population peak values from instrumented hip implants, scaled by body weight.",
            f"Element size {case.mesh.size_mm:g} mm. On the phantom femur the failure load at the 3 mm "
            "default lies within 0.2 % of a 1.1 mm mesh, and meshes from 6 to 1.1 mm scatter by up to "
            "4.5 % without a trend (docs/validation.md).",
        ]

    def export_inp(self, path: Path, basis, facet_tags, E, nu, setup: FemurSetup) -> None:
        """The model for CalculiX/Abaqus: per-element material, the support fixed, the walking load."""
        from bonefe.export import export_inp

        mesh = basis.solver.mesh
        export_inp(path, mesh, E, nu, facet_tags.find(SUPPORT),
                   {name: facet_tags.find(tag) for name, tag in PATCH_TAGS.items()}, setup.reference().peak,
                   solver=basis.solver if basis.solver.V.element.basix_element.degree == 1 else None)

    def write_report(self, out_dir: Path, results: dict, picture: dict | None) -> dict[str, Path]:
        from bonefe.report import write_report

        return write_report(out_dir, results, picture)

    def summary(self, case, results: dict) -> str:
        from bonefe.synthesis import synthesis_of

        spread = results.get("uncertainty")
        interval = "" if spread is None else (
            (f" [{100 * spread.interval:g} % interval" if spread.expected_coverage + 1e-9 >= spread.interval else
             f" [range of {len(spread.samples)} samples (expected coverage {100 * spread.expected_coverage:.0f} %)")
            + f" {spread.lower_n / 1000:.2f}-{spread.upper_n / 1000:.2f} kN"
            + ("" if spread.robust else ", risk category not robust") + f"; most from {spread.dominant}]")
        return (f"{case.name}: {synthesis_of(results).headline}; failure load "
                f"{results['failure_load_n'] / 1000:.2f} kN ({results['failure_load_bw']:.1f} x BW){interval}, "
                f"{results['risk_category']} risk by failure load{twin_clause(results)}; "
                f"fall strength {results['fall']['fall_strength_n'] / 1000:.2f} kN "
                f"(factor of risk {results['fall']['factor_of_risk']:.2f}); "
                f"report: {case.output / 'report.html'}")


def assess(mesh, facet_tags, E, labels, nu, frame: FemurFrame, body_mass_kg: float,
           activities: list[Activity], options: RiskOptions, degree: int = 1,
           twin_E: np.ndarray | None = None, envelope_step_deg: float | None = ENVELOPE_STEP_DEG,
           lesion: LesionMap | None = None) -> Assessment:
    """The generic assessment (`bonefe.assessment.assess`) of a femur for library or custom
    activities, with the force envelope (unless envelope_step_deg is None) in `extras`; lesion: the
    CT's lesion map (`bonefe.assessment.BoneModel`)."""
    setup = FemurSetup(frame, body_mass_kg, options.abductor)
    loads = [activity_load(a, frame, body_mass_kg, options.abductor) for a in activities]
    result = assess_bone(setup, mesh, facet_tags, E, labels, nu, loads, options, degree, twin_E, lesion)
    if envelope_step_deg:
        result.extras = {"envelope": force_envelope(result.model, frame, envelope_step_deg),
                         "envelope_marks": envelope_marks(activities, result.activities)}
    return result


FEMUR = FemurSite()

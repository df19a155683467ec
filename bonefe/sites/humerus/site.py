"""The humerus as a bone site (`bonefe.sites.base`): the humerus frame, the distal cut fixed with
the head patch loaded, the glenohumeral activities and walking aids, torsion and bending strength,
Mirels with the upper-limb site and the humerus report."""

from dataclasses import dataclass, replace
from pathlib import Path

from bonefe.meshing import mesh_bone
from bonefe.materials import FEMORAL_LAWS
from bonefe.risk import RiskThresholds, activity_thresholds, body_weight_n
from bonefe.sites.base import Anatomy, Load, twin_clause
from bonefe.sites.humerus.anatomy import HEAD, SUPPORT, HumerusFrame, boundary_tags, humerus_frame
from bonefe.sites.humerus.assessment import activity_list, activity_load, humerus_model
from bonefe.sites.humerus.lesions import SITES
from bonefe.sites.humerus.loads import ACTIVITIES, REFERENCE_ACTIVITY, WALKING_AIDS

HUMERUS_MIN_LENGTH_MM = 40.0
"""The scan's field-of-view check (`bonefe.suitability`, 120 mm for the femur): a humerus needs its
head (≈ 45–50 mm across) and a cut below it, so 40 mm; a chest CT shows about that much."""


@dataclass(frozen=True)
class HumerusSetup:
    """The humerus of one case: its frame and the body mass (kg). laws: the femur's
    (`bonefe.materials.FEMORAL_LAWS`; no humeral density–modulus law is registered; the proximal humerus is trabecular bone under a thin cortex)."""

    frame: HumerusFrame
    body_mass_kg: float
    laws: tuple[str, ...] = FEMORAL_LAWS

    def mesh(self, volume, options, comm):
        bone = mesh_bone(volume, options.size_mm, comm, options.lesion_size_mm, cortex_size_mm=options.cortex_size_mm,
                         thin_cortex_mm=options.thin_cortex_mm, cortex_hu=options.cortex_hu)
        return bone, boundary_tags(bone.mesh, self.frame)

    def model(self, mesh, facet_tags, E, labels, nu, risk, degree: int = 1, lesion=None):
        return humerus_model(mesh, facet_tags, E, labels, nu, risk, degree, lesion)

    def reference(self) -> Load:
        """Walking with crutches (`bonefe.sites.humerus.loads.REFERENCE_ACTIVITY`)."""
        return activity_load(ACTIVITIES[REFERENCE_ACTIVITY], self.frame, self.body_mass_kg)

    def loads(self, names: list[str] | None, custom: list[dict]) -> list[Load]:
        return [activity_load(a, self.frame, self.body_mass_kg) for a in activity_list(names, custom)]

    def thresholds(self, risk) -> RiskThresholds:
        """High when walking with crutches is to be avoided, moderate when it needs caution (the
        reference activity's peak × the verdict factors, `bonefe.risk.activity_thresholds`)."""
        return activity_thresholds([self.reference().peak_n], body_weight_n(self.body_mass_kg), risk.verdict)

    def reference_strain(self, mesh, facet_tags, E, nu, degree: int = 1):
        """One solve of the reference head force scaled to 1 N."""
        from bonefe.solver import patch_load_strain

        return patch_load_strain(mesh, E, nu, facet_tags.find(SUPPORT),
                                 [(facet_tags.find(HEAD), self.reference().unit["head"])], degree)


@dataclass(frozen=True)
class HumerusSite:
    name: str = "humerus"
    lesion_sites: tuple[str, ...] = SITES
    scores: tuple[str, ...] = ("mirels", "cortical_breach")
    camera: str = "anterior"
    exports: tuple[str, ...] = ("vtu",)

    def write_phantom(self, options: dict, out_dir: Path, fmt: str) -> dict[str, Path]:
        from bonefe.schema import build
        from bonefe.sites.humerus.phantom import HumerusPhantomSpec, write_humerus_phantom

        return write_humerus_phantom(build(HumerusPhantomSpec, options, "phantom"), out_dir, fmt=fmt)

    def suitability(self, options):
        """A humerus needs its head and a cut below it (`HUMERUS_MIN_LENGTH_MM`)."""
        return replace(options, min_length_mm=HUMERUS_MIN_LENGTH_MM)

    def anatomy(self, case, volume, raw_labels) -> Anatomy:
        """The humerus frame from the label map, with the case's landmark overrides."""
        return Anatomy(volume, humerus_frame(volume, case.patient.side, case.landmarks.overrides()))

    def setup(self, case, frame) -> HumerusSetup:
        return HumerusSetup(frame, case.patient.body_mass_kg)

    def bone(self, case) -> str:
        return f"{case.patient.side} humerus"

    def assess_more(self, setup: HumerusSetup, model, loads: list[Load], rows: list) -> dict:
        """Torsion and bending strength of the modelled bone (`bonefe.sites.humerus.strength`)."""
        from bonefe.sites.humerus.strength import strength_cases

        return {"strength": strength_cases(model, setup.frame)}

    def analyses(self, case, setup: HumerusSetup, mesh, facet_tags, material, lesion) -> dict:
        return {}

    def scores_of(self, case, anatomy: Anatomy, twin_volume) -> dict:
        from bonefe.sites.humerus.scores import humerus_scores

        return humerus_scores(anatomy.volume, anatomy.frame, case.patient.pain)

    def results(self, case, anatomy: Anatomy, assessment, setup: HumerusSetup) -> dict:
        frame = anatomy.frame
        return {
            "site": "humerus",
            "side": case.patient.side,
            "failure_load_case": setup.reference().label.lower(),
            "reference_activity": REFERENCE_ACTIVITY,
            "walking_aids": [a.name for a in assessment.activities if a.name in WALKING_AIDS],
            "frame": {"head_centre_mm": frame.head_centre.tolist(), "head_radius_mm": frame.head_radius,
                      "shaft_axis": frame.shaft_axis.tolist(), "articular_axis": frame.neck_axis.tolist(),
                      "distal_centre_mm": frame.distal_centre.tolist(), "shaft_from": frame.shaft_from,
                      "medial_from": frame.medial_from},
        }

    def assumptions(self, case) -> list[str]:
        return [
            "The distal cut of the model is fixed; the glenohumeral contact force is spread uniformly over a cap "
            "of the humeral head about its articular axis (45 deg half-angle). Muscle forces on the humerus are not "
            "applied.",
            f"Cells within {case.risk.exclusion_mm:g} mm of the head patch or the cut and lesion tissue itself "
            "are not evaluated for failure.",
            "Activity forces are maxima measured with instrumented shoulder implants, scaled by body weight; "
            "their directions in the humerus frame are assumptions (bonefe.sites.humerus.loads).",
            "Muscles are not modelled: the crutch load runs through the whole humerus to the fixed cut as in the "
            "body, but the arm-elevation and steering forces, balanced in the body by the deltoid and rotator cuff "
            "on the proximal humerus, here bend the whole shaft as a cantilever: their verdicts are conservative.",
            f"Element size {case.mesh.size_mm:g} mm, {'quadratic' if case.solver.degree == 2 else 'linear'} elements. "
            "On the phantom humerus, linear elements of 3 mm overestimated the crutch failure load by 3 % and the "
            "torsion strength by 5 % (coarser meshes by more); quadratic ones agreed with the converged values within "
            "2 % (docs/validation.md, mesh convergence on the phantom humerus).",
        ]

    def write_report(self, out_dir: Path, results: dict, picture: dict | None) -> dict[str, Path]:
        from bonefe.report.humerus import write_humerus_report

        return write_humerus_report(out_dir, results, picture)

    def summary(self, case, results: dict) -> str:
        mirels = results.get("mirels")
        score = "" if mirels is None else (
            f"; Mirels {mirels['total_min']}" + ("" if mirels["total_min"] == mirels["total_max"]
                                                 else f"-{mirels['total_max']}"))
        verdicts = {a.name: a.verdict for a in results["activities"]}
        elevation = "" if "arm_elevation" not in verdicts else f"; raising the arm: {verdicts['arm_elevation']}"
        return (f"{case.name} (humerus, {case.patient.side}): {results['risk_category']} risk by failure load; failure load "
                f"{results['failure_load_n'] / 1000:.2f} kN ({results['failure_load_bw']:.1f} x BW) walking with crutches"
                f"{twin_clause(results)}{elevation}{score}; report: {case.output / 'report.html'}")


HUMERUS = HumerusSite()

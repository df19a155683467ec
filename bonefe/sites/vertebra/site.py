"""The vertebra as a bone site (`bonefe.sites.base`): the vertebra frame and crop, the endplate
layers, the spinal activities, the unit loads and load-line envelope, SINS and the spine report."""

from dataclasses import dataclass, replace
from pathlib import Path

from bonefe.errors import BonefeError
from bonefe.meshing import mesh_bone
from bonefe.risk import RiskThresholds, activity_thresholds, body_weight_n
from bonefe.schema import as_plain
from bonefe.sites.base import Anatomy, Load, twin_clause
from bonefe.sites.vertebra.activities import ACTIVITIES, REFERENCE_ACTIVITY
from bonefe.sites.vertebra.anatomy import VertebraFrame
from bonefe.sites.vertebra.assessment import (
    COMPRESSION,
    VertebraModel,
    load_line_envelope,
    unit_failures,
)
from bonefe.sites.vertebra.lesions import SITES
from bonefe.sites.vertebra.loading import LAYERS
from bonefe.sites.vertebra.reading import VERTEBRA_MIN_LENGTH_MM, vertebra_anatomy

VERTEBRAL_LAWS = ("morgan2003_vertebra", "keller1994")
"""Laws the uncertainty study draws when `law` is asked for: Morgan et al. 2003's vertebral
trabecular law and Keller 1994's fit pooled over femoral and vertebral bone (`bonefe.materials.LAWS`)."""


@dataclass(frozen=True)
class VertebraSetup:
    """The vertebra of one case: its frame, level, endplate layer ("disc" or "pmma") and body mass (kg)."""

    frame: VertebraFrame
    level: str
    layer: str
    body_mass_kg: float
    laws: tuple[str, ...] = VERTEBRAL_LAWS

    def mesh(self, volume, options, comm):
        """The mesh, without patches: the endplate layers find their facets themselves."""
        bone = mesh_bone(volume, options.size_mm, comm, options.lesion_size_mm, cortex_size_mm=options.cortex_size_mm,
                         thin_cortex_mm=options.thin_cortex_mm, cortex_hu=options.cortex_hu)
        return bone, None

    def model(self, mesh, facet_tags, E, labels, nu, risk, degree: int = 1, lesion=None) -> VertebraModel:
        return VertebraModel(mesh, E, labels, nu, self.frame, LAYERS[self.layer], risk, degree, lesion)

    def _load(self, activity) -> Load:
        return Load(activity.name, activity.label, COMPRESSION, activity.force_n(self.body_mass_kg, self.level),
                    activity.reference, exercise=activity.exercise, source=activity)

    def reference(self) -> Load:
        """Relaxed standing: axial compression at its peak force."""
        return self._load(ACTIVITIES[REFERENCE_ACTIVITY])

    def loads(self, names: list[str] | None, custom: list[dict]) -> list[Load]:
        if custom:
            raise BonefeError("custom_activities are defined for the femur's patches; a vertebra case "
                              "chooses from its library: remove custom_activities")
        chosen = list(ACTIVITIES) if names is None else names
        unknown = [n for n in chosen if n not in ACTIVITIES]
        if unknown:
            raise BonefeError(f"unknown activity '{unknown[0]}': choose from {', '.join(ACTIVITIES)}")
        return [self._load(ACTIVITIES[n]) for n in chosen]

    def thresholds(self, risk) -> RiskThresholds:
        """From the daily activities of the whole library (`bonefe.sites.vertebra.assessment`)."""
        daily = [self._load(a).peak_n for a in ACTIVITIES.values() if not a.exercise]
        return activity_thresholds(daily, body_weight_n(self.body_mass_kg), risk.verdict)

    def reference_strain(self, mesh, facet_tags, E, nu, degree: int = 1):
        """The six plate motions solved, axial compression."""
        from bonefe.sites.vertebra.loading import EndplateLoading

        return EndplateLoading(mesh, E, nu, self.frame, LAYERS[self.layer], degree).strain_basis().strain(COMPRESSION)


@dataclass(frozen=True)
class VertebraSite:
    name: str = "vertebra"
    lesion_sites: tuple[str, ...] = SITES
    scores: tuple[str, ...] = ("sins",)
    camera: str = "anterior"
    exports: tuple[str, ...] = ("vtu",)

    def write_phantom(self, options: dict, out_dir: Path, fmt: str) -> dict[str, Path]:
        from bonefe.schema import build
        from bonefe.sites.vertebra.phantom import VertebraPhantomSpec, write_vertebra_phantom

        return write_vertebra_phantom(build(VertebraPhantomSpec, options, "phantom"), out_dir, fmt=fmt)

    def suitability(self, options):
        """A vertebra needs only itself in the field of view (`VERTEBRA_MIN_LENGTH_MM`)."""
        return replace(options, min_length_mm=VERTEBRA_MIN_LENGTH_MM)

    def anatomy(self, case, volume, raw_labels) -> Anatomy:
        return vertebra_anatomy(case, volume, raw_labels)

    def setup(self, case, frame) -> VertebraSetup:
        return VertebraSetup(frame, case.level, case.spine.layer, case.patient.body_mass_kg)

    def bone(self, case) -> str:
        return f"vertebra {case.level}"

    def assess_more(self, setup: VertebraSetup, model, loads: list[Load], rows: list) -> dict:
        """Failure under each unit load (its region names where failure starts), the load-line
        envelope and the axial stiffness of bone and layers."""
        units = unit_failures(model)
        return {"unit_loads": as_plain(units), "failure_region": units[0].region,
                "envelope": load_line_envelope(model),
                "axial_stiffness_n_per_mm": model.loading.stiffness_axial()}

    def analyses(self, case, setup, mesh, facet_tags, material, lesion) -> dict:
        return {}

    def scores_of(self, case, anatomy: Anatomy, twin_volume) -> dict:
        from bonefe.sites.vertebra.sins import sins_score

        sins = sins_score(anatomy.volume, anatomy.frame, case.level, case.spine.pain, case.spine.alignment,
                          anatomy.extras["reference_heights"])
        return {"sins": {"components": {k: list(v) for k, v in sins.components.items()}, "total": list(sins.total),
                         "categories": list(sins.categories), "collapse_fraction": sins.collapse_fraction,
                         "body_involvement": sins.body_involvement,
                         "posterolateral_sides": list(sins.posterolateral_sides)}}

    def results(self, case, anatomy: Anatomy, assessment, setup: VertebraSetup) -> dict:
        frame, centre = anatomy.frame, anatomy.extras["lesion_centre"]
        return {
            "site": "vertebra",
            "level": case.level,
            "endplate_layer": case.spine.layer,
            "failure_load_case": "axial compression through the endplates",
            "exercises": [a.name for a in ACTIVITIES.values() if a.exercise],
            "reference_activity": REFERENCE_ACTIVITY,
            "frame": {"origin_mm": frame.origin.tolist(), "cranial": frame.cranial.tolist(),
                      "anterior": frame.anterior.tolist(), "posterior_wall_mm": frame.posterior_wall,
                      "heights_mm": list(frame.heights_mm), "width_mm": frame.width_mm, "depth_mm": frame.depth_mm},
            "inserted_lesion_centre_mm": None if centre is None else list(map(float, centre)),
        }

    def assumptions(self, case) -> list[str]:
        layer = LAYERS[case.spine.layer]
        return [
            f"Loads through both endplates via {case.spine.layer} layers (E {layer.E_mpa:g} MPa, "
            f"{layer.thickness_mm:g} mm) between the bone and rigid plates; the caudal plate fixed.",
            "Every bone cell is evaluated for failure (the layers spread the load); lesion tissue is not.",
            "Activity forces are peak compressive forces on the vertebral body from intradiscal pressure and "
            "vertebral body replacement telemetry, scaled by body weight; each is applied as axial compression.",
            f"Element size {case.mesh.size_mm:g} mm; the vertebra has no mesh-convergence study yet (the femur's "
            "does not transfer).",
        ]

    def write_report(self, out_dir: Path, results: dict, picture: dict | None) -> dict[str, Path]:
        from bonefe.report.spine import write_spine_report

        return write_spine_report(out_dir, results, picture)

    def summary(self, case, results: dict) -> str:
        lo, hi = results["sins"]["total"]
        sins = f"SINS {lo}" if lo == hi else f"SINS {lo}-{hi}"
        sfr = results["strain_fold_ratio"]
        return (f"{case.name} ({case.level}): {results['risk_category']} risk; compressive failure load "
                f"{results['failure_load_n'] / 1000:.2f} kN ({results['failure_load_bw']:.1f} x BW) in the "
                f"{results['failure_region']}{twin_clause(results)}; {sins} ({' to '.join(dict.fromkeys(results['sins']['categories']))})"
                + ("" if sfr is None else f"; strain fold ratio {sfr:.2f}")
                + f"; report: {case.output / 'report.html'}")


VERTEBRA = VertebraSite()

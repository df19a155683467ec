"""Spinal activities: peak compressive force on the vertebral body, per level, from in-vivo data.

Two data families (both measure compression; neither gives the moments on the vertebral body):
- Intradiscal pressure P at L4–L5 (Wilke et al. 1999, Spine 24:755–762, abstract values; one 70 kg
  volunteer). Conversion to force: F = 0.66 · P · A (Nachemson's finding that the nucleus pressure is
  ≈ 1.5 × the mean axial stress on the disc, so F = P·A/1.5; the factor 0.66 is the one Wilke's group
  uses for their pressure-to-force conversion) with an L4–L5 disc area A = 1800 mm² (typical adult).
  Both values are assumptions carried from the spine notes (not re-checked against the primary
  papers today): treat IDP-derived forces as ±30 %. Scaled to the patient by body weight / 687 N.
- Vertebral body replacement telemetry at L1/L3 (OrthoLoad; Dreischarf et al. 2015, J Biomech
  48:560 — upper-body flexion; Rohlmann et al. 2014, PLoS ONE 9:e98510 — the highest everyday loads),
  measured in N on patients of 60–72 kg; scaled to the patient by body mass / 66 kg. The fixator
  shares load, so these underestimate the whole-spine load.

Levels: lumbar and thoracolumbar levels take the values as measured (the L1 and L3 VBRs and the L4–L5
disc carry similar compression for the same task); thoracic levels T1–T10 take the ribcage's share
off flexion tasks (−33 %, Iyer et al. 2010, Clin Biomech 25:853). Other thoracic reductions (e.g. for
less body mass above the level) are not applied: cautious, as the loads stay at lumbar values.

Departure: each activity is applied as axial compression through the endplates (no moment): in-vivo
data give compression only. The direction envelope (`bonefe.sites.vertebra.assessment`) shows what
bending and torsion the vertebra allows.

Exercises used in programmes for people with bone metastases (resistance lifts, carrying, flexion):
the Wilke lifting and holding entries stand for them; Rohlmann et al. 2014 (PLoS ONE 9:e102005) rank
bridging and arm/leg raises on all fours "at least walking" without a force, so they are not listed.
"""

from dataclasses import dataclass

from bonefe.sites.vertebra.levels import RIBCAGE, check_level

IDP_TO_FORCE = 0.66
"""F = 0.66 · P · A (Nachemson; the conversion Wilke's group uses); assumption, see the module docstring."""
DISC_AREA_MM2 = 1800.0
"""L4–L5 disc cross-section (mm²) for the conversion; typical adult value, assumption."""
WILKE_BODY_WEIGHT_N = 70.0 * 9.81
VBR_BODY_MASS_KG = 66.0
"""Mean of the OrthoLoad VBR patients' 60–72 kg."""
RIBCAGE_FLEXION_SHARE = 0.33
"""Ribs and sternum take 33 % of the vertebral compression in forward flexion (Iyer et al. 2010)."""

WILKE = "Wilke et al. 1999, Spine 24:755 (IDP L4-L5, F = 0.66 P A)"


@dataclass(frozen=True)
class SpinalActivity:
    """One activity: name, label, source value and its kind ("MPa" IDP or "N" VBR force),
    whether it flexes the trunk, whether it is an exercise, and the source."""

    name: str
    label: str
    value: float
    unit: str
    flexion: bool
    exercise: bool
    reference: str

    def force_n(self, body_mass_kg: float, level: str) -> float:
        """Peak compressive force (N) on the vertebral body of `level` for a patient."""
        if self.unit == "MPa":
            force = IDP_TO_FORCE * self.value * DISC_AREA_MM2 * body_mass_kg * 9.81 / WILKE_BODY_WEIGHT_N
        else:
            force = self.value * body_mass_kg / VBR_BODY_MASS_KG
        if self.flexion and check_level(level) in RIBCAGE:
            force *= 1.0 - RIBCAGE_FLEXION_SHARE
        return force


ACTIVITIES = {a.name: a for a in (
    SpinalActivity("standing", "Relaxed standing", 0.50, "MPa", False, False, WILKE),
    SpinalActivity("sitting", "Sitting unsupported", 0.46, "MPa", False, False, WILKE),
    SpinalActivity("sitting_flexed", "Sitting, maximum flexion", 0.83, "MPa", True, False, WILKE),
    SpinalActivity("forward_flexion", "Standing, flexed forward", 1.10, "MPa", True, False, WILKE),
    SpinalActivity("upper_body_flexion", "Upper-body flexion and return (VBR)", 565.0, "N", True, False,
                   "Dreischarf et al. 2015, J Biomech 48:560 (VBR peak on return)"),
    SpinalActivity("carrying", "Holding 20 kg close to the body", 1.10, "MPa", False, True, WILKE),
    SpinalActivity("lifting_knees", "Lifting 20 kg, knees flexed (squat lift)", 1.70, "MPa", True, True, WILKE),
    SpinalActivity("lifting_round_back", "Lifting 20 kg, round back", 2.30, "MPa", True, True, WILKE),
    SpinalActivity("lifting_from_ground", "Highest everyday loads (lifting from the ground, tying shoes)",
                   1650.0, "N", True, False, "Rohlmann et al. 2014, PLoS ONE 9:e98510 (VBR, up to 1650 N)"),
)}
"""The library; `standing` is the reference load of the failure load in × body weight."""
REFERENCE_ACTIVITY = "standing"

"""Sideways fall on the hip in its published set-up: fall strength, impact force, factor of risk.

Set-up (the cadaver fall test and its FE models: Courtney et al. 1995; Keyak et al. 1998, 2001;
Bessho et al. 2009; Dragomir-Daescu et al. 2011; the biomechanical-CT service, Keaveny et al.
2020). The femur lies on its side: the pelvis pushes the femoral head towards the ground through
the acetabulum, the greater trochanter rests on the ground (a padded support) and the distal
femur is held by a pin about which it may rotate in the loading plane. Here:

* load: 1 N along the fall direction d, a uniform traction on the head cap facing the
  acetabulum (`bonefe.sites.femur.anatomy.fall_patches`);
* greater trochanter: an elastic support along d only (∫ k (u·d)(v·d) ds, the stiff pad of the
  tests; it slides freely across d);
* distal pin: on the pinned section (the distal cut, or a HINGE_BAND_MM ring at the top of the
  potted shaft of a whole femur) the two in-plane components along the pin axis p = d × s and
  q = s × p are held elastically; the axial component (along the shaft s) only on a strip of
  ±PIN_STRIP_MM about the pin line. The section may turn about p (only the strip resists it,
  negligibly), so the moment about the pin is carried by the trochanter as in the test rig:
  R_trochanter = F · lever(head) / lever(trochanter) about the pin, the rest by the pin.

Directions. d = cos α (−cos β medial − sin β anterior) − sin α superior (femur frame), i.e. the
head is pushed laterally, posteriorly by β (internal rotation of the femur: impact on the
posterolateral trochanter, Keyak et al. 2013) and distally by α (the shaft inclined α to the
ground, the knee lower than the hip). Published set-ups use α = 10°, β = 15° (Courtney 1995;
Keyak 2001; Dragomir-Daescu 2011) and span 0–30° in both (Pinilla et al. 1996: β = 0, 15, 30°;
Keyak et al. 2001: several α, β). The grid FALL_TILTS_DEG × FALL_ROTATIONS_DEG covers 10–30°; each
direction has its own supports, so its own operator and one solve (linear elasticity).

Fall strength = the smallest failure load over the directions, by the same nonlocal strain
criterion as the stance failure load (`bonefe.assessment`, `bonefe.nonlocal_strain`), cells within
`exclusion_mm` of the head cap, the trochanter support or the pinned section not evaluated. Like
the stance failure load it is the onset of local failure in a linear model, not the ultimate load
of a nonlinear one.

Impact force (`impact_force`) and factor of risk = impact force / fall strength (Hayes et al.;
Bouxsein et al. 2007): above 1 a sideways fall from standing height is expected to break the bone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

from bonefe.sites.femur.anatomy import SUPPORT, FemurFrame, fall_patches
from bonefe.assessment import FailurePoints, RiskOptions, cell_centres, failure_points, needs_lesion_map
from bonefe.materials import LesionMap
from bonefe.errors import BonefeError
from bonefe.risk import GRAVITY, distance_mask, failure_under_unit_load
from bonefe.solver import ElasticitySolver, _facet_measure, cell_strain, patch_traction, principal_strains

FALL_TILTS_DEG = (10.0, 20.0, 30.0)
"""α, the shaft's inclination to the ground (°): 10° in the standard test (Courtney et al. 1995,
J Bone Joint Surg Am 77:387), up to 30° in the published sweeps (Keyak et al. 2001)."""
FALL_ROTATIONS_DEG = (10.0, 20.0, 30.0)
"""β, internal rotation of the femur (°), impact on the posterolateral trochanter: 15° in the
standard test (Courtney 1995), 0–30° in Pinilla et al. 1996 (Calcif Tissue Int 58:231)."""
SUPPORT_STIFFNESS_N_MM3 = 1000.0
"""Stiffness per area of the trochanter and pin supports (N/mm³): 0.006 mm under 4 kN on the 7 cm²
trochanter patch, far stiffer than the femur (≈ 1–5 kN/mm), so the supports act as rigid as in
the FE models cited; k·h/E ≈ 0.2 at 3 mm elements in cortex, so the solver's conditioning keeps."""
HINGE_BAND_MM = 5.0
"""The pinned section of a whole femur: the potted-shaft facets (`bonefe.sites.femur.anatomy.POTTED_BELOW_HEAD_MM`)
within this distance of its proximal edge. On a proximal femur the distal cut is the section."""
PIN_STRIP_MM = 3.0
"""Half-width (mm) of the strip about the pin line that holds the section along the shaft: one
element at the default mesh size, so it is never empty. Its resistance to turning about the pin
(k ∫ b² dA times the section's rotation) and the spread of the trochanter reaction over its patch
leave the lever rule met within 0.4 % on a femur-like tube (tests/test_fall.py: 0.39 % and 0.30 %)."""

IMPACT_FACTOR = 8.25
"""Peak impact force on the trochanter in a sideways fall from standing height, in body weights at
a body height of REFERENCE_HEIGHT_M: F = 8.25 · BW · √(h / 1.70 m); 75 kg, 1.70 m: 6.07 kN.
UNCONFIRMED (checked 2026-12-01): the factor and the height scaling are attributed to van den
Kroonenberg AJ, Hayes WC, McMahon TA 1995 (J Biomech Eng 117:309, the mass–spring–damper fall model),
but that paper could not be found. Confirmed, with neither abstract giving the formula: Bouxsein ML
et al. 2007, "Contribution of trochanteric soft tissues to fall force estimates, the factor of risk,
and prediction of hip fracture risk", J Bone Miner Res 22(6):825–831, doi:10.1359/jbmr.070309, and
Dufour AB et al. 2011, Osteoporos Int 23(2):513–520, doi:10.1007/s00198-011-1569-2. Both estimate
the peak fall force from height and weight and attenuate it by the trochanteric soft tissue.
Cross-check: the undamped mass–spring form of Robinovitch SN, Hayes WC, McMahon TA 1991, "Prediction
of femoral impact forces in falls on the hip", J Biomech Eng 113(4):366–374, doi:10.1115/1.2895414
(confirmed), gives 5.6 kN for the same patient with an effective mass of 7/20 of body mass, a
stiffness of 71 kN/m and a hip drop of 0.51 × height. Those three values are not in the abstract:
unconfirmed."""
REFERENCE_HEIGHT_M = 1.70
"""Reference body height (m) of the impact formula; the default when the case gives no height."""
SOFT_TISSUE_N_PER_MM = 71.0
"""Attenuation of the peak impact force per mm of trochanteric soft tissue, N/mm, applied as
F − 71 N/mm × thickness. Without a measured thickness the force is not attenuated (the larger,
cautious value). UNCONFIRMED (checked 2026-12-01): 71 N/mm is not in the abstracts read, and its
use by Bouxsein et al. 2007 is not confirmed. The paper it is attributed to exists, as cited:
Robinovitch SN, McMahon TA, Hayes WC 1995, "Force attenuation in trochanteric soft tissues during
impact from a fall", J Orthop Res 13(6):956–962, doi:10.1002/jor.1100130621. In its abstract, nine
cadaver tissues were hit with 140 J; the peak forces were 4050–6420 N and fell as the tissue
thickened (r² = 0.91)."""
BCT_FRAGILE_N = {"women": 3000.0, "men": 3500.0}
"""Biomechanical-CT "fragile bone strength" (femoral strength in a sideways fall, at or below
which the hip-fracture risk equals that of DXA osteoporosis): ≤ 3000 N women, ≤ 3500 N men
(Keaveny TM et al. 2020, Osteoporos Int 31(6):1025–1048, Table 1, confirmed 2026-12-01; the same
table gives ≤ 4500 N women, ≤ 6500 N men for the spine). Their strength is the ultimate load of a
nonlinear model; ours is the onset of failure in a linear one (lower), so on our number the
thresholds err on the cautious side."""
REFERENCES = (
    "Fall set-up: Courtney et al. 1995 J Bone Joint Surg Am 77:387; Keyak et al. 2001 J Orthop Res 19:539; "
    "Dragomir-Daescu et al. 2011 Ann Biomed Eng 39:742. Impact: van den Kroonenberg et al. 1995 J Biomech Eng "
    "117:309; Robinovitch et al. 1995 J Orthop Res 13:956. Factor of risk: Bouxsein et al. 2007 J Bone Miner Res "
    "22:825. Thresholds: Keaveny et al. 2020 Osteoporos Int 31:1025 (BCT)"
)


@dataclass(frozen=True)
class FallDirection:
    """Failure load (N) of one fall direction (α tilt, β internal rotation, degrees), where failure
    starts (world mm) and its mode."""

    tilt_deg: float
    rotation_deg: float
    failure_load_n: float
    location_mm: tuple[float, float, float]
    mode: str


@dataclass(frozen=True)
class FallRisk:
    """The sideways fall for one patient (results["fall"]).

    fall_strength_n: smallest failure load over the fall directions (N); direction: its α/β (°);
    location_mm, mode: where and how failure starts there. impact_force_n: expected peak impact
    force (N) for this patient; factor_of_risk = impact / strength. height_m, soft_tissue_mm: the
    impact inputs used (soft tissue None = not attenuated). directions: every direction's result.
    """

    fall_strength_n: float
    impact_force_n: float
    factor_of_risk: float
    direction: dict[str, float]
    location_mm: tuple[float, float, float]
    mode: str
    height_m: float
    soft_tissue_mm: float | None
    directions: list[FallDirection] = field(default_factory=list)
    fragile_threshold_n: dict[str, float] = field(default_factory=lambda: dict(BCT_FRAGILE_N))
    reference: str = REFERENCES


def fall_direction(tilt_deg: float, rotation_deg: float) -> np.ndarray:
    """Unit force on the head in the femur frame (medial, anterior, superior): see the module notes."""
    a, b = np.radians(tilt_deg), np.radians(rotation_deg)
    return np.array([-np.cos(a) * np.cos(b), -np.cos(a) * np.sin(b), -np.sin(a)])


def impact_force(body_mass_kg: float, height_m: float = REFERENCE_HEIGHT_M,
                 soft_tissue_mm: float | None = None) -> float:
    """Expected peak force (N) on the greater trochanter in a sideways fall from standing height:
    IMPACT_FACTOR · BW · √(height / REFERENCE_HEIGHT_M), less SOFT_TISSUE_N_PER_MM per mm of
    trochanteric soft tissue when given."""
    peak = IMPACT_FACTOR * body_mass_kg * GRAVITY * np.sqrt(height_m / REFERENCE_HEIGHT_M)
    if soft_tissue_mm is None:
        return float(peak)
    attenuated = peak - SOFT_TISSUE_N_PER_MM * soft_tissue_mm
    if attenuated <= 0.25 * peak:
        raise BonefeError(f"{soft_tissue_mm:g} mm of trochanteric soft tissue would absorb over 3/4 of this "
                          f"patient's {peak:.0f} N fall impact, outside the range of the attenuation formula: "
                          "check patient.trochanteric_soft_tissue_mm (mm, typically 10-60)")
    return float(attenuated)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _midpoints(mesh, facets) -> np.ndarray:
    """Local midpoints (n, 3) of `facets` (world mm)."""
    from dolfinx.mesh import compute_midpoints

    return compute_midpoints(mesh, 2, np.asarray(facets, np.int32)).reshape(-1, 3)


def pin_springs(mesh, section, centre, shaft_axis, direction,
                stiffness: float = SUPPORT_STIFFNESS_N_MM3) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """Elastic supports of a pinned section (local facets) for a load along `direction`: the pin
    axis p = d × s passes through `centre` (world mm); in-plane p and q = s × p on the whole section,
    axial s on the strip within PIN_STRIP_MM of the pin line (widened by doubling on meshes too
    coarse to have a facet midpoint there)."""
    s = _unit(shaft_axis)
    p = _unit(np.cross(direction, s))
    q = np.cross(s, p)
    section = np.asarray(section, np.int32)
    offset = np.abs((_midpoints(mesh, section) - centre) @ q)
    reach = mesh.comm.allreduce(float(offset.max()) if offset.size else 0.0, op=MPI.MAX)
    half = PIN_STRIP_MM
    while mesh.comm.allreduce(int(np.count_nonzero(offset <= half)), op=MPI.SUM) == 0:
        if half > reach:
            raise BonefeError("sideways fall: the pinned section has no facets; check landmarks "
                              "distal_centre and shaft_axis in the case file")
        half *= 2.0
    return [(section, stiffness, p), (section, stiffness, q), (section[offset <= half], stiffness, s)]


class FallModel:
    """One fall direction on one bone: the operator with its supports and the displacement (mm)
    under 1 N on the head along `direction` (world unit vector).

    head, trochanter, section: local facets of the head cap, the trochanter support and the pinned
    section; centre: a point of the pin axis; shaft_axis: s, distal to proximal. first: another
    direction's model of the same bone, whose AMG set-up and assembled bone stiffness this one
    borrows (`bonefe.solver.ElasticitySolver`: only its own supports are assembled)."""

    def __init__(self, mesh, E, nu, head, trochanter, section, centre, shaft_axis, direction,
                 degree: int = 1, stiffness: float = SUPPORT_STIFFNESS_N_MM3,
                 first: FallModel | None = None):
        self.direction = _unit(direction)
        self.springs = {"trochanter": [(np.asarray(trochanter, np.int32), stiffness, self.direction)],
                        "pin": pin_springs(mesh, section, centre, shaft_axis, self.direction, stiffness)}
        self.solver = ElasticitySolver(mesh, E, nu, np.empty(0, np.int32), degree,
                                       springs=self.springs["trochanter"] + self.springs["pin"],
                                       preconditioner=first and first.solver, stiffness=first and first.bone)
        self.u = self.solver.solve([(head, patch_traction(mesh, head, self.direction))])

    @cached_property
    def bone(self):
        """The assembled bone stiffness without supports (`ElasticitySolver.bone_stiffness`)."""
        return self.solver.bone_stiffness()

    def reaction(self, support: str) -> np.ndarray:
        """Force (N, world) that a support ("trochanter" or "pin") exerts on the bone: Σ −k n ∫ u·n ds."""
        mesh = self.solver.mesh
        total = np.zeros(3)
        for facets, stiffness, n in self.springs[support]:
            normal = fem.Constant(mesh, np.asarray(n, float))
            local = fem.assemble_scalar(fem.form(ufl.dot(self.u, normal) * _facet_measure(mesh, facets)))
            total -= stiffness * mesh.comm.allreduce(float(local), op=MPI.SUM) * np.asarray(n, float)
        return total


def pinned_section(mesh, facet_tags, frame: FemurFrame) -> tuple[np.ndarray, np.ndarray]:
    """The pinned section of the femur (local facets) and the pin centre on the shaft axis (world mm):
    the support facets within HINGE_BAND_MM of the support's proximal edge (the distal cut itself
    on a proximal femur)."""
    s = _unit(frame.shaft_axis)
    support = facet_tags.find(SUPPORT)
    height = (_midpoints(mesh, support) - frame.head_centre) @ s
    top = mesh.comm.allreduce(float(height.max()) if height.size else -np.inf, op=MPI.MAX)
    base = np.asarray(frame.distal_centre, float)
    centre = base + (top - (base - frame.head_centre) @ s) * s
    return support[height >= top - HINGE_BAND_MM], centre


def _gathered(mesh, facets) -> np.ndarray:
    return np.concatenate(mesh.comm.allgather(_midpoints(mesh, facets)), axis=0)


def fall_strength(mesh, facet_tags, E, labels, nu, frame: FemurFrame, options: RiskOptions, degree: int = 1,
                  tilts=FALL_TILTS_DEG, rotations=FALL_ROTATIONS_DEG, lesion: LesionMap | None = None
                  ) -> list[FallDirection]:
    """Failure load under a sideways fall along every direction of the grid tilts × rotations (°);
    labels: the cells' labels, lesion: the CT's lesion map (`bonefe.assessment.BoneModel`).

    The directions differ only in where and along what the supports hold, so every direction after
    the first borrows the first one's AMG set-up (`bonefe.solver.BorrowedPreconditioner`) and its
    assembled bone stiffness, assembling only its own springs: on the demo femur 26–28 → 37–43 CG
    iterations, 2.6 → 1.2–1.6 s per direction on 2 ranks, the displacement the same within 5e-9
    (relative). Sharing the stiffness (one more matrix held during the fall) and the kept voxel
    indices of the failure points (`bonefe.assessment`) took the nine directions from 4.99 to 4.30 s
    (best of 3, 2 ranks)."""
    needs_lesion_map(mesh, labels, lesion)
    section, centre = pinned_section(mesh, facet_tags, frame)
    centres = cell_centres(mesh)
    bone = failure_points(mesh, lesion, np.ones(len(centres), bool), options.averaging_radius_mm)
    results, first = [], None
    for tilt in tilts:
        for rotation in rotations:
            direction = frame.basis() @ fall_direction(tilt, rotation)
            head, trochanter = fall_patches(mesh, frame, direction)
            model = FallModel(mesh, E, nu, head, trochanter, section, centre, frame.shaft_axis, direction, degree,
                              first=first)
            first = first or model
            patches = np.concatenate([_gathered(mesh, f) for f in (head, trochanter, section)])
            away = ~distance_mask(centres, patches, options.exclusion_mm)
            lattice = FailurePoints(bone.average, bone.weights, bone.selected & bone.average.centred_in(away))
            principal = principal_strains(lattice.nonlocal_field(cell_strain(model.u)))
            failure = failure_under_unit_load(principal, lattice.points, mesh.comm, criterion=options.criterion)
            results.append(FallDirection(float(tilt), float(rotation), failure.failure_load_n,
                                         failure.location_mm, failure.mode))
    return results


def fall_risk(directions: list[FallDirection], body_mass_kg: float, height_m: float = REFERENCE_HEIGHT_M,
              soft_tissue_mm: float | None = None) -> FallRisk:
    """Fall strength (the weakest direction), this patient's impact force and the factor of risk."""
    weakest = min(directions, key=lambda d: (d.failure_load_n, d.tilt_deg, d.rotation_deg))
    impact = impact_force(body_mass_kg, height_m, soft_tissue_mm)
    return FallRisk(weakest.failure_load_n, impact, impact / weakest.failure_load_n,
                    {"tilt_deg": weakest.tilt_deg, "internal_rotation_deg": weakest.rotation_deg},
                    weakest.location_mm, weakest.mode, height_m, soft_tissue_mm, list(directions))

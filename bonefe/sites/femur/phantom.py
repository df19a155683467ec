"""A synthetic proximal-femur CT and label map with a controllable metastatic lesion.

The bone is an implicit surface: signed-distance-like functions of a shaft cylinder, a metaphyseal
ellipsoid, greater and lesser trochanter ellipsoids, a tapered elliptical neck and the head sphere,
joined by a smooth minimum and evaluated on the voxel grid. The periosteal envelope (label 1, as
clinical segmentations are) holds a cortex of documented thickness — depth below the periosteal
surface from the exact Euclidean distance transform — around trabecular bone (proximal) or marrow
(diaphysis). Everything is built for a left femur in a canonical frame (x medial→lateral is +x,
anterior is −y, superior is +z, shaft axis on x = y = 0, distal cut at z = 0) and then placed in the
LPS world with the head centre at x = +90 mm; a right femur is the exact mirror image (x → −x).

Lesion placement (how `cortical_involvement` c is honoured) is `bonefe.sites.femur.lesions.place_lesion`, the
same for real bone surfaces: each site names a ray in the femur frame (here the phantom's true
frame) from inside the bone; where it meets the periosteal surface (point P, inward unit normal n,
local cortical thickness t) the lesion sphere of radius r is centred at C = P + n·(t·(1 − c) + r).
Its closest approach to the periosteal surface is therefore t·(1 − c): c = 0 touches the endosteal
surface and leaves the cortex intact, c = 1 reaches the periosteal surface (full-thickness breach).
The sphere is clipped to the periosteal envelope.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage

from bonefe.sites.femur.anatomy import FemurFrame
from bonefe.errors import BonefeError, require_within
from bonefe.imaging import write_image
from bonefe.sites.femur.lesions import SITE_NAMES, place_lesion
from bonefe.outputs import atomic_write_json
from bonefe.sites.long_bone.lesions import in_ball
from bonefe.sites.long_bone.phantom import (
    FORMATS,
    HU_BLASTIC,
    HU_CORTEX_DIAPHYSIS,
    HU_CORTEX_PROXIMAL,
    HU_LYTIC,
    HU_MARROW,
    HU_SOFT_TISSUE,
    smin,
    smoothstep,
)
from bonefe.volume import BACKGROUND, BONE, LYTIC, Volume

SITES = SITE_NAMES

CORTEX_DIAPHYSIS_MM = 5.0
"""Cortical thickness of the diaphysis (mm), below z_head − 100 mm (femoral mid-shaft cortex ≈ 4–7 mm)."""
CORTEX_PROXIMAL_MM = 3.0
"""Cortical thickness of head and trochanters (mm), above z_head − 65 mm; a smoothstep joins the two."""
NECK_CORTEX_MM = {25.0: (1.63, 3.9), 85.0: (0.33, 3.3)}
"""Femoral-neck cortical thickness (mm) of women by age (years): (superior, inferior), the model
predictions for the superoposterior and inferoanterior quadrants of Poole et al. 2010 (J Bone Miner
Res 25:482, abstract; 100 women aged 20–90, clinical CT). Linear in age between the two ages; the
neck cortex thins from inferior to superior as cos of the angle about the neck axis (no
anterior–posterior difference: a departure from the quadrants)."""

TRABECULAR_HU_RANGE = (150.0, 380.0)

HEAD_CENTRE_X_MM = 90.0
"""|x| of the head centre in the LPS world (half the inter-hip distance), mm."""
MARGIN_MM = 12.0
"""Soft tissue kept around the bone on every side but the distal cut (mm)."""
NECK_LENGTH_MM = 50.0
"""Distance from the shaft axis to the head centre along the neck axis (femoral offset ≈ 41 mm at 125°)."""


DEMO_LESION = {"lesion_site": "neck_inferomedial", "lesion_diameter_mm": 20.0,
               "cortical_involvement": 1.0}
"""The demo's lesion (the Makefile's DEMO_LESION): 20 mm lytic, infero-medial neck, through the
cortex; it sets the femur's stance failure load."""


@dataclass(frozen=True)
class PhantomSpec:
    """What the synthetic femur looks like. Lengths in mm, angles in degrees, CT values in HU.

    side: "left" or "right"; voxel_mm: isotropic voxel size.
    lesion_site: one of SITES (bonefe.sites.femur.lesions) or None; lesion_type: "lytic" (label 2) or "blastic" (label 3);
    lesion_diameter_mm: sphere diameter; cortical_involvement: fraction of the local cortical thickness
    eroded from inside (0 none … 1 full-thickness breach), see the module docstring;
    noise_hu: standard deviation of additive Gaussian CT noise; seed: its random seed.
    head_diameter_mm, neck_shaft_angle_deg, anteversion_deg: proximal geometry;
    length_mm: from the top of the head to the flat distal cut.
    age_years: None keeps the head and neck cortex a uniform CORTEX_PROXIMAL_MM, sampled at voxel centres;
    an age (25–85) thins the neck cortex superiorly as NECK_CORTEX_MM, and every cortical voxel takes the
    fraction of it inside the cortex (partial volume: a 0.5 mm cortex shows in 1 mm voxels).
    """

    side: Literal["left", "right"] = "left"
    voxel_mm: float = 1.0
    lesion_site: str | None = "neck"
    lesion_type: Literal["lytic", "blastic"] = "lytic"
    lesion_diameter_mm: float = 20.0
    cortical_involvement: float = 0.5
    noise_hu: float = 0.0
    seed: int = 0
    head_diameter_mm: float = 45.0
    neck_shaft_angle_deg: float = 125.0
    anteversion_deg: float = 10.0
    length_mm: float = 220.0
    age_years: float | None = None

    def __post_init__(self):
        ranges = {
            "voxel_mm": (0.25, 3.0), "lesion_diameter_mm": (2.0, 50.0), "cortical_involvement": (0.0, 1.0),
            "noise_hu": (0.0, 500.0), "head_diameter_mm": (35.0, 60.0), "neck_shaft_angle_deg": (100.0, 150.0),
            "anteversion_deg": (-20.0, 45.0), "length_mm": (160.0, 500.0),
        }
        require_within("phantom", self, ranges)
        if self.age_years is not None:
            require_within("phantom", self, {"age_years": tuple(NECK_CORTEX_MM)})
        choices = {"side": ("left", "right"), "lesion_site": SITES + (None,), "lesion_type": ("lytic", "blastic")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise BonefeError(f"phantom: {name} must be one of {', '.join(map(str, allowed))} "
                                  f"(got {getattr(self, name)!r})")


def _ellipsoid(p: tuple, centre, radii) -> np.ndarray:
    """Approximate signed distance (mm) to an axis-aligned ellipsoid (exact on its surface)."""
    q = [(p[a] - centre[a]) for a in range(3)]
    k0 = np.sqrt(sum((q[a] / radii[a]) ** 2 for a in range(3)))
    k1 = np.sqrt(sum((q[a] / radii[a] ** 2) ** 2 for a in range(3)))
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def neck_cortex_at(age_years: float) -> tuple[float, float]:
    """(superior, inferior) femoral-neck cortical thickness (mm) at an age, linear in NECK_CORTEX_MM."""
    (young, thick_young), (old, thick_old) = NECK_CORTEX_MM.items()
    f = (age_years - young) / (old - young)
    return tuple(float(y + (o - y) * f) for y, o in zip(thick_young, thick_old))


@dataclass(frozen=True)
class _Femur:
    """The canonical left femur of a spec: landmark positions (mm) and the fields defined on them."""

    head_centre: np.ndarray
    head_radius: float
    neck_axis: np.ndarray
    length: float
    neck_cortex_mm: tuple[float, float] | None

    @classmethod
    def from_spec(cls, spec: PhantomSpec) -> "_Femur":
        """Head on top at z = length, neck axis at the neck–shaft angle and anteverted towards −y."""
        tilt = np.radians(180.0 - spec.neck_shaft_angle_deg)  # angle between neck axis and +z
        version = np.radians(spec.anteversion_deg)
        neck = np.array([-np.sin(tilt) * np.cos(version), -np.sin(tilt) * np.sin(version), np.cos(tilt)])
        radius = spec.head_diameter_mm / 2.0
        centre_z = spec.length_mm - radius
        head = np.array([0.0, 0.0, centre_z - NECK_LENGTH_MM * neck[2]]) + NECK_LENGTH_MM * neck
        return cls(head, radius, neck, spec.length_mm,
                   None if spec.age_years is None else neck_cortex_at(spec.age_years))

    @property
    def zh(self) -> float:
        """Height of the head centre above the distal cut (mm); the proximal features hang from it."""
        return float(self.head_centre[2])

    def _neck_coordinates(self, p: tuple) -> tuple[np.ndarray, ...]:
        """Distance along the neck axis from the shaft axis (mm), the supero-inferior and antero-posterior
        offsets from it (mm), the elliptical radius ρ (1 on the neck's surface) and the smaller semi-axis (mm)."""
        n = self.neck_axis
        base = self.head_centre - NECK_LENGTH_MM * n
        e_si = np.array([0.0, 0.0, 1.0]) - n[2] * n
        e_si /= np.linalg.norm(e_si)
        e_ap = np.cross(n, e_si)
        q = [p[a] - base[a] for a in range(3)]
        along = sum(q[a] * n[a] for a in range(3))
        a = sum(q[i] * e_si[i] for i in range(3))
        b = sum(q[i] * e_ap[i] for i in range(3))
        s = np.clip(along / NECK_LENGTH_MM, 0.0, 1.0)
        r_si = 20.0 + (0.68 * self.head_radius - 20.0) * s
        r_ap = 16.0 + (0.56 * self.head_radius - 16.0) * s
        return along, a, b, np.sqrt((a / r_si) ** 2 + (b / r_ap) ** 2), np.minimum(r_si, r_ap)

    def _neck_sdf(self, p: tuple) -> np.ndarray:
        """Tapered elliptical cylinder from the shaft axis to the head centre (wider supero-inferiorly)."""
        along, _, _, rho, r_min = self._neck_coordinates(p)
        return np.maximum((rho - 1.0) * r_min, np.maximum(-along, along - NECK_LENGTH_MM))

    def sdf(self, p: tuple) -> np.ndarray:
        """Signed distance-like field (mm, negative inside) of the periosteal surface at points p = (x, y, z)."""
        zh = self.zh
        shaft = np.maximum(np.sqrt(p[0] ** 2 + p[1] ** 2) - 15.0, p[2] - (zh - 37.5))
        body = smin(shaft, _ellipsoid(p, (0.0, 2.0, zh - 37.5), (21.0, 17.0, 30.0)), 12.0)
        body = smin(body, _ellipsoid(p, (13.0, 5.0, zh - 17.5), (12.0, 14.0, 20.0)), 6.0)   # greater trochanter
        body = smin(body, _ellipsoid(p, (-12.0, 11.0, zh - 57.5), (7.0, 7.0, 11.0)), 4.0)   # lesser trochanter
        body = smin(body, self._neck_sdf(p), 8.0)
        head = np.sqrt(sum((p[a] - self.head_centre[a]) ** 2 for a in range(3))) - self.head_radius
        return smin(body, head, 3.0)

    def proximal_weight(self, z: np.ndarray) -> np.ndarray:
        """0 in the diaphysis (z < z_head − 100) rising smoothly to 1 above z_head − 65 (mm)."""
        return smoothstep((z - (self.zh - 100.0)) / 35.0)

    def thickness(self, p: tuple) -> np.ndarray:
        """Cortical thickness (mm) at points p: CORTEX_DIAPHYSIS_MM distally, CORTEX_PROXIMAL_MM proximally, and,
        for an age, NECK_CORTEX_MM on the neck (between the shaft and the head, near the neck's surface)."""
        base = CORTEX_DIAPHYSIS_MM + (CORTEX_PROXIMAL_MM - CORTEX_DIAPHYSIS_MM) * self.proximal_weight(p[2])
        if self.neck_cortex_mm is None:
            return base
        along, a, b, rho, _ = self._neck_coordinates(p)
        superior, inferior = self.neck_cortex_mm
        up = a / np.maximum(np.hypot(a, b), 1e-9)  # cos of the angle from superior about the neck axis
        neck = inferior + (superior - inferior) * 0.5 * (1.0 + up)
        head_start = NECK_LENGTH_MM - self.head_radius
        w = (smoothstep((along - 10.0) / 10.0) * (1.0 - smoothstep((along - head_start) / 10.0))
             * (1.0 - smoothstep((rho - 1.0) / 0.3)))
        return base + (neck - base) * w

    def interior_hu(self, p: tuple) -> np.ndarray:
        """HU inside the cortex: marrow in the diaphysis, trabecular bone proximally.

        Trabecular HU = 190 + 130·exp(−|p − head centre|²/R²) + 150·exp(−(d/7 mm)²), d the distance to
        the principal compressive group (superior head to calcar), clipped to TRABECULAR_HU_RANGE.
        """
        zh, h = self.zh, self.head_centre
        top, calcar = h + np.array([0.0, 0.0, 0.5 * self.head_radius]), np.array([-13.0, 2.0, zh - 50.0])
        seg = calcar - top
        q = [p[a] - top[a] for a in range(3)]
        s = np.clip(sum(q[a] * seg[a] for a in range(3)) / seg.dot(seg), 0.0, 1.0)
        d2 = sum((q[a] - s * seg[a]) ** 2 for a in range(3))
        r2 = sum((p[a] - h[a]) ** 2 for a in range(3))
        trabecular = np.clip(190.0 + 130.0 * np.exp(-r2 / self.head_radius ** 2) + 150.0 * np.exp(-d2 / 49.0),
                             *TRABECULAR_HU_RANGE)
        w = smoothstep((p[2] - (zh - 105.0)) / 35.0)
        return HU_MARROW + (trabecular - HU_MARROW) * w

    def frame(self) -> FemurFrame:
        """The true frame in the canonical coordinates (shaft axis +z through the origin)."""
        return FemurFrame(head_centre=self.head_centre, head_radius=self.head_radius,
                          shaft_axis=np.array([0.0, 0.0, 1.0]), neck_axis=self.neck_axis, distal_centre=np.zeros(3))

    def cortical_thickness(self, point: np.ndarray, inward: np.ndarray) -> float:
        """Cortical thickness (mm) at a surface point."""
        return float(self.thickness(tuple(point)))

    def hit(self, start: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First periosteal surface point along a ray (bisection to 1 µm) and the inward unit normal there."""
        steps = np.arange(0.0, 80.0, 0.25)
        points = start + steps[:, None] * direction
        outside = np.nonzero(self.sdf(tuple(points.T)) > 0)[0]
        lo, hi = steps[outside[0] - 1], steps[outside[0]]
        while hi - lo > 1e-3:
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.sdf(tuple(start + mid * direction)) < 0 else (lo, mid)
        point = start + lo * direction
        eps = 0.05 * np.eye(3)
        grad = np.array([self.sdf(tuple(point + e)) - self.sdf(tuple(point - e)) for e in eps])
        return point, -grad / np.linalg.norm(grad)


def _lesion(femur: _Femur, spec: PhantomSpec):
    """The lesion sphere (canonical mm) of the spec (`bonefe.sites.femur.lesions.place_lesion`)."""
    lesion = place_lesion(spec.lesion_site, femur.frame(), femur, spec.lesion_diameter_mm,
                          spec.cortical_involvement, spec.lesion_type)
    if lesion.centre[2] - lesion.radius_mm < spec.voxel_mm:
        raise BonefeError(f"phantom: the {spec.lesion_site} lesion reaches below the distal cut; "
                          "increase length_mm or reduce lesion_diameter_mm")
    return lesion


def _grid(femur: _Femur, h: float) -> list[np.ndarray]:
    """Voxel-centre coordinates along x, y, z (canonical mm): the bone's box + MARGIN_MM, z from the cut (z = 0)."""
    lo = np.minimum(femur.head_centre - femur.head_radius, (-30.0, -30.0, 0.0)) - 2 * MARGIN_MM
    hi = np.maximum(femur.head_centre + femur.head_radius, (40.0, 30.0, femur.length)) + 2 * MARGIN_MM
    coarse = [np.arange(lo[a], hi[a], 2.0) for a in range(3)]
    inside = femur.sdf(np.meshgrid(*coarse, indexing="ij", sparse=True)) < 0
    box = [np.nonzero(inside.any(axis=tuple(b for b in range(3) if b != a)))[0] for a in range(3)]
    axes = []
    for a in range(3):
        first = 0.0 if a == 2 else coarse[a][box[a][0]] - 2.0 - MARGIN_MM
        last = coarse[a][box[a][-1]] + 2.0 + MARGIN_MM
        axes.append(h * np.arange(np.floor(first / h), np.ceil(last / h) + 1))
    return axes


def _build(spec: PhantomSpec) -> tuple[Volume, FemurFrame, dict]:
    """The phantom Volume, its true frame, and the lesion's placement (world mm) for phantom.json."""
    femur = _Femur.from_spec(spec)
    h = spec.voxel_mm
    axes = _grid(femur, h)
    p = np.meshgrid(*axes, indexing="ij", sparse=True)
    envelope = femur.sdf(p) < 0
    depth = ndimage.distance_transform_edt(envelope, sampling=h) - 0.5 * h  # below the periosteal surface
    cortex = np.clip((femur.thickness(p) - depth) / h + 0.5, 0.0, 1.0)  # voxel fraction within the cortex
    if spec.age_years is None:
        cortex = cortex > 0.5  # the uniform cortex sampled at voxel centres, as before ages existed
    cortex_hu = HU_CORTEX_DIAPHYSIS + (HU_CORTEX_PROXIMAL - HU_CORTEX_DIAPHYSIS) * femur.proximal_weight(p[2])
    interior = femur.interior_hu(p)
    hu = np.where(envelope, interior + (cortex_hu - interior) * cortex, HU_SOFT_TISSUE).astype(np.float32)
    labels = np.where(envelope, BONE, BACKGROUND).astype(np.uint8)
    lesion = {}
    if spec.lesion_site is not None:
        placed = _lesion(femur, spec)
        inside = envelope & in_ball(p, placed.centre, placed.radius_mm)
        hu[inside] = HU_LYTIC if placed.label == LYTIC else HU_BLASTIC
        labels[inside] = placed.label
        lesion = {"site": placed.site, "centre": placed.centre, "radius_mm": placed.radius_mm,
                  "cortical_thickness_mm": placed.cortical_thickness_mm}
    if spec.noise_hu > 0:
        hu += np.random.default_rng(spec.seed).normal(0.0, spec.noise_hu, hu.shape).astype(np.float32)
    return _place(spec, femur, axes, hu, labels, lesion)


def _place(spec: PhantomSpec, femur: _Femur, axes: list[np.ndarray], hu: np.ndarray, labels: np.ndarray,
           lesion: dict) -> tuple[Volume, FemurFrame, dict]:
    """Move the canonical left femur into the LPS world (head centre at x = ±90 mm), mirroring a right one."""
    shift = HEAD_CENTRE_X_MM - femur.head_centre[0]
    mirror = np.array([-1.0, 1.0, 1.0]) if spec.side == "right" else np.ones(3)
    corner = np.array([axes[0][-1] if spec.side == "right" else axes[0][0], axes[1][0], axes[2][0]])
    if spec.side == "right":
        hu, labels = hu[::-1].copy(), labels[::-1].copy()

    def world(x):
        return mirror * (np.asarray(x, float) + [shift, 0.0, 0.0])

    affine = np.eye(4)
    affine[:3, :3] = np.diag([spec.voxel_mm] * 3)
    affine[:3, 3] = world(corner)
    frame = FemurFrame(head_centre=world(femur.head_centre), head_radius=femur.head_radius,
                       shaft_axis=np.array([0.0, 0.0, 1.0]), neck_axis=mirror * femur.neck_axis,
                       distal_centre=world([0.0, 0.0, 0.0]), side=spec.side)
    if lesion:
        lesion = {**lesion, "centre": world(lesion["centre"])}
    return Volume(hu=hu, labels=labels, affine=affine), frame, lesion


def make_phantom(spec: PhantomSpec) -> tuple[Volume, FemurFrame]:
    """The synthetic proximal femur of `spec` (HU, canonical labels, LPS affine) and its true frame."""
    volume, frame, _ = _build(spec)
    return volume, frame


def write_phantom(spec: PhantomSpec, out_dir: str | Path, fmt: str = "nii.gz", body=None) -> dict[str, Path]:
    """Write ct.<fmt>, labels.<fmt> and phantom.json (spec, true landmarks, lesion) into out_dir, atomically.

    body: a `bonefe.phantom_body.BodySpec` puts the bone in a body with reference tissues, a vessel
    and a rod phantom, seen by a non-ideal scanner (labels then also hold the rods and vessel)."""
    if fmt not in FORMATS:
        raise BonefeError(f"phantom: format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    out_dir = Path(out_dir)
    volume, frame, lesion = _build(spec)
    raw_labels, body_description = volume.labels, None
    if body is not None:
        from bonefe.phantom_body import add_body

        volume, raw_labels, body_description = add_body(volume, body)
    paths = {"ct": out_dir / f"ct.{fmt}", "labels": out_dir / f"labels.{fmt}", "json": out_dir / "phantom.json"}
    write_image(paths["ct"], volume.hu, volume.affine)
    write_image(paths["labels"], raw_labels, volume.affine)
    description = {
        "spec": dataclasses.asdict(spec),
        "frame": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(frame).items()},
        "lesion": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in lesion.items()},
        "cortical_thickness_mm": {"diaphysis": CORTEX_DIAPHYSIS_MM, "proximal": CORTEX_PROXIMAL_MM,
                                 **({} if spec.age_years is None else dict(zip(
                                     ("neck_superior", "neck_inferior"), neck_cortex_at(spec.age_years))))},
        "shape": list(volume.hu.shape),
        "voxel_counts": {"bone": int(np.count_nonzero(volume.labels == BONE)),
                         "lesion": int(np.count_nonzero(volume.labels >= LYTIC))},
        **({"body": body_description} if body_description else {}),
    }
    atomic_write_json(paths["json"], description)
    return paths

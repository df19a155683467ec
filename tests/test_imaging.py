"""Image reading and writing: geometry (LPS affine), HU values, label mapping, and every bad input's message.

References: the NIfTI-1 standard (world = sform affine in RAS+; LPS = (−x, −y, z)); DICOM PS3.3 C.7.6.2
(ImagePositionPatient/ImageOrientationPatient) and C.11.1 (HU = stored · RescaleSlope + RescaleIntercept).
"""

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from bonefe.errors import BonefeError
from bonefe.imaging import read_image, read_volume, write_image
from bonefe.volume import BLASTIC, BONE, LYTIC
from real_data import SHARED_DATA

TOTALSEG = SHARED_DATA / "ct-abdomen-totalsegmentator"
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation matrix from Euler angles (rad) about x, then y, then z."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def oblique_affine(flip: bool = True) -> np.ndarray:
    """An oblique, anisotropic voxel→world affine; `flip` reverses the k axis (a left-handed index frame)."""
    affine = np.eye(4)
    direction = rotation(0.3, -0.2, 0.7)
    if flip:
        direction[:, 2] *= -1
    affine[:3, :3] = direction @ np.diag([0.7, 0.8, 1.5])
    affine[:3, 3] = [-100.5, 20.25, -300.0]
    return affine


def ct_and_labels(shape=(9, 8, 7)):
    """A small CT (HU float32) with a bone block, a lytic voxel inside it and a blastic one touching it."""
    hu = np.random.default_rng(1).normal(40.0, 30.0, shape).astype(np.float32)
    labels = np.zeros(shape, np.uint8)
    labels[2:7, 2:6, 1:6] = BONE
    labels[4, 3, 3] = LYTIC
    labels[4, 3, 6] = BLASTIC  # face-adjacent to the bone block
    return hu, labels


def write_pair(tmp_path, hu, labels, affine, label_affine=None, ext=".nii.gz"):
    ct, lab = tmp_path / f"ct{ext}", tmp_path / f"labels{ext}"
    write_image(ct, hu, affine)
    write_image(lab, labels, affine if label_affine is None else label_affine)
    return ct, lab


@pytest.mark.parametrize("ext", [".nii.gz", ".nii", ".mha", ".nrrd"])
@pytest.mark.parametrize("flip", [False, True])
def test_round_trip_preserves_values_and_affine(tmp_path, ext, flip):
    """Reference: the array and affine written. Values exact (float32 stored as float32); affine to 1e-4 mm
    because NIfTI stores its sform/quaternion in float32 (7 significant digits of −300 mm ≈ 3e-5 mm)."""
    hu, _ = ct_and_labels()
    affine = oblique_affine(flip)
    write_image(tmp_path / f"img{ext}", hu, affine)
    array, read_affine = read_image(tmp_path / f"img{ext}")
    assert array.dtype == np.float32 and array.shape == hu.shape
    np.testing.assert_array_equal(array, hu)
    np.testing.assert_allclose(read_affine, affine, atol=1e-4)


def test_nifti_ras_world_is_converted_to_lps(tmp_path):
    """Reference: NIfTI-1 — world(i,j,k) = sform·(i,j,k,1) in RAS+, so in LPS diag(−1,−1,1)·sform·(i,j,k,1).
    The array written by nibabel (indexed [i,j,k]) must come back in the same index order."""
    sform = np.eye(4)
    sform[:3, :3] = rotation(0.1, 0.2, -0.4) @ np.diag([0.9, 1.1, 2.0])
    sform[:3, 3] = [12.0, -40.0, 55.0]
    data = np.arange(5 * 6 * 4, dtype=np.int16).reshape(5, 6, 4)
    image = nib.Nifti1Image(data, sform)
    image.set_qform(sform, code=1)
    nib.save(image, tmp_path / "ras.nii.gz")
    array, affine = read_image(tmp_path / "ras.nii.gz")
    np.testing.assert_array_equal(array, data)
    voxel = np.array([3.0, 1.0, 2.0, 1.0])
    np.testing.assert_allclose(affine @ voxel, RAS_TO_LPS @ sform @ voxel, atol=1e-4)


def write_dicom_series(folder: Path, hu: np.ndarray, affine: np.ndarray, intercept: int = -1024) -> None:
    """Write an int16 CT series with SimpleITK/GDCM, one file per k slice, stored = HU − intercept.

    Planted identifiers (PatientName, PatientID, BirthDate) let tests check they never come back.
    """
    folder.mkdir()
    direction = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    orientation = "\\".join(f"{v:.9f}" for v in np.concatenate([direction[:, 0], direction[:, 1]]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(hu.shape[2]):
        image = sitk.GetImageFromArray(hu[:, :, k].T.astype(np.int16)[None])
        image.SetSpacing(spacing.tolist())  # GDCM writes PixelSpacing from the image, not from the tag
        position = affine[:3, :3] @ [0, 0, k] + affine[:3, 3]
        tags = {"0008|0060": "CT", "0010|0010": "DOE^JOHN", "0010|0020": "PID-12345", "0010|0030": "19500101",
                "0020|000d": "1.2.826.0.1.3680043.2.1125.1", "0020|000e": "1.2.826.0.1.3680043.2.1125.2",
                "0008|0018": f"1.2.826.0.1.3680043.2.1125.3.{k + 1}", "0020|0013": str(k + 1),
                "0020|0032": "\\".join(f"{v:.6f}" for v in position), "0020|0037": orientation,
                "0018|0050": f"{spacing[2]:.6f}",
                "0028|1052": str(intercept), "0028|1053": "1"}
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(image)


def test_dicom_series_gives_hu_and_geometry(tmp_path):
    """Reference: DICOM C.11.1 (HU = stored + RescaleIntercept with slope 1) and C.7.6.2 (positions, orientation).
    pydicom (an independent reader) confirms the files store HU + 1024 with intercept −1024."""
    hu = (np.arange(6 * 5 * 4).reshape(6, 5, 4) * 37 - 1000).astype(np.int16)
    affine = np.eye(4)
    affine[:3, :3] = rotation(0.0, 0.0, 0.25) @ np.diag([0.6, 0.7, 2.5])
    affine[:3, 3] = [-120.0, 35.5, -800.0]
    write_dicom_series(tmp_path / "series", hu, affine)
    stored = pydicom.dcmread(tmp_path / "series" / "slice000.dcm")
    assert float(stored.RescaleIntercept) == -1024
    assert stored.pixel_array[0, 0] == hu[0, 0, 0] + 1024  # pydicom rows are j, columns i
    array, read_affine = read_image(tmp_path / "series")
    np.testing.assert_array_equal(array, hu)
    np.testing.assert_allclose(read_affine, affine, atol=1e-5)  # positions written to 1e-6 mm


def test_dicom_identifiers_never_leave_the_reader(tmp_path):
    """read_image returns two numeric arrays only, so planted PatientName/ID cannot leak; checked explicitly."""
    hu = np.full((4, 4, 3), 100, np.int16)
    write_dicom_series(tmp_path / "series", hu, np.eye(4))
    result = read_image(tmp_path / "series")
    assert len(result) == 2 and all(isinstance(a, np.ndarray) and a.dtype.kind in "iuf" for a in result)
    assert "DOE" in str(pydicom.dcmread(tmp_path / "series" / "slice000.dcm").PatientName)  # it was planted


def test_read_volume_maps_label_values(tmp_path):
    """Canonical labels from user values; unmapped values (a multi-label map's other organs) become background."""
    hu, labels = ct_and_labels()
    user = np.where(labels == BONE, 75, 0).astype(np.uint8)
    user[labels == LYTIC], user[labels == BLASTIC] = 9, 11
    user[0, 0, 0] = 2  # another organ in a TotalSegmentator-style map: ignored, not "lytic"
    ct, lab = write_pair(tmp_path, hu, user, oblique_affine())
    volume = read_volume(ct, lab, {"bone": [75], "lytic": 9, "blastic": [11]})
    np.testing.assert_array_equal(volume.labels, labels)
    assert volume.hu.dtype == np.float32 and volume.labels.dtype == np.uint8
    np.testing.assert_array_equal(volume.hu, hu)
    np.testing.assert_allclose(volume.affine, oblique_affine(), atol=1e-4)


def test_resample_labels_nearest_neighbour(tmp_path):
    """Labels on 2 mm voxels (centres at 0.5, 2.5, … mm) resampled onto a 1 mm CT grid (centres at 0, 1, … mm):
    CT voxel i has continuous label index (i − 0.5)/2, whose nearest neighbour is floor(i/2) (no ties)."""
    hu = np.zeros((8, 4, 6), np.float32)
    coarse = np.zeros((4, 2, 3), np.uint8)
    coarse[1:3, :, :] = BONE
    coarse[1, 1, 2] = LYTIC
    label_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    label_affine[:3, 3] = 0.5
    ct, lab = write_pair(tmp_path, hu, coarse, np.eye(4), label_affine)
    with pytest.raises(BonefeError, match=r"size, spacing, origin differ.*resample_labels: true"):
        read_volume(ct, lab)
    volume = read_volume(ct, lab, resample_labels=True)
    i, j, k = np.meshgrid(*(np.arange(n) // 2 for n in hu.shape), indexing="ij")
    np.testing.assert_array_equal(volume.labels, coarse[i, j, k])


def stretched(affine):
    return affine @ np.diag([1.0, 1.0, 1.01, 1.0])


def shifted(affine):
    return affine + np.pad(np.full((3, 1), 0.5), ((0, 1), (3, 0)))


def rotated(affine):
    return np.block([[rotation(0.0, 0.0, 0.05) @ affine[:3, :3], affine[:3, 3:]], [affine[3:, :]]])


@pytest.mark.parametrize("change, what", [(stretched, "spacing"), (shifted, "origin"), (rotated, "direction")])
def test_grid_mismatch_names_the_difference(tmp_path, change, what):
    hu, labels = ct_and_labels()
    affine = np.diag([0.8, 0.8, 1.2, 1.0])
    ct, lab = write_pair(tmp_path, hu, labels, affine, change(affine))
    with pytest.raises(BonefeError, match=rf"\({what} differ\).*resample_labels: true"):
        read_volume(ct, lab)


def raises_one_line(match: str, call, *args):
    """`call(*args)` raises a BonefeError matching `match` whose message is a single line."""
    with pytest.raises(BonefeError, match=match) as error:
        call(*args)
    assert "\n" not in str(error.value)


def test_bad_inputs_give_one_line_messages(tmp_path):
    hu, labels = ct_and_labels()
    ct, lab = write_pair(tmp_path, hu, labels, np.eye(4))
    raises_one_line("no such file or folder", read_volume, tmp_path / "missing.nii.gz", lab)
    (tmp_path / "scan.png").write_bytes(b"\x89PNG")
    raises_one_line(r"unsupported image format '\.png'.*DICOM series folder, NIfTI", read_image, tmp_path / "scan.png")
    (tmp_path / "broken.nii.gz").write_bytes(b"not an image")
    raises_one_line("cannot read this file as Nifti", read_image, tmp_path / "broken.nii.gz")
    (tmp_path / "empty").mkdir()
    raises_one_line("no DICOM series found", read_image, tmp_path / "empty")
    raises_one_line(r"no bone voxels for bone label value\(s\) \[5\]; values present: 1, 2, 3",
                    read_volume, ct, lab, {"bone": 5})
    raises_one_line("unknown class 'tumour'", read_volume, ct, lab, {"bone": 1, "tumour": 2})
    raises_one_line("value 1 is given for two classes", read_volume, ct, lab, {"bone": 1, "lytic": [2, 1]})
    raises_one_line("cannot write '.png'", write_image, tmp_path / "out.png", hu, np.eye(4))


def test_non_finite_hu_is_refused(tmp_path):
    """MetaImage keeps NaN/inf as written (ITK's NIfTI reader turns them into 0, so NIfTI cannot carry them)."""
    hu, labels = ct_and_labels()
    hu[1, 1, 1] = np.nan
    hu[2, 2, 2] = np.inf
    ct, lab = write_pair(tmp_path, hu, labels, np.eye(4), ext=".mha")
    with pytest.raises(BonefeError, match="2 NaN or infinite values"):
        read_volume(ct, lab)


def test_lesion_outside_bone_is_refused(tmp_path):
    """A lytic voxel two voxels away from any bone voxel is not part of the bone."""
    hu, labels = ct_and_labels()
    labels[0, 7, 0] = LYTIC
    ct, lab = write_pair(tmp_path, hu, labels, np.eye(4))
    with pytest.raises(BonefeError, match=r"lesion label outside the bone: 1 lesion region.*\(0\.0, 7\.0, 0\.0\) mm"):
        read_volume(ct, lab)


def test_uneven_dicom_slices_are_refused(tmp_path):
    """A series with a missing slice would be stretched by a single assumed spacing: refuse it."""
    hu = np.zeros((4, 4, 5), np.int16)
    write_dicom_series(tmp_path / "series", hu, np.diag([1.0, 1.0, 2.0, 1.0]))
    (tmp_path / "series" / "slice002.dcm").unlink()
    with pytest.raises(BonefeError, match="unevenly spaced"):
        read_image(tmp_path / "series")


needs_totalseg = pytest.mark.skipif(not TOTALSEG.is_dir(), reason=f"real data {TOTALSEG} not present (optional)")


@needs_totalseg
def test_real_jpeg2000_dicom_series():
    """Real clinical series (JPEG-2000 lossless, RescaleIntercept −1024): geometry against pydicom's reading of
    the headers (independent reader) and HU against physics: air ≈ −1000 HU, cortical bone > 1000 HU."""
    folder = TOTALSEG / "example_ct_dicom"
    array, affine = read_image(folder)
    assert array.shape == (512, 512, 20)
    headers = sorted((pydicom.dcmread(f, stop_before_pixels=True) for f in folder.iterdir()),
                     key=lambda d: float(d.ImagePositionPatient[2]))
    pixel = [float(v) for v in headers[0].PixelSpacing]
    gap = (float(headers[-1].ImagePositionPatient[2]) - float(headers[0].ImagePositionPatient[2])) / 19
    np.testing.assert_allclose(np.linalg.norm(affine[:3, :3], axis=0), [pixel[1], pixel[0], gap], rtol=1e-6)
    np.testing.assert_allclose(affine[:3, 3], [float(v) for v in headers[0].ImagePositionPatient], atol=1e-4)
    assert abs(pixel[0] - 0.977) < 1e-3
    air = np.percentile(array, 1)
    assert -1050 <= air <= -950 and array.max() > 1000


@needs_totalseg
def test_real_totalsegmentator_label_map():
    """TotalSegmentator v2 map: naming the vertebra ids (30 L2 … 33 T11) as bone gives exactly those voxels
    (count checked with nibabel) and vertebral HU in the range of trabecular + cortical bone (100–600 HU)."""
    seg = np.asarray(nib.load(TOTALSEG / "example_seg.nii.gz").dataobj)
    vertebrae = [30, 31, 32, 33]
    volume = read_volume(TOTALSEG / "example_ct_sm.nii.gz", TOTALSEG / "example_seg.nii.gz", {"bone": vertebrae})
    assert np.count_nonzero(volume.labels == BONE) == np.count_nonzero(np.isin(seg, vertebrae))
    assert not np.isin(volume.labels, [LYTIC, BLASTIC]).any()
    assert 100 < volume.hu[volume.labels == BONE].mean() < 600

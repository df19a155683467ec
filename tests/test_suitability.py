"""Scan suitability checks before meshing (bonefe.suitability).

Each check is run on a scan built to fail it and on one built to pass; the real abdomen CT
(../shared/data, skipped when absent) holds a hip implant (up to 3382 HU at the patient's left hip,
docs/real-data.md) that must be flagged for a bone beside it and not for the lumbar spine 10 cm
above it; its DICOM series names a soft kernel (Siemens Br38f, per its SOURCE.md), which must pass
without the name reaching the verdict.
"""

import numpy as np
import pytest
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.imaging import read_sitk, sitk_affine, sitk_array
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
from bonefe.suitability import (SuitabilityOptions, check_field_of_view, check_metal, check_scan, dicom_header,
                                is_sharp_kernel)
from bonefe.volume import Volume
from real_data import shared_data

DEFAULTS = SuitabilityOptions()


@pytest.fixture(scope="module")
def femur():
    volume, _ = make_phantom(PhantomSpec(voxel_mm=2.0, lesion_site=None))
    return volume


def test_kernel_names_by_vendor_convention():
    """Siemens B/Br < 50 smooth, ≥ 50 sharp; GE/Canon words; Canon FC ≥ 30; Philips letters."""
    for name in ("B30f", "Br38f", "B45f", "STANDARD", "SOFT", "FC08", "FC18", "B", "A", "I26f"):
        assert not is_sharp_kernel(name), name
    for name in ("B60f", "B70s", "Br64", "BONE", "BONEPLUS", "LUNG", "EDGE", "DETAIL", "FC30", "FC52", "D", "YC"):
        assert is_sharp_kernel(name), name


def test_thick_slices_are_refused_unless_overridden(femur):
    thick = Volume(hu=femur.hu[:, :, ::3], labels=femur.labels[:, :, ::3],
                   affine=femur.affine @ np.diag([1.0, 1.0, 3.0, 1.0]))
    with pytest.raises(BonefeError, match=r"\(slices\): slices 6 mm \(limit 3 mm\); set suitability.allow_thick_slices"):
        check_scan(thick, "ct.nii.gz", DEFAULTS)
    verdicts = check_scan(thick, "ct.nii.gz", SuitabilityOptions(allow_thick_slices=True))
    assert [v.passed for v in verdicts] == [False, True, True, True]


def test_a_cut_femoral_head_and_a_short_femur_are_refused(femur):
    assert check_field_of_view(femur, DEFAULTS).passed
    top = np.nonzero(femur.labels.any(axis=(0, 1)))[0].max()
    headless = Volume(hu=femur.hu[:, :, :top - 5], labels=femur.labels[:, :, :top - 5], affine=femur.affine)
    verdict = check_field_of_view(headless, DEFAULTS)
    assert not verdict.passed and "superior (head)" in verdict.finding
    circle = femur.hu.copy()
    bone_rows = np.nonzero(femur.labels.any(axis=(0, 2)))[0]
    circle[:, : bone_rows.min() + 1, :] = -3024.0   # padding outside the reconstruction circle, up to the bone
    clipped = check_field_of_view(Volume(hu=circle, labels=femur.labels, affine=femur.affine), DEFAULTS)
    assert not clipped.passed and "reconstruction-circle" in clipped.finding
    short = check_field_of_view(femur, SuitabilityOptions(min_length_mm=400.0))
    assert not short.passed and "long (at least 400 mm)" in short.finding


def test_metal_beside_the_bone_is_flagged_and_far_metal_is_not(femur):
    """A 4 mm metal sphere (3000 HU) 10 mm from the cortex is flagged; 60 mm away it is not."""
    assert check_metal(femur, DEFAULTS).passed
    bone = femur.labels > 0
    distance = ndimage.distance_transform_edt(~bone, sampling=2.0)
    for gap, flagged in ((10.0, True), (60.0, False)):
        candidates = np.argwhere(np.abs(distance - gap) < 1.0)
        assert len(candidates), gap
        hu = femur.hu.copy()
        centre = candidates[len(candidates) // 2]
        idx = np.indices(hu.shape).reshape(3, -1).T
        near = np.linalg.norm((idx - centre) * 2.0, axis=1) <= 4.0
        hu.reshape(-1)[near] = 3000.0
        verdict = check_metal(Volume(hu=hu, labels=femur.labels, affine=femur.affine), DEFAULTS)
        assert verdict.passed != flagged, (gap, verdict.finding)


def abdomen():
    folder = shared_data("ct-abdomen-totalsegmentator")
    image = read_sitk(folder / "example_ct.nii.gz")
    return sitk_array(image).astype(np.float32), sitk_affine(image), folder


def test_real_hip_implant_is_flagged_next_to_the_hip_not_next_to_the_spine():
    """Bone masks by threshold (200–2500 HU): the left hip region (lowest 20 slices, patient left,
    LPS x > 50 mm) is flagged; the spine (slices 70–111, |x| < 40 mm) is not (the implant lies
    ≥ 100 mm below it)."""
    hu, affine, _ = abdomen()
    x = affine[0, 3] + affine[0, 0] * np.arange(hu.shape[0])
    bony = (hu >= 200) & (hu < 2500)
    hip = bony.copy()
    hip[x <= 50.0] = False
    hip[:, :, 20:] = False
    spine = bony.copy()
    spine[np.abs(x) >= 40.0] = False
    spine[:, :, :70] = False
    near = check_metal(Volume(hu=hu, labels=hip.astype(np.uint8), affine=affine), DEFAULTS)
    assert not near.passed and "mm³ of metal" in near.finding
    with pytest.raises(BonefeError, match=r"\(metal\).*set suitability.allow_metal: true"):
        check_scan(Volume(hu=hu, labels=hip.astype(np.uint8), affine=affine), "ct.nii.gz",
                   SuitabilityOptions(allow_cut_bone=True))
    far = check_metal(Volume(hu=hu, labels=spine.astype(np.uint8), affine=affine), DEFAULTS)
    assert far.passed and "farther away" in far.finding


def test_real_dicom_kernel_is_read_and_only_the_verdict_is_kept():
    _, _, folder = abdomen()
    kernel, thickness = dicom_header(folder / "example_ct_dicom")
    assert thickness == pytest.approx(3.0)
    assert kernel is not None and not is_sharp_kernel(kernel)
    from bonefe.suitability import check_kernel
    verdict = check_kernel(kernel)
    assert verdict.passed and kernel.strip() not in verdict.finding

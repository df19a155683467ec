"""DICOM folder hygiene (bonefe.dicom_series): which series is read, and which are refused.

References: DICOM PS3.3 (C.7.3.1 Modality, C.8.2.1.1.1 ImageType LOCALIZER, C.11.1.1.2 rescale,
C.8.2.1 GantryDetectorTilt, C.8.15 Enhanced CT); the HU read back against the values written.
Every message must be one line without the planted patient identifiers or any UID.
"""

import numpy as np
import pytest

from bonefe.errors import BonefeError
from bonefe.imaging import read_image, write_image
from bonefe.validation.synthetic_dicom import IDENTIFIERS, read_identifiers, write_series, write_slice

SHAPE = (6, 5, 4)


def hu(offset: float = 0.0) -> np.ndarray:
    return (np.arange(np.prod(SHAPE)).reshape(SHAPE) * 7 - 300 + offset).astype(np.int16)


def refused(match: str, path, series=None, forbidden=()) -> str:
    """read_image(path) refused with a one-line message matching `match`, free of identifiers."""
    with pytest.raises(BonefeError, match=match) as error:
        read_image(path, series) if series is not None else read_image(path)
    message = str(error.value)
    assert "\n" not in message
    assert not any(v in message for v in (*IDENTIFIERS.values(), *forbidden)), message
    return message


def test_a_single_series_reads_hu_and_geometry(tmp_path):
    write_series(tmp_path / "s", hu())
    array, affine = read_image(tmp_path / "s")
    np.testing.assert_array_equal(array, hu())
    np.testing.assert_allclose(np.linalg.norm(affine[:3, :3], axis=0), [0.7, 0.8, 2.0], atol=1e-4)
    assert read_identifiers(next((tmp_path / "s").iterdir())) == "DOE^JANE"  # planted, never returned


def test_several_series_are_listed_and_one_is_chosen(tmp_path):
    """Two CT series (numbers 3 and 5) in one folder: refused with a listing (number, modality, slice
    count and thickness; no UID and no free-text description, which may hold a name); chosen by number
    or by UID, the right HU come back."""
    thin = write_series(tmp_path / "f", hu(), number=3, description="Bone 1.0 B60s")
    thick = write_series(tmp_path / "f", hu(500), number=5, description="Soft^Tissue 5.0 <B30f>")
    message = refused(r"holds 2 DICOM series \(number 3: CT, 4 slice\(s\) of [0-9.]+ mm; "
                      r"number 5: CT, 4 slice\(s\) of [0-9.]+ mm\).*ct_series", tmp_path / "f",
                      forbidden=(thin, thick))
    assert "Bone" not in message and "Soft" not in message
    np.testing.assert_array_equal(read_image(tmp_path / "f", 5)[0], hu(500))
    np.testing.assert_array_equal(read_image(tmp_path / "f", thin)[0], hu())
    refused(r"ct_series 7 is not a series of this folder", tmp_path / "f", 7, forbidden=(thin, thick))


def test_localizers_are_left_out(tmp_path):
    """A scout (ImageType LOCALIZER, coronal, other size) with the CT's own series UID is ignored."""
    uid = write_series(tmp_path / "f", hu())
    write_slice(tmp_path / "f" / "scout.dcm", np.zeros((9, 11), np.int16), (0.0, 0.0, 0.0), (1.0, 1.0), 1.0,
                uid, 3, "Topogram", 99, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                orientation=(1.0, 0.0, 0.0, 0.0, 0.0, -1.0))
    np.testing.assert_array_equal(read_image(tmp_path / "f")[0], hu())


@pytest.mark.parametrize("faults, match", [
    ({"modality": "MR"}, r"modality MR, not CT"),
    ({"no_rescale": True}, r"without RescaleSlope/RescaleIntercept.*not\s+Hounsfield"),
    ({"shear_mm": 0.5}, r"sheared \(gantry tilt 14\.0°\).*not orthogonal"),
    ({"tilt_tag": 12.0}, r"sheared \(gantry tilt 12\.0°\)"),
    ({"thickness": [2.0, 2.0, 5.0, 2.0]}, r"slice thickness varies within the series \(2–5 mm"),
    ({"orientation": (1.0, 0.0, 0.0, 0.1, 1.0, 0.0)},
     r"not unit vectors at right angles \(\|row\| 1, \|column\| 1\.005, row·column 0\.1\)"),
    ({"orientation": (1.0, 0.0, 0.0, 0.0, 0.9, 0.0)}, r"\|column\| 0\.9, row·column 0\)"),
])
def test_unsuitable_series_are_refused(tmp_path, faults, match):
    """Gantry tilt by shear: 0.5 mm lateral per 2 mm slice is atan(0.5/2) = 14.0°. Orientation
    cosines (1, 0, 0) and (0.1, 1, 0): |column| = √1.01 = 1.005, row·column = 0.1."""
    uid = write_series(tmp_path / "f", hu(), **faults)
    refused(match, tmp_path / "f", forbidden=(uid,))


def test_enhanced_multiframe_ct_is_refused(tmp_path):
    (tmp_path / "f").mkdir()
    write_slice(tmp_path / "f" / "mf.dcm", hu()[:, :, 0].T, (0.0, 0.0, 0.0), (0.7, 0.8), 2.0, "1.2.3.4", 2,
                "Enhanced", 1, frames=4)
    refused(r"enhanced \(multi-frame\) CT object is not supported", tmp_path / "f")


def test_truncated_slice_is_refused(tmp_path):
    """The last 30 bytes of one uncompressed slice cut off: its pixel data is shorter than declared."""
    write_series(tmp_path / "f", hu())
    victim = sorted((tmp_path / "f").iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:-30])
    refused(r"damaged or incomplete file \(slice 3 (holds|cannot be read)", tmp_path / "f")


def test_a_series_choice_for_an_image_file_is_refused(tmp_path):
    write_image(tmp_path / "ct.nii.gz", hu(), np.eye(4))
    refused(r"ct_series names a DICOM series, but this is a file", tmp_path / "ct.nii.gz", 3)

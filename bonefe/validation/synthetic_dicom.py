"""Small synthetic CT series written with pydicom, one file per slice, with any header fault wanted
(for tests and the robustness corpus, `bonefe.validation.robustness`).

Reference for the tags: DICOM PS3.3 C.7.6.2 (ImagePositionPatient, ImageOrientationPatient,
PixelSpacing), C.11.1.1.2 (stored · RescaleSlope + RescaleIntercept = HU), C.8.2.1 (CT image).
Every series carries planted identifiers (PatientName, PatientID, BirthDate) so that tests can
check that none ever reaches a message or output.
"""

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

IDENTIFIERS = {"PatientName": "DOE^JANE", "PatientID": "PID-98765", "PatientBirthDate": "19470203"}
INTERCEPT = -1024.0


def write_series(folder: Path, hu: np.ndarray, spacing=(0.7, 0.8, 2.0), origin=(-50.0, 20.0, -300.0),
                 number: int = 3, description: str = "Bone 1.0 B60s", uid: str | None = None,
                 **faults) -> str:
    """Write hu[i, j, k] as slices k (stored = HU − INTERCEPT) into `folder`; returns the
    SeriesInstanceUID. faults: modality, no_rescale, shear_mm (in-plane x shift per slice, a gantry
    tilt), tilt_tag (GantryDetectorTilt, degrees), thickness (list per slice), image_type, orientation
    (the six ImageOrientationPatient cosines)."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = uid or generate_uid()
    for k in range(hu.shape[2]):
        position = np.array(origin) + [faults.get("shear_mm", 0.0) * k, 0.0, spacing[2] * k]
        thickness = faults.get("thickness", [spacing[2]] * hu.shape[2])[k]
        write_slice(folder / f"{uid[-6:]}-{k:03d}.dcm", hu[:, :, k].T, position, spacing[:2], thickness, uid,
                    number, description, k + 1, **{key: v for key, v in faults.items()
                                                   if key in ("modality", "no_rescale", "tilt_tag", "image_type",
                                                              "orientation")})
    return uid


def write_slice(path: Path, rows_cols: np.ndarray, position, pixel_spacing, thickness, series_uid: str,
                number: int, description: str, instance: int, modality: str = "CT", no_rescale: bool = False,
                tilt_tag: float | None = None, image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
                orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), frames: int | None = None) -> None:
    """One CT slice (rows = j, columns = i) with the given geometry and header."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    for key, value in IDENTIFIERS.items():
        setattr(ds, key, value)
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = modality, series_uid, "1.2.826.0.1.3680043.2.1125.9"
    ds.SeriesNumber, ds.SeriesDescription, ds.InstanceNumber = number, description, instance
    ds.ImageType = list(image_type)
    ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    ds.PixelSpacing = [f"{pixel_spacing[1]:.4f}", f"{pixel_spacing[0]:.4f}"]  # row spacing (j), column spacing (i)
    ds.SliceThickness = f"{thickness:.4f}"
    if tilt_tag is not None:
        ds.GantryDetectorTilt = f"{tilt_tag:.2f}"
    if not no_rescale:
        ds.RescaleIntercept, ds.RescaleSlope = f"{INTERCEPT:g}", "1"
    frames_data = np.repeat(rows_cols[None], frames or 1, axis=0)
    if frames:
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows_cols.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = (frames_data - INTERCEPT).astype("<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def read_identifiers(path: Path) -> str:
    """The planted PatientName of a written slice (to prove the identifiers were there)."""
    return str(pydicom.dcmread(path, stop_before_pixels=True).PatientName)

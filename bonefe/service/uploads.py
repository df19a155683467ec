"""Uploaded CT and label map -> de-identified NIfTI files, refusing unsafe or unusable uploads.

Everything happens in memory; only the clean images reach disk. A CT comes as a zip of one DICOM
series or as NIfTI (.nii, .nii.gz); the label map as NIfTI (3D Slicer, TotalSegmentator).

De-identification (DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile): private
tags go, and of the public attributes only the image geometry and pixel data listed in
`GEOMETRY_KEEP` survive (the profile's "X"/"Z"/"D" actions for every identifying attribute are
subsumed by keeping none of them); series with burned-in annotation are refused (the profile's
"Clean Pixel Data" option is not offered). The NIfTI written carries only pixels and the affine:
no description, intent or auxiliary text of the uploaded file.
"""

import io
import zipfile
import zlib
from pathlib import PurePosixPath

import nibabel as nib
import numpy as np
import pydicom

MAX_ARCHIVE_MEMBERS = 5000
MAX_EXPANSION = 200  # largest uncompressed/compressed ratio of an archive member or gzip stream
GEOMETRY_KEEP = frozenset({
    "Modality", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
    "BitsStored", "HighBit", "PixelRepresentation", "PixelSpacing", "SliceThickness",
    "ImagePositionPatient", "ImageOrientationPatient", "RescaleSlope", "RescaleIntercept", "PixelData",
})


class UploadError(ValueError):
    """An upload the service cannot use; the message says what is wrong in plain words."""


def ct_image(name: str, data: bytes, max_bytes: int) -> nib.Nifti1Image:
    """The CT of an upload (DICOM zip or NIfTI) as a clean NIfTI image in HU."""
    if name.lower().endswith(".zip"):
        return _dicom_series(_zip_members(data, max_bytes))
    return nifti_image(name, data, max_bytes, "CT")


def nifti_image(name: str, data: bytes, max_bytes: int, what: str) -> nib.Nifti1Image:
    """A NIfTI upload re-made with its pixels and affine only."""
    lower = name.lower()
    if not (lower.endswith(".nii") or lower.endswith(".nii.gz")):
        raise UploadError(f"the {what} file {name!r} is not NIfTI (.nii or .nii.gz)"
                          + (" or a zip of DICOM files" if what == "CT" else ""))
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, max_bytes)
    try:
        image = nib.Nifti1Image.from_bytes(data)
        pixels = np.asanyarray(image.dataobj)
    except Exception:
        raise UploadError(f"the {what} file {name!r} cannot be read as NIfTI: export it again") from None
    if pixels.ndim != 3:
        raise UploadError(f"the {what} file {name!r} is not a 3D volume (it has {pixels.ndim} dimensions)")
    return clean_image(pixels, image.affine)


def clean_image(pixels: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """A NIfTI image of pixels and affine (RAS, mm) with nothing else in its header."""
    image = nib.Nifti1Image(pixels, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return image


def check_same_grid(ct: nib.Nifti1Image, labels: nib.Nifti1Image) -> None:
    """Refuse a label map that is not on the CT's voxel grid (size and position within 0.01 mm)."""
    if ct.shape != labels.shape:
        raise UploadError(f"the label map ({'×'.join(map(str, labels.shape))} voxels) does not match the CT "
                          f"({'×'.join(map(str, ct.shape))} voxels): segment this CT series and upload both again")
    if not np.allclose(ct.affine, labels.affine, atol=1e-2):
        raise UploadError("the label map is not in the same position as the CT: "
                          "segment this CT series and upload both again")
    values = np.asanyarray(labels.dataobj)
    if not np.issubdtype(values.dtype, np.integer) and not np.array_equal(values, np.round(values)):
        raise UploadError("the label map holds fractional values: upload the segmentation's label map, not an image")


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    """Decompress gzip data, refusing more than max_bytes or MAX_EXPANSION × the input (a gzip bomb)."""
    limit = min(max_bytes, MAX_EXPANSION * len(data))
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = stream.decompress(data, limit + 1)
    except zlib.error:
        raise UploadError("the .gz file is damaged: export it again") from None
    if len(out) > limit:
        raise UploadError("the compressed file expands to more than the upload limit: refused")
    return out


def _zip_members(data: bytes, max_bytes: int) -> list[bytes]:
    """The files of a zip archive, checked for path traversal, links and archive bombs first."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except zipfile.BadZipFile:
        raise UploadError("the CT archive is not a valid zip file") from None
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise UploadError(f"the CT archive holds {len(infos)} files; at most {MAX_ARCHIVE_MEMBERS} are accepted")
    total = 0
    for info in infos:
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or ":" in info.filename:
            raise UploadError(f"the CT archive has an unsafe file name ({info.filename!r}): refused")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise UploadError("the CT archive contains a symbolic link: refused")
        total += info.file_size
        if total > max_bytes or info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
            raise UploadError("the CT archive expands to more than the upload limit: refused")
    members = []
    for info in infos:
        with archive.open(info) as f:
            content = f.read(info.file_size + 1)
        if len(content) > info.file_size:
            raise UploadError("the CT archive lies about its file sizes: refused")
        members.append(content)
    return members


def deidentify(dataset: pydicom.Dataset) -> pydicom.Dataset:
    """The dataset with private tags and every public attribute outside GEOMETRY_KEEP removed."""
    if str(dataset.get("BurnedInAnnotation", "")).upper() == "YES":
        raise UploadError("the CT series has burned-in annotation (text in the pixels); "
                          "upload a series without it")
    dataset.remove_private_tags()
    for element in list(dataset):
        if element.keyword not in GEOMETRY_KEEP:
            del dataset[element.tag]
    syntax = dataset.file_meta.get("TransferSyntaxUID")
    dataset.file_meta = pydicom.dataset.FileMetaDataset()
    if syntax:
        dataset.file_meta.TransferSyntaxUID = syntax  # how the pixels are encoded; identifies nobody
    return dataset


def _dicom_series(members: list[bytes]) -> nib.Nifti1Image:
    """One CT volume (HU, RAS affine) from the DICOM files of an archive; other files are ignored."""
    slices = []
    for content in members:
        try:
            dataset = pydicom.dcmread(io.BytesIO(content), force=False)
        except Exception:
            continue  # not DICOM (a DICOMDIR index, a readme): skipped
        if "PixelData" in dataset and "ImagePositionPatient" in dataset:
            slices.append(deidentify(dataset))
    if len(slices) < 3:
        raise UploadError("the CT archive does not hold a DICOM series (fewer than 3 image slices found)")
    if any(str(s.get("Modality", "CT")) != "CT" for s in slices):
        raise UploadError("the archive holds images that are not CT: upload one CT series only")
    orientation = np.array(slices[0].ImageOrientationPatient, dtype=float)
    row, column = orientation[:3], orientation[3:]
    normal = np.cross(row, column)
    slices.sort(key=lambda s: float(np.dot(normal, np.array(s.ImagePositionPatient, dtype=float))))
    positions = np.array([s.ImagePositionPatient for s in slices], dtype=float)
    steps = np.diff(positions @ normal)
    if np.any(steps < 1e-3) or np.ptp(steps) > 0.01 * steps.mean() + 1e-3:
        raise UploadError("the CT archive holds more than one series or missing slices: "
                          "upload exactly one complete CT series")
    try:
        pixels = np.stack([s.pixel_array * float(s.get("RescaleSlope", 1)) + float(s.get("RescaleIntercept", 0))
                           for s in slices]).astype(np.float32)
    except Exception:
        raise UploadError("the CT slices cannot be decoded (unsupported compression or unequal sizes)") from None
    row_spacing, column_spacing = (float(v) for v in slices[0].PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0] = row * column_spacing
    lps[:3, 1] = column * row_spacing
    lps[:3, 2] = (positions[-1] - positions[0]) / (len(slices) - 1)
    lps[:3, 3] = positions[0]
    return clean_image(pixels.transpose(2, 1, 0), np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps)

"""File integrity: is every byte an image file's header promises actually there?

ITK's readers fill a truncated file's missing voxels with 0 and ignore a gzip stream that ends early,
so a damaged transfer would be read as a plausible-looking CT (issue 15: the first 20 kB of a 330 kB
.nii.gz gave "failure load 0.29 kN, high risk"). Before ITK reads a file, this module

- reads every gzip stream to its end, which verifies its CRC-32 and length trailer (RFC 1952 §2.3.1),
- compares the data size the header declares with the data present: NIfTI-1/-2 (dim, bitpix,
  vox_offset: NIfTI-1 standard, nifti1.h; NIfTI-2, nifti2.h), NRRD (sizes, type, encoding, data
  file: NRRD0005 format definition, teem.sourceforge.net/nrrd/format.html), MetaImage (DimSize,
  ElementType, ElementNumberOfChannels, ElementDataFile, CompressedData: ITK MetaIO documentation),
- and, for DICOM, each slice's uncompressed pixel data length against Rows × Columns × bits ×
  samples × frames (PS3.5 §8.1.1; compressed slices are checked by their decoder).

Any mismatch is a BonefeError naming the file. Only sizes are read from headers.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from bonefe.errors import BonefeError

CHUNK = 1 << 20
"""Bytes decompressed at a time (bytes)."""

NRRD_BYTES = {
    1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"),
    2: ("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
        "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"),
    8: ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
        "int64_t", "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t",
        "double"),
}
"""Bytes per sample of each NRRD `type` spelling (NRRD0005 format definition)."""

META_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
              "MET_DOUBLE": 8}
"""Bytes per sample of each MetaImage ElementType (ITK MetaIO, metaTypes.h)."""


def _damaged(path: Path, what: str) -> BonefeError:
    return BonefeError(f"{path}: damaged or incomplete file ({what}); transfer or export it again")


def _gunzip(path: Path, data: bytes | None = None) -> bytes:
    """The whole decompressed content of a gzip file (or of `data`), its CRC and length verified."""
    try:
        return gzip.decompress(data) if data is not None else _gunzip_file(path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise _damaged(path, f"gzip stream: {str(error).rstrip('.').lower()}") from None


def _gunzip_file(path: Path) -> bytes:
    parts = []
    with gzip.open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            parts.append(chunk)
    return b"".join(parts)


def _content(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (magic 1f 8b)."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    return _gunzip(path) if magic == b"\x1f\x8b" else path.read_bytes()


def _check_length(path: Path, present: int, declared: int, where: str) -> None:
    if present != declared:
        raise _damaged(path, f"{where} holds {present} bytes of image data, its header declares {declared}")


def check_nifti(path: Path) -> None:
    """NIfTI-1 or -2 (.nii, .nii.gz): vox_offset + product of dims × bitpix/8 == bytes present."""
    content = _content(path)
    for order in "<>":
        size = struct.unpack(order + "i", content[:4].ljust(4, b"\0"))[0]
        if size in (348, 540):
            break
    else:
        return  # not a NIfTI header: ITK's reader refuses it
    if len(content) < size:
        raise _damaged(path, f"NIfTI header incomplete ({len(content)} of {size} bytes)")
    if size == 348:
        dims = struct.unpack(order + "8h", content[40:56])
        bitpix = struct.unpack(order + "h", content[72:74])[0]
        offset = int(struct.unpack(order + "f", content[108:112])[0])
    else:
        bitpix = struct.unpack(order + "h", content[14:16])[0]
        dims = struct.unpack(order + "8q", content[16:80])
        offset = struct.unpack(order + "q", content[168:176])[0]
    if not 1 <= dims[0] <= 7 or bitpix <= 0 or bitpix % 8:
        raise _damaged(path, f"NIfTI header has dim[0] = {dims[0]}, bitpix = {bitpix}")
    declared = int(np.prod(dims[1:dims[0] + 1], dtype=np.int64)) * bitpix // 8
    _check_length(path, len(content) - max(offset, size), declared, "the file")


def _header(content: bytes, end: int) -> tuple[list[str], int]:
    """The text lines before byte `end` (−1: the whole content) and the offset after it."""
    end = len(content) if end < 0 else end
    return content[:end].decode("latin-1").splitlines(), end


def check_nrrd(path: Path) -> None:
    """NRRD (.nrrd, .nhdr): sizes × bytes of `type` == data present (raw or gzip, attached or in one
    detached file); line/byte skips and multi-file data are left to ITK."""
    content = path.read_bytes()
    if not content.startswith(b"NRRD"):
        raise _damaged(path, "no NRRD magic")
    blank = content.find(b"\n\n")
    lines, start = _header(content, blank)
    start += 2
    fields = {}
    for line in lines[1:]:
        if ": " in line and not line.startswith("#"):
            key, value = line.split(": ", 1)
            fields[key.strip().lower()] = value.strip()
    if any(k in fields for k in ("line skip", "lineskip", "byte skip", "byteskip")):
        return
    sizes = [int(v) for v in fields.get("sizes", "").split()]
    kind = fields.get("type", "").lower()
    width = next((n for n, names in NRRD_BYTES.items() if kind in names), None)
    encoding = fields.get("encoding", "").lower()
    if not sizes or width is None or encoding not in ("raw", "gzip", "gz"):
        return  # ascii/hex/bzip2 or an exotic type: ITK's parser decides
    detached = fields.get("data file", fields.get("datafile"))
    if detached is not None and (" " in detached or detached.upper().startswith("LIST")):
        return
    source = path.parent / detached if detached else path
    if detached and not source.is_file():
        raise BonefeError(f"{path}: its data file {detached} is missing; keep header and data together")
    data = source.read_bytes() if detached else content[start:]
    if encoding != "raw":
        data = _gunzip(source, data)
    _check_length(path, len(data), int(np.prod(sizes, dtype=np.int64)) * width, "the image data")


def check_metaimage(path: Path) -> None:
    """MetaImage (.mha, .mhd): DimSize × channels × bytes of ElementType == data present (raw or
    zlib-compressed, in the file or one detached file); lists and patterns are left to ITK."""
    content = path.read_bytes()
    marker = content.find(b"ElementDataFile")
    if marker < 0:
        raise _damaged(path, "MetaImage header without ElementDataFile")
    lines, start = _header(content, content.find(b"\n", marker))
    start += 1
    fields = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in lines) if v}
    sizes = [int(v) for v in fields.get("DimSize", "").split()]
    width = META_BYTES.get(fields.get("ElementType", ""))
    source = fields["ElementDataFile"]
    if not sizes or width is None or source.upper().startswith("LIST") or "%" in source:
        return
    if source.upper() == "LOCAL":
        data = content[start:]
    else:
        detached = path.parent / source
        if not detached.is_file():
            raise BonefeError(f"{path}: its data file {source} is missing; keep header and data together")
        data = detached.read_bytes()[int(fields.get("HeaderSize", 0) or 0):]
    if fields.get("CompressedData", "False").lower() == "true":
        try:
            data = zlib.decompress(data)
        except zlib.error as error:
            raise _damaged(path, f"zlib data: {error}") from None
    channels = int(fields.get("ElementNumberOfChannels", 1))
    _check_length(path, len(data), int(np.prod(sizes, dtype=np.int64)) * width * channels, "the image data")


CHECKS = {".nii.gz": check_nifti, ".nii": check_nifti, ".nrrd": check_nrrd, ".nhdr": check_nrrd,
          ".mha": check_metaimage, ".mhd": check_metaimage}
"""The integrity check of each file ending read (`bonefe.imaging.IMAGE_IO`)."""


def check_image_file(path: Path, suffix: str) -> None:
    """Refuse a damaged or truncated image file (module docstring) before it is read."""
    CHECKS[suffix](Path(path))


def check_dicom_pixel_length(folder: Path, index: int, file: Path) -> None:
    """Refuse a DICOM slice (number `index` of the series in `folder`) whose uncompressed pixel data
    is shorter than Rows × Columns × BitsAllocated/8 × SamplesPerPixel × NumberOfFrames; compressed
    (encapsulated) pixel data is left to its decoder, which fails on damage. The message names the
    folder and slice number only: DICOM file names are often UIDs."""
    import pydicom

    try:
        dataset = pydicom.dcmread(file)
        if "PixelData" not in dataset or dataset.file_meta.TransferSyntaxUID.is_compressed:
            return
        declared = (int(dataset.Rows) * int(dataset.Columns) * int(dataset.BitsAllocated) // 8
                    * int(dataset.get("SamplesPerPixel", 1)) * int(dataset.get("NumberOfFrames", 1) or 1))
        present = len(dataset.PixelData)
    except (EOFError, OSError, ValueError, AttributeError):
        raise _damaged(folder, f"slice {index + 1} cannot be read to its end") from None
    if present < declared:
        raise _damaged(folder, f"slice {index + 1} holds {present} bytes of pixel data, its header declares {declared}")

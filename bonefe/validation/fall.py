"""Sideways fall: bonefe's fall strength against cadaver sideways-fall tests.

Set-up: `bonefe.sites.femur.fall` (the head loaded through the acetabulum, the greater trochanter supported, the
distal cut pinned) over its 3 × 3 grid of directions (shaft tilt and internal rotation 10–30°), on
the procedural phantom femur (`bonefe.sites.femur.phantom`, no lesion) with the neck cortex of a
woman of DONOR_AGE years, the cadaver donors' age (Poole et al. 2010, `PhantomSpec.age_years`), and,
with `--femur-surface`, on the
proximal 200 mm of a real femur surface turned into a CT-like volume (`bonefe.sites.femur.surface_phantom`),
each meshed like the pipeline does. The fall strength is the weakest direction's failure load.
The supports themselves are checked by statics on a tube in tests/test_fall.py (trochanter reaction
by moments about the pin, within 1 %).

Published cadaver tests, femora loaded on the head with the trochanter on a pad, shaft 10° to the
ground, 15° internal rotation, distal end pinned (mean ± SD of the failure load): Courtney et al.
1995 (J Bone Joint Surg Am 77:387) 3.44 ± 1.33 kN in elderly femora (mean age 74) and 7.20 ± 1.09 kN in
young ones (mean age 33), from memory of the paper and still unconfirmed. A search of stored pages
on 2026-12-01 found neither the paper nor its abstract. Eckstein et al. 2004 (J Bone Miner Res 19:379,
doi:10.1359/JBMR.0301247) is confirmed from its abstract, re-read on 2026-12-01: 3951 ± 1659 N
(right) and 3900 ± 1652 N (left), 54 pairs, donors 79.0 ± 10.6 years. The check asks the fall
strength to lie within the range these span at ± 2 SD. Impact direction: Pinilla et al. 1996
(Calcif Tissue Int 58:231) found the failure load 24 % lower at 30° than at 0° of internal rotation.
This is from memory and still unconfirmed: the same search did not find the paper. bonefe's strength
from 10° to 30° (tilt 10°) is reported beside it (a different span, so not asserted).
"""

from __future__ import annotations

from pathlib import Path

from bonefe.sites.femur.anatomy import boundary_tags
from bonefe.assessment import RiskOptions
from bonefe.sites.femur.fall import FallDirection, fall_strength
from bonefe.materials import MaterialOptions, cell_material, lesion_map
from bonefe.meshing import mesh_bone
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom, neck_cortex_at
from bonefe.validation.checks import Check, Section
from bonefe.validation.femur import COMM
from bonefe.validation.neck import proximal_part

CADAVER = (("Courtney et al. 1995, elderly", 3440.0, 1330.0), ("Courtney et al. 1995, young", 7200.0, 1090.0),
           ("Eckstein et al. 2004", 3951.0, 1659.0))
"""Sideways-fall failure loads of cadaver femora: (study, mean N, SD N)."""
RANGE_N = (min(m - 2 * s for _, m, s in CADAVER), max(m + 2 * s for _, m, s in CADAVER))
"""The published range at ± 2 SD: 633–9380 N."""
PINILLA_DROP = 0.24
"""Failure-load drop from 0° to 30° internal rotation (Pinilla et al. 1996)."""
DONOR_AGE = 75.0
"""Age (years) of the phantom checked against the cadaver range: the donors' (Courtney et al. 1995 elderly 74,
Eckstein et al. 2004 79 ± 11)."""
AGES = (None, 25.0, 65.0, DONOR_AGE, 85.0)
"""Neck cortices whose fall strength the section reports (None: the default uniform 3 mm cortex)."""
FULL = {"voxel": 1.0, "size": 3.0}
QUICK = {"voxel": 1.5, "size": 5.0}


def femur_fall(volume, frame, size_mm: float, comm=COMM) -> list[FallDirection]:
    """The fall directions' failure loads of a femur volume meshed at size_mm like the pipeline."""
    bone = mesh_bone(volume, size_mm, comm)
    cells = cell_material(bone.mesh, volume, MaterialOptions())
    tags = boundary_tags(bone.mesh, frame)
    return fall_strength(bone.mesh, tags, cells.E, cells.label, MaterialOptions().poisson, frame, RiskOptions(),
                         lesion=lesion_map(volume))


def real_femur(outer: Path, inner: Path | None):
    """The proximal 200 mm of a real femur surface as a volume, and its frame."""
    from bonefe.sites.femur.anatomy import femur_frame
    from bonefe.sites.femur.surface_phantom import SurfaceSpec, make_surface_phantom

    phantom = make_surface_phantom(SurfaceSpec(outer=Path(outer), inner=None if inner is None else Path(inner)))
    volume = proximal_part(phantom.volume, phantom.frame.head_centre)
    return volume, femur_frame(volume, "left")


def rotation_drop(directions: list[FallDirection], tilt_deg: float = 10.0) -> float:
    """1 − strength at 30° / at 10° internal rotation, at the given tilt."""
    at = {d.rotation_deg: d.failure_load_n for d in directions if d.tilt_deg == tilt_deg}
    return 1.0 - at[30.0] / at[10.0]


def _checks(name: str, directions: list[FallDirection], mesh: str) -> list[Check]:
    strength = min(d.failure_load_n for d in directions)
    low, high = RANGE_N
    outside = max(low - strength, strength - high, 0.0)
    sources = "; ".join(f"{s} {m / 1000:.2f} ± {sd / 1000:.2f} kN" for s, m, sd in CADAVER)
    return [
        Check(f"{name}: fall strength (N) within the cadaver range", strength, 0.5 * (low + high), outside, 0.0,
              mesh, sources, f"N outside {low:.0f}–{high:.0f} N"),
        Check(f"{name}: strength drop from 10° to 30° internal rotation", rotation_drop(directions), PINILLA_DROP,
              abs(rotation_drop(directions) - PINILLA_DROP), None, mesh,
              "Pinilla et al. 1996 (0° to 30°, from memory)", "|predicted − published| (reported, not asserted)"),
    ]


def _rows(name: str, directions: list[FallDirection]) -> list[str]:
    return [f"| {name} | {d.tilt_deg:g} | {d.rotation_deg:g} | {d.failure_load_n:.0f} | {d.mode} |"
            for d in directions]


def fall_section(quick: bool, surface: tuple[Path, Path | None] | None = None) -> Section:
    """Fall strength of the phantom (and of a real femur, given its surface files)."""
    setup = QUICK if quick else FULL
    mesh = f"P1, {setup['size']:g} mm"
    by_age = {age: femur_fall(*make_phantom(PhantomSpec(lesion_site=None, voxel_mm=setup["voxel"], age_years=age)),
                              setup["size"]) for age in AGES}
    phantom = by_age[DONOR_AGE]
    table = ["| bone | tilt (°) | internal rotation (°) | failure load (N) | mode |", "|---|---|---|---|---|"]
    table += _rows(f"procedural phantom, {DONOR_AGE:g} years", phantom)
    checks = _checks(f"phantom at {DONOR_AGE:g} years", phantom, mesh)
    if surface is not None:
        real = femur_fall(*real_femur(*surface), setup["size"])
        table += _rows(f"real femur {Path(surface[0]).name}", real)
        checks += _checks("real femur", real, mesh)
    text = (__doc__.split("\n\n", 1)[1].strip() + "\n\n" + "\n".join(table) + "\n\n" + _age_table(by_age)
            + "\n\n" + PHANTOM_NOTE)
    return Section("Sideways fall: fall strength against cadaver tests", text, checks)


def _age_table(by_age: dict) -> str:
    """The phantom's fall strength for each neck cortex of AGES."""
    rows = ["| phantom neck cortex (superior / inferior, mm) | fall strength (N) | weakest direction (tilt, rotation) |",
            "|---|---|---|"]
    for age, directions in by_age.items():
        cortex = "uniform 3.0 (default)" if age is None else "{:.2f} / {:.2f} at {:g} years".format(
            *neck_cortex_at(age), age)
        weakest = min(directions, key=lambda d: d.failure_load_n)
        rows.append(f"| {cortex} | {weakest.failure_load_n:.0f} | {weakest.tilt_deg:g}°, {weakest.rotation_deg:g}° |")
    return "\n".join(rows)


PHANTOM_NOTE = (
    "The superior neck cortex, the region a sideways fall compresses most (Mayhew et al. 2005, Lancet 366:129), "
    "sets the fall strength: with the default uniform 3 mm neck cortex the phantom (dense, young-like) lies "
    "above every cadaver range; thinned as in women of the donors' age it lies within it. Only the neck cortex "
    "ages here; the trabecular bone stays the default's, which keeps the aged phantom above the elderly means. "
    "The weakest fall direction is the most internally rotated on the phantom and the real femur, as Pinilla "
    "et al. 1996 found in cadavers.")

"""Mesh convergence on the phantom femur: stance failure load and peak strain against element size.

The default size (`bonefe.case.MeshOptions().size_mm`) should give a failure load within 2 % of the
finest mesh. The full set adds a femur whose failure the lesion governs (LESION: a 20 mm lytic lesion
through the inferomedial neck cortex, the demo's lesion); its default-size failure load should lie
within 5 % of the finest mesh's (LESION_BOUND). Each size is a separate `bonefe.meshing.mesh_bone` mesh of the same phantom CT
(lesion and thin-cortex refinement as in the pipeline: lesion_size = cortex_size = size / 2).

What still moves with the mesh (REMAINDER) was measured while building this study (session 3 of
issue #7) and is not rerun here.
"""

from __future__ import annotations

import numpy as np

from bonefe.case import MeshOptions
from bonefe.nonlocal_strain import DEFAULT_RADIUS_MM
from bonefe.sites.femur.phantom import DEMO_LESION, PhantomSpec, make_phantom
from bonefe.validation.checks import Check, Section
from bonefe.validation.femur import COMM, femur
from bonefe.validation.plots import line_plot
from bonefe.volume import LESION_LABELS

FULL = {"spec": PhantomSpec(), "sizes": (6.0, 4.5, 3.0, 2.25, 1.75, 1.4, 1.1)}
QUICK = {"spec": PhantomSpec(voxel_mm=1.5), "sizes": (6.0, 4.5)}
DEFAULT_BOUND = 0.02
"""The default size's failure load must lie within 2 % of the finest mesh's (issue #7)."""
REMAINDER = """\
Why failure is read at the lattice points inside the bone. Until session 4 of issue #7 every bin
holding any bone was evaluated, including bins cut by the surface whose centre lies outside it.
Such a bin's sphere reaches only the outermost bone, and which of them hold bone, and how little,
depends on how deep the cells' quadrature points reach, deeper on a coarse mesh. The failure load
then fell by about 3 % per refinement (3 mm: +6.8 % against 1.1 mm; the failing bin held 8 % bone
at 1.4 mm, 51 % at 4.5 mm), a trend that survived a femur without lesion and with one modulus,
P2 on straight and on curved tetrahedra, 0.7 and 1.5 mm voxels and a wider lesser-trochanter
fillet. Read at the points inside the bone, it no longer trends. What is left is a scatter of a
few per cent from mesh to mesh, not a drift: at the failure site the failure index changes by
about 4 % per millimetre into the bone, and each mesh's surface (remeshed at its own size) lies a
few tenths of a millimetre differently, which moves the outermost lattice points in or out of the
bone (the bin at (116.5, 6.5, 126.5) is 91 % bone on the 1.75 mm mesh, 60 % on the 1.1 mm one).
Without the chord compensation of the surface (`bonefe.meshing.chord_compensation`) the scatter is
the same size (3 mm +4.3 %, 1.75 mm +1.1 %, 4.5 mm −1.1 % against 1.1 mm), so it is not its
cause."""

LESION = {"spec": PhantomSpec(voxel_mm=1.5, **DEMO_LESION), "sizes": (3.0, 2.25, 1.75)}
LESION_BOUND = 0.05
"""The lesion-governed failure load at the default size must lie within 5 % of the finest mesh's
(issue #14 follow-up: the pinned phantom of tests/test_clinical_numbers.py moved by 10-50 % with the
mesh down to 3 mm while failure points followed the tetrahedra's labels; see LESION_REMAINDER)."""
LESION_REMAINDER = """\
Why the lesion-governed failure load depended on the mesh, and what is left (measured 2026-12-01 on
this phantom and its mirror image x → −x, each meshed by the pipeline's mesh stage; left / mirror).
Failure starts at the lattice point (±102.5, −0.5, 167.5), where the lesion breaches the outer
cortex: its 1 mm bin is 45 % bone, 43 % lesion and 12 % outside in the CT, its 2 mm sphere only 21 %
bone, and the failure index falls steeply away from it (leaving out the points within 1.6 mm of a
lesion voxel raised the 5 mm mesh's failure load from 3406 to 5175 N). Which points were evaluated,
and which volume counted as bone in each sphere, used to follow the label of the tetrahedra (the
majority of their CT samples), not the CT at the point. The CT's lesion interface passes 0.09 mm
from that point, so no element size settled whether the tetrahedron holding it was bone: where it
was not, failure was read further from the rim, or at a point in a lesion voxel whose tetrahedron
was mostly bone, at 3300–4000 N instead of 2250–2800 N (3406 / 2982 N at 5 mm, 4022 / 2594 N at
4.5 mm, 3424 / 2257 N at 3 mm, 2333 / 2454 N at 2.25 mm, 2606 / 2484 N at 1.75 mm). Finer lesion
elements and a wider refinement band were coin tosses too (lesion_size 1 mm: 2412 / 2780 N at 3 mm;
a band of size + 2 mm: 2494 / 2485 N at 3 mm but 2490 / 3684 N at 2.9 mm). Both now follow the
CT's label at the point, nearest voxel (`bonefe.assessment.failure_points`): every mesh fails at
the rim point or 1 mm above it, 2436 / 2570 N at 5 mm, 2470 / 2526 N at 4.5 mm, 2475 / 2328 N at
3 mm, 2411 / 2351 N at 2.75 mm, 2367 / 2364 N at 2.25 mm, 2477 / 2468 N at 1.75 mm: twelve meshes
within 2328–2570 N, the sides within 6 % and, from 2.25 mm, within 0.5 %. The table above (this
check's meshes, `bonefe.validation.femur`) read 3410 / 2330 / 2600 N at 3 / 2.25 / 1.75 mm before
(default +31.1 % against the finest, site (104.5, −9.5, 167.5) at 3 mm) and 2465 / 2364 / 2471 N
now (−0.3 %, −4.3 %, all at the rim point). What is left at the coarse sizes is presumably (not
isolated) the finite-element strain at the rim: elements straddling the lesion's outline take the
mean modulus of their CT samples and one constant strain. An earlier
trial of the same idea, not kept, gave 2395 / 2248 N at 5 mm, 2019 / 2110 N at 3 mm and 2198 /
2254 N at 2.25 mm; how it labelled the points inside the mesh but outside the CT's bone is not
recorded (bonefe gives them the label of their nearest bone or lesion voxel, as the material
samples, so bones without lesion are unchanged)."""

QUICK_BOUND = 0.10
"""Quick set (two coarse sizes, 1.5 mm voxels): the two failure loads agree within 10 % — a smoke
check that the chain converges, not the 2 % criterion, which only the full set can test."""


def convergence_section(quick: bool, images) -> Section:
    """Failure load and peak strain at each size, the table, the plot and the check."""
    setup = QUICK if quick else FULL
    volume, frame = make_phantom(setup["spec"])
    rows = []
    for size in setup["sizes"]:
        bone = femur(volume, frame, size)
        failure = bone.stance_failure()
        rows.append((size, bone.cells, failure.failure_load_n, bone.peak_strain(), failure,
                     bone.cell_failure().failure_load_n))
    finest = rows[-1]
    table = ["| size (mm) | tetrahedra | failure load (N) | Δ to finest | peak nonlocal ε1 (µε) | Δ to finest | "
             "failure site (world mm), mode | peak-cell failure load (N) | Δ to finest |",
             "|---|---|---|---|---|---|---|---|---|"]
    for size, cells, load, strain, failure, cell_load in rows:
        site = ", ".join(f"{c:.1f}" for c in failure.location_mm)
        table.append(f"| {size:g} | {cells} | {load:.0f} | {load / finest[2] - 1:+.1%} | {strain:.0f} | "
                     f"{strain / finest[3] - 1:+.1%} | ({site}), {failure.mode} | {cell_load:.0f} | "
                     f"{cell_load / finest[5] - 1:+.1%} |")
    name = "validation-convergence.png"
    if COMM.rank == 0:
        line_plot(images / name, [r[0] for r in rows],
                  {"failure load / finest": [r[2] / finest[2] for r in rows],
                   "peak nonlocal ε1 / finest": [r[3] / finest[3] for r in rows],
                   "peak-cell failure load / finest": [r[5] / finest[5] for r in rows]},
                  "element size (mm)", "ratio to the finest mesh", band=(1 - DEFAULT_BOUND, 1 + DEFAULT_BOUND))
    text = (f"Phantom femur ({'default `PhantomSpec`, 20 mm lytic neck lesion' if not quick else 'quick set'}, "
            f"{setup['spec'].voxel_mm:g} mm voxels), stance failure load (bonefe.risk on the nonlocal strain, "
            f"averaged over {DEFAULT_RADIUS_MM:g} mm spheres of bone, 75 kg) and peak nonlocal max principal strain at the stance "
            "peak load, at each element size. The last two columns read the failure load off the peak cell "
            "strain instead, without averaging: the element-size trend the nonlocal strain removes.\n\n" + "\n".join(table) + "\n\n" + _verdict(rows, quick)
            + ("" if quick else "\n\n" + REMAINDER))
    checks = [_check(rows, quick)]
    if not quick:
        lesion_text, lesion_check = _lesion_convergence()
        text += "\n\n" + lesion_text
        checks.append(lesion_check)
    return Section("Mesh convergence on the phantom femur", text, checks, [name])


def _lesion_convergence() -> tuple[str, Check]:
    """The lesion-governed femur (LESION) at each size: table, explanation and the 5 % check."""
    volume, frame = make_phantom(LESION["spec"])
    lesion = volume.to_world(np.argwhere(np.isin(volume.labels, LESION_LABELS)).astype(float))
    rows = []
    for size in LESION["sizes"]:
        bone = femur(volume, frame, size)
        failure = bone.stance_failure()
        site = np.asarray(failure.location_mm)
        rows.append((size, bone.cells, failure.failure_load_n, site,
                     float(np.linalg.norm(lesion - site, axis=1).min())))
    finest, default = rows[-1], next(r for r in rows if r[0] == MeshOptions().size_mm)
    table = ["| size (mm) | tetrahedra | failure load (N) | Δ to finest | failure site (world mm) | "
             "to the nearest lesion voxel (mm) |", "|---|---|---|---|---|---|"]
    table += [f"| {size:g} | {cells} | {load:.0f} | {load / finest[2] - 1:+.1%} | "
              f"({', '.join(f'{c:.1f}' for c in site)}) | {gap:.1f} |" for size, cells, load, site, gap in rows]
    text = (f"**Lesion-governed failure load.** {LESION['spec'].voxel_mm:g} mm voxels, 20 mm lytic lesion through "
            "the inferomedial neck cortex (the demo's lesion), stance, 75 kg.\n\n" + "\n".join(table)
            + "\n\n" + LESION_REMAINDER)
    check = Check(f"lesion-governed failure load at the default {default[0]:g} mm vs {finest[0]:g} mm",
                  default[2], finest[2], abs(default[2] / finest[2] - 1), LESION_BOUND,
                  f"P1, {default[0]:g} and {finest[0]:g} mm", "finest mesh")
    return text, check


def _check(rows, quick: bool) -> Check:
    finest = rows[-1]
    if quick:
        coarse = rows[0]
        return Check(f"failure load at {coarse[0]:g} mm vs {finest[0]:g} mm", coarse[2], finest[2],
                     abs(coarse[2] / finest[2] - 1), QUICK_BOUND, f"P1, {coarse[0]:g} and {finest[0]:g} mm",
                     "finest mesh of the quick set")
    default = next(r for r in rows if r[0] == MeshOptions().size_mm)
    return Check(f"failure load at the default {default[0]:g} mm vs {finest[0]:g} mm", default[2], finest[2],
                 abs(default[2] / finest[2] - 1), DEFAULT_BOUND, f"P1, {default[0]:g} and {finest[0]:g} mm",
                 "finest mesh")


def _verdict(rows, quick: bool) -> str:
    """One honest sentence on the default size against the 2 % criterion."""
    if quick:
        return "The quick set does not include the default size; run the full set for the 2 % criterion."
    default_size = MeshOptions().size_mm
    finest = rows[-1]
    default = next(r for r in rows if r[0] == default_size)
    gap = default[2] / finest[2] - 1
    if abs(gap) <= DEFAULT_BOUND:
        spread = [r[2] / finest[2] - 1 for r in rows[:-1]]
        return (f"**The default size {default_size:g} mm is within {abs(gap):.1%} of the finest "
                f"({finest[0]:g} mm): inside the 2 % criterion.** The coarser and finer meshes lie "
                f"between {min(spread):+.1%} and {max(spread):+.1%} of the finest.")
    within = [r[0] for r in rows[:-1] if abs(r[2] / finest[2] - 1) <= DEFAULT_BOUND]
    need = (f"the largest tested size within 2 % of the finest is {max(within):g} mm" if within else
            f"no tested size but the finest is within 2 % of it, so the converged value itself is not yet "
            f"known to 2 %: a size at or below {rows[-2][0]:g} mm would be needed, and a finer reference mesh")
    last_step = finest[2] / rows[-2][2] - 1
    unconverged = ", so the finest value is itself not converged to 2 %" if abs(last_step) > DEFAULT_BOUND else ""
    return (f"**The default size {default_size:g} mm is {gap:+.1%} from the finest ({finest[0]:g} mm): outside "
            f"the 2 % criterion;** {need}. Between the two finest sizes the failure load changes by "
            f"{last_step:+.1%}{unconverged}.")

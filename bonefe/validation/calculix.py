"""The phantom femur solved by bonefe and by CalculiX (ccx) on the same mesh and material.

bonefe exports its model with `bonefe.export.export_inp` (C3D4, exact per-element E, the stance
load as dolfinx's consistent nodal forces); ccx solves it. Compared: nodal displacements (max
and RMS difference relative to the bonefe field), strain energy, and peak principal strains,
ccx's taken from **ccx's own element strain output** (C3D4 has one integration point, so
*EL PRINT E is the element strain) and bonefe's from its strain operator (`cell_strain`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from bonefe.sites.femur.anatomy import SUPPORT
from bonefe.sites.femur.assessment import PATCH_TAGS
from bonefe.export import export_inp, gather_cells, gather_nodal
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
from bonefe.risk import failure_index
from bonefe.solver import cell_strain, patch_traction, principal_strains
from bonefe.validation.checks import Check, Section, relative
from bonefe.validation.femur import BODY_MASS_KG, COMM, femur

SPEC = PhantomSpec(voxel_mm=1.5)
SIZE_MM = 5.0


def dat_block(text: str, header: str) -> np.ndarray:
    """Rows of numbers following the first line of a ccx .dat file that starts with `header`
    (e.g. "displacements", "strains"), up to the next blank-line-separated header."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(header))
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            if rows:
                break
            continue
        rows.append([float(v) for v in line.split()])
    return np.array(rows)


def total_energy(text: str) -> float:
    """ccx's total internal energy (N mm) from *EL PRINT ELSE, TOTALS=ONLY."""
    return float(re.search(r"total internal energy[^\n]*\n\s*\n\s*(\S+)", text).group(1))


def run_ccx(ccx: str, inp: Path) -> str:
    """Solve `inp` with ccx (one thread) in its folder, asking for element strains too; the .dat text."""
    deck = inp.read_text(encoding="utf-8").replace("*END STEP", "*EL PRINT, ELSET=EALL\nE\n*END STEP")
    inp.write_text(deck, encoding="utf-8")
    run = subprocess.run([ccx, "-i", inp.stem], cwd=inp.parent, capture_output=True, timeout=1800,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, encoding="utf-8")
    if run.returncode != 0 or not inp.with_suffix(".dat").exists():
        raise RuntimeError(f"ccx failed: {run.stdout[-1500:]}")
    return inp.with_suffix(".dat").read_text(encoding="utf-8")


def ccx_strains(rows: np.ndarray, n_elements: int) -> np.ndarray:
    """Strain tensors (n, 3, 3) from ccx rows (elem, ip, exx, eyy, ezz, exy, exz, eyz); ccx prints
    tensor (not engineering) shear components."""
    eps = np.zeros((n_elements, 3, 3))
    e = rows[:, 0].astype(int) - 1
    for k, (i, j) in enumerate([(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]):
        eps[e, i, j] = eps[e, j, i] = rows[:, 2 + k]
    return eps


def calculix_section() -> Section:
    """The cross-check, or a section saying why it was skipped."""
    title = "Independent solver: CalculiX"
    ccx = shutil.which("ccx")
    if ccx is None:
        return Section(title, "Skipped: CalculiX `ccx` is not on PATH (Debian package `calculix-ccx`).")
    volume, frame = make_phantom(SPEC)
    bone = femur(volume, frame, SIZE_MM)
    model, mesh = bone.model, bone.model.mesh
    forces, magnitude = bone.stance()
    forces = {k: f * magnitude for k, f in forces.items()}
    tags = bone.tags
    patches = {name: tags.find(tag) for name, tag in PATCH_TAGS.items()}
    u = model.solver.solve([(patches[k], patch_traction(mesh, patches[k], f)) for k, f in forces.items()])
    energy = model.solver.strain_energy(u)
    u_all = gather_nodal(model.solver.V, u.x.array)
    eps_all = gather_cells(mesh, cell_strain(u).reshape(-1, 9))
    evaluated = gather_cells(mesh, model.evaluated)
    folder = Path(COMM.bcast(tempfile.mkdtemp(prefix="bonefe-ccx-") if COMM.rank == 0 else None))
    export_inp(folder / "femur.inp", mesh, bone.E, bone.nu, tags.find(SUPPORT), patches, forces, bins=None,
               solver=model.solver)
    checks = None
    if COMM.rank == 0:
        try:
            checks = _compare(run_ccx(ccx, folder / "femur.inp"), u_all, energy, eps_all.reshape(-1, 3, 3),
                              evaluated, bone.cells)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    checks = COMM.bcast(checks)
    text = (f"The phantom femur (default `PhantomSpec` with its 20 mm neck lesion, {SPEC.voxel_mm:g} mm voxels) "
            f"meshed at {SIZE_MM:g} mm ({bone.cells} linear tetrahedra), CT material (Morgan law, ν = "
            f"{bone.nu:g}), distal cut fixed, the stance load (peak walking hip-contact force, "
            f"`bonefe.sites.femur.loads.STANCE_ACTIVITY`) of a {BODY_MASS_KG:g} kg patient on the head patch. "
            "bonefe solves it (vector P1, CG + GAMG, rtol 1e-10); the same model goes to CalculiX "
            "through `bonefe.export.export_inp` (C3D4, exact per-element E, no binning, the "
            "consistent nodal forces of dolfinx as *CLOAD), solved by ccx's direct solver. ccx's peak "
            "principal strains come from its own element strain output (*EL PRINT E; one integration "
            "point per C3D4), not from bonefe's strain operator. Both solve the same discrete system, so "
            "the bounds are the iterative tolerance and ccx's printed precision, not discretisation.")
    return Section(title, text, checks)


def _compare(dat: str, u: np.ndarray, energy: float, eps: np.ndarray, evaluated: np.ndarray,
             cells: int) -> list[Check]:
    """Checks of ccx's solution (.dat text) against bonefe's gathered fields (rank 0)."""
    u_ccx = dat_block(dat, "displacements")[:, 1:4]
    eps_ccx = ccx_strains(dat_block(dat, "strains"), len(eps))
    mesh = f"{cells} C3D4 / P1 tets, {SIZE_MM:g} mm"
    du = np.linalg.norm(u_ccx - u, axis=1)
    size = np.linalg.norm(u, axis=1)
    p, p_ccx = principal_strains(eps), principal_strains(eps_ccx)
    evaluated = evaluated.astype(bool)

    def evaluated_peak(principal):
        return failure_index(principal)[evaluated].max()

    return [
        Check("displacement: max |Δu| / max |u|", du.max() / size.max(), 0.0, du.max() / size.max(), 1e-5, mesh,
              "CalculiX 2.x (ccx)", "max nodal |Δu| / max |u|"),
        Check("displacement: RMS |Δu| / RMS |u|", np.sqrt((du**2).mean() / (size**2).mean()), 0.0,
              np.sqrt((du**2).mean() / (size**2).mean()), 1e-5, mesh, "CalculiX", "RMS relative"),
        relative("strain energy (N mm)", energy, total_energy(dat), 1e-5, mesh, "CalculiX"),
        relative("peak ε1 over elements (µε)", 1e6 * p[:, 0].max(), 1e6 * p_ccx[:, 0].max(), 1e-4, mesh,
                 "CalculiX element strains"),
        relative("peak ε3 over elements (µε)", 1e6 * p[:, 2].min(), 1e6 * p_ccx[:, 2].min(), 1e-4, mesh,
                 "CalculiX element strains"),
        relative("peak failure index, evaluated elements (bonefe.risk)", evaluated_peak(p), evaluated_peak(p_ccx),
                 1e-4, mesh,
                 "CalculiX element strains"),
    ]

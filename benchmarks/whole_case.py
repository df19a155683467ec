"""Whole-case benchmark (issue #21): the demo case end to end, and the same femur meshed at 1.5 mm,
on 1 and 2 ranks, each stage's wall time from the progress lines; and CalculiX on the same model
for one load case, as a ratio from one run.

    python benchmarks/whole_case.py                # demo (3 mm) and 1.5 mm, on 1 and 2 ranks
    python benchmarks/whole_case.py --quick        # the demo on 2 ranks only
    python benchmarks/whole_case.py --sizes 3 --ranks 2 --repeat 2

The case is `cases/femur-neck-lytic.yaml` as `make demo` runs it: the phantom femur with the demo's
20 mm lytic lesion (inferomedial neck, through the cortex: the Makefile's DEMO_LESION), every
library activity, the lesion-free twin, 3 growth and 2 re-mineralisation what-if states, the
sideways fall, the report, and `model.inp` (the case asks for it). Each run is one
`mpirun -n R python -m bonefe.cli run` in a fresh process (start-up and imports included in
"wall").

CalculiX: `ccx` (one thread, its default solver) on the run's `model.inp`, which holds one load case
(the walking peak load on the same mesh and per-element modulus classes). "load cases" counts what
the whole case solves for: the activities, the twin's reference load, the what-if states and the
fall directions; "ccx × cases / case" is then CalculiX's time for the same load cases, one analysis
each, over bonefe's whole case (meshing and report included on bonefe's side only).

The machine the figures come from should be quiet: on a shared 2-core machine they are noisy, so
compare before/after runs made back to back (`--pythonpath` runs another checkout).

Measured 2026-12-03 (third session) on the quiet 2-core machine, head 74f6908, 2 ranks, one run each,
no mesh cache (CalculiX alone afterwards):
- demo, 3 mm: 27.5 s (mesh 8.7, material 0.4, solve and assess 12.5, report 3.4); CalculiX 1.6 s
  per load case, 40 load cases: 2.3× bonefe's whole case. With a cached mesh the stages take 17 s.
- 1.5 mm: 103.9 s (mesh 41.4, material 1.0, solve and assess 53.3, write outputs 1.9, report 4.5);
  CalculiX 52.0 s per load case: 20.0× bonefe's whole case. The same two runs an hour later, the
  machine slower (demo 45.4 s, 1.5 mm 152.2 s, CalculiX 55.9 s): 1.5× and 14.7×.
- Where the 1.5 mm case's time goes (py-spy, rank 0, cached mesh): PETSc 41 of the 56 s of solve and
  assess (Krylov 15.1 s and the fall directions' borrowed V-cycles 11.7 s, seven AMG set-ups 10.6 s,
  assemblies 3.7 s); gmsh 45 s in one process, 31 s of it Netgen's optimisation
  (`bonefe.meshing._gmsh_options`).
- Without Netgen (a patched checkout, measured, not adopted): mesh 8.7 → 5.4 s (3 mm) and
  41.4 → 15.0 s (1.5 mm), but 12–14 % more tetrahedra (solve and assess 12.9 and 59.9 s), minimum
  SICN 0.46 → 0.05 and 0.28 → 0.19, failure loads −4.1 % and −3.1 %: the demo near 24 s and the
  1.5 mm case near 83 s, both still above their targets (20 s and 60 s).
- Every solve started from the energy-optimal combination of the case's earlier solutions
  (Fischer 1998, Comput Methods Appl Mech Eng 163:193; measured on the demo, not adopted): 5 %
  fewer CG iterations over the first 13 solves (359 → 341): the rotated fall directions and the
  what-if states are not close enough to each other at ksp_rtol 1e-10.

Measured 2026-12-03 on a slower day of the same 2-core machine (CalculiX 53.9 s per case at
1.5 mm against 36.9 s the day before), after the fall directions share the first direction's
assembled bone stiffness and the what-if states reuse the scenario's lesion fill and the lattice
points' voxel indices (`python benchmarks/whole_case.py`, one run each, no mesh cache):
- demo, 3 mm: 1 rank 53.5 s, 2 ranks 47.5 s (mesh 14.2, material 0.8, solve and assess 21.6,
  report 5.5); CalculiX 3.0 s per load case, 40 load cases: 2.5× bonefe's whole case.
- 1.5 mm: 1 rank 209.7 s, 2 ranks 161.9 s (mesh 57.5, solve and assess 88.6, report 7.7);
  CalculiX 53.9 s per load case: 13.3× bonefe's whole case. Failure loads 3061.9 / 2893.9 N.
- Back to back with the previous head, demo with a cached mesh, 2 ranks, twice, the stages' functions
  timed inside the run: solve and assess 21.3 / 23.2 → 17.2 / 19.0 s; the nine fall directions
  6.07 / 6.17 → 4.75 / 4.93 s, the what-if states 6.32 / 7.09 → 4.90 / 5.31 s. At 1.5 mm, one run
  each: solve and assess 88.9 → 84.2 s. report.json is identical but for the fall directions'
  failure loads, within 9e-9 (3 mm) and 2.3e-8 (1.5 mm) relative.
- Borrowing the twin's AMG set-up for a grown lesion's operator (measured, not adopted): 396–486
  CG iterations against 21–24 with its own set-up, 3.0–3.6 s against 0.65–1.0 s (demo, 2 ranks).

Measured 2026-12-02 (fourth session), 2 ranks, nothing else running, before → after the twin solved
under the walking load alone (one solve, not six) and the what-if states' and twin's material
sampled again only where the CT changed (`bonefe.materials.MaterialUpdate`):
- demo, 3 mm: back to back twice, solve and assess 18.2 / 19.3 → 18.0 / 16.6 s, whole process
  39.5 / 37.7 → 35.5 / 32.9 s; with CalculiX: 34.5 s (mesh 9.6, material 0.8, solve and assess
  16.3, report 4.1), CalculiX 1.8 s per load case, 38 cases: 2.0× bonefe's whole case.
- 1.5 mm, 183,924 DOFs: solve and assess 70.1 → 59.5 s, material 1.6 → 1.3 s, whole process
  129.1 → 115.1 s (mesh 47.3 / 44.7 s); CalculiX 36.9 s per load case: 12.2× bonefe's whole case.
  py-spy on rank 0 (mesh cached): the sideways fall's nine operators 27 s of the 65 s, the four
  what-if states 19 s (over the whole run: AMG set-ups 13 s, assemblies 8 s), Krylov
  iterations 28 s in all. Failure loads 3061.9 / 2893.9 N before and after.

Measured 2026-12-02 (third session) back to back, `--sizes 3 --ranks 2 --no-ccx --repeat 2`, on a
2-core machine about half as fast as the one below (mesh 19 s against 7.9 s): before → after
failure reading at candidate points (`bonefe.assessment.BoneModel.candidates`, 3.1 % of the points
read over the demo's 169 readings) and a garbage collection every 8th solver
(`bonefe.solver.RELEASE_EVERY`, was every solver: 15 × 0.14 s): solve and assess 44.9 / 43.2 →
38.1 / 34.3 s, whole process 81.7 / 79.1 → 73.5 / 69.4 s; failure load 3061.9 N in all four.

Measured 2026-12-02 on the 2-core machine with nothing else running, one run each (2 ranks):
- demo, 3 mm, 30,267 DOFs: 39.2 s (mesh 7.9, solve and assess 24.5, write outputs 0.6, report 3.1);
  CalculiX 1.6 s per load case, 38 load cases: 1.6× bonefe's whole case.
- 1.5 mm, 183,924 DOFs: 146.5 s (mesh 36.5, solve and assess 100.3, report 4.0); CalculiX 37.6 s
  per load case: 38 cases 9.8× bonefe's whole case. Failure loads 3061.9 / 2893.9 N.

Measured 2026-12-01 on the shared 2-core machine (other sessions running tests; load average in
brackets), one run each, so only back-to-back pairs compare. Same failure loads in every pair
(report.json within 1e-7; what-if states within 2e-10). Output folder 121 MB → 15 MB (fields off).
- demo, 3 mm, 30,267 DOFs, 2 ranks [load 1.7–4]: main 92.1 s (mesh 22.0, solve and assess 54.9,
  report 6.8) → 74.8 s (mesh 19.1, solve and assess 40.0, write outputs 1.5, report 7.2); CalculiX
  2.7 s per load case, 38 load cases: 1.4× bonefe's whole case. [load 11–13]: 315 → 273 s.
- demo with the mesh cache [load ~5]: miss 96.7 s (mesh 22.0), hit 59.4 s (mesh 1.1).
- demo on 1 rank [load ~3]: 59.1 s (mesh 18.7, solve and assess 32.7); CalculiX 1.6 s per case.
- 1.5 mm, 183,924 DOFs, 2 ranks: main 1120 s [load 12–13] (mesh 275, solve and assess 798) → 543 s
  [load 13 falling to 6] (mesh 251, solve and assess 248, write outputs 5.7); CalculiX 105.5 s per
  load case: 38 cases 7.4× bonefe's whole case (14× without bonefe's meshing). 1 rank [load ~2]:
  214 s (mesh 44.9, solve and assess 155.6, report 5.5). Quiet profile of the demo on main (cProfile, rank 0): mesh 15.5 s (surface 4.2, gmsh
classification and reparametrisation 2.8, volume meshing and optimisation 6.9), solve and assess 55 s
(the five what-if states 25, the sideways fall's nine operators 13, the model and its twin 9.4),
report 13.5 s; a solve 0.45 s (24 CG iterations), an operator's set-up 1.8 s (assembly 0.2, GAMG 0.84,
the coarse LU of 2958 rows 0.74).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "cases" / "femur-neck-lytic.yaml"
DEMO_LESION = ["--lesion-site", "neck_inferomedial", "--lesion-diameter", "20", "--cortical-involvement", "1"]
STAGE = re.compile(r"\[\d+/\d+\] ([a-z ]+?) \.\.\. ([0-9.]+) s")


def bonefe(args: list[str], ranks: int, pythonpath: Path) -> tuple[str, float]:
    """Run `bonefe ARGS` on `ranks` MPI ranks from the checkout at `pythonpath`: (stderr, wall s)."""
    mpirun = Path(sys.executable).with_name("mpirun")
    command = [sys.executable, "-m", "bonefe.cli", *args]
    if ranks > 1:
        command = [str(mpirun if mpirun.exists() else "mpirun"), "-n", str(ranks), *command]
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, encoding="utf-8", env=env, cwd=pythonpath, check=False)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"bonefe {' '.join(args)} failed:\n{run.stderr[-3000:]}")
    return run.stderr, wall


def write_case(folder: Path, size_mm: float) -> Path:
    """The demo case with absolute input paths, its mesh size set to size_mm."""
    case = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    case.update(ct=str(folder / "phantom" / "ct.nii.gz"), labels=str(folder / "phantom" / "labels.nii.gz"),
                output=str(folder / f"run-{size_mm:g}mm"))
    case["mesh"] = {**case.get("mesh", {}), "size_mm": size_mm}
    path = folder / f"demo-{size_mm:g}mm.yaml"
    path.write_text(yaml.safe_dump(case), encoding="utf-8")
    return path


def load_cases(report: dict) -> int:
    """The load cases the whole case solves for: activities, the twin, what-if states, fall directions."""
    whatif = sum(len(report[k]["steps"]) - 1 for k in ("whatif_growth", "whatif_remineralisation") if report.get(k))
    fall = len(report["fall"]["directions"]) if report.get("fall") else 0
    return len(report["activities"]) + (report.get("twin_failure_load_n") is not None) + whatif + fall


def calculix(inp: Path) -> float | None:
    """Wall time (s) of ccx on a copy of `inp` (one thread), None without ccx."""
    ccx = shutil.which("ccx")
    if ccx is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        deck = Path(tmp) / "model.inp"
        shutil.copy(inp, deck)
        start = time.perf_counter()
        run = subprocess.run([ccx, "-i", "model"], cwd=tmp, capture_output=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False, encoding="utf-8")
        wall = time.perf_counter() - start
        if run.returncode != 0 or not deck.with_suffix(".frd").exists() and not deck.with_suffix(".dat").exists():
            raise RuntimeError(f"ccx failed: {run.stdout[-1500:]}")
    return wall


def run_case(folder: Path, size_mm: float, ranks: int, pythonpath: Path) -> dict:
    """One end-to-end run: stage times (s), wall (s), DOFs, load cases, failure load (N)."""
    case = write_case(folder, size_mm)
    log, wall = bonefe(["run", str(case)], ranks, pythonpath)
    out = folder / f"run-{size_mm:g}mm"
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {"size_mm": size_mm, "ranks": ranks, "wall": wall, "stages": dict(STAGE.findall(log)),
            "dofs": report["mesh"]["dofs"], "cells": report["mesh"]["cells"], "load_cases": load_cases(report),
            "failure_load_n": report["failure_load_n"], "inp": out / "model.inp"}


def show(results: list[dict]) -> None:
    stages = list(dict.fromkeys(name for r in results for name in r["stages"]))
    print(f"{'size':>5} {'ranks':>5} {'DOFs':>7} " + " ".join(f"{s[:12]:>12}" for s in stages)
          + f" {'stages':>7} {'wall':>7} {'cases':>5} {'ccx 1 case':>10} {'ccx×cases/case':>14} {'F (N)':>8}")
    for r in results:
        times = [float(r["stages"].get(s, "nan")) for s in stages]
        ccx = r.get("ccx")
        ratio = f"{ccx * r['load_cases'] / r['wall']:>14.1f}" if ccx else f"{'n/a':>14}"
        print(f"{r['size_mm']:>5g} {r['ranks']:>5} {r['dofs']:>7} " + " ".join(f"{t:>12.1f}" for t in times)
              + f" {sum(float(t) for t in r['stages'].values()):>7.1f} {r['wall']:>7.1f} {r['load_cases']:>5} "
              + (f"{ccx:>10.1f}" if ccx else f"{'n/a':>10}") + f" {ratio} {r['failure_load_n']:>8.1f}")
    print("stage columns and 'stages': the progress lines (s); wall: the whole process, start-up included; "
          "ccx 1 case: CalculiX on the run's model.inp (walking), one thread; "
          "ccx×cases/case: CalculiX for the case's load cases, one analysis each, over bonefe's wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the demo (3 mm) on 2 ranks only")
    parser.add_argument("--sizes", type=float, nargs="+", default=[3.0, 1.5], help="mesh sizes (mm)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each size and rank count")
    parser.add_argument("--no-ccx", action="store_true", help="skip CalculiX")
    parser.add_argument("--pythonpath", type=Path, default=ROOT, help="the bonefe checkout to run")
    parser.add_argument("--folder", type=Path, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()
    sizes, ranks = ([3.0], [2]) if args.quick else (args.sizes, args.ranks)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="bonefe-whole-case-"))
    try:
        bonefe(["phantom", "--out", str(folder / "phantom"), *DEMO_LESION], 1, args.pythonpath)
        results = []
        for size_mm in sizes:
            for n in ranks:
                for _ in range(args.repeat):
                    results.append(run_case(folder, size_mm, n, args.pythonpath))
                    print(f"done: {size_mm:g} mm on {n} rank(s), {results[-1]['wall']:.1f} s", file=sys.stderr)
            if not args.no_ccx and results[-1]["inp"].exists():
                results[-1]["ccx"] = calculix(results[-1]["inp"])
        show(results)
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

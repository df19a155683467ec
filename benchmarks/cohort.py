"""Benchmark: throughput of a phantom cohort through `bonefe batch run`, and what the batch
machinery costs per case.

The issue's target: batch overhead under 5 % of the solve time per case. The cohort cycles
through the phantom's lesion sites (and no lesion) and three lesion diameters, one case file
per patient; the batch runs on `--jobs` cores (default 2), one rank per case. Printed:

* throughput: cases per hour from the wall time of the whole `bonefe batch run` command;
* per case, from report.json `timings_s`: the pipeline stages timed inside the case (read,
  frame, mesh, material, solve and assess);
* per case, from status/<case>.json: the case process's wall time; the difference to the stages
  is process start-up (Python, MPI, imports) plus the report stage, which `timings_s` leaves out;
* batch machinery per case: the time worker slots sit idle between cases (status and summary
  writes, scheduling), plus the command's start-up before the first case and its closing summary
  after the last, over the number of cases. Each case's start (`started`) and runtime place it on
  the timeline; a new case takes the slot that fell free first.

    python benchmarks/cohort.py                  # 20 cases, 1.5 mm phantom voxels, 5 mm mesh
    python benchmarks/cohort.py --cases 4        # a smoke run
    python benchmarks/cohort.py --mesh-size 3 --voxel 1.0   # demo-size cases (~270k DOFs)
"""

import bonefe  # noqa: F401  (orders MPI before dolfinx)

import argparse
import heapq
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bonefe.sites.femur.phantom import SITES, PhantomSpec, write_phantom

DIAMETERS_MM = (15.0, 20.0, 25.0)


def write_cohort(folder: Path, count: int, voxel: float, mesh_size: float) -> list[Path]:
    """`count` case files over phantoms varying lesion site and diameter (each phantom written once)."""
    variants = list(itertools.product((*SITES, None), DIAMETERS_MM))
    cases = []
    for number in range(count):
        site, diameter = variants[number % len(variants)]
        tag = f"{site or 'intact'}-{diameter:g}"
        phantom = folder / "phantoms" / tag
        if not phantom.exists():
            write_phantom(PhantomSpec(voxel_mm=voxel, lesion_site=site, lesion_diameter_mm=diameter), phantom)
        case = {"name": f"patient-{number:03d}", "ct": str(phantom / "ct.nii.gz"),
                "labels": str(phantom / "labels.nii.gz"), "patient": {"body_mass_kg": 60 + number % 30},
                "mesh": {"size_mm": mesh_size}}
        cases.append(folder / f"patient-{number:03d}.yaml")
        cases[-1].write_text(yaml.safe_dump(case), encoding="utf-8")
    return cases


def idle_between_cases(records: list[dict], jobs: int) -> float:
    """Total time (s) worker slots sit idle between one case's end and the next case's start."""
    records = sorted(records, key=lambda r: r["started"])
    free = [records[0]["started"]] * jobs  # when each slot fell free, as a heap
    idle = 0.0
    for r in records:
        idle += max(0.0, r["started"] - heapq.heappop(free))
        heapq.heappush(free, r["started"] + r["runtime_s"])
    return idle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--voxel", type=float, default=1.5, help="phantom voxel size, mm")
    parser.add_argument("--mesh-size", type=float, default=5.0, help="mesh size, mm")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bonefe-cohort-") as tmp:
        folder = Path(tmp)
        cases = write_cohort(folder, args.cases, args.voxel, args.mesh_size)
        out = folder / "batch"
        begin = time.time()
        subprocess.run([sys.executable, "-m", "bonefe.cli", "batch", "run", *map(str, cases), "--out", str(out),
                        "--jobs", str(args.jobs)], check=True, stdout=subprocess.DEVNULL)
        end = time.time()
        records = [json.loads(p.read_text(encoding="utf-8")) for p in (out / "status").glob("*.json")]
        reports = [json.loads((out / "cases" / r["case"] / "report.json").read_text(encoding="utf-8")) for r in records]

    wall, count = end - begin, len(records)
    process = sum(r["runtime_s"] for r in records) / count
    inside = sum(sum(r["timings_s"].values()) for r in reports) / count
    solve = sum(r["timings_s"]["solve and assess"] for r in reports) / count
    dofs = [r["mesh"]["dofs"] for r in reports]
    first, last = min(r["started"] for r in records), max(r["started"] + r["runtime_s"] for r in records)
    idle = idle_between_cases(records, args.jobs)
    machinery = (idle + (first - begin) + (end - last)) / count
    print(f"cohort: {count} cases ({args.voxel:g} mm phantom voxels, {args.mesh_size:g} mm mesh, "
          f"{min(dofs)}-{max(dofs)} DOFs), {args.jobs} at a time, 1 rank each")
    print(f"  wall time               {wall:8.1f} s   -> {3600 * count / wall:.0f} cases/hour")
    print(f"  stages inside a case    {inside:8.2f} s   (mean of report.json timings_s sums)")
    print(f"  case process wall time  {process:8.2f} s   (+{process - inside:.2f} s start-up and report stage)")
    print(f"  solve and assess        {solve:8.2f} s   (the solver's stage alone)")
    print(f"  batch machinery         {machinery:8.3f} s/case = {100 * machinery / inside:.1f} % of the stages, "
          f"{100 * machinery / solve:.1f} % of solve and assess (target < 5 %)")
    print(f"  (command start-up {first - begin:.2f} s, closing summary {end - last:.2f} s, "
          f"idle between cases {idle:.3f} s in all)")


if __name__ == "__main__":
    main()

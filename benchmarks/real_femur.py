"""Benchmark: the real femur end to end (surface → CT-like volume → `bonefe run`).

The whole left femur of ../shared/data/femur-surface-gfxmorph (outer and endosteal surfaces) is turned
into a 1 mm CT-like volume with a 20 mm lytic lesion breaching the inferomedial neck
(`bonefe phantom --surface`), then cases/real-femur.yaml runs at its mesh size (every activity,
lesion-free twin, envelope, what-ifs, report). Printed, not asserted: wall time of each stage, peak
resident memory (largest rank), cells and DOFs reached.

    python benchmarks/real_femur.py [--mesh-size MM]
    mpirun -n 2 python benchmarks/real_femur.py

The case writes its results to runs/real-femur (the case's `output`).
"""

import bonefe  # noqa: F401  (orders MPI before dolfinx)

import argparse
import resource
import time
from pathlib import Path

from mpi4py import MPI

from bonefe.case import load_case
from bonefe.pipeline import run_case
from bonefe.sites.femur.surface_phantom import SurfaceSpec, write_surface_phantom

COMM = MPI.COMM_WORLD
ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "cases" / "real-femur.yaml"
DATA = ROOT.parent / "shared" / "data" / "femur-surface-gfxmorph"


def write_volume() -> float:
    """Write the case's CT and label map from the surfaces (rank 0); seconds taken."""
    start = time.perf_counter()
    if COMM.rank == 0:
        spec = SurfaceSpec(DATA / "femur.stl", DATA / "femur_cortex.stl", voxel_mm=1.0, noise_hu=20.0,
                           lesion_site="neck_inferomedial", lesion_diameter_mm=20.0, cortical_involvement=1.0)
        write_surface_phantom(spec, load_case(CASE).ct.parent)
    COMM.barrier()
    return time.perf_counter() - start


def peak_memory_gb() -> float:
    """Peak resident memory of the largest rank (GB; Linux ru_maxrss is in kB)."""
    return COMM.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, op=MPI.MAX) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mesh-size", type=float, help="override the case's mesh.size_mm")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not present: this benchmark needs ../shared/data")
    seconds_volume = write_volume()
    start = time.perf_counter()
    results = run_case(CASE, mesh_size=args.mesh_size, quiet=True)
    total = time.perf_counter() - start
    memory = peak_memory_gb()
    if COMM.rank == 0:
        mesh = results["mesh"]
        print(f"real femur, {COMM.size} rank(s): surface -> volume {seconds_volume:.1f} s; run {total:.1f} s")
        for stage, seconds in results["timings_s"].items():
            print(f"  {stage:<18} {seconds:7.1f} s")
        print(f"  cells {mesh['cells']}, nodes {mesh['nodes']}, DOFs {mesh['dofs']}, "
              f"peak memory {memory:.2f} GB per rank (largest)")
        print(f"  stance failure load {results['failure_load_n']:.0f} N ({results['failure_load_bw']:.2f} BW), "
              f"twin {results['twin_failure_load_n']:.0f} N, SFR {results['strain_fold_ratio']:.2f}")


if __name__ == "__main__":
    main()

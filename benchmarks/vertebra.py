"""Benchmark: a vertebra end to end (phantom L1 → `bonefe run cases/spine-l1-lytic.yaml`).

Writes the spine demo's phantom (L1, 15 mm central lytic lesion, 0.6 mm voxels) unless present,
then runs the case at its default mesh (2.5 mm): frame, mesh, material, six plate motions for the
lesioned vertebra and six for its lesion-free twin, unit loads, activities, envelope, SINS, report.
Printed, not asserted: wall time per stage, peak memory, cells and DOFs. Target: under 60 s on 2 cores.

    python benchmarks/vertebra.py [--mesh-size MM]
    mpirun -n 2 python benchmarks/vertebra.py
"""

import bonefe  # noqa: F401  (orders MPI before dolfinx)

import argparse
import resource
import time
from pathlib import Path

from mpi4py import MPI

from bonefe.case import load_case
from bonefe.pipeline import run_case
from bonefe.sites.vertebra.phantom import VertebraPhantomSpec, write_vertebra_phantom

COMM = MPI.COMM_WORLD
CASE = Path(__file__).resolve().parents[1] / "cases" / "spine-l1-lytic.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mesh-size", type=float, help="override the case's mesh.size_mm")
    args = parser.parse_args()
    ct = load_case(CASE).ct
    if COMM.rank == 0 and not ct.exists():
        write_vertebra_phantom(VertebraPhantomSpec(level="L1", lesion_site="central", lesion_diameter_mm=15.0),
                               ct.parent)
    COMM.barrier()
    start = time.perf_counter()
    results = run_case(CASE, mesh_size=args.mesh_size, quiet=True)
    total = time.perf_counter() - start
    memory = COMM.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, op=MPI.MAX) / 1e6
    if COMM.rank == 0:
        mesh = results["mesh"]
        print(f"vertebra L1 phantom, {COMM.size} rank(s): run {total:.1f} s")
        for stage, seconds in results["timings_s"].items():
            print(f"  {stage:<18} {seconds:7.1f} s")
        print(f"  cells {mesh['cells']}, nodes {mesh['nodes']}, DOFs {mesh['dofs']}, "
              f"peak memory {memory:.2f} GB per rank (largest)")
        print(f"  compressive failure load {results['failure_load_n']:.0f} N ({results['failure_load_bw']:.2f} BW), "
              f"twin {results['twin_failure_load_n']:.0f} N, SFR {results['strain_fold_ratio']:.2f}")


if __name__ == "__main__":
    main()

"""Benchmark: the shared micro-CT cube (cases/specimen-microct.yaml) in its compression rig at 1–2 M
degrees of freedom, e.g. on 2 ranks. The issue's target: under 5 minutes at 2 M DOFs on 2 cores,
memory per rank stated.

Per stage (wall time, slowest rank): read the TIFF stack, box mesh, material (element-wise power
law), the rig's three plate translations (one operator, GAMG set-up, three CG solves), the failure
reading (nonlocal strain), the peak resident memory and the CPU time of each rank (getrusage),
and the load average (wall times on a shared machine stretch with it; CPU times do not).

    mpirun -n 2 python benchmarks/specimen_microct.py                    # 80 cells per side, 1.59 M DOFs
    mpirun -n 2 python benchmarks/specimen_microct.py --cells 40         # a smoke run (206 k DOFs)

Needs ../shared/data/microct-trabecular-lhdl-ciclope (not shipped).
"""

import bonefe  # noqa: F401  (orders MPI before dolfinx)

import argparse
import os
import resource
import time
from dataclasses import replace
from pathlib import Path

from mpi4py import MPI

from bonefe.sites.specimen.case import load_specimen_case
from bonefe.sites.specimen.reading import read_specimen
from bonefe.sites.specimen.rig import RigModel
from bonefe.sites.specimen.run import risk_options, specimen_material
from bonefe.sites.specimen.site import SPECIMEN

CASE = Path(__file__).resolve().parents[1] / "cases" / "specimen-microct.yaml"
SIDE_MM = 3.9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=80, help="box cells per side (default 80: 1.59 M DOFs)")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    case = load_specimen_case(CASE)
    case = replace(case, mesh=replace(case.mesh, size_mm=SIDE_MM / args.cells))
    times = {}

    def stage(name, start):
        comm.barrier()
        times[name] = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
        return time.perf_counter()

    t = time.perf_counter()
    volume = read_specimen(case.image, case.specimen)
    t = stage("read", t)
    setup = SPECIMEN.setup(case, None)
    bone, tags = setup.mesh(volume, case.mesh, comm)
    t = stage("mesh", t)
    material = specimen_material(bone.mesh, volume, case.material)
    t = stage("material", t)
    model = RigModel(bone.mesh, tags, material.E, material.label, case.material.poisson, risk_options(case), case.rig)
    t = stage("rig solves and failure reading", t)
    setup = setup.with_plate_load(model.loading.plate_load(case.rig))
    failure = model.failure(setup.reference().unit)
    stage("failure load", t)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    memory = comm.gather(usage.ru_maxrss / 1024.0, root=0)
    cpu = comm.gather(usage.ru_utime + usage.ru_stime, root=0)
    rig = model.loading.readouts(case.rig)
    if comm.rank == 0:
        print(f"ranks {comm.size}, cells per side {args.cells}, tets {bone.quality['tets']:,}, "
              f"DOFs {model.solver.num_dofs():,}, CG iterations {[h['iterations'] for h in model.solver.history]}")
        print(f"plate force {rig['reaction_force_n'][2]:.4f} N, stiffness {rig['stiffness_n_per_mm']:.2f} N/mm, "
              f"failure load {failure.failure_load_n:.3f} N")
        for name, seconds in times.items():
            print(f"  {name:<32} {seconds:8.1f} s")
        print(f"  {'total':<32} {sum(times.values()):8.1f} s")
        print("peak memory per rank (MB): " + ", ".join(f"{m:.0f}" for m in memory))
        print("CPU time per rank (s, imports included): " + ", ".join(f"{c:.0f}" for c in cpu)
              + f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

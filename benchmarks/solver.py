"""Solver benchmark: setup and per-load-case cost of the elasticity solver, and how close one CG
iteration comes to the memory-bandwidth bound.

    python benchmarks/solver.py            # ~0.3M and ~1M DOFs, 1 and 2 ranks
    python benchmarks/solver.py --large    # also ~3M DOFs
    python benchmarks/solver.py --quick    # small sizes, a smoke run

The script runs itself under ``mpirun -n 1`` and ``-n 2`` (one subprocess per size and rank count)
and prints one table. For each run:

* setup: matrix assembly + GAMG setup (the one-off cost per model);
* per load case: one right-hand side + CG solve (three unit loads per patch, then every activity
  is a superposition: "all activities" = 3 solves per patch + the strain post-processing);
* iterations and time per CG iteration, compared with the bound of one SpMV streaming the
  matrix from memory: bytes ≈ nnz·(8 + 4) (values + column indices) + rows·(4 + 3·8) (row
  pointers, x, y and b); the bandwidth is measured in the same run with a numpy STREAM-like
  triad. A CG+AMG iteration does one fine-level SpMV plus the multigrid cycle (Chebyshev
  smoothing ≈ 2–4 more SpMVs), so a ratio of ~3–6 to the single-SpMV bound is expected;
* peak memory (max resident set size per rank).

The mesh comes from :func:`make_mesh` (a hollow tube like a femoral shaft, 16 mm outer and 10 mm
inner radius); the lead can switch it to the phantom femur by editing that one function.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZES = {"quick": [40_000, 150_000], "full": [300_000, 1_000_000], "large": [3_000_000]}


def make_mesh(comm, target_dofs: int):
    """A tube (outer radius 16 mm, inner 10 mm, length 200 mm) of P1 tetrahedra with about
    `target_dofs` displacement unknowns; returns (mesh, support facets, load facets)."""
    import dolfinx
    import gmsh
    import numpy as np

    length = 200.0
    volume = np.pi * (16.0**2 - 10.0**2) * length
    # fitted on this geometry: about one node per size³ of volume
    size = (volume / (target_dofs / 3)) ** (1 / 3)
    gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    if comm.rank == 0:
        occ = gmsh.model.occ
        occ.cut([(3, occ.addCylinder(0, 0, 0, 0, 0, length, 16.0))],
                [(3, occ.addCylinder(0, 0, 0, 0, 0, length, 10.0))])
        occ.synchronize()
        gmsh.model.addPhysicalGroup(3, [e[1] for e in gmsh.model.getEntities(3)], 1)
        gmsh.option.setNumber("Mesh.MeshSizeMax", size)
        gmsh.option.setNumber("Mesh.MeshSizeMin", size)
        gmsh.option.setNumber("Mesh.Algorithm3D", 10)  # HXT, parallel and fast
        gmsh.model.mesh.generate(3)
    mesh = dolfinx.io.gmsh.model_to_mesh(gmsh.model if comm.rank == 0 else None, comm, 0).mesh
    gmsh.finalize()
    support = dolfinx.mesh.locate_entities_boundary(mesh, 2, lambda x: np.isclose(x[2], 0.0))
    top = dolfinx.mesh.locate_entities_boundary(mesh, 2, lambda x: np.isclose(x[2], length))
    return mesh, support, top


def stream_bandwidth(n: int = 20_000_000, repeats: int = 5) -> float:
    """Memory bandwidth (bytes/s) of a numpy triad a = b + s·c (3 arrays of 8-byte floats moved;
    numpy does it in two passes, so 5 array transfers are counted)."""
    import numpy as np

    b, c = np.random.rand(n), np.random.rand(n)
    a = np.empty_like(b)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        np.multiply(c, 3.0, out=a)
        np.add(a, b, out=a)
        best = min(best, time.perf_counter() - start)
    return 5 * 8 * n / best


def run_case(target_dofs: int) -> dict:
    """One run (inside mpirun): build, set up, solve the three unit loads, time everything."""
    import bonefe  # noqa: F401

    import numpy as np
    from mpi4py import MPI

    from bonefe.solver import ElasticitySolver, UnitLoadBasis, principal_strains

    comm = MPI.COMM_WORLD
    mesh, support, top = make_mesh(comm, target_dofs)
    n = mesh.topology.index_map(3).size_local
    mid = mesh.geometry.x[mesh.geometry.dofmaps[0][:n]].mean(axis=1)
    E = 1000.0 + 16000.0 * (np.hypot(mid[:, 0], mid[:, 1]) - 10.0) / 6.0  # graded like cortex
    comm.barrier()
    start = time.perf_counter()
    solver = ElasticitySolver(mesh, E, 0.3, support)
    comm.barrier()
    setup = time.perf_counter() - start
    start = time.perf_counter()
    basis = UnitLoadBasis(solver, {"head": top})
    comm.barrier()
    three = time.perf_counter() - start
    start = time.perf_counter()
    for k in range(10):  # ten activities by superposition
        principal_strains(basis.strain({"head": [100.0 * k, 50.0, -2000.0]}))
    comm.barrier()
    activities = time.perf_counter() - start
    solve_times = []
    for _ in range(2):
        start = time.perf_counter()
        solver.solve([(top, [0.01, 0.0, -1.0])])
        comm.barrier()
        solve_times.append(time.perf_counter() - start)
    A = solver.A
    nnz = A.getInfo()["nz_used"]  # summed over ranks (petsc4py's default MAT_GLOBAL_SUM)
    x, y = A.createVecs()
    x.set(1.0)
    comm.barrier()
    start = time.perf_counter()
    for _ in range(20):
        A.mult(x, y)
    comm.barrier()
    spmv = (time.perf_counter() - start) / 20
    rss = comm.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, op=MPI.MAX)
    comm.barrier()
    bandwidth = comm.allreduce(stream_bandwidth(), op=MPI.SUM)  # all ranks at once: aggregate
    return {"ranks": comm.size, "dofs": solver.num_dofs(), "nnz": int(nnz),
            "setup": setup, "three_unit_solves": three, "ten_superpositions": activities,
            "solve": min(solve_times), "iterations": solver.iterations, "rss_mb": rss,
            "bandwidth": bandwidth, "spmv": spmv, "rows": A.getSize()[0]}


def launch(target: int, ranks: int) -> dict:
    mpirun = Path(sys.executable).with_name("mpirun")
    command = [str(mpirun if mpirun.exists() else "mpirun"), "-n", str(ranks), sys.executable,
               __file__, "--worker", str(target)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(results: list[dict]) -> None:
    print(f"{'DOFs':>9} {'ranks':>5} {'setup s':>8} {'solve s':>8} {'its':>4} {'all act. s':>10} "
          f"{'s/it':>8} {'SpMV s':>8} {'bound s':>8} {'SpMV/bd':>7} {'it/bd':>6} {'DOF/s/core':>11} "
          f"{'RSS MB':>7} {'speed-up':>8}")
    serial = {}
    for r in results:
        per_iteration = r["solve"] / max(r["iterations"], 1)
        bytes_spmv = r["nnz"] * 12 + r["rows"] * 28
        bound = bytes_spmv / r["bandwidth"]
        total = r["setup"] + r["three_unit_solves"] + r["ten_superpositions"]
        if r["ranks"] == 1:
            serial[r["dofs"]] = r["solve"]
        speedup = serial.get(r["dofs"], float("nan")) / r["solve"] if r["ranks"] > 1 else 1.0
        print(f"{r['dofs']:>9} {r['ranks']:>5} {r['setup']:>8.2f} {r['solve']:>8.2f} "
              f"{r['iterations']:>4} {total:>10.2f} {per_iteration:>8.4f} {r['spmv']:>8.4f} "
              f"{bound:>8.4f} {r['spmv'] / bound:>7.1f} {per_iteration / bound:>6.1f} "
              f"{r['dofs'] / r['solve'] / r['ranks']:>11.0f} {r['rss_mb']:>7.0f} {speedup:>8.2f}")
    bandwidths = ", ".join(f"{r['ranks']} rank(s) {r['bandwidth'] / 1e9:.1f}" for r in results[:2])
    print(f"memory bandwidth (numpy triad on every rank at once, GB/s): {bandwidths}")
    print("all act. = setup + 3 unit solves + 10 superposed activities (principal strains); "
          "bound = one SpMV streaming nnz·12 + rows·28 bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--large", action="store_true", help="also ~3M DOFs (~6 GB per run)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = run_case(args.worker)
        from mpi4py import MPI

        if MPI.COMM_WORLD.rank == 0:
            print(json.dumps(result))
        return
    results = []
    sizes = SIZES["quick"] if args.quick else SIZES["full"] + (SIZES["large"] if args.large else [])
    for target in sizes:
        for ranks in (1, 2):
            results.append(launch(target, ranks))
            print(f"done: {results[-1]['dofs']} DOFs on {ranks} rank(s)", file=sys.stderr)
    report(results)


if __name__ == "__main__":
    main()

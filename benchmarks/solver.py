"""Solver benchmark on the phantom femur: setup and per-load-case cost of the elasticity solver,
the cost of assessing every library activity, and how close one CG iteration comes to the
memory-bandwidth bound.

    python benchmarks/solver.py            # ~0.3M and ~1M DOFs, 1 and 2 ranks
    python benchmarks/solver.py --large    # also ~3M DOFs (0.7 mm phantom voxels)
    python benchmarks/solver.py --quick    # small sizes, a smoke run
    python benchmarks/solver.py --petsc pc_gamg_threshold=0.02 ...   # try solver options

The model is the pipeline's: the synthetic femur with its neck lesion (bonefe.sites.femur.phantom), meshed
by bonefe.meshing at the size that gives about the target DOFs, CT material (bonefe.materials,
default Morgan law, ν = 0.4), distal cut fixed, head and trochanter patches (bonefe.sites.femur.anatomy).
Each size is meshed once (serial, timed apart: meshing is not part of the solver figures) and
cached as XDMF; the script then runs itself under ``mpirun -n 1`` and ``-n 2`` on that mesh
(one subprocess per size and rank count) and prints one table. For each run:

* setup: matrix assembly + GAMG setup (the one-off cost per model); assembly alone is timed
  again afterwards, the rest is the preconditioner setup;
* per load case: one right-hand side + CG solve of the walking load on the head patch;
* all activities: what ``bonefe.assessment.assess`` does with the solver: 3 unit solves on each
  of the two patches, their nonlocal strain (`bonefe.nonlocal_strain`), then every library
  activity superposed with its principal strains at the lattice points;
* iterations and time per CG iteration, compared with the bound of one SpMV streaming the
  matrix from memory: bytes ≈ nnz·(8 + 4) (values + column indices) + rows·(4 + 3·8) (row
  pointers, x, y and b); the bandwidth is measured in the same run with a numpy STREAM-like
  triad. A CG+AMG iteration does one fine-level SpMV plus a V-cycle (2 pre- and 2
  post-smoothing Chebyshev steps and a residual: ~5 more fine-level SpMVs, plus the coarse levels
  whose 6×6-block matrices add about half again), so ~10–15× the single-SpMV bound is expected
  (measured 17–21× on the femur at 0.3–2.8M DOFs, the SpMV itself at 1.6–2.1× its bound);
* peak memory (max resident set size per rank).
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
#: Fitted on the phantom femur (default PhantomSpec; bonefe.meshing refines the lesion and thin
#: cortex), DOFs scaling about as size⁻³: with 25 000, 300k and 1M asked gave 267k and 815k DOFs.
DOFS_AT_3MM = 20_500
BODY_MASS_KG = 75.0


def phantom_spec(target_dofs: int):
    """The benchmark femur: the default phantom (neck lesion); 0.7 mm voxels above 1.5M DOFs so
    that the image stays finer than the elements."""
    from bonefe.sites.femur.phantom import PhantomSpec

    return PhantomSpec(voxel_mm=0.7 if target_dofs > 1_500_000 else 1.0)


def mesh_size(target_dofs: int) -> float:
    """Element size (mm) that gives about `target_dofs` P1 unknowns on the phantom femur."""
    return 3.0 * (DOFS_AT_3MM / target_dofs) ** (1 / 3)


def cached_mesh(cache: Path, target_dofs: int) -> tuple[Path, float]:
    """Mesh the phantom femur for `target_dofs` (serially) into `cache` unless already there;
    returns (mesh file, meshing seconds; 0 when cached)."""
    path = cache / f"femur-{target_dofs}.xdmf"
    if path.exists():
        return path, 0.0
    import bonefe  # noqa: F401

    from mpi4py import MPI

    from bonefe.meshing import mesh_bone, write_mesh
    from bonefe.sites.femur.phantom import make_phantom

    volume, _ = make_phantom(phantom_spec(target_dofs))
    start = time.perf_counter()
    bone = mesh_bone(volume, mesh_size(target_dofs), MPI.COMM_SELF)
    seconds = time.perf_counter() - start
    write_mesh(path, bone.mesh)
    return path, seconds


def femur_model(comm, mesh_file: Path, target_dofs: int):
    """Read the cached femur mesh on `comm` and build its model inputs as the pipeline does:
    (mesh, facet tags, E per local cell, ν, femur frame, bone per local cell (not lesion))."""
    import numpy as np

    from bonefe.sites.femur.anatomy import boundary_tags, femur_frame
    from bonefe.sites.femur.loads import WALKING_DIRECTION
    from bonefe.materials import MaterialOptions, cell_material
    from bonefe.meshing import read_mesh
    from bonefe.sites.femur.phantom import make_phantom
    from bonefe.volume import LESION_LABELS

    volume, _ = make_phantom(phantom_spec(target_dofs))
    frame = femur_frame(volume, "left")
    mesh, _, _ = read_mesh(mesh_file, comm)
    tags = boundary_tags(mesh, frame, cap_axis=-(frame.basis() @ WALKING_DIRECTION))
    options = MaterialOptions()
    cells = cell_material(mesh, volume, options)
    return mesh, tags, cells.E, options.poisson, frame, ~np.isin(cells.label, LESION_LABELS)


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


def warm_up_jit(comm) -> None:
    """Compile (or load from the FFCx cache) every form the run uses, on a tiny cube, so that
    one-off JIT time stays out of the timings."""
    import dolfinx
    import numpy as np

    from bonefe.solver import ElasticitySolver, UnitLoadBasis

    cube = dolfinx.mesh.create_unit_cube(comm, 2, 2, 2, dolfinx.mesh.CellType.tetrahedron)
    side = [dolfinx.mesh.locate_entities_boundary(cube, 2, lambda x, v=v: np.isclose(x[0], v))
            for v in (0.0, 1.0)]
    UnitLoadBasis(ElasticitySolver(cube, 1.0, 0.3, side[0]), {"end": side[1]})


def run_case(mesh_file: Path, target_dofs: int, petsc_options: dict) -> dict:
    """One run (inside mpirun): build, set up, solve, assess every activity, time everything."""
    import bonefe  # noqa: F401

    import dolfinx.fem.petsc
    import numpy as np
    from mpi4py import MPI

    from bonefe.sites.femur.anatomy import SUPPORT
    from bonefe.sites.femur.assessment import PATCH_TAGS
    from bonefe.activities import force_world
    from bonefe.sites.femur.loads import ACTIVITIES, STANCE_ACTIVITY, patch_forces
    from bonefe.nonlocal_strain import SphereAverage
    from bonefe.solver import ElasticitySolver, UnitLoadBasis, patch_traction, principal_strains

    comm = MPI.COMM_WORLD
    warm_up_jit(comm)
    mesh, tags, E, nu, frame, bone = femur_model(comm, mesh_file, target_dofs)

    def timed(action):
        comm.barrier()
        start = time.perf_counter()
        value = action()
        comm.barrier()
        return value, time.perf_counter() - start

    solver, setup = timed(lambda: ElasticitySolver(mesh, E, nu, tags.find(SUPPORT),
                                                   petsc_options=petsc_options))
    _, assembly = timed(lambda: dolfinx.fem.petsc.assemble_matrix(solver.a, bcs=solver.bcs).assemble())

    def all_activities():
        basis = UnitLoadBasis(solver, {name: tags.find(tag) for name, tag in PATCH_TAGS.items()})
        average = SphereAverage(mesh)
        nonlocal_basis = basis.mapped(lambda field: average(field, bone))
        for activity in ACTIVITIES.values():
            forces = patch_forces(activity, frame, BODY_MASS_KG)
            magnitude = np.linalg.norm(force_world(activity, frame, BODY_MASS_KG))
            principal_strains(nonlocal_basis.strain({k: f / magnitude for k, f in forces.items()}))

    _, activities = timed(all_activities)
    unit_iterations = [h["iterations"] for h in solver.history]
    head = tags.find(PATCH_TAGS["head"])
    walking = patch_forces(ACTIVITIES[STANCE_ACTIVITY], frame, BODY_MASS_KG)["head"]
    load = [(head, patch_traction(mesh, head, walking))]
    solve = min(timed(lambda: solver.solve(load))[1] for _ in range(2))
    A = solver.A
    nnz = A.getInfo()["nz_used"]  # summed over ranks (petsc4py's default MAT_GLOBAL_SUM)
    x, y = A.createVecs()
    x.set(1.0)
    spmv = timed(lambda: [A.mult(x, y) for _ in range(20)])[1] / 20
    rss = comm.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, op=MPI.MAX)
    comm.barrier()
    bandwidth = comm.allreduce(stream_bandwidth(), op=MPI.SUM)  # all ranks at once: aggregate
    return {"ranks": comm.size, "dofs": solver.num_dofs(), "nnz": int(nnz), "setup": setup,
            "assembly": assembly, "all_activities": activities, "n_activities": len(ACTIVITIES),
            "unit_iterations": unit_iterations, "solve": solve, "iterations": solver.iterations,
            "rss_mb": rss, "bandwidth": bandwidth, "spmv": spmv, "rows": A.getSize()[0]}


def launch(mesh_file: Path, target: int, ranks: int, petsc: list[str]) -> dict:
    mpirun = Path(sys.executable).with_name("mpirun")
    command = [str(mpirun if mpirun.exists() else "mpirun"), "-n", str(ranks), sys.executable,
               __file__, "--worker", str(target), "--mesh-file", str(mesh_file),
               *[arg for option in petsc for arg in ("--petsc", option)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, encoding="utf-8", env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(results: list[dict]) -> None:
    print(f"{'DOFs':>9} {'ranks':>5} {'mesh s':>7} {'setup s':>8} {'asm s':>6} {'solve s':>8} "
          f"{'its':>4} {'all act. s':>10} {'s/it':>8} {'SpMV s':>8} {'bound s':>8} {'SpMV/bd':>7} "
          f"{'it/bd':>6} {'DOF/s/core':>11} {'RSS MB':>7} {'speed-up':>8}")
    serial = {}
    for r in results:
        per_iteration = r["solve"] / max(r["iterations"], 1)
        bound = (r["nnz"] * 12 + r["rows"] * 28) / r["bandwidth"]
        if r["ranks"] == 1:
            serial[r["dofs"]] = r["setup"] + r["all_activities"]
        total = r["setup"] + r["all_activities"]
        speedup = serial.get(r["dofs"], float("nan")) / total if r["ranks"] > 1 else 1.0
        print(f"{r['dofs']:>9} {r['ranks']:>5} {r['meshing']:>7.1f} {r['setup']:>8.2f} "
              f"{r['assembly']:>6.2f} {r['solve']:>8.2f} {r['iterations']:>4} {total:>10.2f} "
              f"{per_iteration:>8.4f} {r['spmv']:>8.4f} {bound:>8.4f} {r['spmv'] / bound:>7.1f} "
              f"{per_iteration / bound:>6.1f} {r['dofs'] / r['solve'] / r['ranks']:>11.0f} "
              f"{r['rss_mb']:>7.0f} {speedup:>8.2f}")
    bandwidths = ", ".join(f"{r['ranks']} rank(s) {r['bandwidth'] / 1e9:.1f}" for r in results[:2])
    print(f"memory bandwidth (numpy triad on every rank at once, GB/s): {bandwidths}")
    print(f"mesh s = serial meshing (0: cached); asm s = matrix assembly, part of setup; "
          f"all act. = setup + 3 unit solves on each of 2 patches + {results[0]['n_activities']} "
          "library activities superposed (principal strains); speed-up = of all act.; "
          "bound = one SpMV streaming nnz·12 + rows·28 bytes")
    print("unit-solve iterations: " + "; ".join(f"{r['dofs']}/{r['ranks']}: {r['unit_iterations']}"
                                                for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--large", action="store_true", help="also ~3M DOFs")
    parser.add_argument("--cache", type=Path, default=Path("benchmark-meshes"),
                        help="folder for the meshed femurs (reused when present)")
    parser.add_argument("--petsc", action="append", default=[], metavar="KEY=VALUE",
                        help="solver option overriding bonefe.solver.DEFAULT_PETSC_OPTIONS")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mesh-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        options = dict(option.split("=", 1) for option in args.petsc)
        result = run_case(args.mesh_file, args.worker, options)
        from mpi4py import MPI

        if MPI.COMM_WORLD.rank == 0:
            print(json.dumps(result))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    results = []
    sizes = SIZES["quick"] if args.quick else SIZES["full"] + (SIZES["large"] if args.large else [])
    for target in sizes:
        mesh_file, meshing = cached_mesh(args.cache.resolve(), target)
        for ranks in args.ranks:
            results.append({**launch(mesh_file, target, ranks, args.petsc), "meshing": meshing})
            print(f"done: {results[-1]['dofs']} DOFs on {ranks} rank(s)", file=sys.stderr)
    report(results)


if __name__ == "__main__":
    main()

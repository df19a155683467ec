"""Benchmark: a clinical-size label map → tagged tetrahedral mesh with material.

The issue's target: under 60 s and under 4 GB for about 300k tetrahedra on 2 cores. The label
map is 512 × 512 × 400 voxels of 0.6 mm (a CT's field of view) holding a procedural proximal
femur (shaft tube, bent neck, head ball, trochanter ball) with a lytic lesion in the neck; the
bone is cut by the first slice like a real scan; its cortex is 4 mm thick on the shaft and 1.5 mm
proximally, so the thin-cortex refinement is exercised. For each mesh size the script prints the wall
time of each step, the element count, the quality and the peak resident memory.

    python benchmarks/meshing.py [--quick]          # serial
    mpirun -n 2 python benchmarks/meshing.py        # 2 ranks (gmsh on rank 0)

``--quick`` uses a 256 × 256 × 200 grid of 1.2 mm voxels instead (same femur).
"""

import bonefe  # noqa: F401  (orders MPI before dolfinx)

import argparse
import resource
import time

import numpy as np
from mpi4py import MPI

from bonefe.meshing import cell_tags, mesh_bone
from bonefe.volume import BONE, LYTIC, Volume

COMM = MPI.COMM_WORLD


def femur_parts(x: np.ndarray, y: np.ndarray, z: float, shrink: tuple) -> np.ndarray:
    """Union of the femur's parts on one axial slice (z in mm; x, y 2-D world grids in mm), each
    part's radius reduced by ``shrink`` = (shaft, proximal) mm."""
    shaft = (np.hypot(x, y) <= 14.0 - shrink[0]) & (z <= 150.0)
    neck_dir = np.array([0.0, np.sin(np.radians(50)), np.cos(np.radians(50))])
    rel = np.stack([x, y, np.full_like(x, z - 150.0)], axis=-1)
    t = np.clip(rel @ neck_dir, 0.0, 55.0)
    neck = np.linalg.norm(rel - t[..., None] * neck_dir, axis=-1) <= 15.0 - shrink[1]
    head = np.linalg.norm(rel - 55.0 * neck_dir, axis=-1) <= 24.0 - shrink[1]
    trochanter = np.linalg.norm(rel - [0.0, -14.0, 5.0], axis=-1) <= 18.0 - shrink[1]
    return shaft | neck | head | trochanter


def femur_slice(x: np.ndarray, y: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels and HU of one axial slice: a cortex 4 mm thick on the shaft and 1.5 mm thick
    proximally (1500 HU, the thin proximal shell is refined by the mesher) around 300 HU
    trabecular bone, a lytic lesion (150 HU) in the neck, soft tissue (-50 HU) outside."""
    neck_dir = np.array([0.0, np.sin(np.radians(50)), np.cos(np.radians(50))])
    lesion = np.linalg.norm(np.stack([x, y, np.full_like(x, z - 150.0)], axis=-1) - 30.0 * neck_dir, axis=-1) <= 10.0
    bone = femur_parts(x, y, z, (0.0, 0.0))
    labels = np.where(lesion & bone, LYTIC, np.where(bone, BONE, 0)).astype(np.uint8)
    cortex = bone & ~femur_parts(x, y, z, (4.0, 1.5))
    hu = np.where(labels == LYTIC, 150.0, np.where(cortex, 1500.0, np.where(bone, 300.0, -50.0)))
    return labels, hu.astype(np.float32)


def femur_volume(shape: tuple, spacing: float) -> Volume:
    """The femur on a grid of the given shape and isotropic spacing (mm), shaft along +z."""
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = [-spacing * shape[0] / 2, -spacing * shape[1] / 2 + 20.0, 0.0]
    i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    x, y = affine[0, 0] * i + affine[0, 3], affine[1, 1] * j + affine[1, 3]
    slices = [femur_slice(x, y, spacing * k) for k in range(shape[2])]
    labels = np.stack([s[0] for s in slices], axis=-1)
    hu = np.stack([s[1] for s in slices], axis=-1)
    return Volume(hu, labels, affine)


def peak_memory_gb() -> float:
    """Peak resident memory of this process (GB; Linux reports ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def material_step(mesh, volume):
    """Time bonefe.materials.cell_material (default options) and the cell tags made from its
    labels, when that module exists (seconds, slowest rank)."""
    try:
        from bonefe import materials
    except ImportError:
        return None
    t0 = time.perf_counter()
    material = materials.cell_material(mesh, volume, materials.MaterialOptions())
    cell_tags(mesh, material.label)
    return COMM.allreduce(time.perf_counter() - t0, op=MPI.MAX)


def run(volume: Volume, size_mm: float, threads: int) -> None:
    """Mesh, tag and assign material at one size; print one line of figures on rank 0."""
    t0 = time.perf_counter()
    bm = mesh_bone(volume, size_mm, COMM, threads=threads)
    t_material = material_step(bm.mesh, volume)
    total = COMM.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    memory = COMM.gather(peak_memory_gb(), root=0)
    if COMM.rank == 0:
        q, s = bm.quality, bm.seconds
        material = "n/a" if t_material is None else f"{t_material:.1f}"
        print(
            f"size {size_mm:4.1f} mm | tets {q['tets']:8d} nodes {q['nodes']:7d} | surface {s['surface']:5.1f} s "
            f"gmsh {s['gmsh']:5.1f} s distribute {s['distribution']:4.1f} s "
            f"material+tags {material} s | total {total:5.1f} s | peak RSS per rank {' + '.join(f'{m:.2f}' for m in memory)} GB",
            flush=True,
        )
        print(
            f"          min SICN {q['min_sicn']:.3f} mean {q['mean_sicn']:.3f} poor {100 * q['poor_fraction']:.2f} % "
            f"| volume error {100 * q['volume_error']:+.2f} % (surface {100 * (q['surface_volume_mm3'] / q['segmented_volume_mm3'] - 1):+.2f} %)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 × 256 × 200 voxels of 1.2 mm")
    parser.add_argument("--sizes", type=float, nargs="+", default=[3.0, 1.5], help="mesh sizes (mm)")
    parser.add_argument("--threads", type=int, default=1, help="gmsh threads on rank 0 (>1: not reproducible)")
    args = parser.parse_args()
    shape, spacing = ((256, 256, 200), 1.2) if args.quick else ((512, 512, 400), 0.6)
    t0 = time.perf_counter()
    volume = femur_volume(shape, spacing)
    if COMM.rank == 0:
        print(
            f"label map {shape} at {spacing} mm: {np.count_nonzero(volume.labels)} bone voxels, "
            f"built in {time.perf_counter() - t0:.1f} s; {COMM.size} rank(s)",
            flush=True,
        )
    for size_mm in args.sizes:
        run(volume, size_mm, args.threads)


if __name__ == "__main__":
    main()

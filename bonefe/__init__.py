"""bonefe: CT-based finite-element fracture risk for bones with metastases.

Units throughout: millimetres, newtons, megapascals; strain is dimensionless.
"""

import os

# Same inputs, same numbers: gmsh's mesher gives different (equally valid) meshes with different
# OpenMP thread counts even when told to use one thread, so pin OpenMP before any library loads
# it. Parallelism in bonefe comes from MPI ranks, one thread each.
os.environ["OMP_NUM_THREADS"] = "1"

try:  # the dolfinx-solver wheel must order MPI before dolfinx/petsc4py are imported
    import dolfinx_solver  # noqa: F401
except ImportError:  # a cluster's own DOLFINx (module, Spack, conda)
    pass

__version__ = "0.1.0"

"""Torsion and bending strength of a humerus: the load cases of humeral experiments and FE studies.

Humeri fail in torsion (spiral fractures of the shaft) and in bending (transverse fractures); both
are standard test cases of whole humeri (e.g. Aziz et al. 2014, J Biomech Eng 136(5): torsion,
cantilever bending and shear of 19 cadaveric humeri, abstract). On the case's model (distal cut
fixed, `bonefe.sites.humerus.assessment.humerus_model`):

- torsion: a couple about the shaft axis on the head patch, the traction t(x) = k·a × (x − x̄)
  (a the shaft axis, x̄ the patch's area centroid): its net force is zero and its moment about a
  is k·∫|r⊥|² dA, with r⊥ the part of x − x̄ normal to a; k makes that 1 N·mm. On a curved patch
  the couple also has a small moment normal to a (−k·∫(r·a) r⊥ dA), which is applied as it comes.
- bending: a force on the head patch normal to the shaft, along medial, lateral, anterior and
  posterior (the model's unit-load basis: no extra solve); the bending moment at the cut is the
  force times the head centre's height above the cut.
The failure torque and forces are read as every failure load (nonlocal maximum principal strain,
`bonefe.risk`). They are strengths of the modelled bone, not activity verdicts.
"""

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.mesh import meshtags
from mpi4py import MPI

from bonefe.assessment import BoneModel
from bonefe.risk import failure_under_unit_load
from bonefe.solver import cell_strain, principal_strains

BENDING = {"medial": (0, 1.0), "lateral": (0, -1.0), "anterior": (1, 1.0), "posterior": (1, -1.0)}
"""Bending directions: (column of the frame's basis, sign)."""


def _patch_integral(mesh, facets: np.ndarray, integrand) -> float:
    """Global ∫ integrand(x) dA over the facets (local exterior facet indices); integrand(x) is UFL."""
    facets = np.unique(np.asarray(facets, np.int32))
    tags = meshtags(mesh, mesh.topology.dim - 1, facets, np.ones_like(facets))
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags, subdomain_id=1)
    value = fem.assemble_scalar(fem.form(integrand(ufl.SpatialCoordinate(mesh)) * ds))
    return mesh.comm.allreduce(float(value), op=MPI.SUM)


def torsion_traction(mesh, facets: np.ndarray, axis) -> tuple[callable, np.ndarray]:
    """The traction field x -> (3, n) of 1 N·mm about `axis` on the patch (module docstring) and x̄."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    area = _patch_integral(mesh, facets, lambda x: 1.0)
    centroid = np.array([_patch_integral(mesh, facets, lambda x, i=i: x[i]) for i in range(3)]) / area
    c, av = ufl.as_vector(centroid), ufl.as_vector(a)

    def perp_squared(x):
        r = x - c
        r_perp = r - ufl.dot(r, av) * av
        return ufl.dot(r_perp, r_perp)

    k = 1.0 / _patch_integral(mesh, facets, perp_squared)

    def traction(x):
        return k * np.cross(a, (x - centroid[:, None]).T).T

    return traction, centroid


def torsion_strength_nm(model: BoneModel, facets: np.ndarray, axis) -> float:
    """Torque (N·m) about `axis` on the patch at which failure starts, the distal cut fixed."""
    traction, _ = torsion_traction(model.mesh, facets, axis)
    u = model.solver.solve([(facets, traction)])
    principal = principal_strains(model.lattice.nonlocal_field(cell_strain(u)))
    per_nmm = failure_under_unit_load(principal, model.lattice.points, model.mesh.comm,
                                      criterion=model.options.criterion)
    return per_nmm.failure_load_n / 1000.0


def strength_cases(model: BoneModel, frame) -> dict:
    """Failure torque (N·m) and bending failure forces (N) and moments at the cut (N·m) of the model."""
    basis = frame.basis()
    lever = float((np.asarray(frame.head_centre) - np.asarray(frame.distal_centre)) @ basis[:, 2])
    bending = {}
    for name, (column, sign) in BENDING.items():
        force = model.failure({"head": sign * basis[:, column]}).failure_load_n
        bending[name] = {"force_n": force, "moment_nm": force * lever / 1000.0}
    return {"torsion_nm": torsion_strength_nm(model, model.basis.patches["head"], frame.shaft_axis),
            "bending": bending, "lever_mm": lever}

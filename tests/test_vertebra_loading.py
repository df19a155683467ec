"""Endplate loading verified on a shelled cylinder against composite beam theory.

A solid cylinder (radius 15 mm, length 60 mm) with a stiff shell (E 10 GPa where the cell centre
lies beyond r = 13 mm) around a soft core (1 GPa), ν 0.3, loaded through the endplate layers of
`bonefe.sites.vertebra.loading`. Away from the ends (|z − 30| < 5 mm, Saint-Venant), plane sections
stay plane: axial strain −F/ΣEA under a force F, and −M·a/ΣEI under a flexion moment M
(a: the anterior coordinate), with the section's EA and EI summed over the mesh's own cells.
With compliant disc-like layers the axial stiffness is the springs in series
1 / (2/(k_n A) + L/ΣEA).
"""

import bonefe  # noqa: F401

import gmsh
import numpy as np
import pytest
from mpi4py import MPI

from bonefe.assessment import cell_centres
from bonefe.sites.vertebra.anatomy import VertebraFrame
from bonefe.sites.vertebra.loading import EndplateLoading, Layer
from bonefe.solver import cell_volumes
from bonefe.validation.models import COMM, gmsh_mesh

R, L, R_CORE = 15.0, 60.0, 13.0
E_SHELL, E_CORE, NU = 10000.0, 1000.0, 0.3


@pytest.fixture(scope="module")
def cylinder():
    def build():
        gmsh.model.occ.addCylinder(0, 0, 0, 0, 0, L, R)
        gmsh.option.setNumber("Mesh.MeshSizeMax", 2.0)
        gmsh.option.setNumber("Mesh.MeshSizeMin", 2.0)

    mesh = gmsh_mesh(build, order=1)
    centres = cell_centres(mesh)
    E = np.where(np.hypot(centres[:, 0], centres[:, 1]) > R_CORE, E_SHELL, E_CORE)
    volumes = cell_volumes(mesh)
    EA = COMM.allreduce(float(np.sum(E * volumes)), op=MPI.SUM) / L
    EI = COMM.allreduce(float(np.sum(E * volumes * centres[:, 1] ** 2)), op=MPI.SUM) / L
    frame = VertebraFrame(origin=np.array([0.0, 0.0, L / 2]), cranial=np.array([0.0, 0.0, 1.0]),
                          anterior=np.array([0.0, -1.0, 0.0]), posterior_wall=-100.0,
                          superior_centre=np.array([0.0, 0.0, L]), inferior_centre=np.zeros(3),
                          heights_mm=(L, L, L), width_mm=2 * R, depth_mm=2 * R)
    return mesh, E, centres, volumes, EA, EI, frame


def _mid(centres):
    return np.abs(centres[:, 2] - L / 2) < 5.0


def _axial(basis, load):
    return basis.strain(load)[:, 2, 2]


def test_stiff_layers_compression_and_flexion_follow_beam_theory(cylinder):
    mesh, E, centres, volumes, EA, EI, frame = cylinder
    loading = EndplateLoading(mesh, E, NU, frame, Layer(1.0e5, 0.3, 1.0))
    S = loading.stiffness
    assert np.abs(S - S.T).max() <= 1e-8 * np.abs(S).max()  # reciprocity
    basis = loading.strain_basis()
    mid = _mid(centres)
    w = volumes[mid]
    F = 1000.0
    eps = _axial(basis, {"force": np.array([0.0, 0.0, -F])})[mid]
    mean = COMM.allreduce(float(np.sum(w * eps)), op=MPI.SUM) / COMM.allreduce(float(w.sum()), op=MPI.SUM)
    assert mean == pytest.approx(-F / EA, rel=0.015)
    M = 1.0e4  # N·mm, flexion: the anterior (−y) side shortens
    eps = _axial(basis, {"moment": np.array([0.0, M, 0.0])})[mid]
    a = -centres[mid, 1]
    sums = [COMM.allreduce(float(v), op=MPI.SUM) for v in (np.sum(w), np.sum(w * a), np.sum(w * a * a),
                                                          np.sum(w * eps), np.sum(w * a * eps))]
    n, sa, saa, se, sae = sums
    slope = (n * sae - sa * se) / (n * saa - sa * sa)
    assert slope == pytest.approx(-M / EI, rel=0.03)


def test_disc_layers_axial_stiffness_is_springs_in_series(cylinder):
    mesh, E, _, _, EA, _, frame = cylinder
    layer = Layer(8.0, 0.45, 5.0)  # the disc layer: k_n = 1.6 N/mm³
    loading = EndplateLoading(mesh, E, NU, frame, layer)
    area = np.pi * R**2
    expected = 1.0 / (2.0 / (layer.normal_stiffness * area) + L / EA)
    assert loading.stiffness_axial() == pytest.approx(expected, rel=0.01)

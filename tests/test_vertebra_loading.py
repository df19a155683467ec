"""Endplate loading verified on a shelled cylinder against composite beam theory.

The model is `bonefe.validation.vertebra.shelled_cylinder` (radius 15 mm, length 60 mm, a 10 GPa
shell beyond r = 13 mm around a 1 GPa core, ν 0.3), loaded through the endplate layers of
`bonefe.sites.vertebra.loading`. Away from the ends (|z − 30| < 5 mm, Saint-Venant) plane sections
stay plane: axial strain −F/ΣEA under a force F and −M·a/ΣEI under a flexion moment M (a: the
anterior coordinate), EA and EI summed here over the mesh's own cells. With compliant disc-like
layers the axial stiffness is the springs in series 1 / (2/(k_n A) + L/ΣEA).
"""

import bonefe  # noqa: F401

import numpy as np
import pytest
from mpi4py import MPI

from bonefe.plate_layer import Layer
from bonefe.sites.vertebra.loading import EndplateLoading
from bonefe.validation.models import COMM
from bonefe.validation.vertebra import shelled_cylinder

R, L = 15.0, 60.0


def _sum(values) -> float:
    return COMM.allreduce(float(np.sum(values)), op=MPI.SUM)


@pytest.fixture(scope="module")
def cylinder():
    mesh, E, centres, volumes, frame = shelled_cylinder()
    EA, EI = _sum(E * volumes) / L, _sum(E * volumes * centres[:, 1] ** 2) / L
    return mesh, E, centres, volumes, EA, EI, frame


def test_stiff_layers_compression_and_flexion_follow_beam_theory(cylinder):
    mesh, E, centres, volumes, EA, EI, frame = cylinder
    loading = EndplateLoading(mesh, E, 0.3, frame, Layer(1.0e5, 0.3, 1.0))
    S = loading.stiffness
    assert np.abs(S - S.T).max() <= 1e-8 * np.abs(S).max()  # reciprocity
    basis = loading.strain_basis()
    mid = np.abs(centres[:, 2] - L / 2) < 5.0
    w = volumes[mid]
    F = 1000.0
    eps = basis.strain({"force": np.array([0.0, 0.0, -F])})[mid, 2, 2]
    assert _sum(w * eps) / _sum(w) == pytest.approx(-F / EA, rel=0.015)
    M = 1.0e4  # N·mm, flexion: the anterior (−y) side shortens
    eps = basis.strain({"moment": np.array([0.0, M, 0.0])})[mid, 2, 2]
    a = -centres[mid, 1]
    n, sa, saa, se, sae = (_sum(v) for v in (w, w * a, w * a * a, w * eps, w * a * eps))
    slope = (n * sae - sa * se) / (n * saa - sa * sa)
    assert slope == pytest.approx(-M / EI, rel=0.03)


def test_disc_layers_axial_stiffness_is_springs_in_series(cylinder):
    mesh, E, _, _, EA, _, frame = cylinder
    layer = Layer(8.0, 0.45, 5.0)  # the disc layer: k_n = 1.6 N/mm³
    loading = EndplateLoading(mesh, E, 0.3, frame, layer)
    expected = 1.0 / (2.0 / (layer.normal_stiffness * np.pi * R**2) + L / EA)
    assert loading.stiffness_axial() == pytest.approx(expected, rel=0.01)

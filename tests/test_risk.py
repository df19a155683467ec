"""Verification of bonefe.risk against hand calculations, beam theory and a brute-force definition.

Runs serially and under `mpirun -n 2 pytest tests/test_risk.py` (the MPI test splits its data).
"""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

import numpy as np
import pytest
from mpi4py import MPI

from bonefe.errors import BonefeError
from bonefe.risk import (
    RiskThresholds,
    StrainCriterion,
    VerdictPolicy,
    assess_activity,
    body_weight_n,
    distance_mask,
    failure_index,
    failure_load,
    failure_under_unit_load,
    peak,
    risk_category,
    strain_fold_ratio,
    tensile_dominant,
    verdict,
    weight_bearing_fraction,
)


def uniaxial_principal(stress_mpa, young_mpa, poisson):
    """Principal strains (descending) of a bar under uniaxial stress: σ/E axially, -νσ/E laterally."""
    axial, lateral = stress_mpa / young_mpa, -poisson * stress_mpa / young_mpa
    return np.sort(np.array([[axial, lateral, lateral]]), axis=1)[:, ::-1]


def test_failure_index_hits_one_at_each_limit():
    """Schileo 2008 limits: ε1 = 0.73 % or ε3 = -1.04 % give index exactly 1 (exact in floats)."""
    principal = np.array([[0.0073, 0.0, -0.0052], [0.001, 0.0, -0.0104], [-0.001, -0.002, -0.003]])
    index = failure_index(principal)
    np.testing.assert_allclose(index[:2], [1.0, 1.0], rtol=1e-15)
    # all-compressive cell: only the compressive term counts, 0.003 / 0.0104
    assert index[2] == pytest.approx(0.003 / 0.0104, rel=1e-15)
    assert list(tensile_dominant(principal)) == [True, False, False]
    # configurable limits: halving the tensile limit doubles the tensile term
    assert failure_index(principal[:1], StrainCriterion(tensile_limit=0.00365))[0] == pytest.approx(2.0)
    with pytest.raises(BonefeError, match="strain limits must be positive"):
        StrainCriterion(tensile_limit=-0.0073)


@pytest.mark.parametrize("sign, limit, mode", [(1, 0.0073, "tensile"), (-1, 0.0104, "compressive")])
def test_bar_failure_load_matches_beam_theory(sign, limit, mode):
    """Uniform bar, E = 10 GPa, A = 100 mm², ν = 0.4: F_fail = E·A·ε_limit (7300 N tension,
    10400 N compression; lateral strain ν·ε never governs). Exact up to float rounding (1e-12)."""
    young, area, poisson = 10000.0, 100.0, 0.4
    principal = np.repeat(uniaxial_principal(sign * 1.0 / area, young, poisson), 50, axis=0)
    centres = np.column_stack([np.zeros(50), np.zeros(50), np.arange(50.0)])  # bar axis along z
    result = failure_under_unit_load(principal, centres)
    assert result.failure_load_n == pytest.approx(young * area * limit, rel=1e-12)
    assert result.mode == mode
    assert result.location_mm == (0.0, 0.0, 0.0)  # uniform strain: ties go to the smallest (x, y, z)


def test_failure_load_hand_example():
    """Four points, index (1/N) 4e-4, 3e-4, 2e-4, 1e-4: F = 1/4e-4 = 2500 N at the first point, in
    its mode; masking it gives 1/3e-4 N at the second. Exact up to rounding."""
    index = np.array([4e-4, 3e-4, 2e-4, 1e-4])
    centres = np.array([[0.0, 0, 0], [10.0, 0, 0], [20.0, 0, 0], [30.0, 0, 0]])
    tensile = np.array([False, True, True, True])
    result = failure_load(index, centres=centres, tensile=tensile)
    assert result.failure_load_n == pytest.approx(2500.0, rel=1e-12)
    assert (result.location_mm, result.mode) == ((0.0, 0.0, 0.0), "compressive")
    masked = failure_load(index, mask=np.array([True, False, False, False]), centres=centres, tensile=tensile)
    assert masked.failure_load_n == pytest.approx(1 / 3e-4, rel=1e-12)
    assert (masked.location_mm, masked.mode) == ((10.0, 0.0, 0.0), "tensile")


def test_nothing_evaluated_or_unloaded_is_a_user_error():
    """Every point masked, or a load that strains nothing: a BonefeError, not a number."""
    with pytest.raises(BonefeError, match="no bone is evaluated"):
        failure_load(np.array([1e-4, 2e-4]), mask=np.array([True, True]))
    with pytest.raises(BonefeError, match="no strain"):
        failure_load(np.zeros(3))


def test_mpi_invariance_and_brute_force():
    """Same 2000 random points split over the ranks give identical results to the serial run, ties
    at the top included, and the serial run agrees with an exhaustive search over the unmasked
    points (the smallest 1/index, the tie broken by the smallest x)."""
    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(7)
    n = 2000
    index = rng.lognormal(-9.0, 0.5, n)
    top = np.argsort(-index)[:3]
    index[top] = index[top[0]]  # a three-way tie at the top must not depend on the split
    centres = rng.uniform(-50, 50, (n, 3))
    tensile = rng.random(n) < 0.5
    mask = distance_mask(centres, np.array([[0.0, 0.0, 40.0]]), 15.0)
    serial = failure_load(index, None, mask, centres, tensile)
    part = np.array_split(np.arange(n), comm.size)[comm.rank]
    parallel = failure_load(index[part], comm, mask[part], centres[part], tensile[part])
    assert parallel == serial
    keep = np.nonzero(~mask)[0]
    loads = [(1.0 / index[i], centres[i, 0], i) for i in keep]
    load, _, best = min(loads)
    assert serial.failure_load_n == pytest.approx(load, rel=1e-15)
    assert serial.location_mm == tuple(centres[best])


def test_mpi_invariance_with_an_empty_rank():
    """A rank with no points at all still joins the collective and gets the serial answer."""
    comm = MPI.COMM_WORLD
    index = np.linspace(1e-4, 1e-3, 40)
    chunks = [np.arange(40)] if comm.size == 1 else [np.arange(0)] + np.array_split(np.arange(40), comm.size - 1)
    result = failure_load(index[chunks[comm.rank]], comm)
    assert result.failure_load_n == pytest.approx(1e3, rel=1e-12)
    assert peak(index[chunks[comm.rank]], comm) == pytest.approx(1e-3, rel=1e-15)


def test_distance_mask_on_a_line():
    """Centres at x = 0..10 mm, one point at the origin, 2.5 mm: exactly x = 0, 1, 2 are masked."""
    centres = np.column_stack([np.arange(11.0), np.zeros(11), np.zeros(11)])
    mask = distance_mask(centres, np.zeros((1, 3)), 2.5)
    assert list(np.nonzero(mask)[0]) == [0, 1, 2]
    assert not distance_mask(centres, np.zeros((0, 3)), 2.5).any()
    # a centre at exactly the distance is masked (the tree search stops just beyond it)
    assert list(np.nonzero(distance_mask(centres, np.zeros((1, 3)), 3.0))[0]) == [0, 1, 2, 3]


def test_distance_mask_equals_brute_force():
    """Random centres and patch points: the same mask as every pairwise distance."""
    rng = np.random.default_rng(7)
    centres, points = rng.uniform(0.0, 50.0, (2000, 3)), rng.uniform(20.0, 30.0, (300, 3))
    brute = (np.linalg.norm(centres[:, None] - points[None], axis=2).min(axis=1) <= 6.0)
    assert 0 < brute.sum() < len(centres)
    assert np.array_equal(distance_mask(centres, points, 6.0), brute)


def test_verdict_boundaries():
    """Default policy: safe at SF >= 2, avoid below 1, caution in between (boundaries inclusive
    as documented); a custom policy moves them."""
    assert [verdict(f) for f in (2.0, 1.999, 1.0, 0.999)] == ["safe", "caution", "caution", "avoid"]
    strict = VerdictPolicy(safe_factor=3.0, avoid_factor=1.5)
    assert [verdict(f, strict) for f in (3.0, 2.0, 1.4)] == ["safe", "caution", "avoid"]
    with pytest.raises(BonefeError, match="0 < avoid_factor <= safe_factor"):
        VerdictPolicy(safe_factor=1.0, avoid_factor=2.0)


def test_assess_activity_and_weight_bearing():
    """Walking peak 1800 N vs 2700 N allowed: SF 1.5 (caution); weight bearing for SF 2 is
    2700 / (2·1800) = 75 %; a zero activity force is a user error."""
    row = assess_activity("walking", "Walking", 1800.0, 2700.0, "Bergmann 2016")
    assert row.safety_factor == pytest.approx(1.5, rel=1e-15)
    assert row.verdict == "caution"
    assert weight_bearing_fraction(2700.0, 1800.0) == pytest.approx(0.75, rel=1e-15)
    assert weight_bearing_fraction(9000.0, 1800.0) == 1.0
    with pytest.raises(BonefeError, match="positive activity force"):
        assess_activity("rest", "Rest", 0.0, 100.0, "-")


def test_risk_category_boundaries():
    """Defaults: high below 5 x BW, low from 10 x BW; 70 kg → BW = 686.7 N."""
    assert [risk_category(x) for x in (4.99, 5.0, 9.99, 10.0)] == ["high", "moderate", "moderate", "low"]
    assert risk_category(3.0, RiskThresholds(high_below_bw=2.0, low_from_bw=3.0)) == "low"
    assert body_weight_n(70.0) == pytest.approx(686.7, rel=1e-12)
    with pytest.raises(BonefeError, match="0 < high_below_bw <= low_from_bw"):
        RiskThresholds(high_below_bw=12.0, low_from_bw=10.0)


def test_strain_fold_ratio():
    """Identical peaks give SFR 1; 1480 µε over 1000 µε sits exactly at Sternheim's 1.48."""
    assert strain_fold_ratio(2345.0, 2345.0) == 1.0
    assert strain_fold_ratio(1480.0, 1000.0) == pytest.approx(1.48, rel=1e-15)
    with pytest.raises(BonefeError, match="twin's peak strain must be positive"):
        strain_fold_ratio(1.0, 0.0)

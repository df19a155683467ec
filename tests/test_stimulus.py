"""Osteogenic stimulus and safety factor of a tube under a known strain field, against hand calculation.

The tube: outer radius b = 15 mm, inner a = 10 mm, E = 17 000 MPa, ν = 0.3, one 1-mm slice sampled
at the midpoints of a 200 × 720 polar grid (each point carries its r·dr·dθ volume). Beam theory
gives the strain field exactly; the sampled grid differs from the continuous section by the
half-cell at the surfaces (|Δr| ≤ 0.0125 mm of b = 15 mm: < 0.1 %), hence the 0.2 % tolerances.

Hand numbers (A = π(b² − a²) = 392.70 mm², I = π(b⁴ − a⁴)/4 = 31 906.8 mm⁴):
* compression by F: uniaxial σ = F/A, principal strains (νσ/E, νσ/E, −σ/E); effective stress
  sqrt(2EU) = σ; every point reaches 1500 µε at F = 1500e-6·E·A = 10 013.8 N; failure at the
  compressive limit 1.04 % (Schileo 2008) at 0.0104·E·A = 69 429 N;
* bending by F on a 100 mm lever (M = 100·F): ε = M y /(E I); the fraction of the annulus with
  |y| ≥ c is [S(b, c) − S(a, c)]/A, S(R, c) = 2(R² acos(c/R) − c·sqrt(R² − c²)); at F = 1000 N
  it is 0.54578 above 1500 µε (c = 8.136 mm) and 0.71375 above 1000 µε (c = 5.424 mm); the
  volume mean of |σ| is (M/I)·4(b³ − a³)/(3A), so ψ over 20 cycles = 20^(1/4)·that = 53.446 MPa/day;
  10 % of the section reaches 1500 µε at |y| = 13.0405 mm, F = 623.92 N; failure at the tensile
  limit 0.73 % at y = b: F = 0.0073·E·I/(b·100) = 2639.76 N.
"""

import numpy as np
import pytest

from bonefe.risk import VerdictPolicy, assess_activity, failure_under_unit_load
from bonefe.stimulus import StrainField, fraction_above, measure, scale_to_reach
from bonefe.window import CARRIED, window_row

A_MM, B_MM, E_MPA, NU = 10.0, 15.0, 17000.0, 0.3
AREA = np.pi * (B_MM**2 - A_MM**2)
INERTIA = np.pi * (B_MM**4 - A_MM**4) / 4
LEVER_MM = 100.0
RTOL = 2e-3


def section(nr=200, nt=720):
    """Midpoints (x, y) of a polar grid over the annulus and their volumes (1 mm slice)."""
    dr, dt = (B_MM - A_MM) / nr, 2 * np.pi / nt
    r, t = np.meshgrid(A_MM + dr * (np.arange(nr) + 0.5), dt * (np.arange(nt) + 0.5), indexing="ij")
    return (r * np.cos(t)).ravel(), (r * np.sin(t)).ravel(), (r * dr * dt).ravel()


def uniaxial(axial: np.ndarray) -> np.ndarray:
    """Principal strains (n, 3), descending, of uniaxial stress with axial strain `axial` (n,)."""
    lateral = -NU * axial
    return -np.sort(-np.column_stack([axial, lateral, lateral]), axis=1)


def compression_field():
    _, y, volumes = section()
    unit = uniaxial(np.full_like(y, -1.0 / (E_MPA * AREA)))
    return StrainField(unit, volumes, np.full_like(y, E_MPA), NU, np.ones(len(y), bool)), y


def bending_field():
    _, y, volumes = section()
    unit = uniaxial(LEVER_MM * y / (E_MPA * INERTIA))
    return StrainField(unit, volumes, np.full_like(y, E_MPA), NU, np.ones(len(y), bool)), y


def row(field, y, force_n, name="squat_bodyweight", policy=VerdictPolicy()):
    """The activity row of the risk module for the field (safety factor from the strain limits)."""
    centres = np.column_stack([np.zeros_like(y), y, np.zeros_like(y)])
    allowed = failure_under_unit_load(field.principal, centres).failure_load_n
    return assess_activity(name, name, force_n, allowed, "tube", policy)


def test_compression_stimulus_and_safety_factor():
    field, y = compression_field()
    at_1kn = measure(field, 1000.0, 20.0, 0.10)
    assert at_1kn.region_above_high == 0.0 and at_1kn.region_above_low == 0.0
    assert at_1kn.region_psi_mpa == pytest.approx(20**0.25 * 1000.0 / AREA, rel=1e-9)  # 5.3851 MPa/day
    assert at_1kn.scale_high * 1000.0 == pytest.approx(10013.83, rel=1e-6)
    assert at_1kn.scale_low * 1000.0 == pytest.approx(6675.88, rel=1e-6)
    assert measure(field, 10014.0, 20.0, 0.10).region_above_high == 1.0
    assert row(field, y, 1000.0).safety_factor == pytest.approx(69.4292, rel=1e-6)


def test_bending_stimulus_and_safety_factor():
    field, y = bending_field()
    at_1kn = measure(field, 1000.0, 20.0, 0.10)
    assert at_1kn.region_above_high == pytest.approx(0.54578, rel=RTOL)
    assert at_1kn.region_above_low == pytest.approx(0.71375, rel=RTOL)
    assert at_1kn.region_psi_mpa == pytest.approx(53.446, rel=RTOL)
    assert at_1kn.scale_high * 1000.0 == pytest.approx(623.92, rel=RTOL)
    assert row(field, y, 1000.0).safety_factor == pytest.approx(2.63976, rel=RTOL)


def test_stimulus_rises_and_safety_falls_with_load():
    """Monotone in load: the fraction above the threshold and ψ never fall, the safety factor falls."""
    field, y = bending_field()
    loads = [100.0, 300.0, 600.0, 1000.0, 2000.0]
    stimuli = [measure(field, f, 20.0, 0.10) for f in loads]
    fractions = [s.region_above_high for s in stimuli]
    assert np.all(np.diff(fractions) >= 0) and fractions[-1] > fractions[0]
    assert np.all(np.diff([s.region_psi_mpa for s in stimuli]) > 0)
    assert np.all(np.diff([row(field, y, f).safety_factor for f in loads]) < 0)


def test_scale_to_reach_is_the_volume_quantile():
    """Four points of volumes 1, 2, 3, 4 with unit values 4, 3, 2, 1: 10 % of the volume (the first
    point) reaches 8 at scale 8/4 = 2; 30 % (the first two) at 8/3; all at 8/1."""
    values, volumes = np.array([1.0, 2.0, 3.0, 4.0]), np.array([4.0, 3.0, 2.0, 1.0])
    assert scale_to_reach(values, volumes, 8.0, 0.1) == pytest.approx(2.0)
    assert scale_to_reach(values, volumes, 8.0, 0.3) == pytest.approx(8.0 / 3.0)
    assert scale_to_reach(values, volumes, 8.0, 1.0) == pytest.approx(8.0)
    assert scale_to_reach(np.zeros(4), volumes, 8.0, 0.1) is None
    assert fraction_above(2.0 * values, volumes, 8.0) == pytest.approx(0.1)


def test_window_and_dose_of_the_tube_in_bending():
    """A 75 kg patient, squat peak 1000 N (the tube in bending): SF 2.64 ≥ 2 and 55 % of the bone
    above 1500 µε: in the window. Dose: safe up to SF/2 = 1.3199 × the peak (+24 kg carried),
    stimulating from 0.62392 × (−28 kg: unloaded); a window."""
    field, y = bending_field()
    result = window_row(field, row(field, y, 1000.0), 75.0, VerdictPolicy(), kind=CARRIED)
    assert result.in_window and result.verdict == "safe"
    assert result.dose.safe_scale == pytest.approx(1.31988, rel=RTOL)
    assert result.dose.stimulus_scale == pytest.approx(0.62392, rel=RTOL)
    assert result.dose.window and result.dose.text == "window: from 28 kg unloaded to 24 kg carried"


def test_no_window_when_the_stimulus_needs_more_than_safety_allows():
    """The tube in compression: 1500 µε everywhere at 10 014 N. Peak 30 kN: SF 2.314 (safe), all of
    the section above the threshold: in the window, doses 0.334-1.157 ×. Peak 40 kN: SF 1.736
    (caution): not in the window although stimulating; its dose window is 0.250-0.868 ×. With a
    safe factor of 8, safety allows 2.314/8 = 0.289 × the 30 kN peak, the stimulus needs 0.334 ×:
    no window."""
    field, y = compression_field()
    safe = window_row(field, row(field, y, 30000.0), 75.0, VerdictPolicy(), kind=CARRIED)
    assert safe.in_window and safe.dose.window
    caution = window_row(field, row(field, y, 40000.0), 75.0, VerdictPolicy(), kind=CARRIED)
    assert caution.verdict == "caution" and not caution.in_window
    assert caution.dose.safe_scale == pytest.approx(69429.2 / 40000.0 / 2.0, rel=1e-6)
    assert caution.dose.stimulus_scale == pytest.approx(10013.83 / 40000.0, rel=1e-6)
    strict = VerdictPolicy(safe_factor=8.0)
    tight = window_row(field, row(field, y, 30000.0, policy=strict), 75.0, strict, kind=CARRIED)
    assert not tight.in_window and not tight.dose.window and tight.dose.text.startswith("no window")

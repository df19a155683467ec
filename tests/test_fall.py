"""Sideways fall (bonefe.sites.femur.fall): supports checked by statics on a tube, the impact force formula by
hand, and the fall strength of the phantom and a real femur against cadaver sideways-fall tests.

Statics (hand calculation): a tube along z (0 ≤ z ≤ L) pinned at z = 0, loaded by F along d on its
end face z = L, supported along d on a narrow strip of its outer surface at z_t. The pin takes no
moment about its axis y, so moments about it give the trochanter reaction
R_t = F · (r_head × d)·y / ((r_t × d)·y) along −d, and the pin takes the rest, −F − R_t.
"""

import bonefe  # noqa: F401  (before dolfinx)

import dolfinx
import numpy as np
import pytest
from mpi4py import MPI

from bonefe.errors import BonefeError
from bonefe.sites.femur.fall import FallModel, fall_direction, impact_force
from bonefe.validation.models import COMM, tube_mesh

RO, RI, LENGTH, SIZE = 15.0, 10.0, 120.0, 3.0
"""A femur-like tube (mm): outer radius of a femoral shaft, wall 5 mm."""
E_BONE = 15000.0
"""Cortical-bone modulus (MPa): with it the pin's strip (±3 mm about the pin line) resists the tube's
rotation by < 0.1 % of the applied moment, so statics holds to the tolerance below."""


@pytest.fixture(scope="module")
def tube():
    return tube_mesh(RO, RI, LENGTH, SIZE)


def _facets(mesh, marker):
    return dolfinx.mesh.locate_entities_boundary(mesh, 2, marker)


def _area_centroid(mesh, facets) -> np.ndarray:
    """Area-weighted centroid of facets over all ranks (world mm)."""
    from bonefe.solver import _facet_measure
    import ufl
    from dolfinx import fem

    ds = _facet_measure(mesh, facets)
    x = ufl.SpatialCoordinate(mesh)
    area = COMM.allreduce(fem.assemble_scalar(fem.form(1.0 * ds)), op=MPI.SUM)
    return np.array([COMM.allreduce(fem.assemble_scalar(fem.form(x[i] * ds)), op=MPI.SUM) for i in range(3)]) / area


@pytest.mark.parametrize("tilt_deg", [0.0, 20.0])
def test_support_reactions_match_statics(tube, tilt_deg):
    """Trochanter reaction by moments about the pin within 1 %, equilibrium within 1e-6 N per N.
    tilt 20°: the force also pushes along the tube, as a fall with the shaft inclined to the ground."""
    t = np.radians(tilt_deg)
    d = np.array([-np.cos(t), 0.0, -np.sin(t)])
    head = _facets(tube, lambda x: np.isclose(x[2], LENGTH))
    section = _facets(tube, lambda x: np.isclose(x[2], 0.0))
    support = _facets(tube, lambda x: (x[0] < -0.95 * RO) & (np.abs(x[2] - 100.0) <= 5.0))
    model = FallModel(tube, E_BONE, 0.3, head, support, section, np.zeros(3), [0.0, 0.0, 1.0], d, degree=2)
    r_head, r_support = _area_centroid(tube, head), _area_centroid(tube, support)
    pin_axis = np.array([0.0, 1.0, 0.0])
    expected = np.cross(r_head, d) @ pin_axis / (np.cross(r_support, d) @ pin_axis)
    trochanter, pin = model.reaction("trochanter"), model.reaction("pin")
    assert -trochanter @ d == pytest.approx(expected, rel=0.01)
    assert np.linalg.norm(np.cross(trochanter, d)) < 1e-9  # the trochanter pushes along d only
    assert np.linalg.norm(d + trochanter + pin) < 1e-6
    assert expected > 1.1  # the hand calculation is not trivial: the pin pulls the tube back


def test_a_direction_on_the_first_ones_bone_stiffness_is_its_own_model(tube):
    """A direction built on the first direction's assembled bone stiffness and AMG set-up has the
    operator of its own full assembly (to round-off) and its displacement (to the solver tolerance)."""
    head = _facets(tube, lambda x: np.isclose(x[2], LENGTH))
    section = _facets(tube, lambda x: np.isclose(x[2], 0.0))
    support = _facets(tube, lambda x: (x[0] < -0.95 * RO) & (np.abs(x[2] - 100.0) <= 5.0))
    args = (tube, E_BONE, 0.3, head, support, section, np.zeros(3), [0.0, 0.0, 1.0])
    first = FallModel(*args, [-1.0, 0.0, 0.0])
    second = np.array([-np.cos(0.3), -np.sin(0.3), 0.0])
    shared, own = FallModel(*args, second, first=first), FallModel(*args, second)
    difference = shared.solver.A.copy()
    difference.axpy(-1.0, own.solver.A)
    assert difference.norm() < 1e-13 * own.solver.A.norm()
    u, v = shared.u.x.petsc_vec, own.u.x.petsc_vec
    assert (u - v).norm() < 1e-8 * v.norm()


def test_fall_direction_is_lateral_posterior_and_distal():
    """α = 10°, β = 15° (Courtney 1995): (−cos10 cos15, −cos10 sin15, −sin10), a unit vector."""
    assert fall_direction(0.0, 0.0) == pytest.approx([-1.0, 0.0, 0.0])
    assert fall_direction(10.0, 15.0) == pytest.approx([-0.951251, -0.254887, -0.173648], abs=1e-6)


def test_impact_force_by_hand():
    """F = 8.25 · BW · √(h / 1.70 m) − 71 N/mm · tissue (van den Kroonenberg 1995; Robinovitch 1995):
    75 kg, 1.70 m: 8.25 × 735.75 = 6069.94 N; 60 kg, 1.60 m: 8.25 × 588.6 × 0.970143 = 4710.96 N;
    with 30 mm of soft tissue 6069.94 − 2130 = 3939.94 N."""
    assert impact_force(75.0) == pytest.approx(6069.94, abs=0.01)
    assert impact_force(60.0, 1.60) == pytest.approx(4710.96, abs=0.01)
    assert impact_force(75.0, 1.70, 30.0) == pytest.approx(3939.94, abs=0.01)
    with pytest.raises(BonefeError, match="soft tissue"):
        impact_force(40.0, 1.50, 60.0)


def _strength(directions) -> float:
    return min(d.failure_load_n for d in directions)


def _weaker_as_rotated(directions) -> bool:
    """At every tilt the strength falls as the internal rotation grows (Pinilla et al. 1996, cadavers:
    24 % lower at 30° than at 0°)."""
    for tilt in {d.tilt_deg for d in directions}:
        loads = [d.failure_load_n for d in sorted(directions, key=lambda d: d.rotation_deg) if d.tilt_deg == tilt]
        if not all(a > b for a, b in zip(loads, loads[1:])):
            return False
    return True


@pytest.mark.slow
def test_phantom_fall_strength_is_rank_independent_and_weakest_when_rotated():
    """The phantom femur (1.5 mm voxels, 5 mm mesh) on all ranks and on each rank alone: the same
    fall strength to 1e-6 (CG converged to 1e-10; the nonlocal strain is partition-independent).
    Its weakest direction is the most internally rotated, and the drop from 10° to 30° lies within
    10–40 % (Pinilla 1996: 24 % from 0° to 30°). Its absolute strength lies above the cadaver range: its
    uniform 3 mm neck cortex is a young, dense one (the aged phantom, next test, lies within it)."""
    from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
    from bonefe.validation.fall import femur_fall, rotation_drop

    volume, frame = make_phantom(PhantomSpec(lesion_site=None, voxel_mm=1.5))
    together = femur_fall(volume, frame, 5.0)
    alone = femur_fall(volume, frame, 5.0, MPI.COMM_SELF) if COMM.size > 1 else together
    assert _strength(together) == pytest.approx(_strength(alone), rel=1e-6)
    assert _weaker_as_rotated(together)
    assert 0.10 <= rotation_drop(together) <= 0.40


@pytest.mark.slow
def test_aged_phantom_fall_strength_lies_in_the_cadaver_range():
    """The phantom with the neck cortex of a woman of 75 years, the cadaver donors' age (Poole et al. 2010:
    0.55 mm superior, 3.4 mm inferior; 1.5 mm voxels, 5 mm mesh): fall strength within 633–9380 N, the
    cadaver range at ± 2 SD (Courtney et al. 1995; Eckstein et al. 2004), below the same phantom at 25 years
    (1.63 / 3.9 mm), weakest when most rotated. Measured 2026-12-02: 6730 N and 11544 N (pinned ±3 %: they
    move with the mesher, the material law, the strain limits or the fall set-up)."""
    from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
    from bonefe.validation.fall import DONOR_AGE, femur_fall

    assert DONOR_AGE == 75.0
    strength = {}
    for age in (25.0, 75.0):
        directions = femur_fall(*make_phantom(PhantomSpec(lesion_site=None, voxel_mm=1.5, age_years=age)), 5.0)
        assert _weaker_as_rotated(directions), age
        strength[age] = _strength(directions)
    assert 633.0 <= strength[75.0] <= 9380.0 < strength[25.0]
    assert strength[75.0] == pytest.approx(6730.0, rel=0.03) and strength[25.0] == pytest.approx(11544.0, rel=0.03)


@pytest.mark.slow
def test_real_femur_fall_strength_lies_in_the_cadaver_range():
    """The proximal 200 mm of the gfxmorph femur (5 mm mesh): fall strength within 633–9380 N, the
    range of cadaver sideways-fall tests at ± 2 SD (Courtney et al. 1995: elderly 3.44 ± 1.33 kN,
    young 7.20 ± 1.09 kN; Eckstein et al. 2004: 3.95 ± 1.66 kN), weakest when most rotated."""
    from bonefe.validation.fall import femur_fall, real_femur

    from real_data import shared_data

    folder = shared_data("femur-surface-gfxmorph")
    directions = femur_fall(*real_femur(folder / "femur.stl", folder / "femur_cortex.stl"), 5.0)
    assert 633.0 <= _strength(directions) <= 9380.0
    assert _weaker_as_rotated(directions)


@pytest.mark.parametrize("patient, message", [
    ("{body_mass_kg: 70, height_m: 170}", "give metres"),
    ("{body_mass_kg: 70, trochanteric_soft_tissue_mm: -5}", "trochanteric_soft_tissue_mm must be between"),
])
def test_case_file_fall_keys_are_checked(tmp_path, patient, message):
    """A height in cm or a negative soft-tissue thickness is refused with one clear line; the
    defaults are the impact formula's reference height (1.70 m) and no attenuation."""
    from bonefe.case import load_case

    text = f"name: c\nct: ct.nii.gz\nlabels: labels.nii.gz\npatient: {patient}\n"
    (tmp_path / "case.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(BonefeError, match=message):
        load_case(tmp_path / "case.yaml")
    (tmp_path / "case.yaml").write_text(text.replace(patient, "{body_mass_kg: 70}"), encoding="utf-8")
    default = load_case(tmp_path / "case.yaml").patient
    assert (default.height_m, default.trochanteric_soft_tissue_mm) == (1.70, None)

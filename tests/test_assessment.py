"""The assessment's new numbers on a prismatic bar, where strain is known in closed form.

Bar 20 × 20 × 100 mm, E = 10 GPa, ν = 0.3, clamped at z = 0, loaded on its top face (the "head"
patch); cells within 25 mm of a patch are not evaluated (Saint-Venant: the clamp disturbance
decays over about one bar width). Away from the ends a uniform axial force F gives the uniform
strain ε_z = F/(E A), ε_x = ε_y = −ν ε_z, so the force at which the strain limit is reached is
F = ε_limit · E · A (tension 0.73 %, compression 1.04 %; Schileo et al. 2008).
"""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

import dolfinx
import numpy as np
import pytest
from mpi4py import MPI

from bonefe.anatomy import HEAD, SUPPORT, TROCHANTER, FemurFrame
from bonefe.assessment import (
    BoneModel,
    RiskOptions,
    allowed_head_force,
    assess,
    cell_centres,
    compare_twin,
    lesion_region,
    plane_direction,
)
from bonefe.loads import ACTIVITIES, WALKING_DIRECTION
from bonefe.volume import BONE, LYTIC

COMM = MPI.COMM_WORLD
WIDTH, LENGTH, E0, NU = 20.0, 100.0, 10000.0, 0.3
AREA = WIDTH * WIDTH
OPTIONS = RiskOptions(exclusion_mm=25.0)
FRAME = FemurFrame(head_centre=np.array([10.0, 10.0, 100.0]), head_radius=10.0,
                   shaft_axis=np.array([0.0, 0.0, 1.0]), neck_axis=np.array([1.0, 0.0, 0.0]),
                   distal_centre=np.array([10.0, 10.0, 0.0]))


def bar():
    """Mesh (4 mm tetrahedra) and facet tags: support at z = 0, head on top, trochanter patch on
    the x = 20 face above z = 92 (needed by the unit-load basis, unused here)."""
    mesh = dolfinx.mesh.create_box(COMM, [np.zeros(3), np.array([WIDTH, WIDTH, LENGTH])], [5, 5, 25],
                                   dolfinx.mesh.CellType.tetrahedron)
    markers = [(SUPPORT, lambda p: np.isclose(p[2], 0.0)), (HEAD, lambda p: np.isclose(p[2], LENGTH)),
               (TROCHANTER, lambda p: np.isclose(p[0], WIDTH) & (p[2] > 92.0))]
    facets, values = [], []
    for tag, marker in markers:
        found = dolfinx.mesh.locate_entities_boundary(mesh, 2, marker)
        facets.append(found)
        values.append(np.full(len(found), tag, dtype=np.int32))
    facets, values = np.concatenate(facets), np.concatenate(values)
    order = np.argsort(facets)
    return mesh, dolfinx.mesh.meshtags(mesh, 2, facets[order].astype(np.int32), values[order])


@pytest.fixture(scope="module")
def uniform_bar():
    mesh, tags = bar()
    n = mesh.topology.index_map(3).size_local
    return mesh, tags, np.full(n, E0), np.full(n, BONE, dtype=np.int32)


def test_envelope_axial_directions_match_closed_form(uniform_bar):
    """0° pushes the head inferiorly (compression): F = 1.04 % · E · A = 41.6 kN; 180° pulls it
    (tension): 0.73 % · E · A = 29.2 kN. Linear tetrahedra reproduce a uniform strain exactly; the
    2 % tolerance covers what is left of the clamp's disturbance 25 mm from it. The walking row of
    the activity table and the envelope along the walking direction are the same number."""
    mesh, tags, E, labels = uniform_bar
    result = assess(mesh, tags, E, labels, NU, FRAME, 75.0, [ACTIVITIES["walking"]], OPTIONS,
                    envelope_step_deg=90.0)
    frontal = {p.plane: p for p in result.envelope}["frontal"]
    assert frontal.angles_deg == [0.0, 90.0, 180.0, 270.0]
    assert frontal.allowed_force_n[0] == pytest.approx(0.0104 * E0 * AREA, rel=0.02)
    assert frontal.allowed_force_n[2] == pytest.approx(0.0073 * E0 * AREA, rel=0.02)
    model = BoneModel(mesh, tags, E, labels, NU, OPTIONS)
    walking = allowed_head_force(model, FRAME, WALKING_DIRECTION)
    assert result.activities[0].allowed_force_n == pytest.approx(walking, rel=1e-9)
    assert result.twin is None  # no lesion cells: no twin
    mark = result.envelope_marks[0]
    assert mark.angles_deg["frontal"] == pytest.approx(np.degrees(np.arctan2(54.0, 229.2)), abs=1e-9)


def test_twin_of_a_bone_without_lesion_gives_sfr_one_and_the_same_failure_load(uniform_bar):
    """A 'lesion' region with healthy modulus: the twin is the same bone, so the strain fold ratio
    is 1 (to solver tolerance) and both failure loads are the closed-form 41.6 kN in compression."""
    mesh, tags, E, _ = uniform_bar
    centres = cell_centres(mesh)
    fake = np.where(np.abs(centres[:, 2] - 50.0) < 4.0, LYTIC, BONE).astype(np.int32)
    model = BoneModel(mesh, tags, E, fake, NU, OPTIONS)
    twin = BoneModel(mesh, tags, E, np.full_like(fake, BONE), NU, OPTIONS)
    down = {"head": FRAME.basis() @ plane_direction("frontal", 0.0)}
    comparison = compare_twin(model, twin, lesion_region(model, fake), down, 1000.0)
    assert comparison.strain_fold_ratio == pytest.approx(1.0, rel=1e-6)
    assert comparison.twin_stance.failure_load_n == pytest.approx(model.failure(down).failure_load_n, rel=1e-6)
    assert comparison.twin_stance.failure_load_n == pytest.approx(0.0104 * E0 * AREA, rel=0.02)


def test_side_defect_raises_strain_by_at_least_the_net_section_ratio(uniform_bar):
    """A soft defect (E × 0.001) through the bar's x < 8 mm side over 44 < z < 56 mm leaves a net
    section of 12 × 20 mm, long enough for the 3 mm averaging spheres at z = 50 to see only it. Equilibrium alone forces the mean axial strain there up by A / A_net =
    1.67 (the defect carries ~0.1 %), and the eccentric section bends, so the peak rises more:
    SFR ≥ 1.6, and the twin (the intact bar) is the stronger."""
    mesh, tags, E, _ = uniform_bar
    centres = cell_centres(mesh)
    defect = (centres[:, 0] < 8.0) & (np.abs(centres[:, 2] - 50.0) < 6.0)
    labels = np.where(defect, LYTIC, BONE).astype(np.int32)
    result = assess(mesh, tags, np.where(defect, E0 * 1e-3, E0), labels, NU, FRAME, 75.0,
                    [ACTIVITIES["walking"]], OPTIONS, twin_E=E, envelope_step_deg=None)
    assert result.twin.strain_fold_ratio >= 1.6
    assert result.twin.twin_stance.failure_load_n > result.stance.failure_load_n
    assert result.envelope == []


def test_envelope_lateral_direction_matches_beam_bending(uniform_bar):
    """A lateral head force F bends the clamped bar: ε_z = F (L − z) x' / (E I), I = a⁴/12, x' the
    distance from the neutral plane (Euler–Bernoulli; the transverse shear strain vanishes at the
    extreme fibres, where failure starts). The beam-theory strain (uniaxial, lateral −ν ε_z) goes
    through the model's own sphere average and evaluated points, so the comparison isolates the FE
    strains from the averaging rule. P2 elements represent the linear bending strain across each cell exactly; the 3 %
    tolerance covers the clamp's Saint-Venant disturbance 25 mm away (~e^(−π·25/20) ≈ 2 %)."""
    from bonefe.risk import failure_under_unit_load
    from bonefe.solver import principal_strains

    mesh, tags, E, labels = uniform_bar
    model = BoneModel(mesh, tags, E, labels, NU, OPTIONS, degree=2)
    lateral = plane_direction("frontal", 90.0)  # pushes the head laterally: -x here
    allowed = allowed_head_force(model, FRAME, lateral)

    assert (FRAME.basis() @ lateral)[0] == pytest.approx(-1.0)  # lateral is -x in this frame
    # the bar bends towards -x: fibres at x < 10 shorten, fibres at x > 10 stretch (per newton)
    inertia = WIDTH**4 / 12.0
    centres = cell_centres(mesh)
    shortening = (LENGTH - centres[:, 2]) * (WIDTH / 2.0 - centres[:, 0]) / (E0 * inertia)
    strain = np.einsum("n,ij->nij", -shortening, np.diag([-NU, -NU, 1.0]))
    beam = failure_under_unit_load(principal_strains(model.lattice.nonlocal_field(strain)), model.lattice.points,
                                   COMM)
    print(f"lateral allowed force: FE {allowed:.1f} N, beam theory {beam.failure_load_n:.1f} N")
    assert allowed == pytest.approx(beam.failure_load_n, rel=0.03)

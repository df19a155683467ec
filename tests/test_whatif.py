"""What-if scenarios on the phantom femur (2 mm voxels, 3 mm mesh) and on small voxel blocks.

References: (1) a lesion grown by d mm holds exactly the lattice points within d of it (counted
by brute force) and never leaves the bone envelope; (2) physics: removing stiffness
cannot stiffen the femur, so the stance strain energy is non-decreasing as the lesion grows, and
the most grown lesion fails first (tolerance 1e-6 relative: the iterative solver's rtol 1e-10 on
the residual, with margin); (3) full re-mineralisation is, by definition, the lesion-free twin of
Sternheim et al. 2020, solved here independently from `healthy_volume` with all cells bone (same tolerance);
partial re-mineralisation stiffens monotonically and lies between its end states.
"""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

import json
from dataclasses import replace

import numpy as np
import pytest
from mpi4py import MPI
from scipy import ndimage

from bonefe.sites.femur.anatomy import boundary_tags
from bonefe.assessment import RiskOptions
from bonefe.sites.femur.assessment import femur_model, unit_forces
from bonefe.sites.femur.site import FemurSetup
from bonefe.sites.femur.loads import ACTIVITIES, STANCE_ACTIVITY, WALKING_DIRECTION
from bonefe import materials
from bonefe.materials import MaterialOptions, MaterialUpdate, box_counts, cell_material, healthy_volume, lesion_map
from bonefe.meshing import mesh_bone
from bonefe.sites.femur.phantom import PhantomSpec, make_phantom
from bonefe.risk import RiskThresholds, body_weight_n
from bonefe.volume import BACKGROUND, BONE, LYTIC, Volume, distance_to
from bonefe.whatif import (Scenario, grown_volume, lesion_growth, lesion_size, reference_failure_load, remineralisation,
                           remineralised)

COMM = MPI.COMM_WORLD
SOLVER_RTOL = 1e-6
BODY_MASS_KG = 75.0
LABEL_SWITCH = 0.01  # relative; see test_partial_remineralisation_is_monotone_and_between_its_end_states


def block(shape, spacing, lesion_index) -> Volume:
    """A block of bone (HU 1000) with one lytic voxel (HU 40) at lesion_index."""
    labels = np.full(shape, BONE, dtype=np.uint8)
    hu = np.full(shape, 1000.0, dtype=np.float32)
    labels[lesion_index], hu[lesion_index] = LYTIC, 40.0
    return Volume(hu=hu, labels=labels, affine=np.diag([*spacing, 1.0]))


def test_growth_takes_the_lattice_points_within_the_distance():
    """One lytic voxel grown by 4 mm on 1 × 1 × 2 mm voxels: exactly the voxel centres within 4 mm
    (brute-force count), all with the lesion's HU and label."""
    volume = block((15, 15, 9), (1.0, 1.0, 2.0), (7, 7, 4))
    grown = grown_volume(volume, 4.0)
    i, j, k = np.indices(volume.labels.shape)
    within = (i - 7) ** 2 + (j - 7) ** 2 + (2.0 * (k - 4)) ** 2 <= 16.0
    assert np.array_equal(grown.labels == LYTIC, within)
    assert np.all(grown.hu[within] == 40.0) and np.all(grown.hu[~within] == 1000.0)


def test_growth_stays_inside_the_bone_envelope():
    """Background voxels (half the block) stay background with their HU, however far the lesion grows."""
    volume = block((10, 10, 10), (1.0, 1.0, 1.0), (5, 5, 5))
    labels, hu = volume.labels.copy(), volume.hu.copy()
    labels[:, :, :4], hu[:, :, :4] = BACKGROUND, -100.0
    grown = grown_volume(Volume(hu=hu, labels=labels, affine=volume.affine), 20.0)
    assert np.all(grown.labels[:, :, :4] == BACKGROUND) and np.all(grown.hu[:, :, :4] == -100.0)
    assert np.all(grown.labels[:, :, 4:] == LYTIC)


def test_boxed_distance_is_the_whole_grid_transform_within_its_reach():
    """`distance_to` runs the transform on the mask's box grown by the reach: within the reach it is
    the whole grid's Euclidean distance transform exactly, beyond it never shorter."""
    mask = np.zeros((40, 30, 20), bool)
    mask[12:15, 8:11, 6:9] = np.random.default_rng(5).random((3, 3, 3)) < 0.5
    spacing = np.array([0.78, 0.78, 1.25])
    whole = ndimage.distance_transform_edt(~mask, sampling=spacing)
    boxed = distance_to(mask, spacing, 5.0)
    within = whole <= 5.0
    assert np.array_equal(boxed[within], whole[within]) and np.all(boxed[~within] > 5.0)
    assert np.isinf(boxed).any()  # the box is smaller than the grid


def phantom_scenario(lesion_site: str, cortical_involvement: float) -> Scenario:
    """The phantom femur (2 mm voxels, 20 mm lytic lesion at lesion_site) on a 3 mm mesh."""
    volume, frame = make_phantom(PhantomSpec(voxel_mm=2.0, lesion_site=lesion_site, lesion_diameter_mm=20.0,
                                             cortical_involvement=cortical_involvement))
    mesh = mesh_bone(volume, 3.0, COMM).mesh
    tags = boundary_tags(mesh, frame, cap_axis=-(frame.basis() @ WALKING_DIRECTION))
    return Scenario(mesh, tags, volume, MaterialOptions(), FemurSetup(frame, BODY_MASS_KG), RiskOptions())


@pytest.fixture(scope="module")
def scenario():
    return phantom_scenario("neck", 0.5)


@pytest.fixture(scope="module")
def baseline(scenario):
    return reference_failure_load(scenario, scenario.volume, scenario.material)


def stance_state(scenario, volume) -> tuple[float, float]:
    """Strain energy (mJ) under the stance peak load and stance failure load (N) of the mesh with
    the material of `volume`."""
    cells = cell_material(scenario.mesh, volume, scenario.material)
    model = femur_model(scenario.mesh, scenario.facet_tags, cells.E, cells.label, scenario.material.poisson,
                        scenario.risk, lesion=lesion_map(volume))
    forces, magnitude = unit_forces(ACTIVITIES[STANCE_ACTIVITY], scenario.setup.frame, BODY_MASS_KG, False)
    u = model.basis.displacement({k: f * magnitude for k, f in forces.items()})
    return model.solver.strain_energy(u), model.failure(forces).failure_load_n


def test_box_counts_match_brute_force():
    rng = np.random.default_rng(3)
    mask = rng.random((9, 7, 8)) < 0.1
    low = rng.integers(0, 6, size=(40, 3))
    high = np.minimum(low + rng.integers(0, 4, size=(40, 3)), np.array(mask.shape) - 1)
    expected = [mask[a[0]:b[0] + 1, a[1]:b[1] + 1, a[2]:b[2] + 1].sum() for a, b in zip(low, high)]
    assert box_counts(mask, low, high).tolist() == expected


def test_material_update_gives_cell_material_bit_for_bit(scenario, monkeypatch):
    """What-if states sample again only the cells that can reach a changed voxel: the lesion grown by
    4 mm, half re-mineralised (a new lytic factor too), the lesion-free twin, and a changed background
    (every cell sampled again): the arrays of `cell_material` exactly, and the lesion maps of
    `lesion_map`. The grown state samples less than a third of the cells again (the lesion and its
    4 mm rim on a 3 mm mesh)."""
    volume, options = scenario.volume, scenario.material
    update = MaterialUpdate(scenario.mesh, volume, options)
    sampled = []
    original = materials._sample_cells
    monkeypatch.setattr(materials, "_sample_cells", lambda *a: sampled.append(len(a[-1])) or original(*a))
    twin = healthy_volume(volume)
    labels = volume.labels.copy()
    labels[tuple(np.argwhere(labels == BONE)[0])] = BACKGROUND
    states = [(volume, options), (grown_volume(volume, 4.0), options), remineralised(volume, twin, options, 0.5),
              (twin, options), (Volume(hu=volume.hu, labels=labels, affine=volume.affine), options)]
    points = scenario.mesh.geometry.x + np.random.default_rng(2).normal(0.0, 1.0, scenario.mesh.geometry.x.shape)
    for state, state_options in states:
        expected, got = cell_material(scenario.mesh, state, state_options), update(state, state_options)
        for name in ("E", "rho_app", "label", "lesion_fraction"):
            assert np.array_equal(getattr(got, name), getattr(expected, name)), name
        reused, own = update.lesion_map(state), lesion_map(state)
        assert (reused is None) == (own is None)
        if own is not None:
            assert np.array_equal(reused(points), own(points))
    n_cells = len(update.material.E)
    updates = sampled[1::2]  # each state: the update's sampling, then cell_material's own
    print("cells sampled again:", [u / n_cells for u in updates])
    assert updates[0] == 0 and 0 < updates[1] < n_cells / 3 and updates[-1] == n_cells


def test_a_growing_lesion_softens_the_femur_and_ends_weaker(scenario):
    """Each grown state on its own (no running minimum). Growth only lowers moduli, so under a
    fixed load the strain energy (the compliance) cannot fall (Rayleigh's monotonicity of
    compliance in stiffness); the most grown lesion fails at a lower load. The failure load of a
    single state need not fall at every step: the peak strain of a shell the lesion consumes leaves
    with it (hence the running minimum of the next test)."""
    grown = [grown_volume(scenario.volume, d) for d in (2.0, 4.0, 6.0)]
    sizes = [lesion_size(v)[0] for v in [scenario.volume, *grown]]
    states = [stance_state(scenario, v) for v in [scenario.volume, *grown]]
    energies = [energy for energy, _ in states]
    assert np.all(np.diff(sizes) > 0)
    assert all(later >= earlier * (1 - SOLVER_RTOL) for earlier, later in zip(energies, energies[1:]))
    assert states[-1][1] < states[0][1]
    # the series solves the reference load alone (one solve): the unit-load basis's failure load
    assert reference_failure_load(scenario, grown[-1], scenario.material) == pytest.approx(states[-1][1],
                                                                                            rel=SOLVER_RTOL)


def test_growth_series_reports_the_lowest_state_passed_through(scenario, monkeypatch):
    """A state stronger than a smaller one (a consumed thin shell) does not raise the series: the
    series is the running minimum of the states, the scanned lesion included."""
    import bonefe.whatif as whatif

    states = iter([7000.0, 8000.0, 5000.0])
    monkeypatch.setattr(whatif, "reference_failure_load", lambda *args: next(states))
    series = lesion_growth(scenario, [2.0, 4.0, 6.0], 9000.0)
    assert [s.value for s in series.steps] == [0.0, 2.0, 4.0, 6.0]
    assert [s.failure_load_n for s in series.steps] == [9000.0, 7000.0, 7000.0, 5000.0]


def test_the_first_high_risk_step_is_the_first_below_the_threshold(scenario, baseline):
    """With the high-risk boundary set between the scanned and the most grown lesion's failure
    loads (in × BW), the series marks the first step below it."""
    series = lesion_growth(scenario, [3.0, 6.0], baseline)
    bw = [s.failure_load_n / body_weight_n(BODY_MASS_KG) for s in series.steps]
    boundary = 0.5 * (bw[0] + bw[-1])
    marked = replace(scenario, risk=RiskOptions(thresholds=RiskThresholds(boundary, 1e3)))
    rerun = lesion_growth(marked, [3.0, 6.0], baseline)
    first = next(s.value for s, load in zip(series.steps, bw) if load < boundary)
    assert rerun.high_risk_from == first
    assert [s.risk_category for s in rerun.steps] == ["high" if b < boundary else "moderate" for b in bw]


def test_full_remineralisation_is_the_lesion_free_twin(scenario, baseline):
    series = remineralisation(scenario, [0.5, 1.0], baseline)
    twin = cell_material(scenario.mesh, healthy_volume(scenario.volume), scenario.material)
    model = femur_model(scenario.mesh, scenario.facet_tags, twin.E, np.full_like(twin.label, BONE),
                        scenario.material.poisson, scenario.risk)
    forces, _ = unit_forces(ACTIVITIES[STANCE_ACTIVITY], scenario.setup.frame, BODY_MASS_KG, False)
    twin_load = model.failure(forces).failure_load_n
    assert series.steps[-1].value == 1.0
    assert series.steps[-1].failure_load_n == pytest.approx(twin_load, rel=SOLVER_RTOL)
    # given the twin's load (the pipeline has solved the twin), t = 1 is not solved again; t = 0.5 is
    given = remineralisation(scenario, [0.5, 1.0], baseline, twin_n=12345.0)
    assert given.steps[-1].failure_load_n == 12345.0
    assert given.steps[1].failure_load_n == pytest.approx(series.steps[1].failure_load_n, rel=SOLVER_RTOL)


@pytest.fixture(scope="module")
def governed():
    """The demo's lesion (20 mm, inferomedial neck, through the cortex): failure starts at it."""
    return phantom_scenario("neck_inferomedial", 1.0)


def test_partial_remineralisation_is_monotone_and_between_its_end_states(governed):
    """Re-mineralisation by t raises every lesion modulus monotonically in t (HU and lesion factor
    both interpolate towards the twin's), so the stance strain energy cannot rise with t (Rayleigh).
    On a femur whose failure the lesion governs (the twin at least 1.5 × stronger), the failure load
    rises with t and the partial states lie between the scanned lesion's and the twin's, within
    LABEL_SWITCH: below t = 1 the lesion keeps its label (its points are not read for failure), at
    t = 1 it becomes bone and is read, so the last step may dip (measured 2026-12-01: 2975, 5342,
    8149, 9852 N for t = 0–0.75, twin 9813 N: −0.4 %; 3102, 5645, 8159, 9852 N while failure points
    followed the tetrahedra's majority label instead of the CT's label at each point)."""
    twin = healthy_volume(governed.volume)
    states = []
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        volume, material = remineralised(governed.volume, twin, governed.material, t)
        states.append(stance_state(replace(governed, material=material), volume))
    energies, loads = [e for e, _ in states], [f for _, f in states]
    assert all(later <= earlier * (1 + SOLVER_RTOL) for earlier, later in zip(energies, energies[1:]))
    assert loads[-1] > 1.5 * loads[0], loads
    assert all(later >= earlier * (1 - SOLVER_RTOL) for earlier, later in zip(loads[:-1], loads[1:-1])), loads
    assert all(loads[0] <= f <= loads[-1] * (1 + LABEL_SWITCH) for f in loads[1:-1]), loads


def test_report_shows_and_stores_the_series(scenario, baseline, tmp_path):
    """The report of a run with both series: report.json holds every step's failure load exactly
    (JSON keeps float64 digits) and builds back; a real what-if picture and its key rows appear."""
    from test_report import make_results

    from bonefe.report import build_results, write_report
    from bonefe.report.pictures import image_is_real

    growth = lesion_growth(scenario, [4.0], baseline)
    healing = remineralisation(scenario, [1.0], baseline)
    results = {**make_results(), "whatif_growth": growth, "whatif_remineralisation": healing}
    written = write_report(tmp_path, results)
    data = json.loads(written["json"].read_text(encoding="utf-8"))
    assert [s["failure_load_n"] for s in data["whatif_growth"]["steps"]] == [s.failure_load_n for s in growth.steps]
    assert data["whatif_remineralisation"]["steps"][-1]["value"] == 1.0
    assert build_results(results).whatif_growth == growth
    assert image_is_real(written["whatif"])
    html = written["html"].read_text(encoding="utf-8")
    assert "What if the lesion grows" in html and "What if the lesion re-mineralises" in html
    assert "whatif" not in write_report(tmp_path / "plain", make_results())

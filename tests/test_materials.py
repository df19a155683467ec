"""Verification of the CT → modulus mapping (bonefe.materials).

References: published law coefficients evaluated by hand; exact element averages of E over each
tetrahedron computed independently of the sampler (a closed form for linear fields, a tensor
Gauss rule for a quadratic one); least-squares algebra for the calibration fit. Every tolerance
states its reason. Runs serially and under mpirun (per-cell arrays are local; asserts reduce).
"""

import bonefe  # noqa: F401  (before dolfinx)
import numpy as np
import pytest
from dolfinx.mesh import create_box
from mpi4py import MPI
from scipy import ndimage

from bonefe.errors import BonefeError
from bonefe.materials import (
    LAWS,
    MaterialOptions,
    apparent_density,
    ash_density,
    cell_material,
    cell_vertices,
    fit_calibration,
    qct_density,
)
from bonefe.volume import BLASTIC, BONE, LYTIC, Volume

COMM = MPI.COMM_WORLD


def everywhere(local_ok) -> bool:
    """True when the condition holds on every local cell of every rank."""
    return COMM.allreduce(bool(np.all(local_ok)), op=MPI.LAND)


def grid_volume(hu_of_xyz, shape, voxel=1.0, labels=None) -> Volume:
    """A Volume with voxel centres at (index + 0.5)·voxel mm and HU = hu_of_xyz(x, y, z)."""
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = 0.5 * voxel
    axes = [(np.arange(n) + 0.5) * voxel for n in shape]
    hu = hu_of_xyz(*np.meshgrid(*axes, indexing="ij")).astype(np.float32)
    labels = np.full(shape, BONE, np.uint8) if labels is None else labels
    return Volume(hu, labels, affine)


def box(lo, hi, cells):
    return create_box(COMM, [np.array(lo, float), np.array(hi, float)], cells)


# ---------------------------------------------------------------------------------------------
# Density chain and laws against hand-computed values
# ---------------------------------------------------------------------------------------------

def test_density_chain_matches_schileo_2008_by_hand():
    """HU 1000, slope 0.0008: ρ_QCT = 0.8, ρ_ash = 0.877·0.8 + 0.079 = 0.7806, ρ_app = 0.7806/0.6 = 1.301.
    Negative calibrated densities clamp to 0 (ρ_ash then 0.079). Tolerance: float rounding."""
    rho_qct = qct_density(np.array([1000.0, -300.0]), 0.0008, 0.0)
    assert rho_qct == pytest.approx([0.8, 0.0], abs=1e-15)
    assert ash_density(rho_qct) == pytest.approx([0.7806, 0.079], rel=1e-12)
    assert apparent_density(ash_density(rho_qct))[0] == pytest.approx(1.301, rel=1e-12)


@pytest.mark.parametrize("name, rho, expected", [
    ("morgan2003", 1.0, 6850.0),            # Morgan et al. 2003: E = 6850 ρ_app^1.49
    ("morgan2003", 0.5, 2438.686),          # 6850 · 2^-1.49
    ("keller1994", 1.0, 10500.0),           # Keller 1994: E = 10500 ρ_ash^2.29
    ("keller1994", 0.5, 2146.993),          # 10500 · 2^-2.29
    ("keyak1994", 0.5, 7377.916),           # Keyak et al. 1994: 33900 · 2^-2.20
    ("carter_hayes1977", 1.0, 2875.009),    # Carter & Hayes 1977: 3790 · 0.01^0.06 at 0.01 /s
    ("carter_hayes1977", 0.5, 359.3761),    # ... · 0.5^3
])
def test_law_against_hand_value(name, rho, expected):
    """Each law at one density, evaluated by hand from the published coefficients (6 digits)."""
    law = LAWS[name]
    other = np.nan  # the law must not read the density it does not take
    E = law.modulus(np.array(rho if law.density == "ash" else other),
                    np.array(rho if law.density == "apparent" else other))
    assert float(E) == pytest.approx(expected, rel=2e-6)


def test_options_reject_unknown_law_and_bad_values():
    with pytest.raises(ValueError, match="morgan2003"):
        MaterialOptions(law="hooke")
    with pytest.raises(ValueError, match="lytic_factor"):
        MaterialOptions(lytic_factor=2.0)


# ---------------------------------------------------------------------------------------------
# Calibration fit
# ---------------------------------------------------------------------------------------------

def test_calibration_fit_recovers_slope_intercept_and_standard_error():
    """Rods on the line ρ = 0.00075·HU − 0.003 plus residuals r = δ(1, −2, 2, −2, 1), which are
    orthogonal to 1 and to HU (Σr = 0, Σr·HU = 0), so least squares returns the line exactly and
    the standard error of the estimate is δ·sqrt(Σr²/(n − 2)) = δ·sqrt(14/3). Tolerance: rounding."""
    hu = np.array([-200.0, -100.0, 0.0, 100.0, 200.0])
    delta = 0.004
    rho = 0.00075 * hu - 0.003 + delta * np.array([1, -2, 2, -2, 1])
    slope, intercept, stderr = fit_calibration(hu, rho)
    assert slope == pytest.approx(0.00075, rel=1e-12)
    assert intercept == pytest.approx(-0.003, abs=1e-14)
    assert stderr == pytest.approx(delta * np.sqrt(14 / 3), rel=1e-12)


def test_calibration_needs_three_rods():
    with pytest.raises(BonefeError, match="at least 3"):
        fit_calibration([0.0, 100.0], [0.0, 0.08])


# ---------------------------------------------------------------------------------------------
# Element integration against exact element averages
# ---------------------------------------------------------------------------------------------

def law_of_hu(name: str, options: MaterialOptions):
    """E(HU) = A (α·HU + β)^b as coefficients (A, α, β, b) for a law, valid where ρ_QCT > 0."""
    law = LAWS[name]
    alpha, beta = 0.877 * options.slope, 0.877 * options.intercept + 0.079   # ρ_ash (Schileo 2008)
    if law.density == "apparent":
        alpha, beta = alpha / 0.6, beta / 0.6
    return law.coefficient, alpha, beta, law.exponent


def exact_mean_power(values: np.ndarray, b: float) -> np.ndarray:
    """Exact mean over a tetrahedron of ℓ^b, ℓ linear with distinct vertex values (cells, 4):
    the Hermite–Genocchi formula, mean g(ℓ) = 3!·g⁽⁻³⁾[ℓ0, ℓ1, ℓ2, ℓ3] (divided difference of the
    third antiderivative ℓ^(b+3)/((b+1)(b+2)(b+3)))."""
    total = np.zeros(len(values))
    for i in range(4):
        others = [j for j in range(4) if j != i]
        denominator = np.prod([values[:, i] - values[:, j] for j in others], axis=0)
        total += values[:, i] ** (b + 3) / denominator
    return 6.0 * total / ((b + 1) * (b + 2) * (b + 3))


def centroid_rule_bound(hessian_norm: np.ndarray, diameter: float) -> np.ndarray:
    """Error bound of a composite centroid rule on sub-tetrahedra of diameter ≤ D: on each, the
    mean of f minus f(centroid) is the mean of ½(x−c)ᵀH(x−c), and mean|x−c|² = (1/20)Σ|vᵢ−c|² =
    (1/80)Σ|vᵢ−vⱼ|² ≤ 0.075 D² (6 edges), hence |error| ≤ ½·max‖H‖·0.075·D²."""
    return 0.5 * hessian_norm * 0.075 * diameter**2


def sub_diameter(cells, options, voxel) -> float:
    """Largest sub-tetrahedron diameter the sampler documents: 2·max(spacing·voxel, longest/10)."""
    vertices = cell_vertices(cells)
    edges = [vertices[:, j] - vertices[:, i] for i in range(4) for j in range(i + 1, 4)]
    longest = np.linalg.norm(np.stack(edges), axis=2).max() if len(vertices) else 0.0
    return 2.0 * max(options.sample_spacing_voxels * voxel, longest / 10.0)


@pytest.mark.parametrize("name", sorted(LAWS))
@pytest.mark.parametrize("spacing", [0.5, 1.5])
def test_linear_ct_gives_exact_element_average_of_the_law(name, spacing):
    """HU linear in position (trilinear interpolation reproduces it exactly), so ρ = ℓ(x) is linear
    and the exact element mean of E = A ℓ^b follows in closed form (exact_mean_power). The sampler
    is a composite centroid rule: tolerance = its bound with ‖H‖ = A·b·|b−1|·ℓ^(b−2)·|∇ℓ|² at the
    worst vertex, plus 1e-9 relative for rounding. With the finer sampling the modulus of the mean
    density (E at the centroid) misses by more than the tolerance: the test tells the two apart."""
    options = MaterialOptions(law=name, sample_spacing_voxels=spacing)
    gradient = 60.0 * np.array([1.0, 0.37, 0.13])                        # HU/mm
    volume = grid_volume(lambda x, y, z: 150.0 + gradient[0] * x + gradient[1] * y + gradient[2] * z, (30, 30, 30))
    mesh = box([2.0, 2.0, 2.0], [26.0, 26.0, 26.0], (6, 6, 6))
    E = cell_material(mesh, volume, options).E

    A, alpha, beta, b = law_of_hu(name, options)
    vertices = cell_vertices(mesh)
    ell = alpha * (150.0 + vertices @ gradient) + beta                      # ρ at the vertices
    exact = A * exact_mean_power(ell, b)
    worst = np.where(b < 2, ell.min(axis=1), ell.max(axis=1))
    hessian = A * b * abs(b - 1) * worst ** (b - 2) * (alpha * np.linalg.norm(gradient)) ** 2
    tolerance = centroid_rule_bound(hessian, sub_diameter(mesh, options, 1.0)) + 1e-9 * exact
    assert everywhere(np.abs(E - exact) <= tolerance)
    if spacing == 0.5:  # the tight bound: the modulus of the mean density falls outside it
        at_centroid = A * ell.mean(axis=1) ** b
        assert everywhere(np.abs(at_centroid - exact) > tolerance)


def gauss_tetrahedron_mean(f, vertices: np.ndarray, order: int = 12) -> np.ndarray:
    """Mean of f over each tetrahedron (cells, 4, 3) by a collapsed (Duffy) tensor Gauss–Legendre
    rule: x = u, y = u·v, z = u·v·w maps the unit cube onto the Kuhn simplex, Jacobian u²v."""
    g, w = np.polynomial.legendre.leggauss(order)
    g, w = 0.5 * (g + 1.0), 0.5 * w
    u, v, t = (a.ravel() for a in np.meshgrid(g, g, g, indexing="ij"))
    weight = (w[:, None, None] * w[None, :, None] * w[None, None, :]).ravel() * u**2 * v * 6.0
    x, y, z = u, u * v, u * v * t
    bary = np.column_stack([1.0 - x, x - y, y - z, z])
    points = np.einsum("qv,cvd->cqd", bary, vertices)
    return (f(points) * weight).sum(axis=1)


def test_quadratic_ct_matches_high_order_quadrature():
    """HU = 300 + 2.5·|x − x0|² (x0 outside the mesh). Exact element means by a 12³-point Gauss
    rule (exact to degree 23 in each collapsed direction; E(HU) is smooth and positive here).
    Tolerance: the centroid-rule bound with ‖H‖ ≤ |E''|·|∇HU|² + |E'|·‖∇²HU‖ at the element's HU
    extremes, plus the trilinear interpolation error of a separable quadratic, Σ q h²/4 = 3·2.5·h²/4
    HU, times max|E'|."""
    options = MaterialOptions()
    x0, q = np.array([-6.0, 10.0, 4.0]), 2.5
    volume = grid_volume(lambda x, y, z: 300.0 + q * ((x - x0[0])**2 + (y - x0[1])**2 + (z - x0[2])**2), (26, 26, 26))
    mesh = box([1.0, 1.0, 1.0], [25.0, 25.0, 25.0], (4, 4, 4))
    E = cell_material(mesh, volume, options).E

    A, alpha, beta, b = law_of_hu(options.law, options)
    vertices = cell_vertices(mesh)

    def hu(points):
        return 300.0 + q * np.sum((points - x0) ** 2, axis=-1)

    exact = gauss_tetrahedron_mean(lambda p: A * (alpha * hu(p) + beta) ** b, vertices)
    corners = hu(vertices)
    rho_lo, rho_hi = alpha * 300.0 + beta, alpha * corners.max(axis=1) + beta   # HU ≥ 300 everywhere
    d1 = A * b * alpha * rho_hi ** (b - 1)                                   # max |dE/dHU|
    d2 = A * b * (b - 1) * alpha**2 * rho_lo ** (b - 2)                      # max |d²E/dHU²| (b < 2)
    grad_max = 2 * q * np.linalg.norm(vertices - x0, axis=2).max(axis=1)
    hessian = d2 * grad_max**2 + d1 * 2 * q
    tolerance = centroid_rule_bound(hessian, sub_diameter(mesh, options, 1.0)) + d1 * 3 * q / 4
    assert everywhere(np.abs(E - exact) <= tolerance)
    assert everywhere(np.abs(E - exact) <= 0.01 * exact)  # and the bound itself is within 1 %


# ---------------------------------------------------------------------------------------------
# Partial volume, lesions, floor
# ---------------------------------------------------------------------------------------------

def test_uniform_bone_block_in_soft_tissue_has_no_soft_skin():
    """A block of bone voxels (HU 1200) inside soft tissue (HU 40). The mesh fills the segmented
    block out to the voxel faces, so its surface elements reach half a voxel past the outermost
    bone voxel centres, where raw trilinear CT mixes bone and soft tissue. After the nearest-bone
    fill every sample reads 1200 HU: E must equal the law at 1200 HU in every cell (rounding)."""
    shape, inside = (30, 30, 30), (slice(8, 22),) * 3
    labels = np.zeros(shape, np.uint8)
    labels[inside] = BONE
    volume = grid_volume(lambda x, y, z: np.where(labels == BONE, 1200.0, 40.0), shape, labels=labels)
    mesh = box([8.0, 8.0, 8.0], [22.0, 22.0, 22.0], (7, 7, 7))
    options = MaterialOptions()
    E = cell_material(mesh, volume, options).E
    A, alpha, beta, b = law_of_hu(options.law, options)
    assert everywhere(np.abs(E / (A * (alpha * 1200.0 + beta) ** b) - 1.0) < 1e-12)
    # the raw CT would have given a skin: HU at the surface cells' outer vertices is well below 1200
    raw = ndimage.map_coordinates(volume.hu, volume.to_index(cell_vertices(mesh).reshape(-1, 3)).T, order=1)
    assert COMM.allreduce(float(raw.min()) if raw.size else np.inf, op=MPI.MIN) < 700.0


def lesion_volume():
    """HU 800 everywhere; x < 8 mm lytic, 8–16 mm bone, ≥ 16 mm blastic (voxel faces at integers)."""
    shape = (24, 24, 24)
    labels = np.full(shape, BONE, np.uint8)
    labels[:8], labels[16:] = LYTIC, BLASTIC
    return grid_volume(lambda x, y, z: np.full_like(x, 800.0), shape, labels=labels)


def test_lesion_factors_apply_to_lesion_cells_only():
    """Cells of 4 mm lie wholly inside one label region, so E = law(800 HU)·factor exactly:
    lytic ×0.2, blastic ×0.6, bone ×1; label and lesion_fraction follow the region."""
    options = MaterialOptions(lytic_factor=0.2, blastic_factor=0.6)
    mesh = box([0.0, 0.0, 0.0], [24.0, 24.0, 24.0], (6, 6, 6))
    material = cell_material(mesh, lesion_volume(), options)
    A, alpha, beta, b = law_of_hu(options.law, options)
    healthy = A * (alpha * 800.0 + beta) ** b
    x = cell_vertices(mesh).mean(axis=1)[:, 0]
    region = np.select([x < 8, x < 16], [LYTIC, BONE], BLASTIC)
    factor = np.select([region == LYTIC, region == BONE], [0.2, 1.0], 0.6)
    assert everywhere(np.abs(material.E - healthy * factor) <= 1e-12 * healthy)
    assert everywhere(material.label == region)
    assert everywhere(material.lesion_fraction == (region != BONE))
    assert everywhere(np.abs(material.rho_app - (alpha * 800.0 + beta)) < 1e-12)


def test_modulus_floor():
    """lytic_factor 0 sends lytic tissue to 0; the floor (min_modulus 25 MPa) holds it there."""
    options = MaterialOptions(lytic_factor=0.0, min_modulus=25.0)
    mesh = box([0.0, 0.0, 0.0], [24.0, 24.0, 24.0], (6, 6, 6))
    material = cell_material(mesh, lesion_volume(), options)
    lytic = material.label == LYTIC
    assert COMM.allreduce(int(lytic.sum())) > 0
    assert everywhere(material.E[lytic] == 25.0)
    assert everywhere(material.E[~lytic] > 1000.0)


def test_half_lesion_element_is_labelled_lesion():
    """A tie between bone and lesion samples goes to the lesion (documented rule). One 24 mm cube
    (6 tetrahedra) with lesion for x ≥ 12 mm: the two tetrahedra symmetric about x = 12 have
    exactly half their samples in the lesion."""
    shape = (24, 24, 24)
    labels = np.full(shape, BONE, np.uint8)
    labels[12:] = LYTIC
    volume = grid_volume(lambda x, y, z: np.full_like(x, 800.0), shape, labels=labels)
    mesh = box([0.0, 0.0, 0.0], [24.0, 24.0, 24.0], (1, 1, 1))
    material = cell_material(mesh, volume, MaterialOptions())
    tie = material.lesion_fraction == 0.5
    assert COMM.allreduce(int(tie.sum())) == 2
    assert everywhere(material.label[material.lesion_fraction >= 0.5] == LYTIC)
    assert everywhere(material.label[material.lesion_fraction < 0.5] == BONE)

"""The reference tissues' K2HPO4-equivalent densities (bonefe.tissues), recomputed independently.

Reference: X-ray attenuation of the ICRU Report 44 (1989) tissue compositions (mass fractions and
densities typed below from the NIST ICRU-44 tables, not imported from bonefe) with the
Elam–Ravel–Sieber cross sections of xraydb at 70 keV, and a K2HPO4-in-water rod that displaces
water at the salt's crystal density (2.44 g/cm³). Tolerance 2e-4 g/cm³: the module stores four
significant figures (rounding ≤ 5e-5 g/cm³) and 1e-4 HU-equivalents of interpolation freedom.
"""

import pytest

from bonefe.tissues import NOMINAL_SLOPE, REFERENCE_TISSUES

xraydb = pytest.importorskip("xraydb")

ICRU44 = {
    "air": ({"C": 0.000124, "N": 0.755268, "O": 0.231781, "Ar": 0.012827}, 0.001205),
    "adipose": ({"H": .114, "C": .598, "N": .007, "O": .278, "Na": .001, "S": .001, "Cl": .001}, 0.95),
    "muscle": ({"H": .102, "C": .143, "N": .034, "O": .710, "Na": .001, "P": .002, "S": .003, "Cl": .001,
                "K": .004}, 1.05),
    "blood": ({"H": .102, "C": .110, "N": .033, "O": .745, "Na": .001, "P": .001, "S": .002, "Cl": .003,
               "K": .002, "Fe": .001}, 1.06),
    "cortical_bone": ({"H": .034, "C": .155, "N": .042, "O": .435, "Na": .001, "Mg": .002, "P": .103, "S": .003,
                       "Ca": .225}, 1.92),
}
ENERGY_EV = 70e3


def attenuation(fractions, density):
    """Linear attenuation coefficient (1/cm) of a mixture by the mixture rule."""
    return density * sum(w * xraydb.mu_elam(el, ENERGY_EV) for el, w in fractions.items()) / sum(fractions.values())


def test_equivalent_densities_and_ct_numbers_follow_from_icru44():
    water = xraydb.material_mu("H2O", ENERGY_EV, density=1.0)
    per_gram = xraydb.material_mu("K2HPO4", ENERGY_EV, density=1.0) - water / 2.44
    assert NOMINAL_SLOPE == pytest.approx(water / 1000 / per_gram, abs=1e-6)
    for name, (fractions, density) in ICRU44.items():
        mu = attenuation(fractions, density)
        tissue = REFERENCE_TISSUES[name]
        assert tissue.density == pytest.approx((mu - water) / per_gram, abs=2e-4), name
        assert tissue.expected_hu == pytest.approx(1000 * (mu - water) / water, abs=0.1), name
        low, high = tissue.plausible_hu
        assert low < tissue.expected_hu < high, name


def test_water_attenuation_matches_nist_xcom():
    """Sanity of the cross-section tables: water 0.2059 cm²/g at 60 keV (NIST XCOM)."""
    assert xraydb.material_mu("H2O", 60e3, density=1.0) == pytest.approx(0.2059, rel=2e-3)

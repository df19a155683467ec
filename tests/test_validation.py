"""The reduced validation set (`bonefe validate --quick`) with the agreement bounds docs/validation.md
documents for each check.

References and bounds (each defined once, in the module that builds the check, and printed in the
report's tables):
- CalculiX (`ccx`, an independent FE code) on the same phantom-femur mesh and material: displacement,
  strain energy 1e-5, peak strains and failure index 1e-4 — both codes solve the same discrete system,
  so only the CG tolerance (1e-10) and ccx's printed digits separate them.
- Mesh convergence, quick set: the failure loads at 6 and 4.5 mm agree within 10 % (smoke level; the
  2 % criterion for the default size needs the full set).
- Tubes with a cortical hole of 0.2 D: strength ratio within 0.2 of McBroom et al. 1988 (bending)
  and Brooks et al. 1970 (torsion) — experimental scatter plus the spread of the published numbers.
- Neck lesions: an infero-medial lesion weakens the stance-loaded femur more than a supero-lateral one
  (the ordering reported for cadaveric femora).
The analytic group is asserted by tests/test_solver_verification.py on the same functions.
Every check is a global (MPI-reduced) number, so the file also runs under `mpirun -n 2 pytest`.
"""

import shutil
from pathlib import Path

import bonefe  # noqa: F401  (before dolfinx)

import pytest
from mpi4py import MPI

from bonefe.validation.calculix import calculix_section
from bonefe.validation.checks import Check, Section
from bonefe.validation.convergence import QUICK_BOUND, convergence_section
from bonefe.validation.defects import AGREEMENT, defects_section
from bonefe.validation.neck import neck_section
from bonefe.validation.report import render

COMM = MPI.COMM_WORLD


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return Path(COMM.bcast(str(tmp_path_factory.mktemp("images")) if COMM.rank == 0 else None))


def assert_within_bounds(section: Section) -> None:
    assert section.checks, section.text
    for check in section.checks:
        if check.bound is not None:
            assert check.error <= check.bound, (check.name, check.value, check.reference, check.error, check.bound)


def test_calculix_agrees_on_the_phantom_femur():
    """bonefe vs ccx on the 5 mm phantom femur: displacement (max and RMS) and strain energy within
    1e-5, peak principal strains from ccx's own element output and the 8 mm³ failure index within 1e-4."""
    if shutil.which("ccx") is None:
        pytest.skip("CalculiX `ccx` not on PATH (apt-get install calculix-ccx)")
    section = calculix_section()
    assert len(section.checks) == 6
    assert_within_bounds(section)


def test_mesh_convergence_quick_set(images):
    """Quick set: the stance failure load at 6 mm lies within 10 % of the one at 4.5 mm, and the plot
    is written."""
    section = convergence_section(True, images)
    (check,) = section.checks
    assert check.bound == QUICK_BOUND
    assert_within_bounds(section)
    if COMM.rank == 0:
        assert (images / section.images[0]).stat().st_size > 0


def test_tube_with_a_hole_matches_published_strength_ratios(images):
    """d/D = 0.2 unicortical hole: predicted strength ratio within 0.2 of McBroom 1988 (bending,
    60–69 % retained) and Brooks 1970 (torsion, 1/1.6 from their stress concentration); a hole
    always weakens the tube."""
    section = defects_section(True, images)
    assert {c.name.split(",")[0] for c in section.checks} == {"bending", "torsion"}
    assert all(c.bound == AGREEMENT and 0 < c.value < 1 for c in section.checks)
    assert_within_bounds(section)


def test_neck_lesion_site_ordering():
    """Infero-medial neck lesion weaker than supero-lateral under the stance load (the ordering
    reported for cadaveric femora), and the lesions weaken the femur (mean ratio to intact < 1)."""
    section = neck_section(True)
    assert_within_bounds(section)
    ordering = next(c for c in section.checks if c.bound is not None)
    mean_ratio = next(c for c in section.checks if c.bound is None)
    assert ordering.value > 0 and 0 < mean_ratio.value < 1


def test_report_marks_failures_and_keeps_tables_intact():
    """The markdown lists checks outside their bound and escapes | inside table cells."""
    checks = [Check("max |Δu|", 2.0, 1.0, 1.0, 0.5, "P1", "exact"), Check("ok", 1.0, 1.0, 0.0, None, "P1", "x")]
    text = render([Section("demo", "text", checks)], "bonefe validate --quick", True, 60.0, 1, "images")
    assert "outside their documented bound: max |Δu|." in text
    row = next(line for line in text.splitlines() if line.startswith("| max"))
    assert row.count("|") - row.count("\\|") == 10 and "**no**" in row
    assert "| ok |" in text and "reported" in text and "`bonefe validate --quick` (quick set)" in text

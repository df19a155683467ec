"""The validation suite (`bonefe validate`): the model against analytic solutions, an independent
solver, mesh refinement and published experiments on bones with defects; writes docs/validation.md.

One module per group, each returning a `Section` of `Check`s with documented bounds:
analytic (analytic.py), CalculiX (calculix.py), mesh convergence (convergence.py), long bones
with holes (defects.py), neck lesions on the phantom femur (neck.py), the sideways fall
against cadaver tests (fall.py), the vertebra's endplate loading and real vertebrae (vertebra.py),
mesh convergence on the phantom humerus (humerus.py), damaged or implausible inputs that must be refused
(robustness.py) and, in the full set only, the failure load's uncertainty by `bonefe.uncertainty`
(propagation.py) with the coverage of its interval on a synthetic truth (coverage.py) and the
internal calibration against phantom rods (internal_calibration.py). `models.py` holds the model
builders shared with tests/test_solver_verification.py. The quick set (`quick=True`) is what CI
asserts (tests/test_validation.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mpi4py import MPI

from bonefe.validation.checks import Check, Section

__all__ = ["Check", "Section", "run_validation", "sections"]


def sections(quick: bool, images: Path, surface: tuple[Path, Path | None] | None = None
             ) -> list[Callable[[], Section]]:
    """The section builders of the set, in report order (each timed by run_validation); `surface`
    (outer, inner or None): a real femur surface for the neck-lesion section."""
    from bonefe.validation.analytic import analytic_section
    from bonefe.validation.calculix import calculix_section
    from bonefe.validation.convergence import convergence_section
    from bonefe.validation.coverage import coverage_section
    from bonefe.validation.defects import defects_section
    from bonefe.validation.discussion import discussion_section
    from bonefe.validation.fall import fall_section
    from bonefe.validation.humerus import humerus_section
    from bonefe.validation.internal_calibration import internal_calibration_section
    from bonefe.validation.neck import neck_section
    from bonefe.validation.propagation import uncertainty_section
    from bonefe.validation.robustness import robustness_section
    from bonefe.validation.vertebra import vertebra_section

    builders = [analytic_section, calculix_section, lambda: convergence_section(quick, images),
                lambda: defects_section(quick, images), lambda: neck_section(quick, surface),
                lambda: fall_section(quick, surface), lambda: vertebra_section(quick),
                lambda: humerus_section(quick, images)]
    full = [uncertainty_section, coverage_section, internal_calibration_section]
    return builders + ([] if quick else full) + [robustness_section, discussion_section]


def run_validation(out: Path, quick: bool = False, surface: tuple[Path, Path | None] | None = None,
                   log: Callable[[str], None] = print) -> tuple[list[Section], float]:
    """Run every section (collective over MPI.COMM_WORLD), write `out` (markdown) and its pictures
    into out's sibling folder images/ (rank 0), and return the sections and the wall time (s).

    surface: (outer, inner or None) surface files of a real femur for the neck-lesion section."""
    from bonefe.validation.report import render, write_report

    comm = MPI.COMM_WORLD
    out = Path(out)
    images = out.parent / "images"
    start = time.perf_counter()
    done = []
    for build in sections(quick, images, surface):
        t0 = time.perf_counter()
        section = build()
        section.seconds = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        done.append(section)
        if comm.rank == 0:
            outside = sum(c.passed is False for c in section.checks)
            log(f"validate: {section.title}: {len(section.checks)} checks, {outside} outside bound, "
                f"{section.seconds:.0f} s")
    seconds = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
    if comm.rank == 0:
        command = "bonefe validate" + (" --quick" if quick else "")
        if surface is not None:
            command += f" --femur-surface {Path(surface[0]).name}"
            command += f" --femur-inner {Path(surface[1]).name}" if surface[1] else ""
        write_report(out, render(done, command, quick, seconds, comm.size, "images"))
    return done, seconds

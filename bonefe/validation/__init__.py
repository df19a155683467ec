"""The validation suite (`bonefe validate`): the model against analytic solutions, an independent
solver, mesh refinement and published experiments on bones with defects; writes docs/validation.md.

One module per group, each returning a `Section` of `Check`s with documented bounds:
analytic (analytic.py), CalculiX (calculix.py), mesh convergence (convergence.py), long bones
with holes (defects.py), neck lesions on the phantom femur (neck.py). `models.py` holds the model
builders shared with tests/test_solver_verification.py. The quick set (`quick=True`) is what CI
asserts (tests/test_validation.py).

Uncertainty hook: `run_validation(..., extra_sections=...)` takes further section builders
(callables `quick -> Section`); the uncertainty propagation of `bonefe.uncertainty` is to be
connected there (see UNCERTAINTY_HOOK).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mpi4py import MPI

from bonefe.validation.checks import Check, Section

UNCERTAINTY_HOOK = "extra_sections"
"""Name of the run_validation parameter through which the uncertainty section is connected."""

__all__ = ["Check", "Section", "run_validation", "sections", "UNCERTAINTY_HOOK"]


def sections(quick: bool, images: Path, surface: tuple[Path, Path | None] | None = None
             ) -> list[Callable[[], Section]]:
    """The section builders of the set, in report order (each timed by run_validation); `surface`
    (outer, inner or None): a real femur surface for the neck-lesion section."""
    from bonefe.validation.analytic import analytic_section
    from bonefe.validation.calculix import calculix_section
    from bonefe.validation.convergence import convergence_section
    from bonefe.validation.defects import defects_section
    from bonefe.validation.neck import neck_section

    return [analytic_section, calculix_section, lambda: convergence_section(quick, images),
            lambda: defects_section(quick, images), lambda: neck_section(quick, surface)]


def run_validation(out: Path, quick: bool = False, surface: tuple[Path, Path | None] | None = None,
                   extra_sections: Sequence[Callable[[bool], Section]] = (),
                   log: Callable[[str], None] = print) -> tuple[list[Section], float]:
    """Run every section (collective over MPI.COMM_WORLD), write `out` (markdown) and its pictures
    into out's sibling folder images/ (rank 0), and return the sections and the wall time (s).

    surface: (outer, inner or None) surface files of a real femur for the neck-lesion section;
    extra_sections: further builders `quick -> Section` appended to the report (UNCERTAINTY_HOOK)."""
    from bonefe.validation.report import render, write_report

    comm = MPI.COMM_WORLD
    out = Path(out)
    images = out.parent / "images"
    start = time.perf_counter()
    builders = sections(quick, images, surface) + [lambda extra=extra: extra(quick) for extra in extra_sections]
    done = []
    for build in builders:
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
        write_report(out, render(done, "quick" if quick else "full", seconds, comm.size, "images"))
    return done, seconds

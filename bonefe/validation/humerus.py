"""Mesh convergence on the phantom humerus: the failure load walking with crutches (the humerus's
reference load) and the torsion strength against element size, with quadratic elements (P2) as a
second reference for what linear ones (P1) leave.

The phantom is `HumerusPhantomSpec()`: a left humerus 280 mm long, 16 mm lytic lesion at mid-shaft
eroding half the cortex; the model is the pipeline's (distal cut fixed, head cap loaded,
`bonefe.sites.humerus.assessment.humerus_model`), 75 kg. Each size is a separate
`bonefe.meshing.mesh_bone` mesh of the same CT (lesion and thin-cortex refinement as in the pipeline).
The default size's numbers must lie within 5 % of the finest mesh's (BOUND, the bound of the
lesion-governed femur in `bonefe.validation.convergence`). Torsion loads the whole shaft's cortex in
shear, where linear tetrahedra are too stiff, so its strength falls as the mesh is refined.
"""

from __future__ import annotations

from dataclasses import dataclass

from bonefe.assessment import RiskOptions
from bonefe.case import MeshOptions
from bonefe.materials import MaterialOptions, cell_material, lesion_map
from bonefe.sites.humerus.phantom import HumerusPhantomSpec, make_humerus_phantom
from bonefe.sites.humerus.site import HumerusSetup
from bonefe.sites.humerus.strength import torsion_strength_nm
from bonefe.validation.checks import Check, Section
from bonefe.validation.femur import BODY_MASS_KG, COMM
from bonefe.validation.plots import line_plot

FULL = {"spec": HumerusPhantomSpec(), "sizes": (5.0, 4.0, 3.0, 2.25, 1.75, 1.4), "p2_sizes": (3.0, 2.25)}
QUICK = {"spec": HumerusPhantomSpec(), "sizes": (5.0, 4.0), "p2_sizes": ()}
BOUND = 0.05
"""The default size's crutch failure load and torsion strength must lie within 5 % of the finest mesh's."""
P2_AGREEMENT = 0.02
"""P2 within 2 % of the finest P1 mesh: the two element types agree on the converged value."""
QUANTITIES = ("crutch failure load", "torsion strength")
"""The two strengths compared, by their names in the checks, the table's text and the plot."""
QUICK_BOUND = 0.10
"""Quick set (the full set's two coarsest sizes): the two agree within 10 %, a smoke check of the chain."""


@dataclass(frozen=True)
class HumerusRow:
    """One mesh: element size (mm), degree, tetrahedra, crutch failure load (N), where (world mm) and
    how failure starts, torsion strength (N·m)."""

    size_mm: float
    degree: int
    cells: int
    failure_n: float
    site_mm: tuple[float, ...]
    mode: str
    torsion_nm: float

    def to(self, finest: HumerusRow) -> dict[str, float]:
        """Each of QUANTITIES relative to `finest`, minus 1."""
        return dict(zip(QUANTITIES, (self.failure_n / finest.failure_n - 1, self.torsion_nm / finest.torsion_nm - 1)))


def humerus_row(volume, frame, size_mm: float, degree: int = 1) -> HumerusRow:
    """Mesh the phantom at size_mm and build its model as the pipeline does (the site's setup, default
    mesh, material and risk options), and read its two strengths."""
    setup = HumerusSetup(frame, BODY_MASS_KG)
    bone, tags = setup.mesh(volume, MeshOptions(size_mm=size_mm), COMM)
    material = MaterialOptions()
    cells = cell_material(bone.mesh, volume, material)
    model = setup.model(bone.mesh, tags, cells.E, cells.label, material.poisson, RiskOptions(), degree,
                        lesion_map(volume))
    failure = model.failure(setup.reference().unit)
    torsion = torsion_strength_nm(model, model.basis.patches["head"], frame.shaft_axis)
    return HumerusRow(size_mm, degree, int(bone.quality["tets"]), failure.failure_load_n,
                      tuple(float(c) for c in failure.location_mm), failure.mode, torsion)


def _table(rows: list[HumerusRow], finest: HumerusRow) -> str:
    lines = ["| elements | size (mm) | tetrahedra | crutch failure load (N) | Δ to finest P1 | failure site "
             "(world mm), mode | torsion strength (N·m) | Δ to finest P1 |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| P{r.degree} | {r.size_mm:g} | {r.cells} | {r.failure_n:.0f} | {r.to(finest)['crutch failure load']:+.1%} | "
              f"({', '.join(f'{c:.1f}' for c in r.site_mm)}), {r.mode} | {r.torsion_nm:.1f} | "
              f"{r.to(finest)['torsion strength']:+.1%} |" for r in rows]
    return "\n".join(lines)


def _checks(rows: list[HumerusRow], quick: bool) -> list[Check]:
    """The compared size (the default, or the coarser of the quick set) against the finest P1 mesh."""
    finest = rows[-1]
    compared = rows[0] if quick else next(r for r in rows if r.size_mm == MeshOptions().size_mm)
    bound, reference = (QUICK_BOUND, "finest mesh of the quick set") if quick else (BOUND, "finest mesh")
    mesh = f"P1, {compared.size_mm:g} and {finest.size_mm:g} mm"
    values = {"crutch failure load": (compared.failure_n, finest.failure_n),
              "torsion strength": (compared.torsion_nm, finest.torsion_nm)}
    return [Check(f"humerus {name} at {compared.size_mm:g} mm vs {finest.size_mm:g} mm", *values[name], abs(gap),
                  bound, mesh, reference) for name, gap in compared.to(finest).items()]


def humerus_section(quick: bool, images) -> Section:
    """The P1 sizes and the P2 references: table, plot and the checks."""
    setup = QUICK if quick else FULL
    volume, frame = make_humerus_phantom(setup["spec"])
    p1 = [humerus_row(volume, frame, size) for size in setup["sizes"]]
    p2 = [humerus_row(volume, frame, size, degree=2) for size in setup["p2_sizes"]]
    finest = p1[-1]
    name = "validation-humerus-convergence.png"
    if COMM.rank == 0:
        line_plot(images / name, [r.size_mm for r in p1],
                  {f"{quantity} / finest P1": [1 + r.to(finest)[quantity] for r in p1] for quantity in QUANTITIES},
                  "element size (mm)", "ratio to the finest P1 mesh", band=(1 - BOUND, 1 + BOUND),
                  points={f"P2, {quantity}": ([r.size_mm for r in p2], [1 + r.to(finest)[quantity] for r in p2])
                          for quantity in QUANTITIES} if p2 else None)
    text = (f"Phantom humerus ({'default `HumerusPhantomSpec`, 16 mm lytic mid-shaft lesion' if not quick else 'quick set'}, "
            f"{setup['spec'].voxel_mm:g} mm voxels), the pipeline's humerus model: failure load walking with crutches "
            f"(the reference load, {BODY_MASS_KG:g} kg, nonlocal strain as for every bone) and torsion strength "
            "(`bonefe.sites.humerus.strength`), at each element size; P2 rows are quadratic elements on the "
            "P1 row's mesh of that size.\n\n" + _table(p1 + p2, finest) + "\n\n" + _verdict(p1, p2, quick))
    return Section("Mesh convergence on the phantom humerus", text, _checks(p1, quick), [name])


def _verdict(p1: list[HumerusRow], p2: list[HumerusRow], quick: bool) -> str:
    """What the default size leaves, in one paragraph."""
    if quick:
        return "The quick set does not include the default size; run the full set for the 5 % criterion."
    finest = p1[-1]
    default = next(r for r in p1 if r.size_mm == MeshOptions().size_mm)
    said = "; ".join(f"{k} {v:+.1%}" for k, v in default.to(finest).items())
    last = ", ".join(f"{k} {v:+.1%}" for k, v in finest.to(p1[-2]).items())
    over = [f"{r.size_mm:g}" for r in p1[:-1] if min(r.to(finest).values()) > 0]
    text = (f"At the default size {default.size_mm:g} mm against the finest P1 mesh ({finest.size_mm:g} mm): {said}. "
            f"Between the two finest sizes: {last}. "
            f"The {', '.join(over)} mm meshes overestimate both strengths (linear tetrahedra are too stiff in the "
            "cortex's bending and shear, a few elements across it), so a coarse humerus errs on the unsafe side.")
    for r in p2:
        text += f" P2 on the {r.size_mm:g} mm mesh: " + ", ".join(f"{k} {v:+.1%}" for k, v in r.to(finest).items()) + "."
    if p2 and all(abs(v) <= P2_AGREEMENT for r in p2 for v in r.to(finest).values()):
        text += (f" Quadratic elements agree with the finest linear mesh within {P2_AGREEMENT:.0%}, so its numbers "
                 "are the converged ones; where the torsion strength matters, run a humerus with "
                 "`solver: {degree: 2}` in its case file, or a finer mesh.")
    return text

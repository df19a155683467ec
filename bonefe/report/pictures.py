"""Pictures for the report: off-screen VTK renderings of the bone and a safety-factor chart.

VTK renders without a display through EGL (Mesa): the Debian packages libegl1, libegl-mesa0 and
libgl1-mesa-dri provide it. `picture_mesh` is a plain dict gathered on rank 0 by the caller:

    points: (n, 3) float, world mm (LPS)
    tets:   (m, 4) int, vertex indices
    cell_data: {"max_principal_strain": (m,) dimensionless, "lesion": (m,) nonzero = lesion}

Views are from anterior (camera on the -Y side in LPS, superior up).
"""

from __future__ import annotations

import io
import os
import textwrap
from dataclasses import dataclass

import numpy as np
from PIL import Image

from bonefe.errors import BonefeError

PICTURE_SIZE = (1000, 800)
"""Width, height of bone pictures in pixels."""

MIN_PIXEL_STD = 5.0
"""A real picture varies by more than this (grey levels, 0-255) across its pixels; blank ones do not."""

STRAIN = "max_principal_strain"
LESION = "lesion"


@dataclass(frozen=True)
class Picture:
    """A PNG picture with its title and caption, as embedded in the HTML and PDF."""

    name: str
    title: str
    caption: str
    png: bytes


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an (h, w, 3) uint8 image as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_is_real(image, expected_size=None, min_std: float = MIN_PIXEL_STD) -> bool:
    """True if the image (array, PNG bytes or path) has the expected (width, height) and is not blank.

    Blank = pixel standard deviation at most `min_std` grey levels (a uniform background).
    """
    if isinstance(image, (bytes, bytearray)):
        image = Image.open(io.BytesIO(image))
    elif isinstance(image, (str, os.PathLike)):
        image = Image.open(image)
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=float)
    height, width = pixels.shape[:2]
    if expected_size is not None and (width, height) != tuple(expected_size):
        return False
    return float(pixels.std()) > min_std


def _grid(picture_mesh: dict):
    """pyvista UnstructuredGrid of the tetrahedra with their cell data."""
    import pyvista as pv

    points = np.asarray(picture_mesh["points"], dtype=float)
    tets = np.asarray(picture_mesh["tets"], dtype=np.int64)
    if points.ndim != 2 or points.shape[1] != 3 or tets.ndim != 2 or tets.shape[1] != 4:
        raise BonefeError("picture mesh needs points (n, 3) and tets (m, 4)")
    cells = np.hstack([np.full((len(tets), 1), 4, dtype=np.int64), tets]).ravel()
    grid = pv.UnstructuredGrid(cells, np.full(len(tets), pv.CellType.TETRA, dtype=np.uint8), points)
    for name, values in picture_mesh.get("cell_data", {}).items():
        values = np.asarray(values)
        if len(values) != len(tets):
            raise BonefeError(
                f"picture mesh cell data '{name}' has {len(values)} values for {len(tets)} cells"
            )
        grid.cell_data[name] = values
    return grid


def _plotter(size):
    """An off-screen plotter with a white background."""
    import pyvista as pv

    pv.OFF_SCREEN = True
    if not os.environ.get("DISPLAY"):  # headless: go straight to EGL instead of failing on X first
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    plotter = pv.Plotter(off_screen=True, window_size=list(size))
    plotter.set_background("white")
    return plotter


def _anterior_view(plotter, grid) -> None:
    """Camera in front of the bone (-Y in LPS), superior (+Z) up, bone filling the frame."""
    centre = np.asarray(grid.center)
    distance = 3.0 * grid.length
    plotter.camera_position = [tuple(centre - [0.0, distance, 0.0]), tuple(centre), (0.0, 0.0, 1.0)]
    plotter.reset_camera()


def _mark_site(plotter, grid, site_mm) -> None:
    """A black sphere at the failure site, sized to the bone."""
    import pyvista as pv

    if site_mm is not None:
        radius = max(1.5, 0.015 * grid.length)
        plotter.add_mesh(pv.Sphere(radius=radius, center=tuple(site_mm)), color="black")


def _screenshot(plotter) -> np.ndarray:
    """Render, grab the image and close the plotter."""
    try:
        return plotter.screenshot(return_img=True)
    finally:
        plotter.close()


def render_strain(
    picture_mesh: dict, failure_site_mm=None, clim_microstrain=None, size=PICTURE_SIZE
) -> np.ndarray:
    """Outer surface coloured by maximum principal strain (µε), failure site marked; (h, w, 3) uint8.

    clim_microstrain: colour range (low, high) in µε; default 0 to the 99th percentile on the surface.
    """
    grid = _grid(picture_mesh)
    if STRAIN not in grid.cell_data:
        raise BonefeError(f"picture mesh has no '{STRAIN}' cell data to colour the bone by")
    surface = grid.extract_surface(algorithm="dataset_surface")
    strain = np.asarray(surface.cell_data[STRAIN], dtype=float) * 1e6
    surface.cell_data["strain_ue"] = strain
    clim = clim_microstrain or (0.0, max(float(np.percentile(strain, 99)), 1e-9))
    plotter = _plotter(size)
    plotter.add_mesh(
        surface,
        scalars="strain_ue",
        cmap="plasma",
        clim=clim,
        scalar_bar_args={"title": "Max principal strain\n(microstrain)\n", "color": "black",
                         "vertical": True, "position_x": 0.8, "position_y": 0.15, "height": 0.7,
                         "fmt": "%.0f", "title_font_size": 22, "label_font_size": 20},
    )
    _mark_site(plotter, grid, failure_site_mm)
    _anterior_view(plotter, surface)
    return _screenshot(plotter)


def render_lesion(picture_mesh: dict, failure_site_mm=None, size=PICTURE_SIZE) -> np.ndarray:
    """Translucent bone with the lesion cells in red and the failure site marked; (h, w, 3) uint8."""
    grid = _grid(picture_mesh)
    if LESION not in grid.cell_data:
        raise BonefeError(f"picture mesh has no '{LESION}' cell data to show the lesion")
    surface = grid.extract_surface(algorithm="dataset_surface")
    plotter = _plotter(size)
    plotter.add_mesh(surface, color="#d9cdb8", opacity=0.35)
    lesion = grid.extract_cells(np.nonzero(np.asarray(grid.cell_data[LESION]) != 0)[0])
    if lesion.n_cells:
        plotter.add_mesh(lesion.extract_surface(algorithm="dataset_surface"), color="#c0392b")
    _mark_site(plotter, grid, failure_site_mm)
    _anterior_view(plotter, surface)
    return _screenshot(plotter)


VERDICT_COLOURS = {"safe": "#2e7d32", "caution": "#ef8f00", "avoid": "#c62828"}
LABEL_NEAR_DECADES = 0.08
"""Window chart: points closer than this (log10 units, ~20 %) on both axes to a labelled point share
its label (a few lines of 7 pt text span about that much of the chart's height)."""


def safety_factor_chart(activities, safe_factor: float, avoid_factor: float, size=(1000, 600)) -> np.ndarray:
    """Horizontal bars of each activity's safety factor, coloured by verdict; (h, w, 3) uint8.

    activities: rows with .label, .safety_factor and .verdict (bonefe.risk.ActivityAssessment).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = [row.label for row in activities][::-1]
    factors = [row.safety_factor for row in activities][::-1]
    colours = [VERDICT_COLOURS[row.verdict] for row in activities][::-1]
    axes.barh(labels, factors, color=colours)
    for factor, verdict, text in ((avoid_factor, "avoid", "avoid below"), (safe_factor, "safe", "safe from")):
        axes.axvline(factor, color=VERDICT_COLOURS[verdict], linestyle="--", label=f"{text} {factor:g}")
    axes.set_xlabel("Safety factor = allowed force / peak hip-contact force")
    axes.legend(loc="lower right")
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def envelope_chart(envelope, marks, size=(1200, 600)) -> np.ndarray:
    """Polar plots of the allowed hip-contact force (kN) per direction, one per plane, with every
    head-contact activity's peak force at its direction's angle: filled if it lies inside the
    envelope (peak ≤ allowed along its own direction), hollow if outside; (h, w, 3) uint8.

    envelope: rows with .plane, .towards, .angles_deg, .allowed_force_n (bonefe.assessment.EnvelopePlane);
    marks: rows with .label, .angles_deg {plane: deg}, .peak_force_n, .allowed_force_n.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    for i, plane in enumerate(envelope):
        axes = figure.add_subplot(1, len(envelope), i + 1, projection="polar")
        angles = np.radians(list(plane.angles_deg) + [plane.angles_deg[0]])
        forces = np.asarray(list(plane.allowed_force_n) + [plane.allowed_force_n[0]]) / 1000.0
        axes.plot(angles, forces, color="black", label="allowed force")
        axes.fill(angles, forces, color="#2e7d32", alpha=0.15)
        for j, mark in enumerate(marks):
            inside = mark.peak_force_n <= mark.allowed_force_n
            colour = f"C{j % 10}"
            axes.plot(np.radians(mark.angles_deg[plane.plane]), mark.peak_force_n / 1000.0, "o", ms=8,
                      color=colour, markerfacecolor=colour if inside else "white",
                      label=f"{mark.label} ({'inside' if inside else 'OUTSIDE'})")
        axes.set_theta_zero_location("S")
        axes.set_title(f"{plane.plane.capitalize()} plane: 0° inferior, 90° {plane.towards} (kN)", fontsize=10)
    handles, labels = figure.axes[0].get_legend_handles_labels() if figure.axes else ([], [])
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    figure.tight_layout(rect=(0, 0.15, 1, 1))
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def whatif_chart(growth, remineralisation, high_below_n: float, loading: str, size=(1200, 500)) -> np.ndarray:
    """Stance failure load (kN) against lesion growth and against re-mineralisation, with the
    high-risk boundary and the first high-risk step marked; one panel per series given (at least
    one); (h, w, 3) uint8.

    growth, remineralisation: bonefe.whatif.WhatIfSeries or None; high_below_n: boundary in N;
    loading: the loading the failure load refers to, for the legend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(s, label) for s, label in (
        (growth, "Lesion growth (mm); equivalent lesion diameter below"),
        (remineralisation, "Re-mineralised fraction of the lesion")) if s is not None]
    dpi = 100
    figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    for i, (series, xlabel) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), i + 1)
        x = [s.value for s in series.steps]
        loads = np.array([s.failure_load_n for s in series.steps]) / 1000.0
        axes.plot(x, loads, "o-", color="black", label=f"failure load ({loading})")
        axes.axhline(high_below_n / 1000.0, color=VERDICT_COLOURS["avoid"], linestyle="--", label="high risk below")
        if series.high_risk_from is not None:
            first = x.index(series.high_risk_from)
            axes.plot(x[first], loads[first], "o", ms=14, markerfacecolor="none", markeredgewidth=2,
                      color=VERDICT_COLOURS["avoid"], label=f"first high-risk step ({x[first]:g})")
        if series.kind == "growth":
            axes.set_xticks(x, [f"+{v:g}\n{s.equivalent_diameter_mm:.0f} mm" for v, s in zip(x, series.steps)])
        axes.set_xlabel(xlabel)
        axes.set_ylabel("Failure load (kN)")
        axes.set_ylim(bottom=0.0)
        axes.legend(fontsize=8)
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def tornado_chart(uncertainty, high_below_n: float, low_from_n: float, size=(1200, 500)) -> np.ndarray:
    """Failure load (kN) of each factor's one-at-a-time low and high runs as bars around the nominal
    load, largest effect on top, with the combined interval shaded and the risk boundaries dashed;
    (h, w, 3) uint8. uncertainty: bonefe.uncertainty.UncertaintyResult; boundaries in N."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    nominal = uncertainty.nominal_n / 1000.0
    factors = sorted(uncertainty.factors, key=lambda e: abs(np.log(e.high_n / e.low_n)))
    axes.axvspan(uncertainty.lower_n / 1000.0, uncertainty.upper_n / 1000.0, color="#d0d8e8",
                 label=f"{100 * uncertainty.interval:g} % interval")
    for row, effect in enumerate(factors):
        for load, label, colour in ((effect.low_n, effect.low_label, "#5c7fb8"),
                                    (effect.high_n, effect.high_label, "#b8875c")):
            axes.barh(row, load / 1000.0 - nominal, left=nominal, color=colour, height=0.6)
            axes.annotate(label, (load / 1000.0, row), xytext=(4 if load >= uncertainty.nominal_n else -4, 0),
                          textcoords="offset points", va="center", fontsize=8,
                          ha="left" if load >= uncertainty.nominal_n else "right")
    axes.axvline(nominal, color="black", label="nominal")
    for boundary, name in ((high_below_n, "high risk below"), (low_from_n, "low risk from")):
        axes.axvline(boundary / 1000.0, color=VERDICT_COLOURS["avoid" if "high" in name else "safe"],
                     linestyle="--", label=name)
    axes.set_yticks(range(len(factors)), [e.name.replace("_", " ") for e in factors])
    axes.set_xlabel("Failure load (kN)")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def label_places(xs, ys, names, verdicts) -> list[tuple[float, float, list[str]]]:
    """One label per place on log-log axes: each point joins the first labelled point of the same
    verdict closer than LABEL_NEAR_DECADES on both axes, else it starts a place of its own (a label
    beside a red marker never names an amber activity); (x, y, names) per place."""
    places: list[tuple[float, float, list[str], str]] = []
    for x, y, name, verdict in zip(xs, ys, names, verdicts):
        place = next((p for p in places if p[3] == verdict and abs(np.log10(x / p[0])) < LABEL_NEAR_DECADES
                      and abs(np.log10(y / p[1])) < LABEL_NEAR_DECADES), None)
        if place is None:
            places.append((float(x), float(y), [name], verdict))
        else:
            place[2].append(name)
    return [(x, y, group) for x, y, group, _ in places]


def window_chart(rows, safe_factor: float, avoid_factor: float, size=(1100, 700)) -> np.ndarray:
    """Safety factor against stimulus ratio (log-log), one point per activity coloured by verdict,
    the therapeutic window (ratio ≥ 1, safety factor ≥ safe_factor) shaded; scalable exercises
    carry their dose line (slope −1: both scale with the load) with its s = 1 point; (h, w, 3) uint8.

    rows: bonefe.window.WindowRow; the stimulus ratio is 1 / stimulus.scale_high (rows without one
    are left out).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from matplotlib.ticker import FuncFormatter

    shown = [r for r in rows if r.stimulus.scale_high]
    ratios = np.array([1.0 / r.stimulus.scale_high for r in shown])
    factors = np.array([r.safety_factor for r in shown])
    dpi = 100
    figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    x_low, x_high = min(ratios.min(), 1.0) / 2.0, max(ratios.max(), 1.0) * 2.0
    y_low, y_high = min(factors.min(), avoid_factor) / 2.0, max(factors.max(), safe_factor) * 2.0
    axes.fill_between([1.0, x_high], safe_factor, y_high, color=VERDICT_COLOURS["safe"], alpha=0.15,
                      label="the window: safe and stimulating")
    for factor, verdict, text in ((avoid_factor, "avoid", "avoid below"), (safe_factor, "safe", "safe from")):
        axes.axhline(factor, color=VERDICT_COLOURS[verdict], linestyle="--", label=f"{text} {factor:g}")
    axes.axvline(1.0, color="black", linestyle=":", label="stimulus threshold reached")
    for r, ratio, factor in zip(shown, ratios, factors):
        if r.dose is not None:
            scales = np.array([x_low / ratio, x_high / ratio])
            axes.plot(ratio * scales, factor / scales, color="#555555", linewidth=0.8)
        axes.plot(ratio, factor, "o", ms=7, color=VERDICT_COLOURS[r.verdict],
                  markeredgecolor="black" if r.dose is not None else VERDICT_COLOURS[r.verdict])
    for ratio, factor, names in label_places(ratios, factors, [r.label.split(" (")[0] for r in shown],
                                             [r.verdict for r in shown]):
        # above and right of its place: the points lie on lines falling to the right, so that side is
        # clear of markers; a white box keeps the text legible over the dose lines
        axes.annotate(textwrap.fill(" / ".join(names), 40), (ratio, factor), xytext=(8, 6),
                      textcoords="offset points", fontsize=7, va="bottom", zorder=5,
                      bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.6})
    axes.set_xscale("log")
    axes.set_yscale("log")
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    axes.set_xlim(x_low, x_high)
    axes.set_ylim(y_low, y_high)
    axes.set_xlabel("Stimulus ratio = peak load / load that strains the bone around the lesion enough "
                    "(≥ 1: stimulating)")
    axes.set_ylabel("Safety factor")
    axes.plot([], [], color="#555555", linewidth=0.8, label="dose line of a scalable exercise")
    axes.legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()

"""rig.png: the specimen in its rig — the bone coloured by its minimum principal strain under the
rig's load (cell averages, µε), the fixed and loaded regions as blue and red slabs on the
surface and an arrow along the plate force (none for a torsion or bending test). Rendered off screen on rank 0 (`bonefe.report.pictures`: VTK through EGL)."""

import numpy as np

from bonefe.export import gather_cells, gather_mesh
from bonefe.sites.specimen.rig import FIXED, LOADED

COLOURS = {FIXED: "royalblue", LOADED: "crimson"}


def _facet_triangles(mesh, facets: np.ndarray):
    """Triangles (original node indices) of local facets, gathered on rank 0 (None elsewhere)."""
    from dolfinx.mesh import entities_to_geometry

    local = entities_to_geometry(mesh, 2, np.asarray(facets, np.int32))
    original = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)[local].reshape(-1, 3)
    parts = mesh.comm.gather(original, root=0)
    return np.concatenate(parts) if mesh.comm.rank == 0 else None


def render_rig(mesh, tags, min_principal: np.ndarray, force_n, size=(1000, 800)) -> np.ndarray | None:
    """The picture (rank 0; None elsewhere). min_principal: per local cell, dimensionless; force_n:
    the plate force (N) the arrow follows, or None. Collective."""
    points, tets = gather_mesh(mesh)
    strain = gather_cells(mesh, np.asarray(min_principal) * 1e6)
    regions = {tag: _facet_triangles(mesh, tags.find(tag)) for tag in (FIXED, LOADED)}
    if mesh.comm.rank != 0:
        return None
    import pyvista as pv

    from bonefe.report.pictures import _grid, _plotter, _screenshot

    name = "min principal strain (microstrain)"
    grid = _grid({"points": points, "tets": tets, "cell_data": {name: strain}})
    low, high = float(strain.min()), float(strain.max())
    pad = max(0.0, 0.01 * abs(low) - (high - low))  # a uniform field keeps one colour
    plotter = _plotter(size)
    plotter.add_mesh(grid.extract_surface(algorithm="dataset_surface"), scalars=name, cmap="viridis", clim=[low - pad, high + pad],
                     scalar_bar_args={"color": "black", "vertical": True, "position_x": 0.82, "position_y": 0.15, "title_font_size": 14})
    centroid = points.mean(axis=0)
    for tag, triangles in regions.items():
        patch = pv.PolyData(points, np.hstack([np.full((len(triangles), 1), 3), triangles]).ravel())
        outward = points[np.unique(triangles)].mean(axis=0) - centroid
        slab = patch.extrude(0.04 * grid.length * outward / np.linalg.norm(outward), capping=True)
        plotter.add_mesh(slab, color=COLOURS[tag])
    if force_n is not None:
        centre = points[np.unique(regions[LOADED])].mean(axis=0)
        direction = np.asarray(force_n, float) / np.linalg.norm(force_n)
        length = 0.35 * grid.length
        start = centre - direction * (length + 0.05 * grid.length)  # the tip just off the plate
        plotter.add_mesh(pv.Arrow(start=start, direction=direction, scale=length), color="crimson")
    plotter.view_isometric()
    plotter.reset_camera()
    return _screenshot(plotter)

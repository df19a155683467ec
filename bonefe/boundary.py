"""The exterior facets of a tetrahedral mesh, where every site finds its support and load patches."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ExteriorFacets:
    """The local owned exterior facets of a tetrahedral mesh: index, midpoint, unit outward normal, area."""

    index: np.ndarray
    midpoint: np.ndarray
    normal: np.ndarray
    area: np.ndarray

    @classmethod
    def of(cls, mesh) -> "ExteriorFacets":
        from dolfinx.mesh import entities_to_geometry, exterior_facet_indices

        topology = mesh.topology
        topology.create_connectivity(2, 3)
        facets = exterior_facet_indices(topology)
        x = mesh.geometry.x
        corners = x[entities_to_geometry(mesh, 2, facets)]
        midpoint = corners.mean(axis=1)
        normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        area = 0.5 * np.linalg.norm(normal, axis=1)
        f2c = topology.connectivity(2, 3)
        cells = f2c.array[f2c.offsets[facets]]
        inside = x[mesh.geometry.dofmaps[0][cells, :4]].mean(axis=1)
        outward = np.where(np.einsum("ij,ij->i", normal, midpoint - inside) < 0, -1.0, 1.0)
        return cls(facets, midpoint, normal * (outward / np.maximum(2.0 * area, 1e-300))[:, None], area)

"""The specimen as a bone site (`bonefe.sites.base`): no anatomical frame, no patient, no activities;
the rig's load is the one load, and its failure load is the result.

A specimen case has its own schema (`bonefe.sites.specimen.case`) and chain (`run`); the members
of the interface that are clinical (risk thresholds, scores, activity libraries) say so when
called instead of inventing a meaning.
"""

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bonefe.errors import BonefeError
from bonefe.sites.base import Anatomy, Load
from bonefe.sites.specimen.case import Rig, SpecimenCase
from bonefe.volume import Volume

NOT_CLINICAL = "a specimen has no patient: {} applies to the patient bone sites (femur, vertebra, humerus)"


def box_mesh(volume: Volume, size_mm: float, comm):
    """The image box (`bonefe.sites.specimen.reading.box_affine`) as structured tetrahedra (six per
    hexahedron) of about size_mm, and its quality record (`bonefe.meshing.BoneMesh`)."""
    from dolfinx.mesh import CellType, create_box

    from bonefe.meshing import BoneMesh

    extent = np.array(volume.labels.shape) * volume.spacing
    cells = np.maximum(np.rint(extent / size_mm).astype(int), 1)
    mesh = create_box(comm, [np.zeros(3), extent], cells.tolist(), CellType.tetrahedron)
    nodes = int(np.prod(cells + 1))
    quality = {"kind": "box", "tets": int(6 * np.prod(cells)), "nodes": nodes, "cells_per_axis": cells.tolist(),
               "mesh_volume_mm3": float(np.prod(extent)), "size_mm": size_mm}
    return BoneMesh(mesh, quality)


KUHN_TETS = np.array([[0, 1, 3, 7], [0, 1, 5, 7], [0, 2, 3, 7], [0, 2, 6, 7], [0, 4, 5, 7], [0, 4, 6, 7]])
"""The six tetrahedra of a voxel around its main diagonal, corners numbered i + 2j + 4k (Kuhn's
triangulation: every voxel split alike, so neighbours' faces match)."""


def voxel_mesh(volume: Volume, comm):
    """Every specimen voxel (label > 0) as six tetrahedra on the voxel corners (`KUHN_TETS`): the
    voxel-faithful mesh of micro-FE, its surface exactly the voxels' faces; and its quality record."""
    import basix.ufl
    import ufl
    from dolfinx.mesh import create_mesh

    from bonefe.meshing import BoneMesh

    voxels = np.argwhere(volume.labels > 0)
    corners = np.array([[i & 1, i >> 1 & 1, i >> 2 & 1] for i in range(8)])
    lattice = np.array(volume.labels.shape) + 1
    keys = np.ravel_multi_index((voxels[:, None, :] + corners[None]).reshape(-1, 3).T, lattice)
    nodes, index = np.unique(keys, return_inverse=True)
    points = volume.to_world(np.array(np.unravel_index(nodes, lattice)).T - 0.5)  # voxel centres at i + ½
    tets = index.reshape(-1, 8)[:, KUHN_TETS].reshape(-1, 4)
    element = ufl.Mesh(basix.ufl.element("Lagrange", "tetrahedron", 1, shape=(3,)))
    mine = comm.rank == 0
    mesh = create_mesh(comm, tets.astype(np.int64) if mine else np.empty((0, 4), np.int64), element,
                       points if mine else np.empty((0, 3)))
    quality = {"kind": "voxel", "voxels": len(voxels), "tets": len(tets), "nodes": len(nodes),
               "mesh_volume_mm3": float(len(voxels) * volume.voxel_volume)}
    return BoneMesh(mesh, quality)


@dataclass(frozen=True)
class SpecimenSetup:
    """A specimen bound to its case (the rig) and, once solved, the generalised plate load of its
    rig's load (`RigLoading.plate_load`: force N, then moment N·mm when the plate rotates)."""

    case: SpecimenCase
    plate_load: np.ndarray | None = None
    frame: None = None
    body_mass_kg: float = float("nan")
    laws: tuple[str, ...] = ()

    @property
    def rig(self) -> Rig:
        return self.case.rig

    def mesh(self, volume, options, comm):
        """(`BoneMesh`, the rig's facet tags): the image box for a box specimen, else the voxels
        (`voxel_mesh`) or bonefe's smooth mesh, as `options.kind` says."""
        from bonefe.meshing import mesh_bone
        from bonefe.sites.specimen.rig import rig_tags

        if self.case.specimen == "box":
            bone = box_mesh(volume, options.size_mm, comm)
        elif options.kind == "voxel":
            bone = voxel_mesh(volume, comm)
        else:
            bone = mesh_bone(volume, options.size_mm, comm, thin_cortex_mm=0.0)
        return bone, rig_tags(bone.mesh, self.rig, self._label_map(volume))

    def _label_map(self, volume):
        """World points -> the segmentation's label within one voxel (max over the 3³ neighbours), or None."""
        specimen = self.case.specimen
        if specimen == "box" or specimen.labels is None:
            return None
        from scipy import ndimage

        from bonefe.sites.specimen.reading import region_labels

        labels = ndimage.grey_dilation(region_labels(specimen, self.case.image.downsample, volume.labels.shape),
                                       size=3)

        def at(points):
            ijk = np.clip(np.rint(volume.to_index(points)).astype(int), 0, np.array(labels.shape) - 1)
            return labels[tuple(ijk.T)]
        return at

    def model(self, mesh, facet_tags, E, labels, nu, risk, degree: int = 1, lesion=None):
        from bonefe.sites.specimen.rig import RigModel

        return RigModel(mesh, facet_tags, E, labels, nu, risk, self.rig, degree, lesion)

    def reference(self) -> Load:
        """The rig's load scaled to unit plate force, its magnitude the peak (N) — or, for a torsion
        or bending test (`Rig.torsion_or_bending`), to unit moment (peak in N·mm). It follows from
        the rig's solve: bind it with `with_plate_load`."""
        if self.plate_load is None:
            raise BonefeError("the specimen's load follows from its rig's solve: bind it with "
                              "SpecimenSetup.with_plate_load")
        load = np.asarray(self.plate_load, float)
        parts = {"force": load[:3]} | ({"moment": load[3:]} if len(load) > 3 else {})
        moment_test = self.rig.torsion_or_bending
        magnitude = float(np.linalg.norm(parts["moment" if moment_test else "force"]))
        return Load("rig", "Rig moment" if moment_test else "Rig load",
                    {name: part / magnitude for name, part in parts.items()}, magnitude,
                    "the case's rig (bonefe.sites.specimen.rig)")

    def with_plate_load(self, plate_load) -> "SpecimenSetup":
        return replace(self, plate_load=np.asarray(plate_load, float))

    def loads(self, names=None, custom=()) -> list[Load]:
        """The rig's load alone (no activity library)."""
        return [self.reference()]

    def thresholds(self, risk):
        raise BonefeError(NOT_CLINICAL.format("a risk category"))

    def reference_strain(self, mesh, facet_tags, E, nu, degree: int = 1):
        raise BonefeError(NOT_CLINICAL.format("the uncertainty study"))


@dataclass(frozen=True)
class SpecimenSite:
    name: str = "specimen"
    lesion_sites: tuple[str, ...] = ()
    scores: tuple[str, ...] = ()
    camera: str = "iso"
    exports: tuple[str, ...] = ("inp", "vtu")

    def write_phantom(self, options: dict, out_dir: Path, fmt: str) -> dict[str, Path]:
        raise BonefeError("a specimen case generates its phantom itself (image.phantom): no file is needed")

    def suitability(self, options):
        raise BonefeError(NOT_CLINICAL.format("the clinical scan check"))

    def anatomy(self, case: SpecimenCase, volume, raw_labels) -> Anatomy:
        """No frame: the specimen's volume as read."""
        return Anatomy(volume, None)

    def setup(self, case: SpecimenCase, frame) -> SpecimenSetup:
        return SpecimenSetup(case)

    def assess_more(self, setup, model, loads, rows) -> dict:
        """The rig's readouts (`bonefe.sites.specimen.rig.RigLoading.readouts`)."""
        return {"rig": model.loading.readouts(setup.rig)}

    def analyses(self, case, setup, mesh, facet_tags, material, lesion) -> dict:
        return {}

    def scores_of(self, case, anatomy, twin_volume) -> dict:
        return {}

    def results(self, case: SpecimenCase, anatomy, assessment, setup) -> dict:
        """At the onset of failure: the plate force (N, its magnitude the failure load; none for a pure
        moment test, whose plate force is nil), moment (N·mm, its magnitude the failure moment),
        translation (mm), rotation (degrees); where it starts."""
        stance = assessment.stance
        scale = stance.failure_load_n / setup.reference().peak_n  # the rig's load times this fails
        rig = assessment.model.loading.readouts(setup.rig)
        at_failure = {key: (scale * np.asarray(rig[key])).tolist() for key in
                      ("reaction_force_n", "reaction_moment_nmm", "plate_translation_mm", "plate_rotation_deg")}
        force = None if case.rig.torsion_or_bending else float(np.linalg.norm(at_failure["reaction_force_n"]))
        return {"site": "specimen", "failure_load_n": force,
                "failure_moment_nmm": float(np.linalg.norm(at_failure["reaction_moment_nmm"])),
                "failure_location_mm": stance.location_mm, "failure_mode": stance.mode,
                "failure_force_n": at_failure["reaction_force_n"],
                "failure_translation_mm": at_failure["plate_translation_mm"],
                "failure_rotation_deg": at_failure["plate_rotation_deg"]}

    def bone(self, case: SpecimenCase) -> str:
        raise BonefeError(NOT_CLINICAL.format("a follow-up over time"))

    def assumptions(self, case: SpecimenCase) -> list[str]:
        failure = case.failure
        return [
            "Linear elastic, isotropic material mapped from the image element by element; the fixed region "
            "clamped, the loaded region bonded to a rigid plate that "
            + ("rotates about the pivot (small rotations)." if case.rig.rotates else "translates without rotating."),
            f"Failure is the onset of local failure by the maximum principal strain criterion "
            f"({failure.criterion.tensile_limit:g} tension, {failure.criterion.compressive_limit:g} compression) "
            f"on the strain averaged over {failure.averaging_radius_mm:g} mm spheres, read farther than "
            f"{failure.exclusion_mm:g} mm from both regions; linear, so the failure load scales the rig's load.",
        ]

    def export_inp(self, path: Path, basis, facet_tags, E, nu, setup) -> None:
        """model.inp: the rig as CalculiX boundary conditions (fixed region 0, each of the plate's nodes
        moved by the plate's motion under the rig's load, t + θ × (x − pivot)) and ccx's reaction
        totals for both regions."""
        from bonefe.export import bin_modulus, gather_cells, gather_facet_nodes, gather_mesh, write_inp

        loading = basis.loading
        mesh = loading.mesh
        q = np.concatenate([loading.state(setup.rig), np.zeros(3)])[:6]
        points, tets = gather_mesh(mesh)
        E_all = gather_cells(mesh, E)
        fixed, plate = gather_facet_nodes(mesh, loading.fixed), gather_facet_nodes(mesh, loading.loaded)
        if mesh.comm.rank == 0:
            plate = np.unique(plate)  # a translation as one vector for the set, a rotation node by node
            moved = q[:3] if not q[3:].any() else q[:3] + np.cross(q[3:], points[plate] - loading.pivot)
            write_inp(path, points, tets, bin_modulus(E_all, None), nu, fixed, np.zeros_like(points),
                      {"loaded": plate}, {"loaded": moved})
        mesh.comm.barrier()

    def write_report(self, out_dir: Path, results: dict, picture) -> dict[str, Path]:
        """specimen-report.json and, given the picture (an RGB array, `bonefe.sites.specimen.pictures`), rig.png (rank 0)."""
        from bonefe.outputs import atomic_path, atomic_write_json
        from bonefe.report.pictures import png_bytes

        paths = {"json": Path(out_dir) / "specimen-report.json"}
        atomic_write_json(paths["json"], results)
        if picture is not None:
            paths["picture"] = Path(out_dir) / "rig.png"
            with atomic_path(paths["picture"]) as tmp:
                tmp.write_bytes(png_bytes(picture))
        return paths

    def summary(self, case: SpecimenCase, results: dict) -> str:
        rig = results["rig"]
        if case.rig.torsion_or_bending:
            measured = (f"plate moment {np.linalg.norm(rig['reaction_moment_nmm']):.4g} N·mm, failure moment "
                        f"{results['failure_moment_nmm']:.4g} N·mm")
        else:
            stiffness = f", stiffness {rig['stiffness_n_per_mm']:.4g} N/mm" if "stiffness_n_per_mm" in rig else ""
            measured = (f"plate force {np.linalg.norm(rig['reaction_force_n']):.4g} N{stiffness}, "
                        f"failure load {results['failure_load_n']:.4g} N")
        return f"{case.name}: {measured} ({results['failure_mode']}); report: {case.output / 'specimen-report.json'}"


SPECIMEN = SpecimenSite()

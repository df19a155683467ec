"""Where failure is read follows the CT's label at each point, not the tetrahedron's majority label
(`bonefe.assessment.failure_points`, `bonefe.materials.LesionMap`).

A 12 mm cube in 2 × 2 × 2 blocks of six tetrahedra (6 mm), on a CT of 1 mm voxels (centres at
0.5, 1.5, … mm) whose voxels with x < 5 mm are lytic. Every tetrahedron of the first block layer
(0 < x < 6) is 63–100 % lesion, so its majority label is lytic (`bonefe.materials.cell_material`),
though the slab 5 < x < 6 of it is bone in the CT. Lattice bins are 1 mm (default radius 2 mm).

Runs serially and under `mpirun -n 2`.
"""

import bonefe  # noqa: F401  (MPI/dolfinx import order)

import numpy as np
import pytest
from dolfinx import mesh as dmesh
from mpi4py import MPI

from bonefe.assessment import failure_points, needs_lesion_map
from bonefe.materials import cell_material, lesion_map
from bonefe.volume import BONE, LYTIC, Volume

COMM = MPI.COMM_WORLD


@pytest.fixture(scope="module")
def cube():
    mesh = dmesh.create_box(COMM, [[0.0] * 3, [12.0] * 3], [2] * 3, dmesh.CellType.tetrahedron)
    labels = np.full((12, 12, 12), BONE, np.uint8)
    labels[:5] = LYTIC
    affine = np.eye(4)
    affine[:3, 3] = 0.5
    volume = Volume(hu=np.full(labels.shape, 1000.0, np.float32), labels=labels, affine=affine)
    n = mesh.topology.index_map(3).size_local
    centres = mesh.geometry.x[mesh.geometry.dofmaps[0][:n]].mean(axis=1)
    return mesh, volume, centres, cell_material(mesh, volume).label


def test_majority_label_and_ct_label_disagree_on_the_slab(cube):
    """The premise: the cells with x < 6 mm are lytic by majority, the others bone; no voxel with x > 5 is lesion."""
    mesh, volume, centres, label = cube
    first = centres[:, 0] < 6.0
    assert np.all(label[first] == LYTIC) and np.all(label[~first] == BONE)
    lesion = lesion_map(volume)
    assert not lesion(np.array([[5.01, 6.0, 6.0], [5.5, 5.5, 5.5]])).any()
    assert lesion(np.array([[4.99, 6.0, 6.0]])).all()


def test_points_are_evaluated_and_averaged_by_the_ct_label(cube):
    """Evaluated: exactly the points with x > 5 (the tetrahedra's labels would give x > 6). Bone in
    each bin: all of it for 5 < x < 6, none below 5 (its quadrature points read the CT, fractions
    exact). The sphere average of a field of 1 on the lytic-majority cells and 0 on the others, at
    (5.5, 5.5, 5.5): the 2 mm sphere of 1 mm bins holds 13 bins in its own layer (x = 5.5, field 1),
    9 + 1 in the two layers above (field 0) and none below (lesion), so 13/23 = 0.565 with equal bin
    volumes; at (6.5, 5.5, 5.5): 9 of 32 bins, 0.281. The bins' volumes come from the quadrature
    points of 6 mm tetrahedra (0.3–2 mm³ here, not 1), hence 5 % (measured 0.541, 0.274). By the
    tetrahedra's labels both averages would be 0 (the field lives on lesion cells only)."""
    mesh, volume, centres, label = cube
    lattice = failure_points(mesh, lesion_map(volume), np.ones(len(centres), bool), 2.0)
    average = lattice.average
    x = average.points[:, 0]
    np.testing.assert_array_equal(lattice.points, average.points[x > 5.0])
    np.testing.assert_array_equal(average.centred_in(label == BONE), x > 6.0)
    assert COMM.allreduce(int((x > 5.0).sum())) > COMM.allreduce(int((x > 6.0).sum()))
    fraction = average.fraction(lattice.weights)
    np.testing.assert_array_equal(fraction[x < 5.0], 0.0)
    np.testing.assert_allclose(fraction[(x > 5.0) & (x < 6.0)], 1.0, rtol=1e-12)
    field = (centres[:, 0] < 6.0).astype(float)
    values = lattice.nonlocal_field(field)
    assert np.all(average(field, label == BONE) == 0.0)
    for point, expected in (((5.5, 5.5, 5.5), 13 / 23), ((6.5, 5.5, 5.5), 9 / 32)):
        here = np.all(lattice.points == point, axis=1)
        found = COMM.allgather(values[here])
        value = np.concatenate(found)
        assert len(value) == 1, point
        assert value[0] == pytest.approx(expected, rel=0.05), point


def test_a_bone_with_lesion_cells_needs_its_lesion_map(cube):
    """Lesion cells without the CT's lesion map would silently average over the lesion: refused."""
    mesh, volume, _, label = cube
    with pytest.raises(ValueError, match="lesion map"):
        needs_lesion_map(mesh, label, None)
    needs_lesion_map(mesh, label, lesion_map(volume))
    needs_lesion_map(mesh, np.full_like(label, BONE), None)


def test_no_lesion_voxels_no_lesion_map():
    """A CT without lesion voxels has no lesion map: every point is bone (the failure points then
    weight every cell fully, as for the lesion-free twin)."""
    labels = np.full((4, 4, 4), BONE, np.uint8)
    assert lesion_map(Volume(hu=np.zeros(labels.shape, np.float32), labels=labels, affine=np.eye(4))) is None

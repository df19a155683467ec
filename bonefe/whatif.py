"""What-if: how the reference failure load answers lesion growth and re-mineralisation, on one mesh.

Lesions are material, not geometry (`bonefe.materials`), so each scenario is a new CT volume
mapped onto the same mesh: a new operator and the solves of the reference load alone
(`bonefe.assessment.reference_failure`: one for the femur's walking load), no remeshing.
By linearity this is the failure load the full unit-load basis gives, within the solver tolerance.

Lesion growth by d mm: every bone voxel within d mm (exact Euclidean distance on the voxel grid,
world spacing) of a lesion voxel becomes lesion tissue — the lesion's own (majority) label and its
median HU — inside the bone envelope only (labels > 0), so the lesion grows at its site and never
into soft tissue. A growing lesion passes through every smaller size, so the failure load reported
for growth d is the lowest of the computed states up to d (the lesion as scanned included). The
state alone can be stronger than a smaller one: when the lesion consumes a thin shell of bone that
was the first to reach the strain limit (onset of local failure), the shell's strain is gone
with it; the bone does not get stronger for it.

Re-mineralisation by a fraction t in [0, 1] (healing after radiotherapy or bone-modifying agents):
each lesion voxel's HU moves towards the lesion-free twin's (`bonefe.materials.healthy_volume`),
HU(t) = (1 − t)·HU_lesion + t·HU_twin, and the lesion modulus factor towards that of bone,
f(t) = (1 − t)·f_lesion + t (a re-mineralised matrix is bone, not tumour). At t = 1 the lesion
voxels become bone: the volume is the twin's, and so is the failure load. Lesion cells are not
evaluated for failure while t < 1 (as in `bonefe.assessment`).

Each step is the failure load of the site's reference load (`bonefe.sites.base.Setup`) with its
risk category under the site's thresholds (`bonefe.risk.risk_category`); the series records the
first step whose category is "high".
"""

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from bonefe.assessment import RiskOptions, away_from_patches, failure_points, reference_failure
from bonefe.materials import MaterialOptions, MaterialUpdate, healthy_volume
from bonefe.risk import body_weight_n, risk_category
from bonefe.volume import BACKGROUND, BONE, LESION_LABELS, Volume, distance_to


@dataclass(frozen=True)
class WhatIfStep:
    """One scenario: its parameter (growth in mm or re-mineralised fraction), the lesion's voxel
    volume (mm³) and equivalent sphere diameter (mm), the reference failure load (N, × BW) and risk."""

    value: float
    lesion_volume_mm3: float
    equivalent_diameter_mm: float
    failure_load_n: float
    failure_load_bw: float
    risk_category: str


@dataclass(frozen=True)
class WhatIfSeries:
    """Failure load against one scenario parameter; steps[0] is the bone as scanned (value 0).

    kind: "growth" (value = growth in mm) or "remineralisation" (value = fraction t).
    high_risk_from: the first value whose risk category is "high", or None.
    """

    kind: str
    steps: list[WhatIfStep]
    high_risk_from: float | None


@dataclass(frozen=True)
class Scenario:
    """What every what-if step shares: the mesh with its facet tags, the scanned volume, the
    material options, the site bound to the case (`bonefe.sites.base.Setup`), the risk options
    and element degree. The pipeline reads the scanned volume's material and the twin from it too."""

    mesh: object
    facet_tags: object
    volume: Volume
    material: MaterialOptions
    setup: object
    risk: RiskOptions
    degree: int = 1

    @cached_property
    def materials(self) -> MaterialUpdate:
        """The scanned volume's cell material (`.material`) and that of a what-if volume, sampled
        again where it differs from the scanned one."""
        return MaterialUpdate(self.mesh, self.volume, self.material)

    @cached_property
    def twin(self) -> Volume:
        """The lesion-free twin of the scanned volume (`bonefe.materials.healthy_volume`)."""
        return healthy_volume(self.volume)

    @cached_property
    def away(self) -> np.ndarray:
        """Per local cell, True away from the load and support patches (`bonefe.assessment`)."""
        return away_from_patches(self.mesh, self.facet_tags, self.risk.exclusion_mm)


def lesion_mask(volume: Volume) -> np.ndarray:
    """True for lesion voxels (lytic or blastic)."""
    return np.isin(volume.labels, LESION_LABELS)


def lesion_size(volume: Volume) -> tuple[float, float]:
    """Lesion voxel volume (mm³) and the diameter of the sphere of that volume (mm)."""
    volume_mm3 = float(np.count_nonzero(lesion_mask(volume))) * volume.voxel_volume
    return volume_mm3, float(np.cbrt(6.0 * volume_mm3 / np.pi))


def grown_volume(volume: Volume, growth_mm: float) -> Volume:
    """The volume with its lesion grown by growth_mm inside the bone envelope (module docstring)."""
    lesion = lesion_mask(volume)
    distance = distance_to(lesion, volume.spacing, growth_mm)
    grown = (distance <= growth_mm) & (volume.labels != BACKGROUND) & ~lesion
    values, counts = np.unique(volume.labels[lesion], return_counts=True)
    hu, labels = volume.hu.copy(), volume.labels.copy()
    hu[grown] = np.median(volume.hu[lesion])
    labels[grown] = values[np.argmax(counts)]
    return Volume(hu=hu, labels=labels, affine=volume.affine)


def remineralised(volume: Volume, twin: Volume, material: MaterialOptions, t: float) -> tuple[Volume, MaterialOptions]:
    """The volume and material options with the lesion re-mineralised by fraction t (module docstring)."""
    lesion = lesion_mask(volume)
    hu, labels = volume.hu.copy(), volume.labels.copy()
    hu[lesion] = (1.0 - t) * volume.hu[lesion] + t * twin.hu[lesion]
    if t >= 1.0:
        labels[lesion] = BONE
    return Volume(hu=hu, labels=labels, affine=volume.affine), healed_material(material, t)


def healed_material(material: MaterialOptions, t: float) -> MaterialOptions:
    """The lesion modulus factors moved towards bone by fraction t: f(t) = (1 − t)·f + t (module docstring)."""
    return replace(material, lytic_factor=(1.0 - t) * material.lytic_factor + t,
                   blastic_factor=(1.0 - t) * material.blastic_factor + t)


def reference_failure_load(scenario: Scenario, volume: Volume, material: MaterialOptions) -> float:
    """Reference failure load (N) of the mesh with the material of `volume`, read where its CT holds
    bone (`bonefe.assessment.failure_points`): one operator, the reference load's solves only."""
    cells = scenario.materials(volume, material)
    lattice = failure_points(scenario.mesh, scenario.materials.lesion_map(volume), scenario.away,
                             scenario.risk.averaging_radius_mm)
    return reference_failure(scenario.setup, scenario.mesh, scenario.facet_tags, lattice, cells.E, material.poisson,
                             scenario.risk, scenario.degree).failure_load_n


def _step(scenario: Scenario, value: float, volume: Volume, failure_load_n: float) -> WhatIfStep:
    bw = failure_load_n / body_weight_n(scenario.setup.body_mass_kg)
    return WhatIfStep(float(value), *lesion_size(volume), failure_load_n, bw,
                      risk_category(bw, scenario.setup.thresholds(scenario.risk)))


def _series(kind: str, steps: list[WhatIfStep]) -> WhatIfSeries:
    high = next((s.value for s in steps if s.risk_category == "high"), None)
    return WhatIfSeries(kind, steps, high)


def lesion_growth(scenario: Scenario, steps_mm: list[float], baseline_n: float) -> WhatIfSeries:
    """Failure load for the lesion grown by each of steps_mm (mm); baseline_n: as scanned (N)."""
    steps, lowest = [_step(scenario, 0.0, scenario.volume, baseline_n)], baseline_n
    for d in sorted(steps_mm):
        grown = grown_volume(scenario.volume, d)
        lowest = min(lowest, reference_failure_load(scenario, grown, scenario.material))
        steps.append(_step(scenario, d, grown, lowest))
    return _series("growth", steps)


def remineralisation(scenario: Scenario, fractions: list[float], baseline_n: float,
                     twin_n: float | None = None) -> WhatIfSeries:
    """Failure load for the lesion re-mineralised by each fraction t in (0, 1]; baseline_n: as scanned (N).
    The lesion size reported is that of the lesion as scanned (re-mineralisation does not shrink it).
    twin_n: the lesion-free twin's reference failure load on this mesh (N), when already solved: the
    state t = 1 is the twin's volume exactly (module docstring), so it is not solved again."""
    steps = [_step(scenario, 0.0, scenario.volume, baseline_n)]
    for t in sorted(fractions):
        volume, material = remineralised(scenario.volume, scenario.twin, scenario.material, t)
        load = twin_n if t >= 1.0 and twin_n is not None else reference_failure_load(scenario, volume, material)
        steps.append(_step(scenario, t, scenario.volume, load))
    return _series("remineralisation", steps)


def what_if(scenario: Scenario, baseline_n: float, twin_n: float | None = None) -> dict[str, WhatIfSeries]:
    """The series the risk options ask for ({} when the steps are empty or the bone has no lesion);
    twin_n: the lesion-free twin's reference failure load (N) when solved (`remineralisation`)."""
    if not lesion_mask(scenario.volume).any():
        return {}
    series = {}
    if scenario.risk.growth_steps_mm:
        series["growth"] = lesion_growth(scenario, scenario.risk.growth_steps_mm, baseline_n)
    if scenario.risk.remineralisation_steps:
        series["remineralisation"] = remineralisation(scenario, scenario.risk.remineralisation_steps, baseline_n,
                                                      twin_n)
    return series

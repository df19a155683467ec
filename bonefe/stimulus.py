"""Osteogenic stimulus of a load from its strain field, in a region and in the whole bone.

Site-agnostic: everything works on a `StrainField` (principal strains under a unit load at points
of bone, each with its bone volume, modulus and Poisson ratio, and a region-of-interest mask) over
this rank's points, with an optional MPI communicator; the numbers do not depend on the number of
ranks. The pipeline fills it, for any bone site, from the nonlocal strain of `bonefe.assessment` (`bonefe.window`).

Two measures, both linear-elastic post-processes of the same strain field:

Fraction above the minimum effective strain (Frost's mechanostat)
    Bone models (adds bone) where its peak strain exceeds the modelling threshold MESm (Frost HM
    2003, "Bone's mechanostat: a 2003 update", Anat Rec A 275A:1081-1101; Frost HM 1987, Anat Rec
    219:1-9). Its value is uncertain: quoted between about 1000 and 1500 µε and wider in secondary
    sources (1500-3000 µε for Frost 1987), and the primary tables were not read here. We carry both
    ends, MES_LOW = 1000 µε and MES_HIGH = 1500 µε, and decide on the high end (conservative for
    the claim "may build bone"). The strain is the principal strain of largest magnitude,
    max(|ε1|, |ε3|); the measure is the bone volume whose strain reaches the threshold over the
    bone volume considered.

Daily stress stimulus (Carter and Beaupré)
    ψ = (Σ_i n_i σ_i^m)^(1/m), n_i cycles per day of load i and σ_i its effective stress
    σ = sqrt(2 E U), U the strain energy density (Carter DR, Fyhrie DP, Whalen RT 1987, J Biomech
    20:785-794; Beaupré GS, Orr TE, Carter DR 1990, J Orthop Res 8:651-661, with m = 4). For one
    activity ψ = n^(1/m)·σ: linear in load, growing only as the fourth root of repetitions. This is
    the continuum-level ψ of the bone as mapped from CT (MPa/day); it is reported for comparison
    between activities and not thresholded (the attractor state of Beaupré et al. is defined at
    tissue level).

Linear elasticity makes both measures divisions: under the load scaled by s every strain scales by
s, so the smallest scale at which a fraction f of the region reaches a threshold is the threshold
over the (1 − f) volume quantile of the unit-load strain (`scale_to_reach`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

MES_LOW = 1000e-6
"""Lower end of the quoted modelling threshold (Frost 2003; dimensionless strain)."""
MES_HIGH = 1500e-6
"""Upper end of the quoted modelling threshold (Frost 1987/2003; dimensionless): the window's."""
FROST_2003 = ("Frost HM 2003, Anat Rec A 275A:1081-1101 (mechanostat; modelling threshold MESm, "
              "quoted 1000-1500 µε)")
STIMULUS_EXPONENT = 4.0
"""Exponent m of the daily stress stimulus (Beaupré et al. 1990)."""
CARTER_BEAUPRE = ("Carter DR, Fyhrie DP, Whalen RT 1987, J Biomech 20:785-794; Beaupré GS, Orr TE, "
                  "Carter DR 1990, J Orthop Res 8:651-661 (daily stress stimulus, m = 4)")


@dataclass(frozen=True)
class StrainField:
    """Strain of this rank's bone points under a unit load (1 N along the load's direction).

    principal: (n, 3) principal strains, descending (dimensionless per N); volumes: (n,) bone volume
    each point stands for (mm³); modulus: (n,) Young's modulus (MPa); nu: Poisson ratio;
    region: (n,) True for the region of interest (e.g. bone near a lesion).
    """

    principal: np.ndarray
    volumes: np.ndarray
    modulus: np.ndarray
    nu: float
    region: np.ndarray

    @property
    def magnitude(self) -> np.ndarray:
        """Principal strain of largest magnitude, max(|ε1|, |ε3|), per point (per N)."""
        return np.maximum(np.abs(self.principal[:, 0]), np.abs(self.principal[:, 2]))

    @property
    def effective_stress(self) -> np.ndarray:
        """σ = sqrt(2 E U) per point (MPa per N), U = λ(tr ε)²/2 + μ Σ ε_i² of isotropic elasticity."""
        E, nu = self.modulus, self.nu
        lam, mu = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
        energy = 0.5 * lam * self.principal.sum(axis=1) ** 2 + mu * (self.principal ** 2).sum(axis=1)
        return np.sqrt(2.0 * E * energy)


def _gathered(values: np.ndarray, volumes: np.ndarray, comm) -> tuple[np.ndarray, np.ndarray]:
    """Values and volumes of every rank, sorted by value (descending, ties by volume): the same
    arrays whatever the partition."""
    if comm is not None and comm.size > 1:
        values = np.concatenate(comm.allgather(np.asarray(values, float)))
        volumes = np.concatenate(comm.allgather(np.asarray(volumes, float)))
    order = np.lexsort((-np.asarray(volumes), -np.asarray(values)))
    return np.asarray(values, float)[order], np.asarray(volumes, float)[order]


def total_volume(volumes: np.ndarray, comm=None) -> float:
    """Sum of the volumes over every rank (mm³)."""
    local = float(np.sum(volumes))
    return comm.allreduce(local, op=MPI.SUM) if comm is not None else local


def fraction_above(values: np.ndarray, volumes: np.ndarray, threshold: float, comm=None) -> float:
    """Volume fraction (0..1) of the points whose value reaches `threshold`; 0 without volume."""
    total = total_volume(volumes, comm)
    above = total_volume(np.asarray(volumes)[np.asarray(values) >= threshold], comm)
    return above / total if total > 0 else 0.0


def volume_mean(values: np.ndarray, volumes: np.ndarray, comm=None) -> float:
    """Volume-weighted mean of a per-point field; 0 without volume."""
    total = total_volume(volumes, comm)
    return total_volume(np.asarray(values) * np.asarray(volumes), comm) / total if total > 0 else 0.0


def scale_to_reach(values_unit: np.ndarray, volumes: np.ndarray, threshold: float, fraction: float,
                   comm=None) -> float | None:
    """Smallest load scale s at which a volume fraction ≥ `fraction` of the points has s·value ≥
    threshold (values under the unit load, linear in load); None when it cannot be reached (no
    volume, or the needed points carry no strain)."""
    values, volumes = _gathered(values_unit, volumes, comm)
    total = volumes.sum()
    if not total > 0:
        return None
    needed = np.searchsorted(np.cumsum(volumes), fraction * total * (1 - 1e-12))
    if needed >= len(values) or not values[needed] > 0:
        return None
    return float(threshold / values[needed])


def daily_stimulus(stress: np.ndarray, cycles: float, exponent: float = STIMULUS_EXPONENT) -> np.ndarray:
    """ψ = (n σ^m)^(1/m) per point for one load of n cycles per day (MPa/day when σ is in MPa)."""
    return float(cycles) ** (1.0 / exponent) * np.asarray(stress, float)


@dataclass(frozen=True)
class Stimulus:
    """Stimulus of one load at one magnitude (its peak).

    region_above_low / region_above_high: volume fraction of the region reaching MES_LOW / MES_HIGH;
    bone_above_high: the same at MES_HIGH over all bone points; region_psi_mpa, bone_psi_mpa:
    volume-mean daily stress stimulus (MPa/day) for `cycles` cycles per day; scale_low / scale_high:
    smallest multiple of this magnitude at which `target_fraction` of the region reaches
    MES_LOW / MES_HIGH (None: never).
    """

    region_above_low: float
    region_above_high: float
    bone_above_high: float
    region_psi_mpa: float
    bone_psi_mpa: float
    cycles: float
    target_fraction: float
    scale_low: float | None
    scale_high: float | None


def measure(field: StrainField, magnitude: float, cycles: float, target_fraction: float,
            comm=None) -> Stimulus:
    """The stimulus of the load `magnitude` (N) along the field's unit load, `cycles` per day."""
    strain = field.magnitude
    region, volumes = field.region, field.volumes
    psi = daily_stimulus(magnitude * field.effective_stress, cycles)

    def scale(threshold):
        s = scale_to_reach(strain[region], volumes[region], threshold, target_fraction, comm)
        return None if s is None else s / magnitude

    return Stimulus(
        region_above_low=fraction_above(magnitude * strain[region], volumes[region], MES_LOW, comm),
        region_above_high=fraction_above(magnitude * strain[region], volumes[region], MES_HIGH, comm),
        bone_above_high=fraction_above(magnitude * strain, volumes, MES_HIGH, comm),
        region_psi_mpa=volume_mean(psi[region], volumes[region], comm),
        bone_psi_mpa=volume_mean(psi, volumes, comm),
        cycles=float(cycles),
        target_fraction=float(target_fraction),
        scale_low=scale(MES_LOW),
        scale_high=scale(MES_HIGH),
    )

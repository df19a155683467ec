"""What every validation group returns: compared numbers with their bound, and report sections."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Check:
    """One number compared with its reference.

    value, reference: the measured number and what it is compared with (same unit);
    error: the measure of disagreement named by `measure` (e.g. |value/reference − 1|);
    bound: the documented agreement bound (the check passes when error ≤ bound; None = reported only);
    mesh: the discretisation (element size, element type); source: where the reference comes from.
    """

    name: str
    value: float
    reference: float
    error: float
    bound: float | None
    mesh: str
    source: str
    measure: str = "relative error"

    @property
    def passed(self) -> bool | None:
        return None if self.bound is None else bool(self.error <= self.bound)


def relative(name: str, value: float, reference: float, bound: float | None, mesh: str, source: str) -> Check:
    """A Check whose error is |value / reference − 1|."""
    return Check(name, float(value), float(reference), abs(float(value) / float(reference) - 1.0), bound, mesh, source)


@dataclass
class Section:
    """One part of docs/validation.md: markdown text, the checks it asserts, pictures (file names
    under docs/images) and the seconds it took."""

    title: str
    text: str
    checks: list[Check] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    seconds: float = 0.0

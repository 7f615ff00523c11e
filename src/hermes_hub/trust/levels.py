"""Levels (Nervix) and the contract complexities they may take on. Pure functions.

Novice below 50, Intermediate 50 to 75, Expert 75 to 90, Master from 90, on trust x 100.
Simple work is open to all, medium to Intermediate and above, complex to Expert and above.
"""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    NOVICE = "novice"
    INTERMEDIATE = "intermediate"
    EXPERT = "expert"
    MASTER = "master"


class Complexity(StrEnum):
    SIMPLE = "simple"
    MEDIUM = "medium"
    COMPLEX = "complex"


_ORDER = [Level.NOVICE, Level.INTERMEDIATE, Level.EXPERT, Level.MASTER]
_MINIMUM_FOR = {
    Complexity.SIMPLE: Level.NOVICE,
    Complexity.MEDIUM: Level.INTERMEDIATE,
    Complexity.COMPLEX: Level.EXPERT,
}


def level_for(trust: float) -> Level:
    points = trust * 100
    if points >= 90:
        return Level.MASTER
    if points >= 75:
        return Level.EXPERT
    if points >= 50:
        return Level.INTERMEDIATE
    return Level.NOVICE


def minimum_level(complexity: Complexity) -> Level:
    return _MINIMUM_FOR[complexity]


def may_take(complexity: Complexity, trust: float) -> bool:
    return _ORDER.index(level_for(trust)) >= _ORDER.index(minimum_level(complexity))

"""The compression-quality trade-off: which (size, perplexity) points no other point beats on both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

P = TypeVar("P")


def pareto_front(points: Sequence[P], size=lambda p: p.size_bytes, loss=lambda p: p.perplexity) -> list[P]:
    """The points that no other point matches or beats in both size and loss (lower is better for both),
    ordered from the smallest to the largest."""
    front: list[P] = []
    for point in sorted(points, key=lambda p: (size(p), loss(p))):
        if not front or loss(point) < loss(front[-1]):
            front.append(point)
    return front

"""Benchmarks that print ratios against reference tools measured in the same run.

`python -m bench.intake` (issue 3) and `python -m bench.validate` (issue 4); the measured
numbers and how to read them are in docs/performance.md. No test asserts on timings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between the closest ranks (the
    usual definition, as numpy's default). Raises on an empty sequence."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(ours: float, reference: float) -> float:
    """ours / reference; inf when the reference is 0."""
    return ours / reference if reference else math.inf

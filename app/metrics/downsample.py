"""Thinning a long series for a chart: min/max buckets.

The rows between the first and the last are cut into B runs of equal length (buckets); each
bucket keeps, for every metric shown, the row with its smallest and the row with its largest
value. Spikes and dips survive (striding would drop a one-epoch loss spike), the first and last
rows and the best epoch's row are always kept, and the result never exceeds `max_points`:
B = (max_points − kept rows) // (2 × metrics). When the metrics are so many that not one
bucket fits, evenly spaced rows are taken instead ("stride"). Rows keep their original order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

NONE, MINMAX, STRIDE = "none", "minmax-buckets", "stride"


def pick(
    count: int,
    columns: Sequence[Sequence[float | None]],
    max_points: int,
    keep: Iterable[int] = (),
) -> tuple[list[int], str]:
    """Indices (ascending) of the rows to draw, and the method used."""
    if count <= max_points:
        return list(range(count)), NONE
    fixed = {0, count - 1, *(i for i in keep if 0 <= i < count)}
    budget = max(0, max_points - len(fixed))
    chosen = set(fixed)
    buckets = budget // (2 * len(columns)) if columns else 0
    if buckets >= 1:
        for column in columns:
            chosen.update(_extremes(column, 1, count - 1, buckets))
        return sorted(chosen), MINMAX
    if budget:
        interior = count - 2
        chosen.update(1 + (interior * (2 * j + 1)) // (2 * budget) for j in range(budget))
    return sorted(chosen), STRIDE


def _extremes(column: Sequence[float | None], start: int, end: int, buckets: int) -> set[int]:
    # Missing and NaN values never win; min() over a range with a C-level key keeps a
    # million-row column well under a second.
    low = [v if v is not None and not math.isnan(v) else math.inf for v in column]
    high = [v if v is not None and not math.isnan(v) else -math.inf for v in column]
    found: set[int] = set()
    span = end - start
    for b in range(buckets):
        first, last = start + span * b // buckets, start + span * (b + 1) // buckets
        if first >= last:
            continue
        for values in (low, high):
            best = (min if values is low else max)(range(first, last), key=values.__getitem__)
            value = column[best]
            if value is not None and not math.isnan(value):
                found.add(best)
    return found

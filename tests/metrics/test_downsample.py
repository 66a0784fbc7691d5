"""Min/max buckets: never more than asked, first/last/best kept, spikes survive."""

from __future__ import annotations

import math

from app.metrics.downsample import MINMAX, NONE, STRIDE, pick


def test_short_series_are_untouched() -> None:
    assert pick(5, [[1.0] * 5], 10) == ([0, 1, 2, 3, 4], NONE)


def test_buckets_keep_the_extremes_the_ends_and_the_best() -> None:
    count = 10_000
    loss = [1 / (1 + i) for i in range(count)]
    loss[6_789] = 50.0  # a one-epoch spike
    acc = [i / count for i in range(count)]
    acc[4_321] = math.nan
    chosen, method = pick(count, [loss, acc], 200, keep=[1_234])
    assert method == MINMAX
    assert len(chosen) <= 200
    assert chosen == sorted(set(chosen))
    assert {0, count - 1, 1_234, 6_789} <= set(chosen)
    assert 4_321 not in chosen  # NaN is never an extreme


def test_too_many_metrics_for_the_budget_falls_back_to_stride() -> None:
    columns = [[float(i)] * 1_000 for i in range(20)]
    chosen, method = pick(1_000, columns, 10)
    assert method == STRIDE
    assert len(chosen) == 10 and chosen[0] == 0 and chosen[-1] == 999

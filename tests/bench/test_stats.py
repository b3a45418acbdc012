"""The benchmarks' statistics (bench/common/stats.py) on values worked out by hand."""

from __future__ import annotations

import math

import pytest

from bench.common.stats import pearson, ranks, roc_auc, spearman, wilson_upper


def test_pearson_and_spearman_on_known_values() -> None:
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0)
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    # Monotone but not linear: Spearman is 1, Pearson is not.
    assert spearman([1, 2, 3, 4], [1, 4, 9, 100]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [1, 4, 9, 100]) < 0.9
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_ranks_share_ties() -> None:
    assert ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]


def test_roc_auc_counts_pairs_and_half_ties() -> None:
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [False, True, False, True]) == 0.5
    # One positive above one of two negatives, tied with the other: (1 + 0.5) / 2.
    assert roc_auc([0.2, 0.5, 0.5], [False, False, True]) == 0.75


def test_wilson_upper_bound() -> None:
    # 10 of 100 at z 1.645 (z^2 = 2.706): (0.1 + 2.706 / 200 + 1.645 * sqrt(0.0009
    # + 2.706 / 40000)) / (1 + 2.706 / 100) = (0.11353 + 0.05117) / 1.02706.
    assert wilson_upper(10, 100) == pytest.approx(0.1604, abs=1e-4)
    assert wilson_upper(0, 0) == 1.0  # nothing seen: anything is possible
    assert wilson_upper(0, 50) > 0.0  # none seen is not "never"
    assert wilson_upper(10, 100, z=2.576) > wilson_upper(10, 100)

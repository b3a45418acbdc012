"""The statistics the benchmarks report: the package's own (escalator/tools/stats.py), so
that a benchmark and `escalator fit` or `escalator report` compute a figure the same way."""

from escalator.tools.stats import pearson, ranks, roc_auc, spearman, wilson, wilson_upper

__all__ = ["pearson", "ranks", "roc_auc", "spearman", "wilson", "wilson_upper"]

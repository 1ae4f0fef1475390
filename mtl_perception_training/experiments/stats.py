"""Paired comparison of two configurations trained on the same seeds.

Seed k of every configuration shares its data order, augmentation and initial weights (the
trainer seeds them from ``train.seed``), so the per-seed differences cancel much of the
seed-to-seed variation that two independent means would carry. The difference is called
"within noise" when its t-distribution confidence interval contains 0; with one common
seed there is no interval, and nothing can be said.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Mapping

from scipy import stats as _scipy_stats

BETTER, WORSE, WITHIN_NOISE, UNKNOWN = "better", "worse", "within noise", "n/a (one seed)"


@dataclass(frozen=True)
class PairedDifference:
    """a - b over the seeds both have: per seed, their mean and its confidence interval."""

    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: float
    low: float  # NaN with fewer than two seeds
    high: float
    confidence: float

    def verdict(self, higher_is_better: bool) -> str:
        """Whether a is better or worse than b, or the interval contains 0 (within noise)."""
        if len(self.seeds) < 2 or math.isnan(self.low):
            return UNKNOWN
        if self.low <= 0.0 <= self.high:
            return WITHIN_NOISE
        return BETTER if (self.mean > 0) == higher_is_better else WORSE


def paired_difference(a: Mapping[int, float], b: Mapping[int, float], confidence: float = 0.95) -> PairedDifference | None:
    """The paired difference a - b over the seeds both ran (``None`` when they share none).

    Interval: mean ± t_{(1+c)/2, n-1} · sd / sqrt(n), the sample sd of the differences.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        return None
    diffs = tuple(float(a[s]) - float(b[s]) for s in seeds)
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return PairedDifference(seeds, diffs, mean, math.nan, math.nan, confidence)
    half = float(_scipy_stats.t.ppf((1 + confidence) / 2, len(diffs) - 1)) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return PairedDifference(seeds, diffs, mean, mean - half, mean + half, confidence)

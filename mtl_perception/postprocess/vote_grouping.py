"""``votes``: real-time instance grouping by vote histogram and peak picking (torch, CPU or GPU).

Every thing pixel's vote is counted into a histogram of ``bin_size``-pixel bins, one
histogram per (image, thing class) (see :mod:`mtl_perception.postprocess.grouping` for why per
class, and for the default bin size, which scales with the image). The histogram is smoothed
with a 3 x 3 binomial kernel (weights 1-2-1, normalised so that the centre weighs 1: a
peak's value reads as "votes at the centre"). Peaks are the bins that reach
``peak_threshold`` and are the maximum of their ``nms_kernel`` x ``nms_kernel`` window, ties
going to the first bin in row-major order (so a plateau, e.g. votes split evenly between two
bins, gives one peak). A peak's position is the centre of mass of the raw histogram in its
3 x 3 neighbourhood, so it is not quantised to the bin grid.

Why not the obvious torch calls: ``max_pool2d`` and ``conv2d`` with stride 1 on one channel
are 10-50x slower on the CPU than shifted-slice sums (docs/measurements.md), so the
smoothing uses slices and the non-maximum suppression reads
only the windows of bins above the threshold, which are few.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable

import torch

from mtl_perception.postprocess.grouping import (
    Grouper, Peaks, Votes, check_setting, count_threshold, flat_where, is_whole, take,
)

#: Bound on the elements of one candidates x window block.
_BLOCK_ELEMENTS = 1 << 22


def _smooth(hist: torch.Tensor) -> torch.Tensor:
    """3 x 3 binomial smoothing of (G, H, W), zero outside; centre weight 1 (in-place slice adds, no padding)."""
    rows = hist.clone()
    rows[..., 1:].add_(hist[..., :-1], alpha=0.5)
    rows[..., :-1].add_(hist[..., 1:], alpha=0.5)
    out = rows.clone()
    out[:, 1:].add_(rows[:, :-1], alpha=0.5)
    out[:, :-1].add_(rows[:, 1:], alpha=0.5)
    return out


def _offsets(radius: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column offsets (1, window) of the (2 radius + 1)^2 positions of a window, row-major."""
    offsets = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    return dy.reshape(1, -1), dx.reshape(1, -1)


def _windows(index: torch.Tensor, radius: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (2 radius + 1)^2 window around each bin of ``index`` (N,) (flat into (G, h, w)): the
    flat index (N, window) of every position (the bin itself where the position is outside its
    grid) and whether it is inside."""
    dy, dx = _offsets(radius, index.device)
    c = index[:, None]
    y, x = c // w % h + dy, c % w + dx
    inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    return torch.where(inside, c + dy * w + dx, c), inside


def _window_maxima(smooth: torch.Tensor, candidate: torch.Tensor, r: int) -> torch.Tensor:
    """The candidate bins (flat indices into (G, H, W)) that are the maximum of their window.

    The window is (2r + 1) x (2r + 1) bins. Two maxima in each other's window are equal (a
    plateau); of those only the first in row-major order is kept, so a plateau gives one peak.
    Only the candidates' windows are read: a dense max filter over all bins costs more than
    the whole grouping. The grid is padded by r bins of -inf, so a window is one offset table
    added to its centre, with no bounds tests.
    """
    g, h, w = smooth.shape
    pw = w + 2 * r
    padded = torch.full((g, h + 2 * r, pw), float("-inf"), device=smooth.device)
    padded[:, r : r + h, r : r + w] = smooth
    flat = padded.reshape(-1)
    # Candidate (group, y, x) -> its flat index in the padded grid.
    row = candidate // w  # group * h + y
    c = (row + row // h * 2 * r + r) * pw + (candidate - row * w) + r

    # Flat offsets (window, 1) of the window's positions in the padded grid, row-major. Windows
    # lie along dim 0: a reduction across the rows of (window, N) is ~10x faster on the CPU
    # than one along the short rows of (N, window) (measured: 9 vs 100 us for 9 x 2 200).
    dy, dx = _offsets(r, smooth.device)

    def chunked(c: torch.Tensor, test: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``test`` (a bool per bin) on blocks of ``c``, to bound the window x bins memory."""
        keep = torch.empty(c.shape, dtype=torch.bool, device=c.device)
        step = max(1, _BLOCK_ELEMENTS // (2 * r + 1) ** 2)
        for lo in range(0, c.numel(), step):
            keep[lo : lo + step] = test(c[lo : lo + step])
        return keep

    window = (dy * pw + dx).reshape(-1, 1)
    keep = chunked(c, lambda c: take(flat, window + c).amax(dim=0) <= take(flat, c))
    candidate, c = candidate[keep], c[keep]
    flag = torch.zeros(flat.shape, dtype=torch.bool, device=flat.device).scatter_(0, c, True)
    earlier = window[: window.shape[0] // 2]  # the positions before the centre
    return candidate[chunked(c, lambda c: ~take(flag, earlier + c).any(dim=0))]


@dataclass(frozen=True)
class VoteGrouping(Grouper):
    """Vote histogram + peak picking. ``nms_kernel``: odd window (bins) in which a peak is the
    maximum, i.e. the closest two same-class centres can be and stay apart is about
    ``(nms_kernel // 2 + 1) * bin_size`` pixels. ``peak_threshold``: smoothed votes a peak needs;
    default 8 at 256 rows, scaled with the area (``count_threshold``).
    """

    name = "votes"
    nms_kernel: int = 5
    peak_threshold: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_setting(self, "nms_kernel", is_whole(self.nms_kernel, 1) and self.nms_kernel % 2 == 1, "an odd integer")
        check_setting(self, "peak_threshold", self.peak_threshold is None or self.peak_threshold > 0, "> 0")

    def find_peaks(self, votes: Votes) -> Peaks:
        device = votes.hist.device
        bh, bw = votes.bins_h, votes.bins_w
        cells = bh * bw
        hist = votes.hist.view(votes.num_groups, bh, bw)
        present = flat_where(hist.sum(dim=(1, 2)), operator.gt, 0)  # (image, class) groups with votes
        hist = hist.index_select(0, present)
        smooth = _smooth(hist)
        threshold = self.peak_threshold if self.peak_threshold is not None else count_threshold(votes.height, 8.0)
        candidate = flat_where(smooth, operator.ge, threshold)
        index = _window_maxima(smooth, candidate, int(self.nms_kernel) // 2)
        sub_group, cell = index // cells, index % cells
        # Sub-bin position: centre of mass of the raw 3 x 3 neighbourhood.
        near, inside = _windows(index, 1, bh, bw)
        dy, dx = _offsets(1, device)
        mass = torch.where(inside, take(hist, near), 0.0)
        total = mass.sum(dim=1).clamp(min=1e-9)
        cx, cy = votes.bin_centre(cell)
        s = float(votes.bin_size)
        x = cx + s * (mass * dx).sum(dim=1) / total
        y = cy + s * (mass * dy).sum(dim=1) / total
        return Peaks(group=present[sub_group], x=x, y=y)

"""Instance grouping: turn per-pixel centroid votes into an instance map.

Each thing pixel ``c_n = (u, v)`` regresses ``x_n = (dx, dy) = centroid - c_n``; its vote
``c_n + x_n`` lands on the centroid of its instance (Kendall et al., CVPR 2018, Sec. 4). A
grouping method finds the vote clusters ("peaks"); every method then shares one assignment
step, so the methods differ only in how they find peaks:

- ``votes`` (default, real time, torch on CPU or GPU): vote histogram + peak picking
  (:mod:`mtl_perception.postprocess.vote_grouping`).
- ``optics`` (the paper's method, offline): scikit-learn OPTICS on the votes
  (:mod:`mtl_perception.postprocess.optics_grouping`).

Votes are grouped **per image and per thing class**: a pixel votes only into its own class
(its predicted semantic train id), and is assigned only to a peak of that class. This keeps
a rider and its bicycle, whose centroids are close, from merging, at the price of splitting
an object whose pixels the semantic head labels with two thing classes (each part becomes an
instance of its own class, usually a small one with a low score, or dropped by
``min_pixels``). Every instance's class is therefore the train id of all its pixels, which
is also its majority class.

Shared assignment, on the vote grid: votes are counted into bins of ``bin_size`` pixels
(one grid per image and class, votes outside the image clamped to its border bins). Every
*occupied* bin is given the nearest peak of its image and class within ``radius`` pixels
(distance from the bin centre), and every pixel takes the label of its vote's bin. Votes pile
up, so occupied bins are few: the distance matrix is occupied-bins x peaks-per-class instead
of pixels x peaks, pixel counts and scores come from the bin counts, and each pixel costs
one table look-up. Instances with fewer than ``min_pixels`` pixels are dropped before any
pixel is labelled. No Python loop runs over pixels or instances.

Score (for AP ranking), in [0, 1]: ``mean semantic confidence x vote focus``, where vote focus
is the share of the instance's votes whose bin centre lies within
``max(bin_size, 0.25 * sqrt(pixel_count))`` pixels of its peak. A real object's votes agree
on one centre; a fragment made of stray votes does not. The radius grows with the object
because regression errors grow with object size. Without a confidence map the confidence
factor is 1.

Both methods are deterministic: the same input gives the same instance map and classes (on
a GPU, float sums of confidences and positions may differ in the last bits between runs).
"""
from __future__ import annotations

import importlib
import operator
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from mtl_perception.data.labels import THING_TRAIN_IDS
from mtl_perception.errors import ConfigError

#: Method name -> "module:Class". Imported on use, so that ``votes`` never imports scikit-learn.
METHODS: dict[str, str] = {
    "votes": "mtl_perception.postprocess.vote_grouping:VoteGrouping",
    "optics": "mtl_perception.postprocess.optics_grouping:OpticsGrouping",
}

NUM_THING_CLASSES = len(THING_TRAIN_IDS)
_FIRST_THING, _LAST_THING = THING_TRAIN_IDS[0], THING_TRAIN_IDS[-1]
assert THING_TRAIN_IDS == tuple(range(_FIRST_THING, _LAST_THING + 1)), "thing train ids must be contiguous"
#: Bound on the elements of one distance block (bins x peaks-per-class), to cap memory.
_BLOCK_ELEMENTS = 1 << 22


def flat_where(values: torch.Tensor, compare: Callable[[Any, Any], Any], bound: float) -> torch.Tensor:
    """Flat indices (int64) of the entries of ``values`` with ``compare(value, bound)``, e.g. ``operator.lt``.

    On the CPU this runs in numpy: torch builds bool tensors and their indices several times
    more slowly there (docs/measurements.md).
    """
    values = values.reshape(-1)
    if values.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(compare(values.numpy(), bound)))
    return torch_flat_where(values, compare, bound)


def torch_flat_where(values: torch.Tensor, compare: Callable[[Any, Any], Any], bound: float) -> torch.Tensor:
    """:func:`flat_where` in torch alone: the branch a GPU takes (no copy to the host but the
    index count that ``nonzero`` needs). A function of its own so tests run it on the CPU."""
    return compare(values.reshape(-1), bound).nonzero().squeeze(1)


def take(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values.reshape(-1)[index]`` in the shape of ``index``: index_select, which is 3-4x
    faster than advanced indexing on the CPU (docs/measurements.md)."""
    return values.reshape(-1).index_select(0, index.reshape(-1)).view(index.shape)


@dataclass(frozen=True)
class Instances:
    """The instances found in one image.

    Instance ``k`` (1..K) has label ``k`` in ``labels`` and its attributes at index ``k - 1``.
    Tensors live on the device of the input.
    """

    labels: torch.Tensor  # int32 (H, W): 0 = no instance, k = instance k
    classes: torch.Tensor  # int64 (K,): train id
    pixel_counts: torch.Tensor  # int64 (K,)
    centroids: torch.Tensor  # float32 (K, 2): mean pixel position (x, y)
    scores: torch.Tensor  # float32 (K,): confidence x vote focus, in [0, 1]

    def __len__(self) -> int:
        return int(self.classes.numel())


@dataclass(frozen=True)
class Votes:
    """The votes of all thing pixels of a batch, flattened, and their histogram.

    A *group* is one (image, thing class) pair: ``group = image * 8 + thing channel``. Bin
    ``key = (group * bins_h + by) * bins_w + bx`` indexes ``hist``, the per-group vote counts.
    """

    batch: int
    height: int
    width: int
    bin_size: int
    pixel: torch.Tensor  # int64 (N,): flat index (image * H + v) * W + u of the voting pixel (column u, row v)
    row: torch.Tensor  # float32 (float64 beyond 2^23 pixels) (N,): image * H + v, a whole number
    x: torch.Tensor  # float32 (N,): vote column u + dx
    y: torch.Tensor  # float32 (N,): vote row v + dy
    confidence: torch.Tensor | None  # float32 (N,) semantic confidence, None = all 1
    key: torch.Tensor  # int64 (N,): the vote's bin
    hist: torch.Tensor  # float32 (groups * bins_h * bins_w,): votes per bin

    @property
    def group(self) -> torch.Tensor:
        """int64 (N,): each vote's group."""
        return self.key // (self.bins_h * self.bins_w)

    @property
    def num_groups(self) -> int:
        return self.batch * NUM_THING_CLASSES

    @property
    def bins_h(self) -> int:
        return -(-self.height // self.bin_size)

    @property
    def bins_w(self) -> int:
        return -(-self.width // self.bin_size)

    def bin_centre(self, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel coordinates (x, y) of the centres of bins given as ``by * bins_w + bx``."""
        s = self.bin_size
        half = (s - 1) / 2.0
        return (cell % self.bins_w).float() * s + half, (cell // self.bins_w).float() * s + half


@dataclass(frozen=True)
class Peaks:
    """Vote cluster centres, sorted by group (the order becomes the instance order)."""

    group: torch.Tensor  # int64 (K,)
    x: torch.Tensor  # float32 (K,)
    y: torch.Tensor  # float32 (K,)


def image_scale(height: int) -> float:
    """How much larger than 256 rows an image is (at least 1): the scale of default pixel settings.

    Vote spread, object size and the gap between neighbouring centres all grow with the
    network's resolution, so settings in pixels that default to ``None`` grow with it too
    (measured on the grouping bench: a 4-pixel grid loses 2.5 AP points at 128 x 256 against a
    2-pixel one, while 2 pixels cost 4x the time at 512 x 1024 for no gain).
    """
    return max(1.0, height / 256.0)


def count_threshold(height: int, at_256_rows: float) -> float:
    """A threshold on a count of pixels or votes, given for 256 rows, at ``height`` rows (at least 2).

    Counts scale with the area: an object of the same size in the scene has a quarter of the
    pixels at 128 rows. Tuned on the grouping bench (30 synthetic val scenes, votes): at
    128 x 256 the fixed 8 pixels / 8 votes dropped a third of the persons and scored AP 0.80 with
    perfect inputs, 2 / 2 scores 0.85 (model outputs: unchanged, 0.19; what limits those is the
    semantic head); at 256 x 512 the value is unchanged.
    """
    return max(2.0, at_256_rows * (height / 256.0) ** 2)


@dataclass(frozen=True)
class Grouper(ABC):
    """A grouping method. Subclasses add their own settings as dataclass fields.

    ``min_pixels``: instances with fewer pixels are dropped; default 8 at 256 rows, scaled with
    the area (``count_threshold``: 2 at 128 rows, 32 at 512). ``radius``: a vote farther than
    this (pixels) from every peak of its class leaves its pixel unassigned; default
    ``48 * image_scale``. ``bin_size``: pixels per bin of the vote grid used for assignment
    (and for the histogram of ``votes``); default ``2 * image_scale`` rounded (2 up to 256
    rows, 4 at 512, 8 at 1024).
    """

    name: ClassVar[str]
    min_pixels: int | None = None
    radius: float | None = None
    bin_size: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            numeric = f.type in ("int", "float") or (f.type.endswith("| None") and value is not None)
            if numeric and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"grouping {self.name}: {f.name} must be a number, got {value!r}")
        check_setting(self, "min_pixels", self.min_pixels is None or self.min_pixels >= 1, ">= 1")
        check_setting(self, "radius", self.radius is None or self.radius > 0, "> 0")
        check_setting(self, "bin_size", self.bin_size is None or is_whole(self.bin_size, 1), "an integer >= 1")

    @abstractmethod
    def find_peaks(self, votes: Votes) -> Peaks:
        """The vote cluster centres of every (image, class) group of ``votes``."""

    def __call__(
        self, vectors: torch.Tensor, semantic: torch.Tensor, confidence: torch.Tensor | None = None
    ) -> list[Instances]:
        """Group a batch: vectors (B, 2, H, W), semantic train ids (B, H, W), confidence (B, H, W) or None."""
        height = vectors.shape[-2]
        scale = image_scale(height)
        bin_size = int(self.bin_size) if self.bin_size is not None else int(round(2 * scale))
        radius = float(self.radius) if self.radius is not None else 48.0 * scale
        min_pixels = int(self.min_pixels) if self.min_pixels is not None else round(count_threshold(height, 8))
        votes = collect_votes(vectors, semantic, confidence, bin_size)
        return assign(votes, self.find_peaks(votes), radius, min_pixels)


def is_whole(value: float, minimum: int) -> bool:
    """Is ``value`` an integer (possibly given as a float) of at least ``minimum``?"""
    return int(value) == value and value >= minimum


def check_setting(grouper: Grouper, name: str, ok: bool, what: str) -> None:
    """Raise ConfigError naming the method and setting unless ``ok``."""
    if not ok:
        raise ConfigError(f"grouping {grouper.name}: {name} must be {what}, got {getattr(grouper, name)!r}")


def build_grouper(method: str = "votes", **settings: Any) -> Grouper:
    """The grouping method called ``method`` with ``settings`` (its dataclass fields)."""
    if method not in METHODS:
        raise ConfigError(f"unknown grouping method {method!r}; choose one of {', '.join(METHODS)}")
    module, _, cls_name = METHODS[method].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"grouping {method}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**settings)


def group_instances(
    vectors: torch.Tensor,
    semantic: torch.Tensor,
    method: str = "votes",
    confidence: torch.Tensor | None = None,
    **settings: Any,
) -> Instances | list[Instances]:
    """Group one image ((2, H, W) vectors, (H, W) semantic) or a batch ((B, 2, H, W), (B, H, W)).

    Returns one :class:`Instances` for one image, a list for a batch. Per frame, build the
    grouper once with :func:`build_grouper` and call it instead.
    """
    grouper = build_grouper(method, **settings)
    if vectors.dim() == 3:
        conf = None if confidence is None else confidence[None]
        return grouper(vectors[None], semantic[None], conf)[0]
    return grouper(vectors, semantic, confidence)


def collect_votes(
    vectors: torch.Tensor, semantic: torch.Tensor, confidence: torch.Tensor | None, bin_size: int
) -> Votes:
    """The votes of the thing pixels (with finite vectors) of a (B, 2, H, W) batch, and their histogram."""
    if vectors.dim() != 4 or vectors.shape[1] != 2:
        raise ValueError(f"instance vectors must be (B, 2, H, W), got {tuple(vectors.shape)}")
    b, _, h, w = vectors.shape
    if tuple(semantic.shape) != (b, h, w):
        raise ValueError(f"semantic must be {(b, h, w)} to match the vectors, got {tuple(semantic.shape)}")
    if confidence is not None and tuple(confidence.shape) != (b, h, w):
        raise ValueError(f"confidence must be {(b, h, w)} to match the vectors, got {tuple(confidence.shape)}")
    # Thing train ids are contiguous (11..18): channel = id - 11 in uint8 wraps stuff and ignore
    # to >= 8, one cheap pass over one byte per pixel instead of a table look-up.
    channel_all = semantic.reshape(-1).to(device=vectors.device, dtype=torch.uint8) - _FIRST_THING
    pixel = flat_where(channel_all, operator.lt, NUM_THING_CLASSES)
    vectors = vectors.float()
    x = vectors[:, 0].reshape(-1).index_select(0, pixel)
    y = vectors[:, 1].reshape(-1).index_select(0, pixel)
    if not bool(torch.isfinite(x.sum() + y.sum())):  # two reductions; the per-vote test only when needed
        finite = torch.isfinite(x + y)
        pixel, x, y = pixel[finite], x[finite], y[finite]
    # Integer division and int64 arithmetic are several times slower than float32 on the CPU:
    # row and column are computed in floats that hold them exactly (float32 up to 2^23 pixels,
    # where floor((p + 0.5) / w) cannot round across an integer), bins in int32.
    coords = torch.float32 if b * h * w < 1 << 23 else torch.float64
    u = pixel.to(coords)
    row = (u + 0.5).div_(w).floor_()  # image * H + v
    u.sub_(row, alpha=w)
    s = bin_size
    bins_h, bins_w = -(-h // s), -(-w // s)
    cells = bins_h * bins_w
    num_bins = b * NUM_THING_CLASSES * cells
    index = torch.int32 if num_bins <= 1 << 31 else torch.long
    key = channel_all.index_select(0, pixel).to(index).mul_(cells)  # group * cells, group = image * 8 + channel
    x += u
    if b == 1:
        y += row
    else:
        image = (row + 0.5).div_(h).floor_()
        y += row.sub(image, alpha=h)
        key.add_(image.to(index), alpha=NUM_THING_CLASSES * cells)
    # The bin floor((x + 0.5) / s), clamped to the grid: clamped first, the value is never
    # negative and conversion to an integer (truncation) is the floor.
    key.add_((y + 0.5).clamp_(0, (bins_h - 1) * s).div_(s).to(index), alpha=bins_w)
    key.add_((x + 0.5).clamp_(0, (bins_w - 1) * s).div_(s).to(index))
    key = key.long()
    hist = torch.bincount(key, minlength=num_bins).float()
    conf = None if confidence is None else confidence.reshape(-1).float().index_select(0, pixel)
    return Votes(
        batch=b, height=h, width=w, bin_size=s, pixel=pixel, row=row, x=x, y=y, confidence=conf, key=key, hist=hist
    )


def to_long(values: torch.Tensor, below: int) -> torch.Tensor:
    """Floats holding whole numbers in [0, below) as int64, through int32 where they fit:
    torch's float -> int64 conversion is not vectorised on the CPU (the two steps together
    are faster than the one: docs/measurements.md)."""
    return values.int().long() if below <= 1 << 31 else values.long()


def _bin_labels(votes: Votes, peaks: Peaks, bins: torch.Tensor, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """For occupied bins: nearest peak of the same group (index + 1, 0 = none within radius), distance."""
    cells = votes.bins_h * votes.bins_w
    device = bins.device
    # Peaks of each group in a padded (G, P) table: a bin compares with its own group's peaks only.
    count = torch.bincount(peaks.group, minlength=votes.num_groups)
    start = torch.cumsum(count, 0) - count
    rank = torch.arange(peaks.group.numel(), device=device) - start[peaks.group]
    per_group = int(count.max())
    px = torch.full((votes.num_groups, per_group), float("inf"), device=device)
    py = px.clone()
    px[peaks.group, rank] = peaks.x
    py[peaks.group, rank] = peaks.y
    label = torch.empty_like(bins)
    dist = torch.empty(bins.shape, device=device)
    chunk = max(1, _BLOCK_ELEMENTS // per_group)
    for lo in range(0, bins.numel(), chunk):
        part = bins[lo : lo + chunk]
        g = part // cells
        cx, cy = votes.bin_centre(part % cells)
        best, arg = ((px.index_select(0, g) - cx[:, None]) ** 2 + (py.index_select(0, g) - cy[:, None]) ** 2).min(dim=1)
        label[lo : lo + chunk] = torch.where(best <= radius * radius, start.index_select(0, g) + arg + 1, 0)
        dist[lo : lo + chunk] = best.sqrt()
    return label, dist


def _empty(votes: Votes, device: torch.device) -> list[Instances]:
    labels = torch.zeros(votes.batch, votes.height, votes.width, dtype=torch.int32, device=device)
    none = torch.zeros(0, dtype=torch.long, device=device)
    return [
        Instances(labels[i], none, none, torch.zeros(0, 2, device=device), torch.zeros(0, device=device))
        for i in range(votes.batch)
    ]


def assign(votes: Votes, peaks: Peaks, radius: float, min_pixels: int) -> list[Instances]:
    """Label every vote with its nearest same-group peak within ``radius``; build the instances."""
    device = votes.hist.device
    k = peaks.group.numel()
    if k == 0:
        return _empty(votes, device)
    b, h, w = votes.batch, votes.height, votes.width
    bins = flat_where(votes.hist, operator.gt, 0)
    bin_votes = votes.hist[bins]
    bin_peak, bin_dist = _bin_labels(votes, peaks, bins, radius)

    # Counts and vote focus from the bins, so small instances are dropped before pixels are touched.
    counts = torch.zeros(k + 1, device=device).scatter_add_(0, bin_peak, bin_votes)[1:].round().long()
    focus_radius = torch.clamp(0.25 * counts.float().sqrt(), min=float(votes.bin_size))
    near = bin_dist <= torch.cat([focus_radius.new_zeros(1), focus_radius])[bin_peak]
    near_votes = torch.zeros(k + 1, device=device).scatter_add_(0, bin_peak, bin_votes * near)[1:]
    kept = flat_where(counts, operator.ge, min_pixels)
    new_index = torch.zeros(k + 1, dtype=torch.int32, device=device)
    new_index[kept + 1] = torch.arange(1, kept.numel() + 1, dtype=torch.int32, device=device)
    # scatter_ rather than indexed assignment: 5-7x faster on the CPU for the same result. int32
    # labels: half the bytes to fill and gather, and the label map's own type.
    table = torch.zeros_like(votes.hist, dtype=torch.int32).scatter_(0, bins, new_index[bin_peak])
    instance = table.index_select(0, votes.key)  # 1..K' over the batch, 0 = none

    n_kept = kept.numel()
    image_of_instance = peaks.group[kept] // NUM_THING_CLASSES
    per_image = torch.bincount(image_of_instance, minlength=b)
    first = torch.cumsum(per_image, 0) - per_image
    rank_in_image = torch.arange(n_kept, device=device) - first[image_of_instance] + 1
    local = torch.cat([torch.zeros(1, dtype=torch.long, device=device), rank_in_image]).int()
    labels = torch.zeros(b * h * w, dtype=torch.int32, device=device)
    labels.scatter_(0, votes.pixel, local.index_select(0, instance) if b > 1 else instance)
    labels = labels.view(b, h, w)
    instance = instance.long()  # scatter indices must be int64

    def per_instance(values: torch.Tensor) -> torch.Tensor:
        """Sum of ``values`` per kept instance, exact: int64 for whole numbers, else float64.

        Pixel coordinates are summed as int64, which is also 2.4x faster than float on the CPU
        (runs of pixels of one instance add into one slot, and integer adds do not wait on
        each other the way float adds do).
        """
        dtype = torch.float64 if values.is_floating_point() else torch.long
        return torch.zeros(n_kept + 1, dtype=dtype, device=device).scatter_add_(0, instance, values.to(dtype))[1:]

    n = counts[kept]
    # pixel = row * W + u and row = image * H + v: the sums of the pixels' flat indices (int64
    # already) and of their rows give both coordinates' sums with one conversion, not two.
    sum_row = per_instance(to_long(votes.row, b * h))
    sum_u = per_instance(votes.pixel) - w * sum_row
    sum_v = sum_row - h * image_of_instance * n
    centroids = (torch.stack([sum_u, sum_v], dim=1).double() / n[:, None]).float()
    confidence = 1.0 if votes.confidence is None else per_instance(votes.confidence) / n
    scores = (confidence * near_votes[kept].double() / n).float()
    classes = peaks.group[kept] % NUM_THING_CLASSES + _FIRST_THING  # thing ids are contiguous (asserted above)
    pixel_counts = n
    out, lo = [], 0
    for i, size in enumerate(per_image.tolist()):
        sl = slice(lo, lo + size)
        out.append(Instances(labels[i], classes[sl], pixel_counts[sl], centroids[sl], scores[sl]))
        lo += size
    return out

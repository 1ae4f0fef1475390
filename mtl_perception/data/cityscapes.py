"""The Cityscapes-layout dataset: file discovery, validation, optional cache, training samples.

Layout (official Cityscapes, also written by ``mtl-perception synth``)::

    ROOT/leftImg8bit/SPLIT/CITY/STEM_leftImg8bit.png
    ROOT/gtFine/SPLIT/CITY/STEM_gtFine_labelIds.png
    ROOT/gtFine/SPLIT/CITY/STEM_gtFine_instanceIds.png
    ROOT/disparity/SPLIT/CITY/STEM_disparity.png
    ROOT/camera/SPLIT/CITY/STEM_camera.json

Folder and file-set problems are found when the dataset is built (a training run should not
start on a broken split); file contents are checked when a sample is read, so opening a
5 000-image split stays instant. Every problem raises ``DatasetError`` naming the file.

The optional cache stores each decoded sample, downsampled to the largest size augmentation
can ask for (output size x max scale, at most the original), as an ``.npz``: decoding the
full-resolution PNGs dominates the cost of a sample, and a cached one loads several times
faster. Without scale augmentation the cached sample renders exactly as the PNGs do; with it,
the image and labels are resampled twice (PNG -> cache -> view), which shifts label edges by
at most one cached pixel. Entries are keyed by size, dataset root and split, and rebuilt when
any source file's size or modification time changes.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from math import ceil
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from mtl_perception.data import pngio
from mtl_perception.data.augment import AugmentConfig, AugmentParams, color_jitter, draw
from mtl_perception.data.normalize import normalize_uint8_rgb
from mtl_perception.data.targets import Centroids, Source, View, downsample, instance_centroids, render
from mtl_perception.errors import ConfigError, DatasetError
from mtl_perception.io_utils import atomic_write

#: (top-level folder, file-name suffix) of each file of a sample.
LAYOUT = {
    "image": ("leftImg8bit", "_leftImg8bit.png"),
    "label_ids": ("gtFine", "_gtFine_labelIds.png"),
    "instance_ids": ("gtFine", "_gtFine_instanceIds.png"),
    "disparity": ("disparity", "_disparity.png"),
    "camera": ("camera", "_camera.json"),
}
_CACHE_VERSION = 1


@dataclass(frozen=True)
class SampleFiles:
    """The five files of one sample."""

    stem: str
    image: Path
    label_ids: Path
    instance_ids: Path
    disparity: Path
    camera: Path

    def paths(self) -> tuple[Path, ...]:
        return (self.image, self.label_ids, self.instance_ids, self.disparity, self.camera)


def discover(root: str | os.PathLike, split: str) -> list[SampleFiles]:
    """All samples of a split, sorted by stem; raises naming the missing folder or file."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root not found: {root}")
    for folder in dict.fromkeys(folder for folder, _ in LAYOUT.values()):
        if not (root / folder / split).is_dir():
            raise DatasetError(f"split folder not found: {root / folder / split} (expected {folder}/{split}/CITY/...)")
    image_dir = root / "leftImg8bit" / split
    listings: dict[Path, frozenset[str]] = {}

    def exists(path: Path) -> bool:
        if path.parent not in listings:
            listings[path.parent] = frozenset(os.listdir(path.parent)) if path.parent.is_dir() else frozenset()
        return path.name in listings[path.parent]

    samples, missing = [], []
    image_suffix = LAYOUT["image"][1]
    for city in sorted(p.name for p in image_dir.iterdir() if p.is_dir()):
        for name in sorted(os.listdir(image_dir / city)):
            if not name.endswith(image_suffix):
                continue
            stem = name[: -len(image_suffix)]
            paths = {key: root / folder / split / city / f"{stem}{suffix}" for key, (folder, suffix) in LAYOUT.items()}
            missing += [path for path in paths.values() if not exists(path)]
            samples.append(SampleFiles(stem=stem, **paths))
    if missing:
        more = f" (and {len(missing) - 1} more missing files in this split)" if len(missing) > 1 else ""
        raise DatasetError(f"missing file: {missing[0]}{more}")
    if not samples:
        raise DatasetError(f"no *{image_suffix} images in {image_dir}")
    return samples


def read_source(files: SampleFiles) -> Source:
    """Decode and validate the full-resolution files of one sample."""
    image = pngio.read_rgb(files.image)
    label_ids = pngio.read_label_ids(files.label_ids)
    instance_ids = pngio.read_instance_ids(files.instance_ids)
    disparity_raw = pngio.read_disparity(files.disparity)
    fx, baseline = pngio.read_camera(files.camera)
    size = image.shape[:2]
    for path, array in (
        (files.label_ids, label_ids),
        (files.instance_ids, instance_ids),
        (files.disparity, disparity_raw),
    ):
        if array.shape != size:
            raise DatasetError(
                f"{path}: size {array.shape[1]}x{array.shape[0]} differs from its image ({size[1]}x{size[0]})"
            )
    return Source(
        image=image,
        label_ids=label_ids,
        instance_ids=instance_ids,
        disparity_raw=disparity_raw,
        centroids=instance_centroids(instance_ids),
        original_size=size,
        fx=fx,
        baseline=baseline,
    )


def _check_size(size: Any) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"size must be [height, width], got {size!r}") from None
    if h < 1 or w < 1 or (h, w) != tuple(size):
        raise ConfigError(f"size must be two positive integers [height, width], got {size!r}")
    return h, w


class _Cache:
    """Decoded, downsampled samples as ``.npz`` files, written atomically."""

    def __init__(self, cache_dir: Path, root: Path, split: str, size: tuple[int, int]):
        root_key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
        self.folder = Path(cache_dir) / f"v{_CACHE_VERSION}_{size[0]}x{size[1]}" / root_key / split
        self.size = size

    @staticmethod
    def _signature(files: SampleFiles) -> np.ndarray:
        """Size and modification time of the sample's files: a change invalidates the entry."""
        rows = []
        for path in files.paths():
            try:
                stat = path.stat()
            except OSError:
                raise DatasetError(f"missing file: {path}") from None
            rows.append((stat.st_size, stat.st_mtime_ns))
        return np.array(rows, dtype=np.int64)

    def load(self, files: SampleFiles) -> Source:
        path = self.folder / f"{files.stem}.npz"
        signature = self._signature(files)
        try:
            with np.load(path) as z:
                if np.array_equal(z["signature"], signature):
                    maps, centroids, (h0, w0, fx, baseline) = z["maps"], z["centroids"], z["camera"]
                    return Source(
                        image=z["image"],
                        label_ids=maps[0].astype(np.uint8),
                        instance_ids=maps[1],
                        disparity_raw=maps[2],
                        centroids=Centroids(ids=centroids[0].astype(np.int64), cx=centroids[1], cy=centroids[2]),
                        original_size=(int(h0), int(w0)),
                        fx=float(fx),
                        baseline=float(baseline),
                    )
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):
            pass  # absent, stale format or partly written by a killed process: rebuild below
        source = read_source(files)
        h0, w0 = source.original_size
        small = downsample(source, (min(self.size[0], h0), min(self.size[1], w0)))
        c = small.centroids
        # Few arrays per file: each costs a zip member and a header parse when loading.
        arrays = {
            "image": small.image,
            "maps": np.stack([small.label_ids.astype(np.uint16), small.instance_ids, small.disparity_raw]),
            "centroids": np.stack([c.ids.astype(np.float64), c.cx, c.cy]),
            "camera": np.array([h0, w0, small.fx, small.baseline], dtype=np.float64),
            "signature": signature,
        }

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        atomic_write(path, write)
        return small


class CityscapesDataset(Dataset):
    """Samples of a Cityscapes-layout split at output size (H, W), as the dict in CONTRACTS.md.

    ``augment`` (a dict, see ``augment.py``) turns on random scale/crop, flip and colour
    jitter; leave it None for evaluation. Random draws use torch's RNG, so they follow
    ``torch.manual_seed`` and DataLoader worker seeding. ``cache_dir`` enables the sample cache.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        size: tuple[int, int] | list[int],
        augment: Mapping[str, Any] | AugmentConfig | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        # OpenCV's thread pool does not survive fork: a DataLoader worker forked while the pool's
        # threads wait can deadlock in OpenCV (seen here). Workers already use every core, so
        # OpenCV runs single-threaded in the process that builds the dataset and its workers.
        cv2.setNumThreads(1)
        self.root = Path(root)
        self.split = split
        self.size = _check_size(size)
        self.augment = augment if isinstance(augment, AugmentConfig) else AugmentConfig.from_dict(augment)
        self._augmenting = self.augment != AugmentConfig()
        self.samples = discover(self.root, split)
        self._cache = None
        if cache_dir is not None:
            cache_size = (ceil(self.size[0] * self.augment.max_scale), ceil(self.size[1] * self.augment.max_scale))
            self._cache = _Cache(Path(cache_dir), self.root, split, cache_size)

    def __len__(self) -> int:
        return len(self.samples)

    def source(self, index: int) -> Source:
        """The decoded sample (from the cache when enabled)."""
        files = self.samples[index]
        return self._cache.load(files) if self._cache else read_source(files)

    def sample(self, index: int, params: AugmentParams | None = None) -> dict[str, Any]:
        """One sample with the given augmentation (None: evaluation view, the whole image resized)."""
        params = params or AugmentParams(View(scaled=self.size))
        out = render(self.source(index), params.view, self.size)
        image = color_jitter(out["image"], params)
        return {
            "image": torch.from_numpy(normalize_uint8_rgb(image)),
            "semantic": torch.from_numpy(out["semantic"].astype(np.int64)),
            "instance": torch.from_numpy(out["instance"]),
            "instance_mask": torch.from_numpy(out["instance_mask"]),
            "instance_ids": torch.from_numpy(out["instance_ids"].astype(np.int64)),
            "disparity": torch.from_numpy(out["disparity"]),
            "disparity_mask": torch.from_numpy(out["disparity_mask"]),
            "fx": torch.tensor(out["fx"], dtype=torch.float32),
            "baseline": torch.tensor(out["baseline"], dtype=torch.float32),
            "stem": self.samples[index].stem,
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        params = None
        if self._augmenting:
            seed = int(torch.randint(0, 2**62, ()).item())
            params = draw(self.augment, self.size, np.random.default_rng(seed))
        return self.sample(index, params)

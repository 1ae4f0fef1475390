"""``optics``: the paper's grouping (Kendall et al. 2018 cluster the votes with OPTICS), offline.

Per (image, thing class), scikit-learn's OPTICS clusters the vote positions; each cluster's
median vote becomes a peak and the shared assignment of
:mod:`mtl_perception.postprocess.grouping` labels the pixels, exactly as for ``votes``.

Settings and why (measured here; ``mtl-perception bench grouping`` reproduces the AP):

- scikit-learn's defaults (``cluster_method="xi"``, ``xi=0.05``, ``min_samples=5``,
  ``max_eps=inf``) shatter objects: on 20 Gaussian vote blobs (200 votes each) they find 207
  clusters and call 58 % of the votes noise; on the bench's 128 x 256 frames AP drops to 0.15
  (94 instances for 17 objects). xi's steepness test cuts a blob wherever the sampled
  density wiggles. ``xi`` with ``min_samples=50`` is better (AP 0.85) but still splits.
- ``cluster_method="dbscan"``, ``min_samples`` = 10, ``eps`` = 3 px x ``image_scale``
  (3 px up to 256 rows, 6 px at 512): a vote cluster is a dense blob whose density falls off
  from the centre, and one density level keeps it whole (18 clusters for the 20 blobs, two
  pairs being closer than ``eps``). ``eps`` is the expected vote spread near a centre, which
  grows with the resolution: on the bench a fixed 3 px gives AP 0.94 / 1.00 / 0.92 at 128,
  256 and 512 rows, 5 px gives 0.92 / 1.00 / 0.99. ``min_samples`` keeps stray votes
  between objects as noise so they cannot chain two objects together.
- ``max_eps = eps``: DBSCAN extraction only reads neighbourhoods of radius ``eps``, and
  limiting the search to it halves the time.
- ``max_votes = 2000`` per (image, class): OPTICS visits the points in a Python loop (tens
  of seconds for the 32k votes of a large object), so beyond the cap the votes are subsampled
  (seeded per image and class: deterministic and independent of the batch) and
  ``min_samples`` is scaled by the kept fraction, since densities scale with it, but not
  below 5: with 2 (a pair of votes) every sparse tail of a large object became a cluster of
  its own and AP at 512 x 1024 fell from 0.92 to 0.72. Votes left out and noise votes are
  labelled by the nearest cluster centre in the shared assignment.

``cluster_method="xi"`` (with ``xi`` and ``max_eps``) stays available to reproduce the
paper's extraction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mtl_perception.extras import require
from mtl_perception.postprocess.grouping import (
    NUM_THING_CLASSES,
    Grouper,
    Peaks,
    Votes,
    check_setting,
    image_scale,
    is_whole,
)


@dataclass(frozen=True)
class OpticsGrouping(Grouper):
    """OPTICS on the votes of each (image, class), then nearest-centre assignment."""

    name = "optics"
    min_samples: int = 10
    cluster_method: str = "dbscan"
    eps: float | None = None
    xi: float = 0.05
    max_eps: float = math.inf
    max_votes: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        require("sklearn", "scikit-learn", "train", "grouping 'optics'")
        check_setting(self, "min_samples", is_whole(self.min_samples, 2), "an integer >= 2")
        check_setting(self, "cluster_method", self.cluster_method in ("dbscan", "xi"), "'dbscan' or 'xi'")
        check_setting(self, "eps", self.eps is None or self.eps > 0, "> 0")
        check_setting(self, "xi", 0 < self.xi < 1, "in (0, 1)")
        check_setting(self, "max_eps", self.max_eps > 0, "> 0")
        check_setting(self, "max_votes", is_whole(self.max_votes, self.min_samples), "an integer >= min_samples")

    def _cluster_centres(self, points: np.ndarray, eps: float, seed: tuple[int, ...]) -> np.ndarray:
        """(C, 2) median vote of each OPTICS cluster of ``points`` (n, 2); ``seed`` for subsampling."""
        from sklearn.cluster import OPTICS

        n = len(points)
        min_samples = int(self.min_samples)
        if n > self.max_votes:
            rng = np.random.default_rng(seed)
            points = points[np.sort(rng.choice(n, int(self.max_votes), replace=False))]
            min_samples = max(min(5, min_samples), round(min_samples * self.max_votes / n))
        if len(points) < min_samples:
            return np.zeros((0, 2))
        dbscan = self.cluster_method == "dbscan"
        optics = OPTICS(
            min_samples=min_samples,
            cluster_method=self.cluster_method,
            eps=eps if dbscan else None,
            xi=self.xi,
            max_eps=eps if dbscan else self.max_eps,
        )
        labels = optics.fit(points).labels_
        return np.array([np.median(points[labels == c], axis=0) for c in range(labels.max() + 1)]).reshape(-1, 2)

    def find_peaks(self, votes: Votes) -> Peaks:
        device = votes.hist.device
        group = votes.group.cpu().numpy()
        points = torch.stack([votes.x, votes.y], dim=1).cpu().double().numpy()
        order = np.argsort(group, kind="stable")
        bounds = np.searchsorted(group[order], np.arange(votes.num_groups + 1))
        eps = float(self.eps) if self.eps is not None else 3.0 * image_scale(votes.height)
        groups, centres = [np.zeros(0, np.int64)], [np.zeros((0, 2))]
        for g in np.flatnonzero(np.diff(bounds)):
            # Seeded per (image, class) so that an image's result does not depend on its batch.
            seed = (int(self.seed), int(g // NUM_THING_CLASSES), int(g % NUM_THING_CLASSES))
            c = self._cluster_centres(points[order[bounds[g] : bounds[g + 1]]], eps, seed)
            groups.append(np.full(len(c), g, dtype=np.int64))
            centres.append(c)
        centre = torch.from_numpy(np.concatenate(centres)).float().to(device)
        return Peaks(group=torch.from_numpy(np.concatenate(groups)).to(device), x=centre[:, 0], y=centre[:, 1])

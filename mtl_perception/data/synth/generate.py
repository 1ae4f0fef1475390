"""Generate synthetic datasets and driving sequences, in parallel, byte-for-byte repeatably.

Every image (or sequence) draws its scene from its own ``numpy`` generator seeded with
(seed, split, index, mode), and sensor noise from one seeded per frame. Nothing depends on
which worker renders what or in which order, so one worker and many give identical files.

Naming: dataset images are ``CITY_INDEX_000019`` (frame 19, the annotated frame of a
Cityscapes snippet); sequences are ``CITY_SEQUENCE_FRAME`` with frames 0..N-1, laid out like
Cityscapes' ``leftImg8bit_sequence`` but with ground truth for every frame and written under
the same top-level folders, so the dataset reader and bag replay read them unchanged. Cities
hold 100 images or sequences each; train cities are ``synth000``, ``synth001``, ... and val
cities start at ``synth500`` so stems never collide across splits.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from mtl_perception.data.cityscapes_camera import CITYSCAPES_BASELINE
from mtl_perception.data.synth.camera import Camera, random_camera
from mtl_perception.data.synth.primitives import Scene
from mtl_perception.data.synth.render import RenderedFrame, render
from mtl_perception.data.synth.scene import random_scene
from mtl_perception.data.synth.writer import stem, write_frame
from mtl_perception.errors import UserError

SPLITS = {"train": 0, "val": 1, "test": 2}
_CITY_BASE = {"train": 0, "val": 500, "test": 800}
PER_CITY = 100
ANNOTATED_FRAME = 19
MIN_SIZE = 16
_IMAGE, _SEQUENCE = 0, 1
_FRAMES_PER_JOB = 8


def city(split: str, index: int) -> str:
    return f"synth{_CITY_BASE[split] + index // PER_CITY:03d}"


def _rngs(seed: int, split: str, index: int, mode: int, frame: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(scene generator, per-frame sensor-noise generator), both fixed by their keys."""
    key = [seed, SPLITS[split], index, mode]
    return np.random.default_rng(np.random.SeedSequence(key)), np.random.default_rng(np.random.SeedSequence(key + [frame, 1]))


@dataclass(frozen=True)
class SceneOptions:
    """What a dataset holds beyond its size and seed. ``baseline``: the rig's one stereo
    baseline (m) for every scene. ``rare``: extra rounds of thin and rare objects per scene
    (poles, signs, traffic lights, persons, cyclists, bicycles; 0 = the default mix)."""

    baseline: float = CITYSCAPES_BASELINE
    rare: int = 0


def render_image(split: str, index: int, height: int, width: int, seed: int, options: SceneOptions = SceneOptions()) -> RenderedFrame:
    """Image ``index`` of a split, exactly as ``generate_dataset`` writes it."""
    scene_rng, noise_rng = _rngs(seed, split, index, _IMAGE, ANNOTATED_FRAME)
    camera = random_camera(scene_rng, height, width, options.baseline)
    return render(random_scene(scene_rng, rare=options.rare), camera, 0, noise_rng)


def sequence_scene(
    split: str, index: int, frames: int, height: int, width: int, seed: int, options: SceneOptions = SceneOptions()
) -> tuple[Scene, Camera]:
    """The street and camera of sequence ``index`` (long enough to drive ``frames`` frames)."""
    scene_rng, _ = _rngs(seed, split, index, _SEQUENCE, 0)
    camera = random_camera(scene_rng, height, width, options.baseline)
    return random_scene(scene_rng, frames, options.rare), camera


def render_sequence(
    split: str, index: int, frames: int, height: int, width: int, seed: int, which: Iterable[int] | None = None,
    options: SceneOptions = SceneOptions(),
) -> Iterator[tuple[int, RenderedFrame]]:
    """Yield (frame number, RenderedFrame) of sequence ``index``; the camera drives forward each frame."""
    scene, camera = sequence_scene(split, index, frames, height, width, seed, options)
    for f in range(frames) if which is None else which:
        yield f, render(scene, camera, f, _rngs(seed, split, index, _SEQUENCE, f)[1])


@dataclass(frozen=True)
class _Job:
    root: str
    split: str
    index: int
    height: int
    width: int
    seed: int
    frames: int = 0  # 0: one dataset image; otherwise the sequence length
    first: int = 0
    last: int = 0
    options: SceneOptions = SceneOptions()


def _run_job(job: _Job) -> int:
    root = Path(job.root)
    name = city(job.split, job.index)
    if job.frames == 0:
        write_frame(root, job.split, name, stem(name, job.index, ANNOTATED_FRAME), render_image(job.split, job.index, job.height, job.width, job.seed, job.options))
        return 1
    frames = render_sequence(
        job.split, job.index, job.frames, job.height, job.width, job.seed, range(job.first, job.last), job.options
    )
    for f, frame in frames:
        write_frame(root, job.split, name, stem(name, job.index, f), frame)
    return job.last - job.first


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # the workers already use every core


def _check(
    out: Path, counts: dict[str, int], height: int, width: int, workers: int, frames: int | None, options: SceneOptions
) -> None:
    for name, value in {**counts, "rare": options.rare}.items():
        if value < 0:
            raise UserError(f"--{name} must be >= 0, got {value}")
    if not 0.01 <= options.baseline <= 10.0:
        raise UserError(f"--baseline must be a stereo baseline in metres (0.01-10), got {options.baseline}")
    if height < MIN_SIZE or width < MIN_SIZE:
        raise UserError(f"image size must be at least {MIN_SIZE}x{MIN_SIZE}, got --height {height} --width {width}")
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if frames is not None and frames < 1:
        raise UserError(f"--frames must be >= 1, got {frames}")
    if out.exists() and not out.is_dir():
        raise UserError(f"output path exists and is not a folder: {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"output folder is not writable: {out}")


def _execute(jobs: list[_Job], workers: int, progress: bool) -> int:
    """Run the jobs here or in ``workers`` processes; returns the number of frames written.

    Workers are spawned, not forked: a forked child can inherit OpenCV's thread pool mid-lock
    and hang. As with any spawned pool, the caller's main module must be importable.
    """
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(max(j.last - j.first, 1) for j in jobs), unit="img", desc="synth")
    pool = None
    try:
        if workers > 1 and len(jobs) > 1:
            context = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=_init_worker)
            results = pool.map(_run_job, jobs)
        else:
            results = map(_run_job, jobs)
        done = 0
        for n in results:
            done += n
            if bar is not None:
                bar.update(n)
        return done
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if bar is not None:
            bar.close()


def generate_dataset(
    out: str | os.PathLike, train: int = 8, val: int = 4, height: int = 256, width: int = 512, seed: int = 0,
    workers: int = 1, progress: bool = False, options: SceneOptions = SceneOptions(),
) -> int:
    """Write ``train`` + ``val`` random street scenes under ``out``; returns the image count."""
    out = Path(out)
    _check(out, {"train": train, "val": val, "seed": seed}, height, width, workers, None, options)
    jobs = [
        _Job(str(out), split, i, height, width, seed, options=options)
        for split, n in (("train", train), ("val", val))
        for i in range(n)
    ]
    return _execute(jobs, workers, progress)


def generate_sequence(
    out: str | os.PathLike, frames: int = 30, train: int = 1, val: int = 0, height: int = 256, width: int = 512,
    seed: int = 0, workers: int = 1, progress: bool = False, options: SceneOptions = SceneOptions(),
) -> int:
    """Write ``train`` + ``val`` driving sequences of ``frames`` frames each; returns the frame count."""
    out = Path(out)
    _check(out, {"train": train, "val": val, "seed": seed}, height, width, workers, frames, options)
    jobs = [
        _Job(str(out), split, i, height, width, seed, frames, first, min(first + _FRAMES_PER_JOB, frames), options)
        for split, n in (("train", train), ("val", val))
        for i in range(n)
        for first in range(0, frames, _FRAMES_PER_JOB)
    ]
    return _execute(jobs, workers, progress)

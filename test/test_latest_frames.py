"""The per-camera hand-over of the node: latest frame wins per camera, every ready camera served each round."""
from __future__ import annotations

import threading

import pytest

from mtl_perception.ros.latest_frames import LatestFrames


def test_newest_frame_per_camera_and_drops_counted_per_camera():
    frames = LatestFrames(["front", "left"])
    assert frames.put("front", 1) is False
    assert frames.put("front", 2) is True  # 1 was never taken: dropped
    assert frames.put("left", "a") is False
    taken = frames.take(timeout=0)
    assert {name: f.msg for name, f in taken.items()} == {"front": 2, "left": "a"}
    assert frames.take(timeout=0) == {}  # nothing new


def test_a_fast_camera_cannot_starve_a_slow_one():
    """Under overload every round serves both cameras: the slow one's frames all get through."""
    frames = LatestFrames(["fast", "slow"])
    served = {"fast": 0, "slow": 0}
    for round_ in range(50):
        for k in range(10):  # ten frames of the fast camera per round
            frames.put("fast", (round_, k))
        frames.put("slow", round_)
        for name, frame in frames.take(timeout=0).items():
            served[name] += 1
            if name == "slow":
                assert frame.msg == round_
    assert served == {"fast": 50, "slow": 50}


def test_a_camera_that_stops_does_not_stall_the_others():
    frames = LatestFrames(["a", "b"])
    frames.put("a", 0)
    frames.put("b", 0)
    frames.take(timeout=0)
    for i in range(1, 5):  # b is silent now
        frames.put("a", i)
        assert {name: f.msg for name, f in frames.take(timeout=1).items()} == {"a": i}


def test_take_waits_for_a_frame_and_close_wakes_it():
    frames = LatestFrames(["only"])
    got = {}
    worker = threading.Thread(target=lambda: got.update(frames.take(timeout=30)))
    worker.start()
    frames.put("only", "x")
    worker.join(timeout=30)
    assert got["only"].msg == "x"
    waiting = threading.Thread(target=lambda: got.update(closed=frames.take(timeout=30)))
    waiting.start()
    frames.close()
    waiting.join(timeout=30)
    assert not waiting.is_alive() and got["closed"] == {}


def test_at_least_one_camera():
    with pytest.raises(ValueError):
        LatestFrames([])

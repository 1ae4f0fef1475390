"""Masked task losses against hand-computed values; empty masks give 0 without NaN."""
from __future__ import annotations

import math

import pytest
import torch

from mtl_perception.data.labels import IGNORE_INDEX
from mtl_perception_training.losses import depth_loss, instance_loss, semantic_loss, task_losses


def test_semantic_cross_entropy_ignores_255():
    logits = torch.tensor([[1.0, 0.0, 5.0], [0.0, 0.0, 5.0], [0.0, 2.0, 5.0]]).view(1, 3, 1, 3).requires_grad_()
    labels = torch.tensor([[[0, 2, 255]]])
    # pixel 0: logits (1, 0, 0), class 0; pixel 1: logits (0, 0, 2), class 2; pixel 2 ignored
    expected = ((math.log(math.e + 2) - 1) + (math.log(2 + math.e**2) - 2)) / 2
    loss = semantic_loss(logits, labels)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[..., 2] == 0)  # the ignored pixel gets no gradient


def test_instance_l1_is_mean_over_components():
    pred = torch.tensor([[1.0, 2.0, 100.0], [0.0, -1.0, 100.0]]).view(1, 2, 1, 3)
    target = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).view(1, 2, 1, 3)
    mask = torch.tensor([[[True, True, False]]])
    # (|1| + |0|) + (|2| + |-2|) over 2 pixels x 2 components
    assert instance_loss(pred, target, mask).item() == pytest.approx(5 / 4)


def test_depth_l1_over_valid_pixels():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    target = torch.tensor([[[0.0, 2.0], [1.0, 0.0]]])
    mask = torch.tensor([[[True, True], [True, False]]])
    assert depth_loss(pred, target, mask).item() == pytest.approx((1 + 0 + 2) / 3)


def test_mean_is_over_all_valid_pixels_of_the_batch():
    pred = torch.zeros(2, 1, 1, 4)
    target = torch.tensor([[[1.0, 1.0, 1.0, 1.0]], [[5.0, 0.0, 0.0, 0.0]]])
    mask = torch.tensor([[[True, True, True, True]], [[True, False, False, False]]])
    assert depth_loss(pred, target, mask).item() == pytest.approx((4 * 1 + 5) / 5)


def test_task_without_valid_pixel_gives_zero_and_finite_grads():
    logits = torch.randn(2, 19, 4, 4, requires_grad=True)
    vectors = torch.randn(2, 2, 4, 4, requires_grad=True)
    disparity = torch.randn(2, 1, 4, 4, requires_grad=True)
    none = torch.zeros(2, 4, 4, dtype=torch.bool)
    losses = [
        semantic_loss(logits, torch.full((2, 4, 4), 255)),
        instance_loss(vectors, torch.zeros(2, 2, 4, 4), none),
        depth_loss(disparity, torch.zeros(2, 4, 4), none),
    ]
    for loss in losses:
        assert loss.item() == 0.0 and loss.requires_grad
    sum(losses).backward()
    for t in (logits, vectors, disparity):
        assert torch.isfinite(t.grad).all() and not t.grad.any()


def test_task_losses_takes_dataset_batch_and_task_subset():
    outputs = {"semantic": torch.zeros(1, 19, 2, 2), "depth": torch.full((1, 1, 2, 2), 3.0)}
    batch = {
        "semantic": torch.tensor([[[0, 1], [255, 255]]]),
        "instance": torch.zeros(1, 2, 2, 2),
        "instance_mask": torch.zeros(1, 2, 2, dtype=torch.bool),
        "disparity": torch.tensor([[[1.0, 2.0], [0.0, 0.0]]]),
        "disparity_mask": torch.tensor([[[True, True], [False, False]]]),
    }
    losses = task_losses(outputs, batch, ["semantic", "depth"])
    assert list(losses) == ["semantic", "depth"]
    assert losses["semantic"].item() == pytest.approx(math.log(19))
    assert losses["depth"].item() == pytest.approx((2 + 1) / 2)


def test_size_mismatch_is_reported():
    with pytest.raises(ValueError, match=r"depth: prediction is \(4, 4\) but its target is \(8, 8\)"):
        depth_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 8, 8), torch.ones(1, 8, 8, dtype=torch.bool))


def test_hard_pixel_mining_keeps_the_hardest_share_of_labelled_pixels():
    # Four labelled pixels with per-pixel cross-entropies c0 < c1 < c2 < c3, one ignored pixel.
    logits = torch.zeros(1, 2, 1, 5)
    logits[0, 0, 0] = torch.tensor([4.0, 2.0, 0.0, -2.0, 50.0])  # class 0 score; class 1 stays 0
    labels = torch.tensor([[[0, 0, 0, 0, IGNORE_INDEX]]])
    per_pixel = torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="none")[0, 0, :4]
    assert semantic_loss(logits, labels, hard_pixels=0.5).item() == pytest.approx(per_pixel[2:].mean().item())
    assert semantic_loss(logits, labels, hard_pixels=0.25).item() == pytest.approx(per_pixel[3].item())
    assert semantic_loss(logits, labels).item() == pytest.approx(per_pixel.mean().item())  # the paper's loss
    nothing = torch.full((1, 1, 5), IGNORE_INDEX)
    empty = semantic_loss(logits.requires_grad_(), nothing, hard_pixels=0.5)
    assert empty.item() == 0.0 and empty.requires_grad  # a batch without labels: an exact, attached 0

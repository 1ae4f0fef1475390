"""DWA and GradNorm: the weights follow the papers' formulas, sum to K, and GradNorm balances gradients."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mtl_perception.errors import ConfigError
from mtl_perception.model import build_model
from mtl_perception_training.weighting import DynamicWeightAverage
from mtl_perception_training.weighting import GradNorm
from mtl_perception_training.weighting.gradnorm import last_shared_weight
from mtl_perception_training.weighting import WEIGHTINGS, build_weighting

TASKS = ("semantic", "instance", "depth")


def _losses(values, tasks=TASKS, requires_grad=False):
    return {t: torch.tensor(float(v), requires_grad=requires_grad) for t, v in zip(tasks, values)}


def test_both_are_registered_and_built_from_config():
    assert WEIGHTINGS["dwa"] is DynamicWeightAverage and WEIGHTINGS["gradnorm"] is GradNorm
    dwa = build_weighting({"method": "dwa", "temperature": 1.5, "window": 7}, TASKS)
    assert (dwa.temperature, dwa.window) == (1.5, 7)
    gradnorm = build_weighting({"method": "gradnorm", "alpha": 0.5, "lr": 0.02}, TASKS[:2])
    assert gradnorm.alpha == 0.5 and gradnorm.param_groups(1e-3)[0]["lr"] == 0.02
    assert gradnorm.param_groups(1e-3)[0]["weight_decay"] == 0.0


@pytest.mark.parametrize(
    "cfg, key",
    [({"method": "dwa", "temperature": 0}, "temperature"), ({"method": "dwa", "window": 0}, "window"),
     ({"method": "dwa", "window": 2.5}, "window"), ({"method": "gradnorm", "alpha": -1}, "alpha"),
     ({"method": "gradnorm", "lr": 0}, "lr"), ({"method": "dwa", "temprature": 2}, "temprature")],
)
def test_bad_options_name_the_key(cfg, key):
    with pytest.raises(ConfigError, match=key):
        build_weighting(cfg, TASKS)


# ---------------------------------------------------------------------------------------- DWA
@pytest.mark.parametrize("tasks", [TASKS, TASKS[:2]])
def test_dwa_weights_are_one_each_summing_to_k_until_two_windows_are_complete(tasks):
    dwa = DynamicWeightAverage(tasks, window=3)
    for step in range(6):  # windows 1 and 2 (steps 0-5): no loss rate yet
        assert dwa.weights() == {t: 1.0 for t in tasks}, step
        loss = _losses([1.0 + step + i for i in range(len(tasks))], tasks, requires_grad=True)
        total = dwa(loss)
        assert total.item() == pytest.approx(sum(v.item() for v in loss.values()))
    assert int(dwa.windows_done) == 2
    assert sum(dwa.weights().values()) == pytest.approx(len(tasks))
    assert dwa.weights() != {t: 1.0 for t in tasks}


def test_dwa_follows_the_formula_for_a_loss_history():
    """Window means L(t-2), L(t-1) -> w_i = K exp(r_i / T) / sum_j exp(r_j / T), r_i = L_i(t-1) / L_i(t-2)."""
    temperature, window = 2.0, 2
    history = np.array([[4.0, 10.0, 2.0], [2.0, 9.0, 2.2],  # window 1 (mean 3.0, 9.5, 2.1)
                        [1.0, 9.0, 2.0], [1.0, 8.0, 1.8],  # window 2 (mean 1.0, 8.5, 1.9)
                        [0.5, 8.0, 1.0], [0.7, 8.0, 1.0]])  # window 3 (mean 0.6, 8.0, 1.0)
    dwa = DynamicWeightAverage(TASKS, temperature=temperature, window=window)

    def expected(older, newer):
        r = newer / older
        return 3 * np.exp(r / temperature) / np.exp(r / temperature).sum()

    means = history.reshape(3, window, 3).mean(axis=1)
    for step, row in enumerate(history):
        loss = _losses(row, requires_grad=True)
        used = dwa.weights()
        total = dwa(loss)
        total.backward()
        for t in TASKS:  # the weight multiplies the loss and is not itself differentiated
            assert loss[t].grad.item() == pytest.approx(used[t], rel=1e-6)
        if step == 3:  # windows 1 and 2 complete: from now on, the rates of window 2 over window 1
            np.testing.assert_allclose(list(dwa.weights().values()), expected(means[0], means[1]), rtol=1e-6)
    np.testing.assert_allclose(list(dwa.weights().values()), expected(means[1], means[2]), rtol=1e-6)
    w = dwa.weights()
    # Last rates: instance 8.0 / 8.5 = 0.94 (slowest to improve, largest weight), semantic 0.6, depth 0.53.
    assert w["instance"] > w["semantic"] > w["depth"]


def test_dwa_records_only_in_training_mode_and_resumes_from_its_state_dict():
    dwa = DynamicWeightAverage(TASKS, window=1)
    dwa.eval()
    for _ in range(3):
        dwa(_losses([1.0, 2.0, 3.0]))
    assert int(dwa.windows_done) == 0
    dwa.train()
    for values in ([2.0, 2.0, 2.0], [1.0, 2.0, 4.0]):
        dwa(_losses(values))
    restored = DynamicWeightAverage(TASKS, window=1)
    restored.load_state_dict(dwa.state_dict())
    assert restored.weights() == dwa.weights()
    nxt = _losses([1.0, 1.0, 1.0])
    assert restored(nxt).item() == pytest.approx(dwa(nxt).item())


def test_dwa_treats_a_task_without_loss_in_a_window_as_neutral():
    dwa = DynamicWeightAverage(TASKS[:2], window=1)
    for values in ([1.0, 0.0], [0.5, 0.0], [0.25, 3.0]):
        dwa(_losses(values, TASKS[:2]))
        assert all(math.isfinite(w) for w in dwa.weights().values())
    assert sum(dwa.weights().values()) == pytest.approx(2.0)


# ----------------------------------------------------------------------------------- GradNorm
class ToyNet(nn.Module):
    """Shared trunk and one linear head per task, laid out as MultiTaskNet (``decoders``)."""

    def __init__(self, tasks) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(8, 16), nn.Tanh())
        self.decoders = nn.ModuleDict({t: nn.Linear(16, 1) for t in tasks})

    def losses(self, x: torch.Tensor, targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        shared = self.trunk(x)
        return {t: ((head(shared)[:, 0] - targets[t]) ** 2).mean() for t, head in self.decoders.items()}


def _grad_norms(net: ToyNet, losses: dict[str, torch.Tensor]) -> dict[str, float]:
    shared = net.trunk[0].weight
    return {t: torch.autograd.grad(l, shared, retain_graph=True)[0].norm().item() for t, l in losses.items()}


def test_last_shared_weight_is_the_aspp_projection_of_the_network():
    model = build_model({"backbone": "resnet18", "output_stride": 16, "aspp_channels": 8, "decoder_channels": 8})
    assert last_shared_weight(model) is model.aspp.project[0].weight
    net = ToyNet(TASKS)
    assert last_shared_weight(net) is net.trunk[0].weight
    # With a shared skip fusion the tasks split after it: its last convolution is the shared layer.
    fused = build_model({"backbone": "resnet18", "output_stride": 16, "aspp_channels": 8, "decoder_channels": 8,
                         "decoder": "skip_shared"})
    assert last_shared_weight(fused) is fused.fusion.fuse["4"][0].weight


def test_gradnorm_value_and_gradients_match_the_formula():
    torch.manual_seed(0)
    tasks, alpha = TASKS[:2], 1.5
    net = ToyNet(tasks)
    gradnorm = GradNorm(tasks, alpha=alpha)
    gradnorm.bind_model(net)
    x = torch.randn(32, 8)
    targets = {"semantic": torch.randn(32), "instance": 5 * torch.randn(32)}
    first = net.losses(x, targets)
    gradnorm(first).backward()  # records L_i(0)
    with torch.no_grad():
        gradnorm.task_weights.copy_(torch.tensor([1.3, 0.5]))  # as if after an optimiser step
    net.zero_grad()
    gradnorm.task_weights.grad = None

    losses = net.losses(x, {"semantic": targets["semantic"] * 0.5, "instance": targets["instance"]})
    norms = _grad_norms(net, losses)
    total = gradnorm(losses)
    w = {"semantic": 1.3 / 0.9, "instance": 0.5 / 0.9}  # renormalised to sum 2 before use
    assert gradnorm.weights() == pytest.approx(w)
    assert total.item() == pytest.approx(sum(w[t] * losses[t].item() for t in tasks), rel=1e-5)
    total.backward()

    ratio = {t: losses[t].item() / first[t].item() for t in tasks}
    relative = {t: ratio[t] / np.mean(list(ratio.values())) for t in tasks}
    grad_norm = {t: w[t] * norms[t] for t in tasks}
    mean_g = np.mean(list(grad_norm.values()))
    expected = [np.sign(grad_norm[t] - mean_g * relative[t] ** alpha) * norms[t] for t in tasks]
    np.testing.assert_allclose(gradnorm.task_weights.grad.numpy(), expected, rtol=1e-4)

    # The network is trained on sum_i w_i L_i alone: L_grad adds nothing to its gradient.
    reference = ToyNet(tasks)
    reference.load_state_dict(net.state_dict())
    ref_losses = reference.losses(x, {"semantic": targets["semantic"] * 0.5, "instance": targets["instance"]})
    sum(w[t] * ref_losses[t] for t in tasks).backward()
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_gradnorm_balances_gradient_norms_on_a_toy_problem_and_keeps_sum_k():
    """Instance's targets are 20x larger, so its gradient at the shared layer dominates at w = 1.

    With alpha = 0 the target is the mean norm itself: GradNorm must shrink instance's weight,
    grow the others', and bring the weighted gradient norms w_i ||dL_i/dW|| together.
    """
    torch.manual_seed(0)
    net = ToyNet(TASKS)
    gradnorm = GradNorm(TASKS, alpha=0.0, lr=0.05)
    gradnorm.bind_model(net)
    optimizer = torch.optim.Adam([{"params": net.parameters(), "lr": 1e-3}, *gradnorm.param_groups(1e-3)])
    x = torch.randn(64, 8)
    coef = torch.randn(3, 8)
    targets = {"semantic": x @ coef[0], "instance": 20 * (x @ coef[1]), "depth": 2 * (x @ coef[2])}

    def spread() -> float:
        losses = net.losses(x, targets)
        weighted = [gradnorm.weights()[t] * n for t, n in _grad_norms(net, losses).items()]
        return max(weighted) / min(weighted)

    before = spread()
    for _ in range(300):
        total = gradnorm(net.losses(x, targets))
        assert sum(gradnorm.weights().values()) == pytest.approx(3.0, rel=1e-5)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    after = spread()
    w = gradnorm.weights()
    assert sum(w.values()) == pytest.approx(3.0, rel=1e-5) and min(w.values()) > 0
    assert w["instance"] < 0.5 < w["semantic"], w
    assert before > 5 and after < 0.3 * before and after < 2.0, (before, after)


def test_gradnorm_without_a_bound_model_or_in_eval_is_a_plain_weighted_sum():
    gradnorm = GradNorm(TASKS)
    loss = _losses([1.0, 2.0, 3.0], requires_grad=True)
    assert gradnorm(loss).item() == pytest.approx(6.0)
    gradnorm.bind_model(ToyNet(TASKS))
    gradnorm.eval()
    assert gradnorm(_losses([1.0, 2.0, 3.0], requires_grad=True)).item() == pytest.approx(6.0)
    assert torch.isnan(gradnorm.initial_losses).all()

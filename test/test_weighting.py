"""Task weighting: values and gradients equal the paper's formulas; config errors are clear."""
from __future__ import annotations

import math

import pytest
import torch

from mtl_perception.errors import ConfigError
from mtl_perception_training.weighting import (
    WEIGHTINGS,
    EqualWeighting,
    FixedWeighting,
    TaskWeighting,
    UncertaintyWeighting,
    build_weighting,
)

TASKS = ("semantic", "instance", "depth")
S, L = 0.3, 2.0


def _loss(value: float = L) -> torch.Tensor:
    return torch.tensor(value, requires_grad=True)


# (form, task) -> factor c in c * exp(-s) * L + s / 2
@pytest.mark.parametrize(
    "form, task, c",
    [("paper", "semantic", 1.0), ("paper", "instance", 0.5), ("paper", "depth", 0.5),
     ("uniform", "semantic", 0.5), ("uniform", "depth", 0.5)],
)
def test_uncertainty_value_and_gradients_match_formula(form, task, c):
    weighting = UncertaintyWeighting([task], form=form, init=S)
    loss = _loss()
    total = weighting({task: loss})
    assert total.item() == pytest.approx(c * math.exp(-S) * L + S / 2, rel=1e-6)
    total.backward()
    assert weighting.log_vars[task].grad.item() == pytest.approx(-c * math.exp(-S) * L + 0.5, rel=1e-6)
    assert loss.grad.item() == pytest.approx(c * math.exp(-S), rel=1e-6)
    assert weighting.log_values() == pytest.approx({f"s_{task}": S, f"w_{task}": c * math.exp(-S)})


def test_paper_classification_gradient_at_known_point():
    weighting = build_weighting({"method": "uncertainty", "form": "paper", "init": 0.3}, TASKS)
    losses = {t: _loss() for t in TASKS}
    weighting(losses).backward()
    assert weighting.log_vars["semantic"].grad.item() == pytest.approx(-math.exp(-0.3) * 2 + 0.5, rel=1e-6)
    assert weighting.log_vars["depth"].grad.item() == pytest.approx(-0.5 * math.exp(-0.3) * 2 + 0.5, rel=1e-6)


@pytest.mark.parametrize(
    "form, task, optimum",
    [("paper", "semantic", math.log(2 * 0.05)), ("paper", "depth", math.log(0.05)), ("uniform", "semantic", math.log(0.05))],
)
def test_learned_s_reaches_the_analytic_optimum_and_total_goes_negative(form, task, optimum):
    """Minimising c exp(-s) L + s/2 over s gives s = log(2 c L); for small L the total is < 0."""
    weighting = UncertaintyWeighting([task], form=form)
    optimiser = torch.optim.SGD(weighting.parameters(), lr=0.5)
    for _ in range(200):
        optimiser.zero_grad()
        total = weighting({task: torch.tensor(0.05)})
        total.backward()
        optimiser.step()
    assert weighting.log_vars[task].item() == pytest.approx(optimum, abs=1e-3)
    assert total.item() < 0


def test_param_groups_and_state_dict():
    weighting = build_weighting({"method": "uncertainty", "init": -1.0, "lr": 0.05}, TASKS)
    (group,) = weighting.param_groups(base_lr=1e-4)
    assert group["lr"] == 0.05 and group["weight_decay"] == 0.0
    assert [p.item() for p in group["params"]] == [-1.0] * 3
    assert set(weighting.state_dict()) == {f"log_vars.{t}" for t in TASKS}
    default_lr = build_weighting({"method": "uncertainty"}, TASKS).param_groups(base_lr=1e-4)
    assert default_lr[0]["lr"] == 1e-4
    # the group overrides the optimiser's weight decay: s_i are not pulled towards 0
    net = torch.nn.Parameter(torch.ones(3))
    optimiser = torch.optim.AdamW([{"params": [net]}, *weighting.param_groups(1e-4)], lr=1e-4, weight_decay=0.5)
    for p in [net, *group["params"]]:
        p.grad = torch.zeros_like(p)
    optimiser.step()
    assert net.detach().lt(1.0).all() and [p.item() for p in group["params"]] == [-1.0] * 3
    assert build_weighting({"method": "equal"}, TASKS).param_groups(1e-4) == []


def test_fixed_and_equal():
    losses = {t: torch.tensor(v) for t, v in zip(TASKS, (1.0, 2.0, 3.0))}
    fixed = build_weighting({"method": "fixed", "weights": {"semantic": 1.0, "instance": 0.5, "depth": 0.1}}, TASKS)
    assert fixed(losses).item() == pytest.approx(1.0 + 1.0 + 0.3)
    assert fixed.log_values() == {"w_semantic": 1.0, "w_instance": 0.5, "w_depth": 0.1}
    equal = build_weighting({"method": "equal"}, TASKS)
    assert equal(losses).item() == pytest.approx(6.0)
    assert equal.log_values() == {f"w_{t}": 1.0 for t in TASKS}
    # weights for tasks that are not trained are ignored (one grid config for every subset)
    subset = build_weighting({"method": "fixed", "weights": {"semantic": 2.0, "depth": 1.0}}, ["semantic"])
    assert subset({"semantic": torch.tensor(1.5)}).item() == pytest.approx(3.0)


def test_default_is_paper_uncertainty():
    weighting = build_weighting(None, ["semantic", "depth"])
    assert isinstance(weighting, UncertaintyWeighting) and weighting.form == "paper"
    assert weighting.log_values() == {"s_semantic": 0.0, "s_depth": 0.0, "w_semantic": 1.0, "w_depth": 0.5}


def test_registry_holds_every_strategy():
    from mtl_perception_training.weighting import DynamicWeightAverage, GradNorm, LossNormalization

    assert WEIGHTINGS == {
        "uncertainty": UncertaintyWeighting, "fixed": FixedWeighting, "equal": EqualWeighting,
        "dwa": DynamicWeightAverage, "gradnorm": GradNorm, "normalized": LossNormalization,
    }
    assert all(issubclass(cls, TaskWeighting) for cls in WEIGHTINGS.values())


def test_wrong_loss_keys_are_refused():
    with pytest.raises(ValueError, match="expects losses for"):
        build_weighting({"method": "equal"}, TASKS)({"semantic": torch.tensor(1.0)})


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"method": "pcgrad"}, "weighting.method: unknown method 'pcgrad'"),
        ({"method": "uncertainty", "form": "kendall"}, "weighting.form: unknown form 'kendall'"),
        ({"method": "uncertainty", "intit": 0.0}, r"weighting \(uncertainty\): unknown key\(s\) \['intit'\]"),
        ({"method": "uncertainty", "init": "zero"}, "weighting.init must be a finite number"),
        ({"method": "uncertainty", "lr": -1}, "weighting.lr must be a positive number"),
        ({"method": "fixed", "weights": {"semantic": 1, "instance": 1}}, r"no weight for trained task\(s\) \['depth'\]"),
        ({"method": "fixed", "weights": {"semantic": 1, "instance": 1, "depth": 1, "depht": 1}}, "unknown task"),
        ({"method": "fixed", "weights": {"semantic": -1.0, "instance": 1.0, "depth": 1.0}}, "weights.semantic must be"),
        ({"method": "fixed"}, "weighting.weights must map each task"),
        ({"method": "equal", "weights": {}}, r"weighting \(equal\): unknown key"),
        ("uncertainty", "weighting section must be a mapping"),
    ],
)
def test_config_errors(cfg, message):
    with pytest.raises(ConfigError, match=message):
        build_weighting(cfg, TASKS)


def test_loss_normalization_weights_each_task_by_half_its_inverse_running_mean():
    norm = build_weighting({"method": "normalized", "momentum": 0.5}, ["semantic", "depth"])
    first = {"semantic": torch.tensor(2.0), "depth": torch.tensor(0.5)}
    assert norm(first).item() == pytest.approx(1.0)  # each loss over twice itself: 0.5 + 0.5
    assert norm.weights() == pytest.approx({"semantic": 0.25, "depth": 1.0})
    norm({"semantic": torch.tensor(4.0), "depth": torch.tensor(0.5)})
    # Bias-corrected mean of semantic after 2, 4 with momentum 0.5: (0.25 * 2 + 0.5 * 4) / 0.75 = 10/3.
    assert norm.weights()["semantic"] == pytest.approx(0.5 / (10 / 3))
    # The fixed point of the uncertainty weighting (exp(-s) = 1 / (2 L) for a classification loss)
    # is this weight: learned s there and normalisation weigh a task alike.
    learned = build_weighting({"method": "uncertainty", "form": "paper"}, ["semantic"])
    with torch.no_grad():
        learned.log_vars["semantic"].fill_(math.log(2 * 10 / 3))
    assert learned.weights()["semantic"] == pytest.approx(norm.weights()["semantic"])
    state = norm.state_dict()
    again = build_weighting({"method": "normalized", "momentum": 0.5}, ["semantic", "depth"])
    again.load_state_dict(state)
    assert again.weights() == pytest.approx(norm.weights())  # the running mean resumes
    norm.eval()
    norm({"semantic": torch.tensor(100.0), "depth": torch.tensor(100.0)})
    assert again.weights() == pytest.approx(norm.weights())  # eval mode records nothing

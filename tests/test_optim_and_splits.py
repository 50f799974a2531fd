"""Learning-rate schedules, named parameter groups and stratified splits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from litvision.data.pipeline.splits import stratified_split
from litvision.tasks.optim import WarmupSchedule, build_param_groups, build_scheduler


def test_warmup_then_cosine() -> None:
    s = WarmupSchedule("cosine", total_steps=110, steps_per_epoch=10, warmup_steps=10, min_lr_ratio=0.1)
    assert [s(i) for i in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert s(9) == pytest.approx(1.0)
    assert s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert s(110) == pytest.approx(0.1)


def test_step_decay_every_5_epochs_like_the_alexnet_recipe() -> None:
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.01)
    sched = build_scheduler(opt, total_steps=200, max_epochs=20, name="step", step_epochs=5, gamma=0.1)
    lrs = []
    for _ in range(200):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.01) and lrs[49] == pytest.approx(0.01)
    assert lrs[50] == pytest.approx(0.001) and lrs[199] == pytest.approx(1e-5)


def test_bad_scheduler_name_fails_at_build() -> None:
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.01)
    with pytest.raises(ValueError, match="unknown scheduler name 'cosin'"):
        build_scheduler(opt, total_steps=10, max_epochs=1, name="cosin")


def test_named_param_groups_with_head_lr_and_no_decay_for_norms_and_biases() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    groups = build_param_groups(
        model, lr=1e-3, weight_decay=0.05, groups={"head": {"prefixes": ["3."], "lr": 1e-2}}
    )
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"head", "head/no_decay", "default/no_decay"}
    assert by_name["head"]["lr"] == 1e-2 and by_name["head"]["weight_decay"] == 0.05
    assert by_name["head/no_decay"]["weight_decay"] == 0.0
    assert by_name["default/no_decay"]["lr"] == 1e-3
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == sum(1 for p in model.parameters() if p.requires_grad)


def test_stratified_split_is_seeded_disjoint_and_proportional() -> None:
    """Catches: the train part also taking the test part's indices (parts[0] extended from
    `start - sizes[-1]`): a leaking split whose val/test counts and union still look right."""
    labels = np.array([0] * 100 + [1] * 50 + [2] * 20)
    train, val, test = stratified_split(labels, (0.2, 0.1), seed=3)
    assert len(set(train) | set(val) | set(test)) == len(labels)
    assert not (set(train) & set(val)) and not (set(val) & set(test))
    assert not (set(train) & set(test)), "test images leak into training"
    assert len(train) + len(val) + len(test) == len(labels)
    assert np.bincount(labels[train]).tolist() == [70, 35, 14]
    assert np.bincount(labels[val]).tolist() == [20, 10, 4]
    assert np.bincount(labels[test]).tolist() == [10, 5, 2]
    again = stratified_split(labels, (0.2, 0.1), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    other = stratified_split(labels, (0.2, 0.1), seed=4)
    assert not np.array_equal(val, other[1])

"""The training-option checks (tasks/options.py) on plain configs, one case per rule: what the CLI
refuses in one line (tests/test_training_options_cli.py) comes from here, so each message and each
key it reads is pinned at the unit level too."""

from __future__ import annotations

import math

import pytest

from litvision.errors import UserError
from litvision.tasks.options import check_class_weights, check_ema_decay, check_training_options


def _refused(check, *args) -> str:
    with pytest.raises(UserError) as err:
        check(*args)
    return str(err.value)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, True, "0.99"])
def test_ema_decay_outside_0_1_or_not_a_number_is_refused(decay) -> None:
    """Catches a string or a bool passing (the type checks joined with `and`), or the open interval
    closed."""
    said = _refused(check_ema_decay, decay)
    assert said == (
        f"model.ema_decay={decay} must be in (0, 1), e.g. 0.999 (larger = slower average), or null for no EMA."
    )


def test_good_options_pass() -> None:
    check_ema_decay(None)
    check_ema_decay(0.999)
    for spec in (None, "auto", [1, 2.5, 0]):
        check_class_weights(spec, 3)
    check_training_options(
        {"model": {"test_tta": "hflip", "class_weights": [1, 1]}, "data": {"mix_prob": 0.5}}
    )
    check_training_options({})


@pytest.mark.parametrize(
    ("weights", "bad"),
    [
        ([1, math.nan, 1], "[1, nan, 1]"),
        ([1, -1, 1], "[1, -1, 1]"),
        ([0, 0, 0], "[0, 0, 0]"),
        (["a", 1, 1], "['a', 1, 1]"),
    ],
)
def test_class_weights_that_are_not_finite_non_negative_and_not_all_zero_are_refused(weights, bad) -> None:
    """Catches each of the per-weight rules dropped or joined with the wrong operator, and an
    all-zero list passing (`>= 0` for `> 0`)."""
    assert _refused(check_class_weights, weights, 3) == (
        f"model.class_weights={bad} must be finite numbers >= 0, at least one of them > 0."
    )


def test_class_weights_of_the_wrong_length_or_a_string_are_refused_by_name() -> None:
    assert _refused(check_class_weights, [1, 2], 3) == (
        "model.class_weights has 2 values but there are 3 classes; give one weight per class (or class_weights=auto)."
    )
    assert _refused(check_class_weights, "balanced", 3) == (
        "model.class_weights='balanced' must be auto, null or a list of one weight per class."
    )


@pytest.mark.parametrize(
    ("cfg", "said"),
    [
        ({"test_tta": "vflip"}, "test_tta='vflip' is not one of ['none', 'hflip']; pick one of those."),
        (
            {"model": {"test_tta": "vflip"}},
            "test_tta='vflip' is not one of ['none', 'hflip']; pick one of those.",
        ),
        ({"data": {"cutmix_alpha": -1}}, "data.cutmix_alpha=-1 must be >= 0"),
        ({"data": {"mix_prob": 2}}, "data.mix_prob=2 is a probability"),
        ({"model": {"class_weights": [1, 2], "num_classes": 3}}, "model.class_weights has 2 values"),
        ({"model": {"ema_decay": 2}}, "model.ema_decay=2 must be in (0, 1)"),
    ],
)
def test_check_training_options_reads_each_key_where_the_config_has_it(cfg: dict, said: str) -> None:
    """`test_tta` at the top level (where the experiments set it) or under model; the mixing keys
    under data. Catches a key read under another name (never checked: the bad value reaches the
    Trainer) or the test-time augmentation check given nothing."""
    assert _refused(check_training_options, cfg).startswith(said)

"""Splits and samplers at their edges: bad fractions and folds, k-fold dealing, dtypes, and the
(seed, epoch) -> order contract a resumed run relies on. Written against the survivors of
`make mutate` on data/pipeline/splits.py and data/pipeline/samplers.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from litvision.data.pipeline.samplers import (
    EpochShuffleSampler,
    EpochWeightedSampler,
    class_balanced_weights,
    seeded_generator,
)
from litvision.data.pipeline.splits import check_folds, stratified_folds, stratified_split, train_val_split
from litvision.errors import UserError

LABELS = np.array([0] * 10 + [1] * 7 + [2] * 3)


# -- stratified_split ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fractions", [(-0.1, 0.2), (0.5, 0.5), (0.9, 0.6), (1.2,)])
def test_split_fractions_must_be_non_negative_and_sum_below_one(fractions) -> None:
    """Catches: `or` weakened to `and`, `>= 1` relaxed to `> 1` or `>= 2`, and a message without the
    offending fractions."""
    with pytest.raises(ValueError, match=r"split fractions \[.*\] must be >= 0 and sum to less than 1") as e:
        stratified_split(LABELS, fractions, seed=0)
    assert str(list(fractions)) in str(e.value)


def test_split_allows_an_empty_part_and_returns_sorted_int64_indices() -> None:
    """Catches: a zero fraction refused (`f <= 0`), and parts returned as float arrays (an empty
    part would be float64 and could not index a dataset)."""
    train, val, test = stratified_split(LABELS, (0.0, 0.3), seed=1)
    assert len(val) == 0
    for part in (train, val, test):
        assert part.dtype == np.int64
        assert np.array_equal(part, np.sort(part))
    assert np.bincount(LABELS[test]).tolist() == [3, 2, 1]  # round(0.3 x 10, 7, 3)
    assert sorted([*train, *test]) == list(range(len(LABELS)))


def test_adding_a_class_does_not_reshuffle_the_others() -> None:
    """Catches: one generator for all classes instead of one seeded by (seed, class)."""
    more = np.concatenate([LABELS, [3] * 5])
    a = stratified_split(LABELS, (0.3,), seed=5)[1]
    b = stratified_split(more, (0.3,), seed=5)[1]
    assert np.array_equal(a, b[b < len(LABELS)]) and len(b) > len(a)


# -- check_folds ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("num_folds", "fold", "message"),
    [
        (
            None,
            2,
            r"data.fold=2 needs data.num_folds \(k-fold cross-validation\): e.g. data.num_folds=5 data.fold=2\.",
        ),
        (1, 0, r"data.num_folds=1 must be an integer >= 2 \(or null for no k-fold\)\."),
        (True, 0, r"data.num_folds=True must be an integer >= 2"),
        (2.0, 0, r"data.num_folds=2.0 must be an integer >= 2"),
        (
            4,
            None,
            r"data.num_folds=4 needs data.fold \(which fold validates, 0..3\); sweep them all with data.fold=0,1,2,3\.",
        ),
        (4, 4, r"data.fold=4 is out of range for data.num_folds=4: folds are numbered 0..3\."),
        (4, -1, r"data.fold=-1 is out of range"),
        (4, True, r"data.fold=True is out of range"),
        (4, 1.0, r"data.fold=1.0 is out of range"),
    ],
)
def test_bad_fold_settings_are_one_line_naming_the_key_and_the_fix(num_folds, fold, message) -> None:
    """Catches: each check in check_folds inverted, weakened (`and` for `or`, `<= 2`, `< 3`) or dropped,
    and the messages losing the key, the range or the sweep they suggest."""
    with pytest.raises(UserError, match=message):
        check_folds(num_folds, fold)


@pytest.mark.parametrize(("num_folds", "fold"), [(None, None), (2, 0), (2, 1), (5, 4)])
def test_good_fold_settings_pass(num_folds, fold) -> None:
    """Catches: `num_folds < 2` tightened to `<= 2` or `< 3`, and the no-k-fold case refused."""
    check_folds(num_folds, fold)


# -- stratified_folds / train_val_split ----------------------------------------------------------------
def test_folds_are_dealt_round_robin_per_class_and_seeded() -> None:
    """Catches: the dealing `% k` replaced (`/ k`), folds left as float, and a fold id per class instead
    of one over the concatenated classes."""
    folds = stratified_folds(LABELS, 3, seed=7)
    assert folds.dtype == np.int64 and set(folds.tolist()) == {0, 1, 2}
    assert sorted(np.bincount(folds).tolist()) == [6, 7, 7]  # sizes differ by at most one
    for cls in (0, 1, 2):
        per = np.bincount(folds[cls == LABELS], minlength=3)
        assert per.max() - per.min() <= 1, (cls, per)
    # The dealing order: class 0 shuffled with its own generator, then class 1, ... dealt 0,1,2,0,...
    order = np.concatenate(
        [
            np.flatnonzero(c == LABELS)[np.random.default_rng([7, c]).permutation(int((c == LABELS).sum()))]
            for c in (0, 1, 2)
        ]
    )
    assert folds[order].tolist() == [i % 3 for i in range(len(LABELS))]
    assert np.array_equal(folds, stratified_folds(LABELS, 3, seed=7))
    assert not np.array_equal(folds, stratified_folds(LABELS, 3, seed=8))
    assert stratified_folds(np.array([], dtype=np.int64), 3, seed=0).shape == (0,)


def test_train_val_split_with_and_without_folds() -> None:
    """Catches: k-fold and fraction paths swapped, the fold's complement not used for training, the
    fold check skipped, and the split's seed or fraction not passed on."""
    train, val = train_val_split(LABELS, 0.3, seed=2)
    ref_train, ref_val = stratified_split(LABELS, (0.3,), seed=2)
    assert np.array_equal(train, ref_train) and np.array_equal(val, ref_val)
    assert not np.array_equal(val, train_val_split(LABELS, 0.3, seed=3)[1])
    folds = stratified_folds(LABELS, 4, seed=2)
    for k in range(4):
        tr, va = train_val_split(LABELS, 0.3, seed=2, num_folds=4, fold=k)
        assert np.array_equal(va, np.flatnonzero(folds == k))
        assert np.array_equal(tr, np.flatnonzero(folds != k))
    with pytest.raises(UserError, match="data.num_folds=4 needs data.fold"):
        train_val_split(LABELS, 0.3, seed=2, num_folds=4, fold=None)
    with pytest.raises(UserError, match="data.fold=9 is out of range"):
        train_val_split(LABELS, 0.3, seed=2, num_folds=4, fold=9)


# -- samplers ------------------------------------------------------------------------------------------
def _expected_order(n: int, seed: int, epoch: int) -> list[int]:
    # The documented contract: the order is a function of (seed, epoch) alone, through this seed.
    g = torch.Generator()
    g.manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def test_shuffle_sampler_order_is_a_function_of_seed_and_epoch() -> None:
    """Catches: the per-epoch generator's seed changed (orders of runs started before the change would
    no longer resume exactly), the epoch ignored, and a fresh sampler not starting at epoch 0 or not
    at seed 0 by default."""
    sampler = EpochShuffleSampler(range(50), seed=3)
    assert sampler.epoch == 0 and list(sampler) == _expected_order(50, 3, 0)
    sampler.set_epoch(4)
    assert list(sampler) == _expected_order(50, 3, 4) and list(sampler) == list(sampler)
    assert sorted(sampler) == list(range(50)) and len(sampler) == 50
    assert list(EpochShuffleSampler(range(50), seed=4)) != _expected_order(50, 3, 0)
    assert list(EpochShuffleSampler(range(50))) == _expected_order(50, 0, 0)  # the default seed is 0


def test_weighted_sampler_draws_with_replacement_from_seed_and_epoch() -> None:
    """Catches: num_samples not defaulting to len(weights), drawing without replacement, and the
    generator's seed or the epoch dropped."""
    weights = [0.0, 1.0, 3.0, 0.0]
    sampler = EpochWeightedSampler(weights, seed=2)
    assert sampler.replacement and sampler.num_samples == 4 and len(sampler) == 4 and sampler.epoch == 0
    g = torch.Generator()
    g.manual_seed(2 * 100_003 + 0)
    assert (
        list(sampler)
        == torch.multinomial(torch.tensor(weights, dtype=torch.double), 4, True, generator=g).tolist()
    )
    big = EpochWeightedSampler(weights, num_samples=400, seed=2)
    big.set_epoch(5)
    drawn = list(big)
    assert len(drawn) == 400 and set(drawn) <= {1, 2}  # zero weights never drawn; with replacement
    assert abs(drawn.count(2) / 400 - 0.75) < 0.08
    assert drawn == list(big)
    big.set_epoch(6)
    assert drawn != list(big)
    assert EpochWeightedSampler(weights).seed == 0


def test_seeded_generator_and_class_balanced_weights() -> None:
    """Catches: the loader generator not seeded with the given seed, weights not inverse to the
    class frequency, and float labels not cast to class ids (np.bincount refuses floats)."""
    assert seeded_generator(11).initial_seed() == 11
    w = class_balanced_weights([0, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(w, [1 / 3, 1 / 3, 1 / 3, 1.0, 0.5, 0.5])
    assert np.bincount([0, 0, 0, 1, 2, 2], weights=w).tolist() == pytest.approx([1.0, 1.0, 1.0])
    # Labels read as floats (a CSV column, a float tensor) are class ids all the same.
    np.testing.assert_allclose(class_balanced_weights(np.array([1.0, 0.0, 1.0])), [0.5, 1.0, 0.5])

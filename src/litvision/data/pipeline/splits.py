"""Seeded, stratified splits: the same seed gives the same split on every machine."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np


def stratified_split(
    labels: Sequence[int] | np.ndarray,
    fractions: Sequence[float],
    seed: int,
) -> list[np.ndarray]:
    """Split indices into len(fractions) + 1 parts (the first part takes the rest), per class.

    `fractions` are the sizes of the later parts, e.g. (val, test). Each class is
    shuffled with its own seeded generator and cut in the same proportions, so
    every part has every class (when the class has enough samples) and adding a
    class does not reshuffle the others.
    """
    labels = np.asarray(labels)
    if any(f < 0 for f in fractions) or sum(fractions) >= 1:
        raise ValueError(f"split fractions {list(fractions)} must be >= 0 and sum to less than 1")
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng = np.random.default_rng([seed, int(cls)])
        idx = idx[rng.permutation(len(idx))]
        start = 0
        sizes = [int(round(f * len(idx))) for f in fractions]
        for part, size in zip(parts[1:], sizes):
            part.extend(idx[start : start + size].tolist())
            start += size
        parts[0].extend(idx[start:].tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def check_folds(num_folds: int | None, fold: int | None) -> None:
    """`data.num_folds` / `data.fold` make sense together, or raise one line naming the key and the fix."""
    from litvision.errors import UserError

    if num_folds is None:
        if fold is not None:
            raise UserError(
                f"data.fold={fold} needs data.num_folds (k-fold cross-validation): "
                f"e.g. data.num_folds=5 data.fold={fold}."
            )
        return
    if isinstance(num_folds, bool) or not isinstance(num_folds, int) or num_folds < 2:
        raise UserError(f"data.num_folds={num_folds!r} must be an integer >= 2 (or null for no k-fold).")
    if fold is None:
        raise UserError(
            f"data.num_folds={num_folds} needs data.fold (which fold validates, 0..{num_folds - 1}); "
            f"sweep them all with {_fold_sweep(num_folds)}."
        )
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < num_folds:
        raise UserError(
            f"data.fold={fold!r} is out of range for data.num_folds={num_folds}: folds are numbered "
            f"0..{num_folds - 1}."
        )


def _fold_sweep(num_folds: int) -> str:
    # Hydra's range() sweep past a handful: data.num_folds=5000 listed 5,000 numbers.
    if num_folds <= 10:
        return "data.fold=" + ",".join(map(str, range(num_folds)))
    return f"'data.fold=range(0,{num_folds})'"


def check_folds_fit(labels: Sequence[int] | np.ndarray, num_folds: int) -> None:
    """k folds need k images of some class: with more folds than the largest class has images,
    a fold would be empty (data.num_folds=5000 on digits trained, then failed on an empty
    validation split). The rule, and the note when a smaller class cannot reach every fold, are
    scikit-learn's StratifiedKFold's (sklearn/model_selection/_split.py, `_make_test_folds`)."""
    from litvision.errors import UserError

    values, counts = np.unique(np.asarray(labels), return_counts=True)
    if not len(counts):
        return
    if num_folds > counts.max():
        raise UserError(
            f"data.num_folds={num_folds} is more than any class has images (the largest has "
            f"{int(counts.max())}): some folds would validate on nothing; use data.num_folds between 2 "
            f"and {int(counts.max())} (at most {int(counts.min())} puts every class in every fold)."
        )
    if num_folds > counts.min():
        from litvision.utils.warn import warn_user

        warn_user(
            logging.getLogger(__name__),
            f"class index {int(values[counts.argmin()])} has {int(counts.min())} images, fewer than "
            f"data.num_folds={num_folds}: some folds validate without it.",
        )


def stratified_folds(labels: Sequence[int] | np.ndarray, num_folds: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of every sample: stratified and seeded, sizes differing by at most one.

    Each class is shuffled with its own seeded generator (as in `stratified_split`); the
    shuffled classes are laid end to end and dealt round-robin into the k folds, so every fold
    holds 1/k of each class (up to one sample) and the folds' sizes differ by at most one --
    the same dealing as scikit-learn's StratifiedKFold
    (sklearn/model_selection/_split.py, `_make_test_folds`), without its dependency on a
    global shuffle.
    """
    labels = np.asarray(labels)
    order: list[np.ndarray] = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng = np.random.default_rng([seed, int(cls)])
        order.append(idx[rng.permutation(len(idx))])
    folds = np.empty(len(labels), dtype=np.int64)
    if order:
        dealt = np.concatenate(order)
        folds[dealt] = np.arange(len(dealt)) % num_folds
    return folds


def train_val_split(
    labels: Sequence[int] | np.ndarray,
    val_fraction: float,
    seed: int,
    num_folds: int | None = None,
    fold: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: fold `fold` of `num_folds` validates when k-fold is on, else a
    stratified `val_fraction`. With k-fold, `val_fraction` is unused: the folds decide."""
    if num_folds is None:
        train, val = stratified_split(labels, (val_fraction,), seed)
        return train, val
    check_folds(num_folds, fold)
    check_folds_fit(labels, num_folds)
    folds = stratified_folds(labels, num_folds, seed)
    return np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)

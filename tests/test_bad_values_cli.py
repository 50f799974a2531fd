"""Values that mean nothing (issue 21, points 3 and 7), through the real CLI: exit code 2, one
`error:` line naming the key and its valid range, no traceback, and no run folder left behind.

Every case is refused before training (most before any folder exists; the k-fold class-size check
needs the data, so at the DataModule's setup, whose refusal removes the new folder), so each costs
the CLI's start-up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

LONG = "a" * 5000

# (command line after `litvision`, what the one line must say); {tmp} is the test's folder.
CASES = {
    # One rule for every float key: keys with a range rule, and keys with no rule at all.
    "mixup_nan": (["fit", "data.mixup_alpha=nan"], ["data.mixup_alpha=nan", "not a finite number", ">= 0"]),
    "mixup_inf": (["fit", "data.mixup_alpha=inf"], ["data.mixup_alpha=inf", "not a finite number", ">= 0"]),
    "dropout_nan_no_rule": (
        ["fit", "model.net.dropout=nan"],
        ["model.net.dropout=nan", "not a finite number"],
    ),
    "cutmix_text": (["fit", "data.cutmix_alpha=abc"], ["data.cutmix_alpha='abc'", "a number >= 0"]),
    "folds_without_fold": (
        ["fit", "data.num_folds=5000"],
        ["data.num_folds=5000 needs data.fold", "'data.fold=range(0,5000)'"],
    ),
    "folds_over_class_sizes": (
        ["fit", "data.num_folds=5000", "data.fold=4999"],
        ["data.num_folds=5000 is more than any class has images", "between 2 and"],
    ),
    "tune_max_trials_text": (
        ["tune", "+tune.max_trials=abc"],
        ["tune.max_trials='abc'", "a whole number >= 1"],
    ),
    "root_too_long": (
        ["fit", "data=image_folder", f"data.root={{tmp}}/{LONG}"],
        ["data.root is", "with a name of 5000 characters", "at most 255 per name"],
    ),
    "root_empty": (["fit", "data=image_folder", "data.root="], ["data.root is empty", "current folder"]),
    # Point 7: a path with spaces that the shell split, and one holding Hydra's grammar characters.
    "spaces_split_by_shell": (
        ["fit", "data=image_folder", "data.root={tmp}/my", "photos"],
        ["'photos' is not key=value", "quote the whole override", "\"data.root='{tmp}/my photos'\""],
    ),
    "spaces_and_brackets": (
        ["fit", "data=image_folder", "data.root={tmp}/my photos (1)"],
        ["data.root holds spaces", "\"data.root='{tmp}/my photos (1)'\""],
    ),
}


# Refused at the DataModule's setup (the class sizes need the data): the folder is made, then removed.
AT_SETUP = {"folds_over_class_sizes"}


@pytest.mark.parametrize("case", list(CASES))
def test_a_value_that_means_nothing_is_one_line_and_leaves_no_folder(tmp_path: Path, case: str) -> None:
    """Catches: the finite-float rule limited to keys with a range rule (dropout=nan: nn.Dropout's
    traceback) or dropped (mixup_alpha=inf trains, exit 0); the k-fold check taken out of preflight
    (the run folder is made, the start panel printed) or the class-size check dropped (an empty fold's
    traceback); the empty-path check dropped (`.` scanned for classes); the quoting hint dropped."""
    runs = tmp_path / "runs"
    args, wanted = CASES[case]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = run_cli(
        "litvision",
        args[0],
        "experiment=digits_cnn",
        f"paths.runs_dir={runs}",
        "trainer.max_epochs=1",
        "logger=csv",
        *args[1:],
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for text in wanted:
        assert text.replace("{tmp}", str(tmp_path)) in errors[0], errors[0]
    left = [p for p in runs.rglob("*")] if runs.exists() else []
    assert left == [], left
    if case not in AT_SETUP:  # refused before the run folder was made, not made and removed
        assert "run folder" not in proc.stdout, proc.stdout[-2000:]


def test_folds_are_checked_against_the_class_sizes() -> None:
    """k up to the largest class is accepted (scikit-learn's StratifiedKFold rule), one more is not.
    Catches: the check dropped (k=6 accepted) or off by one (`>=`: the legal k=5 refused)."""
    from litvision.data.pipeline.splits import train_val_split
    from litvision.errors import UserError

    labels = np.array([0] * 5 + [1] * 3)
    train, val = train_val_split(labels, 0.0, seed=0, num_folds=5, fold=4)
    assert len(val) >= 1 and len(train) + len(val) == len(labels)
    with pytest.raises(
        UserError, match=r"data.num_folds=6 is more than any class has images \(the largest has 5\)"
    ):
        train_val_split(labels, 0.0, seed=0, num_folds=6, fold=5)

"""Warnings a user must see: into the run's log file and onto the terminal.

A run's root logger writes to the run folder's log file only (configs/hydra/default.yaml), so a
plain `log.warning` never reaches the person at the terminal. Warnings that change what a run
trained or predicted on (skipped files, no test split) go through `warn_user`; events that change
what is trained (an unfreeze, a scaled lr, generated data, early stopping) through `tell_user`.
"""

from __future__ import annotations

import logging
import sys


def _reaches_terminal(log: logging.Logger) -> bool:
    """Whether `log.warning` already prints to stdout/stderr (then printing again would double it)."""
    return _reaches_terminal_at(log, logging.WARNING)


def _reaches_terminal_at(log: logging.Logger, level: int) -> bool:
    """Whether a record of `level` from `log` already prints to stdout/stderr."""
    found = False
    current: logging.Logger | None = log
    while current is not None:
        for h in current.handlers:
            found = True
            stream = getattr(h, "stream", None)
            if (
                isinstance(h, logging.StreamHandler)
                and not isinstance(h, logging.FileHandler)
                and stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
                and h.level <= level
                and log.isEnabledFor(level)
            ):
                return True
        if not current.propagate:
            break
        current = current.parent
    # No handler anywhere: Python's last-resort handler prints warnings (not info) to stderr.
    return not found and logging.lastResort is not None and level >= logging.lastResort.level


def warn_user(log: logging.Logger, message: str, *, all_ranks: bool = False) -> None:
    """Log `message` as a warning and make sure it is printed on stderr (rank zero only unless
    `all_ranks`: a file that only one rank reads is known to that rank alone)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    log.warning(message)
    if (all_ranks or getattr(rank_zero_only, "rank", 0) == 0) and not _reaches_terminal(log):
        print(f"warning: {message}", file=sys.stderr, flush=True)


def tell_user(log: logging.Logger, message: str) -> None:
    """An event that changes what is trained (an unfreeze, a scaled lr, generated data, early
    stopping): one line on the console when it happens (rank zero), and in the run's log file."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    log.info(message)
    if getattr(rank_zero_only, "rank", 0) == 0 and not _reaches_terminal_at(log, logging.INFO):
        print(f"note: {message}", flush=True)

"""Errors meant for users: one sentence that names the file or key and the fix."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class UserError(Exception):
    """Bad input from the user (config, data, paths). Printed without a stack trace."""


def find_user_error(exc: BaseException) -> UserError | None:
    """The UserError behind `exc`, however deep: Hydra's `instantiate` wraps constructor errors in
    InstantiationException (once per nesting level), Lightning re-raises hook errors, and so on."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, UserError):
            return e
        todo += [e.__cause__, e.__context__]
    return None


def guarded(fn: Callable[..., Any], *args: Any) -> Any:
    """The error boundary of every command: a UserError at any depth -> `error: <one line>` on
    stderr and exit code 2; anything else is a bug and keeps its stack trace."""
    try:
        return fn(*args)
    except Exception as e:
        user_error = find_user_error(e)
        if user_error is None:
            raise
        print(f"error: {' '.join(str(user_error).split())}", file=sys.stderr)
        raise SystemExit(2) from None

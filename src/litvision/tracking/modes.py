"""Online or offline: whether W&B credentials exist, without importing wandb (or reading a key)."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

_DEFAULT_HOSTS = ("api.wandb.ai", "api.forge.coreweave.com")


def has_api_key() -> bool:
    """True when wandb would find credentials: WANDB_API_KEY, an identity token, or a netrc entry."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    base_url = os.environ.get("WANDB_BASE_URL")
    # `wandb login` writes the entry for its base URL: api.wandb.ai, or api.forge.coreweave.com from wandb 0.2x on.
    hosts = [urlparse(base_url).hostname or ""] if base_url else list(_DEFAULT_HOSTS)
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        entries = netrc.netrc(path)
    except (OSError, netrc.NetrcParseError):
        return False
    return any(entries.authenticators(h) is not None for h in hosts)


def resolve_mode(requested: str | None) -> str:
    """online | offline | disabled: the config's choice, else WANDB_MODE, else online iff a key exists."""
    if requested:
        if requested not in ("online", "offline", "disabled"):
            from litvision.errors import UserError

            raise UserError(
                f"logger.wandb.mode={requested!r} is not a W&B mode; use online, offline, disabled or null (auto)."
            )
        return requested
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("offline", "dryrun"):
        return "offline"
    if env in ("disabled", "online"):
        return env
    return "online" if has_api_key() else "offline"

"""Loading from the Hugging Face hub for learners who are online; a fast, clear failure when offline.

The course never needs the hub: every loader has a bundled default. With no network (or
``HF_HUB_OFFLINE=1``) a hub request fails within seconds with :class:`HubUnavailable`, whose
message names the offline default to use instead.

>>> from tutorlib.data.hub import looks_like_hub_id
>>> looks_like_hub_id("sentence-transformers/all-MiniLM-L6-v2"), looks_like_hub_id("./my_model")
(True, False)
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

__all__ = ["HubUnavailable", "looks_like_hub_id", "hub_reachable", "require_hub", "load_hub_dataset"]

HUB_HOST = "huggingface.co"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


class HubUnavailable(RuntimeError):
    """The hub cannot be reached (offline, firewalled, or ``HF_HUB_OFFLINE=1``)."""


def looks_like_hub_id(name: str) -> bool:
    """True for ``owner/name`` style ids that are not existing local paths.

    >>> looks_like_hub_id("gpt2"), looks_like_hub_id("/tmp")
    (True, False)
    """
    return bool(_HUB_ID.match(name)) and not Path(name).exists()


def _offline_env() -> bool:
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TUTORLIB_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """True if a TCP connection to the hub opens within ``timeout`` seconds (no connection at all if offline env vars are set).

    >>> isinstance(hub_reachable(timeout=0.01) if os.environ.get("HF_HUB_OFFLINE") else True, bool)
    True
    """
    if _offline_env():
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def require_hub(repo_id: str, offline_default: str, timeout: float = 3.0) -> None:
    """Raise :class:`HubUnavailable` naming ``offline_default`` unless the hub answers within ``timeout`` s.

    >>> import os; os.environ["HF_HUB_OFFLINE"] = "1"
    >>> try: require_hub("org/model", "the bundled MiniLM")
    ... except HubUnavailable as e: print("offline" in str(e))
    True
    """
    if not hub_reachable(timeout):
        why = "HF_HUB_OFFLINE/TUTORLIB_OFFLINE is set" if _offline_env() else f"{HUB_HOST} did not answer in {timeout:g} s"
        raise HubUnavailable(
            f"cannot fetch {repo_id!r} from the Hugging Face hub: offline ({why}). "
            f"Use {offline_default} instead (it ships with the course), or download {repo_id!r} on a "
            "connected machine and pass its local folder path."
        )


def load_hub_dataset(repo_id: str, split: str = "train", offline_default: str = "the bundled review set (tutorlib.data.load_reviews())"):
    """Load a hub dataset with the optional ``datasets`` package; offline, fail fast naming ``offline_default``.

    >>> import os; os.environ["HF_HUB_OFFLINE"] = "1"
    >>> try: load_hub_dataset("imdb")
    ... except HubUnavailable: print("use the bundled data")
    use the bundled data
    """
    require_hub(repo_id, offline_default)
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ImportError("loading hub datasets needs the 'datasets' package: pip install datasets") from exc
    return datasets.load_dataset(repo_id, split=split)

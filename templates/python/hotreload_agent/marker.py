"""hotctl's on-disk conventions: the release marker and the deploy lock."""

import json
import os
from typing import Optional

MARKER_NAME = ".hotctl-release.json"
LOCK_PATH_ENV = "HOTRELOAD_LOCK_PATH"


def read_release_id(root: str) -> Optional[str]:
    """The `id` from `<root>/.hotctl-release.json`, or None when absent/unreadable.

    Read on every check so a deploy that only touched data files (or only the
    marker) still reports its release id.
    """
    try:
        with open(os.path.join(root, MARKER_NAME), "rb") as fh:
            data = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("id") is None:
        return None
    return str(data["id"])


def default_lock_path(root: str) -> str:
    """hotctl keeps its state beside the target: `<target>/../.<basename>.hotctl/lock`."""
    target = os.path.abspath(root).rstrip(os.sep) or os.sep
    parent, base = os.path.split(target)
    return os.path.join(parent, "." + base + ".hotctl", "lock")


def resolve_lock_path(root: str, explicit: Optional[str] = None) -> str:
    return explicit or os.environ.get(LOCK_PATH_ENV) or default_lock_path(root)


def deploy_in_progress(lock_path: str) -> bool:
    return os.path.exists(lock_path)

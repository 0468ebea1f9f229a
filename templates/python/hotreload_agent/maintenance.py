"""Maintenance mode: while hotctl's maintenance marker exists, the app's routes answer 503.

The marker is `<root>/.hotctl-maintenance.json`, next to the release marker:
`{"reason": "...", "until": "2026-11-22T19:00:00Z"}` (both optional). hotctl
writes it for the window a step needs and removes it afterwards (and its
recovery removes one a killed run left). The agent's own endpoints and /health
keep answering, so hotctl can still reload and confirm.
"""

import calendar
import json
import os
import re
import time
from typing import Any, Dict, Optional, Tuple

MAINTENANCE_NAME = ".hotctl-maintenance.json"
DEFAULT_RETRY_AFTER = 30  # seconds, when `until` is absent, unreadable or past


def read_maintenance(root: str) -> Optional[Dict[str, Any]]:
    """The marker's content when it exists ({} if it is not a JSON object), else None."""
    try:
        with open(os.path.join(root, MAINTENANCE_NAME), "rb") as fh:
            raw = fh.read(65536)
    except FileNotFoundError:
        return None
    except OSError:
        return {}  # exists but unreadable: still in maintenance
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def retry_after(marker: Dict[str, Any], now: Optional[float] = None) -> int:
    """Seconds until `until` (at least 1), or DEFAULT_RETRY_AFTER."""
    until = marker.get("until")
    if not isinstance(until, str):
        return DEFAULT_RETRY_AFTER
    try:
        end = calendar.timegm(time.strptime(re.sub(r"\.\d+Z$", "Z", until), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return DEFAULT_RETRY_AFTER
    left = int(end - (time.time() if now is None else now))
    return left if left >= 1 else DEFAULT_RETRY_AFTER


def maintenance_response(root: str) -> Optional[Tuple[int, Dict[str, Any], Dict[str, str]]]:
    """503 with Retry-After while the marker exists, else None."""
    marker = read_maintenance(root)
    if marker is None:
        return None
    seconds = retry_after(marker)
    body = {"error": "maintenance", "reason": str(marker.get("reason") or "maintenance"),
            "until": marker.get("until") if isinstance(marker.get("until"), str) else None,
            "retry_after": seconds}
    return 503, body, {"Retry-After": str(seconds)}

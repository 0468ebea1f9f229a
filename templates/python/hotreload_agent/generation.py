"""A generation: one consistent set of module objects and handler instances."""

import threading
import time
from typing import Any, Dict, Optional

from .metrics import CallStats
from .snapshot import Snapshot


class Generation:
    def __init__(self, number: int, version: Optional[str], snapshot: Snapshot,
                 handlers: Dict[str, Any]) -> None:
        self.number = number
        self.version = version
        self.snapshot = snapshot  # tree contents this generation's code came from
        self.handlers = handlers
        # Filled in when the generation is superseded (that is when its module
        # objects are leaving sys.modules); used by rollback.
        self.modules: Dict[str, Any] = {}
        self.created = time.time()
        self.inflight = 0
        self.retired = False
        self.released = False
        self.stats = CallStats()
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.inflight += 1

    def exit(self) -> None:
        with self._lock:
            self.inflight -= 1
            if self.retired and self.inflight == 0:
                self._release()

    def retire(self) -> None:
        """Out of the rollback window: drop references once no call uses it."""
        with self._lock:
            self.retired = True
            if self.inflight == 0:
                self._release()

    def _release(self) -> None:
        self.handlers = {}
        self.modules = {}
        self.released = True

    def describe(self, current: bool) -> Dict[str, Any]:
        return {
            "generation": self.number,
            "version": self.version,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
            "inflight": self.inflight,
            "current": current,
        }

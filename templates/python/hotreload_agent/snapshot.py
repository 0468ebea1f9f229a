"""Content snapshots of the watched tree: {relative path: sha256}.

Stat data (size, mtime_ns, inode) is only a cache key for the hash; a change
is decided by comparing digests with `!=`, never by ordering mtimes (rsync -a
preserves old mtimes, clocks differ between hosts).
"""

import hashlib
import os
import re
import stat
import time
from typing import Dict, List, Tuple

Snapshot = Dict[str, str]

_MAINTENANCE = ".hotctl-maintenance.json"
_IGNORED_DIRS = {"__pycache__", ".~tmp~", "node_modules"}
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", "~")
# rsync writes `.name.XXXXXX` temporaries next to the target before renaming.
_RSYNC_TEMP = re.compile(r"^\..+\.[A-Za-z0-9]{6}$")
# A file modified this recently may change again without its stat changing
# (coarse mtime granularity), so its cached hash is not trusted ("racy git").
_RACY_WINDOW_NS = 2 * 1000 * 1000 * 1000


def is_ignored_dir(name: str) -> bool:
    return name in _IGNORED_DIRS or name.startswith(".")


def is_ignored_file(name: str) -> bool:
    # hotctl's maintenance marker comes and goes during a deploy; it is not code.
    return name.endswith(_IGNORED_SUFFIXES) or bool(_RSYNC_TEMP.match(name)) or name == _MAINTENANCE



def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


class TreeScanner:
    def __init__(self, root: str) -> None:
        self.root = root
        self._cache: Dict[str, Tuple[Tuple[int, int, int], str]] = {}

    def scan(self) -> Snapshot:
        now = time.time_ns()
        result: Snapshot = {}
        cache = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not is_ignored_dir(d))
            for name in sorted(filenames):
                if is_ignored_file(name):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue  # vanished mid-scan
                if not stat.S_ISREG(st.st_mode):
                    continue
                rel = os.path.relpath(full, self.root).replace(os.sep, "/")
                key = (st.st_size, st.st_mtime_ns, st.st_ino)
                cached = self._cache.get(rel)
                if cached is not None and cached[0] == key and now - st.st_mtime_ns > _RACY_WINDOW_NS:
                    digest = cached[1]
                else:
                    try:
                        digest = sha256_file(full)
                    except OSError:
                        continue
                cache[rel] = (key, digest)
                result[rel] = digest
        self._cache = cache
        return result


def diff_snapshots(old: Snapshot, new: Snapshot) -> List[str]:
    """Paths added, removed or whose content differs."""
    return sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))

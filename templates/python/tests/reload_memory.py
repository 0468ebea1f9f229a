"""Memory probe: live copies of a reloaded module and memory growth over N reloads.

    cd templates/python && python3 -m tests.reload_memory [N] [--traced]

Each reload changes `big.py`, whose module-level list (~3.5 MB) stands in for
a real module's data; `handlers.py` imports it, so both reload every time.
Prints the live copies of `big` (gc), RSS growth, and RSS growth after glibc's
malloc_trim (memory freed by Python but not yet returned to the OS is not a
leak). --traced reports the growth of Python's live heap (tracemalloc) instead
of RSS (tracing itself costs RSS).
"""

import ctypes
import gc
import importlib
import os
import shutil
import sys
import tempfile
import tracemalloc
import types

from hotreload_agent import Agent

BIG = "DATA = list(range(100000))\nREV = {rev}\n"
HANDLERS = "from . import big\ndef rev():\n    return big.REV\n"


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def malloc_trim() -> bool:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def live_copies(name: str) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, types.ModuleType) and o.__name__ == name)


def main(n: int, traced: bool) -> None:
    tmp = tempfile.mkdtemp(prefix="hotreload-mem-")
    pkg = "memprobe"
    os.makedirs(os.path.join(tmp, pkg))

    def write(rel: str, text: str) -> None:
        with open(os.path.join(tmp, pkg, rel), "w") as fh:
            fh.write(text)

    write("__init__.py", "")
    write("big.py", BIG.format(rev=0))
    write("handlers.py", HANDLERS)
    sys.path.insert(0, tmp)
    try:
        importlib.import_module(pkg + ".handlers")
        agent = Agent(tmp, token="", poll_interval=0, keep_generations=3)
        proxy = agent.register("h", pkg + ".handlers")
        gc.collect()
        if traced:
            tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0] / 2**20 if traced else rss_mb()
        for rev in range(1, n + 1):
            write("big.py", BIG.format(rev=rev))
            status = agent.check()
            assert status["state"] == "live" and proxy.rev() == rev, status
        copies = live_copies(pkg + ".big")
        line = "reloads=%d keep_generations=%d versions=%d live copies of %s.big=%d " % (
            n, agent.keep_generations, len(agent.versions()["generations"]), pkg, copies)
        if traced:
            line += "python heap growth=%.1f MB" % (tracemalloc.get_traced_memory()[0] / 2**20 - before)
            tracemalloc.stop()
        else:
            line += "rss growth=%.1f MB" % (rss_mb() - before)
            if malloc_trim():
                line += " (%.1f MB after malloc_trim)" % (rss_mb() - before)
        print(line)
    finally:
        sys.path.remove(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 40, "--traced" in sys.argv)

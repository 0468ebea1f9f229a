"""The agent: detect changes, prepare a new generation, commit or reject it.

Prepare/commit in the spirit of Erlang code loading: the new code is compiled,
executed into fresh module objects, wired into new handler instances and
verified while the old generation keeps serving; only then is one pointer
(`self._current`) swapped. Any failure restores sys.modules exactly.

A canary check stops short of the swap: the new generation is kept beside the
current one (`self._canary`) and a share of proxied calls starts on it, until
promote (the swap) or abort (sys.modules put back, the canary released once its
in-flight calls end).
"""

import fnmatch
import gc
import hashlib
import importlib
import logging
import os
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import depgraph
from .auth import TOKEN_ENV, TOKEN_FILE_ENV, TokenSource, TokenState, bearer_matches, public_error, summarize
from .generation import Generation
from .loader import LoadTransaction, Unit
from .maintenance import read_maintenance
from .marker import deploy_in_progress, read_release_id, resolve_lock_path
from .proxy import HandlerProxy
from .snapshot import Snapshot, TreeScanner, diff_snapshots, sha256_file

log = logging.getLogger("hotreload_agent")

POLL_ENV = "HOTRELOAD_POLL_INTERVAL"

STATES = ("idle", "loading", "live", "rejected", "rolled_back", "restart_required", "canary",
          "canary_aborted")

# Files whose change cannot be applied to a running interpreter.
_RESTART_PATTERNS = ("requirements*.txt", "pyproject.toml", "setup.py", "setup.cfg",
                     "Pipfile", "Pipfile.lock", "*.so", "*.pyd")
_AGENT_DIR = os.path.dirname(os.path.realpath(__file__))


class ReloadFailed(Exception):
    def __init__(self, error: Dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.error = error


class TreeNotConsistent(Exception):
    def __init__(self, mismatched: List[str]) -> None:
        super().__init__("tree not yet consistent")
        self.mismatched = mismatched


class NoPreviousGeneration(Exception):
    pass


class NoCanary(Exception):
    pass


def _error(exc: BaseException, where: str = "") -> Dict[str, Any]:
    """`message` is a one-line summary (shown to anyone); `traceback` is for
    callers with the token only."""
    message = str(exc) or type(exc).__name__
    return {
        "type": type(exc).__name__,
        "message": (where + ": " + message) if where else message,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def _collect_released(generations: List[Generation]) -> None:
    """A released generation is a web of cycles (functions <-> module dicts)
    that only a full collection frees. Collect now, before the next reload
    allocates: otherwise its memory is reused piecemeal and RSS creeps up
    (~1 MB per reload in tests/reload_memory.py). Once per deploy, on the
    thread running the check. A generation released later, when its last
    in-flight call ends, is left to the interpreter's own collections."""
    if any(g.released for g in generations):
        gc.collect()


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Agent:
    def __init__(self, root: str, *, entry_file: Optional[str] = None,
                 restart_patterns: Sequence[str] = (), keep_generations: int = 3,
                 token: Optional[str] = None, token_env: str = TOKEN_ENV,
                 token_file: Optional[str] = None, token_file_env: str = TOKEN_FILE_ENV,
                 lock_path: Optional[str] = None, poll_interval: Optional[float] = None,
                 history_size: int = 10) -> None:
        """root: the deployed tree (hotctl's target). entry_file: the service's
        entry script (a change to it needs a restart). keep_generations: how
        many generations stay loaded for rollback (current included, >= 2).
        token: the bearer token for check/rollback over HTTP; when None it is
        $HOTRELOAD_TOKEN, else read from the file token_file or
        $HOTRELOAD_TOKEN_FILE (mode 0600), on every request."""
        self.root = os.path.realpath(root)
        self.entry_file = os.path.realpath(entry_file) if entry_file else None
        self.restart_patterns = tuple(_RESTART_PATTERNS) + tuple(restart_patterns)
        self.keep_generations = max(2, keep_generations)
        self.lock_path = resolve_lock_path(self.root, lock_path)
        self._tokens = TokenSource(token, token_env, token_file, token_file_env)
        self._token_problem: Optional[str] = None
        self._scanner = TreeScanner(self.root)
        self._reload_lock = threading.RLock()  # one check/rollback at a time
        self._state_lock = threading.Lock()  # consistent status reads
        self._handler_specs: Dict[str, Tuple[str, Optional[str]]] = {}
        self._verifiers: List[Callable[[Generation], Any]] = []
        self._current = Generation(0, read_release_id(self.root), self._scanner.scan(), {})
        self._generations: List[Generation] = [self._current]
        self._next_number = 1
        self._state = "idle"
        self._changed: List[str] = []
        self._order: List[str] = []
        self._last_error: Optional[Dict[str, Any]] = None
        self._history: "deque[Dict[str, Any]]" = deque(maxlen=history_size)
        self._held: Optional[Snapshot] = None  # disk contents at API rollback time
        self._failed_snapshot: Optional[Snapshot] = None
        self._poll_stop: Optional[threading.Event] = None
        self._canary: Optional[Generation] = None
        self._canary_percent = 0
        self._canary_credit = 0  # routing: every call adds the percent; 100 means "to the canary"
        self._route_lock = threading.Lock()
        if poll_interval is None:
            try:
                poll_interval = float(os.environ.get(POLL_ENV, "0") or 0)
            except ValueError:
                poll_interval = 0.0
        if poll_interval and poll_interval > 0:
            self.start_polling(poll_interval)

    # ----- public API ---------------------------------------------------------

    def register(self, name: str, target: str) -> HandlerProxy:
        """target: "pkg.mod" (the module is the handler) or "pkg.mod:attr" (a
        class is instantiated with no arguments per generation; anything else
        is used as is). Returns a proxy that always uses the live generation."""
        module, _, attr = target.partition(":")
        with self._reload_lock:
            self._handler_specs[name] = (module, attr or None)
            gen = self._current
            gen.handlers[name] = self._build_handler(name, old=None)
        return HandlerProxy(self, name)

    def add_verify(self, fn: Callable[[Generation], Any]) -> None:
        """fn(new_generation) runs before commit; raising rejects the reload.
        `generation.handlers[name]` holds the new handler instances."""
        self._verifiers.append(fn)

    def current_generation(self) -> Generation:
        return self._current

    def generations(self) -> List[Generation]:
        return list(self._generations)

    def route_generation(self) -> Generation:
        """The generation a new proxied call starts on: the canary for `percent`
        of calls (exactly, spread evenly: 10 % is every tenth call), else current."""
        canary = self._canary
        if canary is None:
            return self._current
        with self._route_lock:
            if self._canary is not canary:
                return self._current
            self._canary_credit += self._canary_percent
            if self._canary_credit >= 100:
                self._canary_credit -= 100
                return canary
        return self._current

    def maintenance(self) -> Optional[Dict[str, Any]]:
        """hotctl's maintenance marker ({reason, until}) while it exists, else None."""
        return read_maintenance(self.root)

    def handler_for(self, gen: Generation, name: str) -> Any:
        handler = gen.handlers.get(name)
        if handler is None:
            if name not in self._handler_specs:
                raise KeyError("no handler registered as %r" % name)
            handler = gen.handlers.setdefault(name, self._build_handler(name, old=None))
        return handler

    def token_state(self) -> TokenState:
        """The expected token, or why there is none usable (logged once per change)."""
        state = self._tokens.state()
        if state.problem != self._token_problem:
            self._token_problem = state.problem
            if state.problem:
                log.error("hot-reload token: %s; check and rollback are refused", state.problem)
        return state

    def expected_token(self) -> str:
        return self.token_state().token or ""

    def no_token_help(self) -> str:
        return self._tokens.how_to_set()

    def authorized(self, authorization_header: Optional[str], open_without_token: bool = False) -> bool:
        """Bearer token check. Without a token only `open_without_token` (an
        admin server bound to loopback) lets a call through; a token that is
        configured but unusable (e.g. a token file others can read) lets none."""
        state = self.token_state()
        if state.token:
            return bearer_matches(authorization_header, state.token)
        return open_without_token and state.problem is None

    def status(self, full: bool = True) -> Dict[str, Any]:
        """full=False (a caller without the token): last_error without traceback."""
        with self._state_lock:
            gen = self._current
            return {
                "state": self._state,
                "version": gen.version,
                "generation": gen.number,
                "changed_files": list(self._changed),
                "reload_order": list(self._order),
                "last_error": self._last_error if full else public_error(self._last_error),
                "history": list(self._history),
                "canary": self._canary_info(),
            }

    def metrics(self) -> Dict[str, Any]:
        """Per-generation calls, errors, error_rate, p50_ms, p95_ms (see metrics.py)."""
        with self._state_lock:
            current, canary = self._current, self._canary
            gens = list(self._generations) + ([canary] if canary is not None else [])
            percent = self._canary_percent
        rows = []
        for g in gens:
            role = "canary" if g is canary else "current" if g is current else "previous"
            row = {"generation": g.number, "version": g.version, "role": role,
                   "percent": percent if g is canary else (100 - percent if g is current else 0)}
            row.update(g.stats.snapshot())
            rows.append(row)
        return {"generations": rows, "canary": self._canary_info()}

    def _canary_info(self) -> Optional[Dict[str, Any]]:
        canary = self._canary
        if canary is None:
            return None
        return {"generation": canary.number, "version": canary.version, "percent": self._canary_percent}

    def versions(self) -> Dict[str, Any]:
        with self._state_lock:
            current = self._current
            return {
                "current": current.number,
                "version": current.version,
                "generations": [g.describe(g is current) for g in self._generations],
            }

    def health(self) -> Dict[str, Any]:
        return {"status": "ok", "pid": os.getpid(), "state": self._state,
                "generation": self._current.number, "version": self._current.version}

    def check(self, expect: Optional[Dict[str, str]] = None, automatic: bool = False,
              canary: Optional[int] = None) -> Dict[str, Any]:
        """Bring the running code in line with the tree. Returns status().
        Raises TreeNotConsistent when `expect` ({relpath: sha256}) does not match.
        canary (1..100): load the new generation as a canary that gets that share
        of proxied calls; current stays current until promote(). Against the tree
        a canary was loaded from, a canary check only sets the share and a plain
        check promotes it; against any other tree the canary is dropped first."""
        with self._reload_lock:
            started = time.monotonic()
            scan = self._scanner.scan()
            if expect:
                mismatched = self._mismatched(scan, expect)
                if mismatched:
                    raise TreeNotConsistent(mismatched)
            if self._canary is not None:
                if automatic:
                    return self.status()  # a canary is decided by whoever started it
                if scan == self._canary.snapshot:
                    if canary is None:
                        self._promote(started)
                    else:
                        with self._state_lock:
                            self._canary_percent = canary
                    return self.status()
                self._drop_canary(started)  # e.g. hotctl put the old release back
            if self._held is not None:
                if scan == self._held:
                    return self.status()  # API rollback sticks until the tree changes
                self._held = None
            gen = self._current
            changed = diff_snapshots(gen.snapshot, scan)
            if not changed:
                with self._state_lock:
                    gen.version = read_release_id(self.root)
                    if self._state in ("rejected", "restart_required", "canary_aborted"):
                        # The tree was put back to what is running.
                        self._state = "live" if gen.number else "idle"
                        self._last_error = None
                return self.status()
            if automatic and scan == self._failed_snapshot:
                return self.status()  # same broken tree: do not retry every poll
            self._apply(gen, scan, changed, started, canary)
            return self.status()

    def promote(self) -> Dict[str, Any]:
        """The canary becomes the current generation (all calls)."""
        with self._reload_lock:
            if self._canary is None:
                raise NoCanary("no canary generation to promote")
            self._promote(time.monotonic())
            return self.status()

    def abort(self) -> Dict[str, Any]:
        """Drop the canary: new calls stay on current; calls already running on
        the canary finish there, then it is released."""
        with self._reload_lock:
            if self._canary is None:
                raise NoCanary("no canary generation to abort")
            self._drop_canary(time.monotonic())
            return self.status()

    def rollback(self) -> Dict[str, Any]:
        """Return to the previous retained generation (modules and handlers)."""
        with self._reload_lock:
            started = time.monotonic()
            if self._canary is not None:
                self._drop_canary(started)  # rolling back a canary = dropping it
                return self.status()
            idx = self._generations.index(self._current)
            if idx == 0:
                raise NoPreviousGeneration("no previous generation to roll back to")
            bad, target = self._current, self._generations[idx - 1]
            owned_now = self._owned_modules()
            for name in owned_now:
                if name not in target.modules:
                    sys.modules.pop(name, None)
                    self._set_parent_attr(name, None)
            for name in sorted(target.modules):
                sys.modules[name] = target.modules[name]
                self._set_parent_attr(name, target.modules[name])
            for name in self._handler_specs:
                self.handler_for(target, name)
            with self._state_lock:
                self._current = target
                self._generations.remove(bad)
                self._state = "rolled_back"
                self._last_error = None
                self._changed, self._order = [], []
                self._record(target, "rolled_back", [], started)
            bad.retire()
            _collect_released([bad])
            self._held = self._scanner.scan()
            self._failed_snapshot = None
            return self.status()

    def start_polling(self, interval: float = 5.0) -> None:
        """Periodic check in a daemon thread; skipped while hotctl's lock exists."""
        if self._poll_stop is not None:
            return
        stop = self._poll_stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                if deploy_in_progress(self.lock_path):
                    continue  # a sync is half done; the tree is not consistent yet
                try:
                    self.check(automatic=True)
                except Exception:
                    log.exception("hot-reload poll failed")

        threading.Thread(target=loop, name="hotreload-poll", daemon=True).start()

    def stop_polling(self) -> None:
        if self._poll_stop is not None:
            self._poll_stop.set()
            self._poll_stop = None

    # ----- reload -------------------------------------------------------------

    def _apply(self, gen: Generation, scan: Snapshot, changed: List[str], started: float,
               canary: Optional[int] = None) -> None:
        version = read_release_id(self.root)
        restart = [p for p in changed if self._needs_restart(p)]
        if restart:
            err = {"type": "RestartRequired",
                   "message": "changes need a process restart: " + ", ".join(restart),
                   "traceback": None}
            self._finish_failed(gen, "restart_required", err, scan, changed, [], started)
            return
        owned = self._owned_modules()
        by_path: Dict[str, List[str]] = {}
        for name, module in owned.items():
            by_path.setdefault(self._rel(module.__file__), []).append(name)
        try:
            units = self._compile_changed(scan, changed, by_path)
            graph, sources = self._graph(owned)
            changed_modules = [n for p in changed if p in scan for n in by_path.get(p, [])]
            members = depgraph.dependents_closure(graph, changed_modules)
            steps = depgraph.reload_steps(graph, members)
            for name in members:
                if name not in units:
                    path = os.path.realpath(owned[name].__file__)
                    units[name] = Unit(path, compile(sources[name], path, "exec", dont_inherit=True),
                                       os.path.basename(path) == "__init__.py")
        except ReloadFailed as exc:
            self._finish_failed(gen, "rejected", exc.error, scan, changed, [], started)
            return
        if not members:
            # Data files, the marker, or .py files nothing has imported yet.
            with self._state_lock:
                gen.snapshot = scan
                gen.version = version
                self._state = "live"
                self._changed, self._order, self._last_error = changed, [], None
                self._failed_snapshot = None
                self._record(gen, "live", changed, started)
            return
        planned = [n for step in steps for n in step]
        with self._state_lock:
            self._state = "loading"
        gen.modules = owned  # what the outgoing generation consists of
        txn = LoadTransaction(units, steps, self._is_owned)
        try:
            order = txn.run()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._finish_failed(gen, "rejected", _error(exc), scan, changed, planned, started)
            return
        try:
            new = Generation(self._next_number, version, scan, {})
            for name in self._handler_specs:
                module_name = self._handler_specs[name][0]
                old = gen.handlers.get(name)
                if module_name in members or old is None:
                    new.handlers[name] = self._build_handler(name, old=old)
                else:
                    new.handlers[name] = old  # its code did not change: keep its state
            for verify in self._verifiers:
                verify(new)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            txn.undo()
            self._finish_failed(gen, "rejected", _error(exc), scan, changed, planned, started)
            return
        if canary is not None:
            with self._state_lock:
                self._canary, self._canary_percent, self._canary_credit = new, canary, 0
                self._next_number += 1
                self._state = "canary"
                self._changed, self._order, self._last_error = changed, order, None
                self._failed_snapshot = None
                self._record(new, "canary", changed, started)
            txn.close()  # current's modules live on in gen.modules until promote or abort
            log.info("hot reload generation %d is a canary at %d%%", new.number, canary)
            return
        with self._state_lock:
            self._current = new  # the commit: one reference swap
            self._next_number += 1
            retired = self._commit_locked(new, changed, order, started)
        txn.close()  # the outgoing modules now live only in gen.modules (rollback window)
        self._retire(retired)
        log.info("hot reload generation %d live: %s", new.number, ", ".join(order))

    def _commit_locked(self, new: Generation, changed: List[str], order: List[str],
                       started: float) -> List[Generation]:
        """Bookkeeping of a swap to `new` (under _state_lock). Returns what left the window."""
        self._generations.append(new)
        self._state = "live"
        self._changed, self._order, self._last_error = changed, order, None
        self._failed_snapshot = None
        self._record(new, "live", changed, started)
        retired = self._generations[:-self.keep_generations]
        del self._generations[:-self.keep_generations]
        return retired

    @staticmethod
    def _retire(retired: List[Generation]) -> None:
        for old_gen in retired:
            old_gen.retire()
        _collect_released(retired)

    def _promote(self, started: float) -> None:
        new = self._canary
        assert new is not None
        with self._state_lock:
            self._current = new
            self._canary, self._canary_percent = None, 0
            retired = self._commit_locked(new, list(self._changed), list(self._order), started)
        self._retire(retired)
        log.info("hot reload canary generation %d promoted", new.number)

    def _drop_canary(self, started: float) -> None:
        """Put current's modules back into sys.modules and release the canary."""
        gen, bad = self._current, self._canary
        assert bad is not None
        for name in self._owned_modules():
            if name not in gen.modules:
                sys.modules.pop(name, None)
                self._set_parent_attr(name, None)
        for name in sorted(gen.modules):
            sys.modules[name] = gen.modules[name]
            self._set_parent_attr(name, gen.modules[name])
        with self._state_lock:
            self._canary, self._canary_percent = None, 0
            gen.modules = {}  # current again: its modules are the live ones
            self._state = "canary_aborted"
            self._changed, self._order = [], []
            self._record(bad, "canary_aborted", [], started)
        bad.retire()
        _collect_released([bad])
        log.info("hot reload canary generation %d dropped", bad.number)

    def _finish_failed(self, gen: Generation, state: str, err: Dict[str, Any], scan: Snapshot,
                       changed: List[str], order: List[str], started: float) -> None:
        err = dict(err, message=summarize(err["message"], self.root))
        with self._state_lock:
            self._state = state
            self._changed, self._order, self._last_error = changed, order, err
            self._failed_snapshot = scan
            self._record(gen, state, changed, started, err)
        log.warning("hot reload %s: %s", state, err["message"])

    def _record(self, gen: Generation, state: str, changed: List[str], started: float,
                err: Optional[Dict[str, Any]] = None) -> None:
        entry = {"generation": gen.number, "version": gen.version, "state": state,
                 "time": _now_iso(), "changed_files": list(changed),
                 "duration_ms": round((time.monotonic() - started) * 1000, 3)}
        if err is not None:
            entry["error"] = {"type": err["type"], "message": err["message"]}
        self._history.append(entry)

    def _compile_changed(self, scan: Snapshot, changed: List[str],
                         by_path: Dict[str, List[str]]) -> Dict[str, Unit]:
        """compile() every changed .py file (ast.parse alone accepts e.g. a
        module-level `return`). Returns finder units keyed by module name."""
        units: Dict[str, Unit] = {}
        for rel in changed:
            if rel not in scan or not rel.endswith(".py"):
                continue
            path = os.path.join(self.root, rel)
            source = self._read_exact(path, rel, scan[rel])
            try:
                code = compile(source, path, "exec", dont_inherit=True)
            except (SyntaxError, ValueError) as exc:
                raise ReloadFailed(_error(exc, rel))
            is_pkg = os.path.basename(rel) == "__init__.py"
            for name in by_path.get(rel) or [self._module_name_for(rel)]:
                if name:
                    units[name] = Unit(path, code, is_pkg)
        return units

    def _read_exact(self, path: str, rel: str, digest: str) -> bytes:
        with open(path, "rb") as fh:
            source = fh.read()
        if hashlib.sha256(source).hexdigest() != digest:
            raise ReloadFailed({"type": "TreeChanged", "traceback": None,
                                "message": rel + ": changed while checking; check again"})
        return source

    def _graph(self, owned: Dict[str, Any]):
        known = set(owned)
        graph: Dict[str, set] = {}
        sources: Dict[str, bytes] = {}
        for name, module in owned.items():
            path = os.path.realpath(module.__file__)
            try:
                with open(path, "rb") as fh:
                    sources[name] = fh.read()
                graph[name] = depgraph.imports_of(sources[name], name,
                                                  os.path.basename(path) == "__init__.py", known)
            except OSError:
                graph[name] = set()  # file deleted: nothing to reload it from
            except (SyntaxError, ValueError) as exc:
                raise ReloadFailed(_error(exc, self._rel(path)))
        return graph, sources

    def _module_name_for(self, rel: str) -> Optional[str]:
        """Name a not-yet-imported file would get (root is the import root)."""
        parts = rel[:-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not parts or not all(p.isidentifier() for p in parts):
            return None
        return ".".join(parts)

    def _needs_restart(self, rel: str) -> bool:
        name = os.path.basename(rel)
        if any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in self.restart_patterns):
            return True
        path = os.path.realpath(os.path.join(self.root, rel))
        if path.startswith(_AGENT_DIR + os.sep) or path == self.entry_file:
            return True
        main = sys.modules.get("__main__")
        main_file = getattr(main, "__file__", None)
        return bool(main_file) and os.path.realpath(main_file) == path

    def _mismatched(self, scan: Snapshot, expect: Dict[str, str]) -> List[str]:
        bad = []
        for rel, digest in sorted(expect.items()):
            current = scan.get(rel)
            if current is None:
                path = os.path.realpath(os.path.join(self.root, rel))
                if path.startswith(self.root + os.sep) and os.path.isfile(path):
                    current = sha256_file(path)  # e.g. a file the scan ignores
            if current is None or not isinstance(digest, str) or current != digest.lower():
                bad.append(rel)
        return bad

    # ----- module bookkeeping -------------------------------------------------

    def _rel(self, path: str) -> str:
        return os.path.relpath(os.path.realpath(path), self.root).replace(os.sep, "/")

    def _is_owned(self, module: Any) -> bool:
        try:
            path = getattr(module, "__file__", None)
        except Exception:
            return False
        if not path or not isinstance(path, str) or not path.endswith(".py"):
            return False
        path = os.path.realpath(path)
        return path.startswith(self.root + os.sep) and not path.startswith(_AGENT_DIR + os.sep)

    def _owned_modules(self) -> Dict[str, Any]:
        """Loaded modules whose source lives in the watched tree (never __main__
        or the agent itself)."""
        return {name: module for name, module in list(sys.modules.items())
                if name != "__main__" and module is not None and self._is_owned(module)}

    def _set_parent_attr(self, name: str, module: Any) -> None:
        parent_name, _, child = name.rpartition(".")
        parent = sys.modules.get(parent_name) if parent_name else None
        if parent is None:
            return
        if module is None:
            parent.__dict__.pop(child, None)
        else:
            setattr(parent, child, module)

    def _build_handler(self, name: str, old: Any) -> Any:
        module_name, attr = self._handler_specs[name]
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        handler = module if attr is None else getattr(module, attr)
        if isinstance(handler, type):
            handler = handler()
            hook = getattr(handler, "__hot_reload__", None)
            if old is not None and callable(hook):
                hook(old)  # instance-level state carry-over
        return handler

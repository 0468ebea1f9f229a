"""Side-by-side loading of new module objects, with an exact undo.

Each reloaded module is executed into a *fresh* module object (never into the
old module's dict, which is what importlib.reload does). The new objects are
placed in sys.modules step by step so dependants executed later import them;
if anything fails, every sys.modules entry and parent-package attribute the
transaction touched is put back, so the old generation keeps serving.

A transaction holds the modules it replaced. A new module keeps its loader
(`__spec__.loader`) for as long as it lives, so the loader lets go of the
transaction once the module has executed, and the transaction lets go of the
replaced modules once it is committed or undone (close()). Otherwise every
generation ever loaded would stay reachable through the one after it.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from types import CodeType, ModuleType
from typing import Any, Dict, List, NamedTuple, Optional, Set, Tuple

_MISSING = object()


class Unit(NamedTuple):
    path: str
    code: CodeType  # compiled from exactly the bytes that were hashed/validated
    is_package: bool


class _HotLoader(importlib.machinery.SourceFileLoader):
    """Executes pre-compiled code. Bypasses __pycache__: rsync -a keeps old
    mtimes, so a stale .pyc could otherwise be taken for the new source."""

    def __init__(self, fullname: str, path: str, unit: Unit, txn: "LoadTransaction") -> None:
        super().__init__(fullname, path)
        self._code = unit.code
        self._txn: Optional[LoadTransaction] = txn

    def get_code(self, fullname: str) -> CodeType:
        return self._code

    def exec_module(self, module: ModuleType) -> None:
        # The module keeps its loader for life: holding the transaction here
        # would keep the module it replaced (and that one's predecessor...) alive.
        txn, self._txn = self._txn, None
        if txn is None:  # executed again outside a reload (e.g. importlib.reload)
            super().exec_module(module)
            return
        txn.before_exec(module)
        super().exec_module(module)
        old = txn.old_module(module.__name__)
        hook = module.__dict__.get("__hot_reload__")
        if old is not None and callable(hook):
            hook(old)  # lets the new module carry state over from the old one


class _HotFinder(importlib.abc.MetaPathFinder):
    def __init__(self, units: Dict[str, Unit], txn: "LoadTransaction") -> None:
        self._units = units
        self._txn = txn

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        unit = self._units.get(fullname)
        if unit is None:
            return None
        loader = _HotLoader(fullname, unit.path, unit, self._txn)
        locations = [os.path.dirname(unit.path)] if unit.is_package else None
        return importlib.util.spec_from_file_location(
            fullname, unit.path, loader=loader, submodule_search_locations=locations)


class LoadTransaction:
    def __init__(self, units: Dict[str, Unit], steps: List[List[str]], owned) -> None:
        """units: sources the finder may serve (reload set + new files).
        steps: reload set in dependency order. owned(module) -> bool: module
        belongs to the watched tree (new ones are removed again on undo)."""
        self._units = units
        self._steps = steps
        self._owned = owned
        self._saved: Dict[str, Any] = {}  # name -> old sys.modules entry or _MISSING
        self._parent_attrs: List[Tuple[ModuleType, str, Any]] = []
        self._attr_seen: Set[Tuple[int, str]] = set()
        self._before: Set[str] = set()
        self._closed = False

    def old_module(self, name: str):
        old = self._saved.get(name, _MISSING)
        return None if old is _MISSING else old

    def _remember_parent_attr(self, name: str) -> None:
        parent_name, _, child = name.rpartition(".")
        parent = sys.modules.get(parent_name) if parent_name else None
        if parent is None or (id(parent), child) in self._attr_seen:
            return
        self._attr_seen.add((id(parent), child))
        self._parent_attrs.append((parent, child, parent.__dict__.get(child, _MISSING)))

    def _detach(self, name: str) -> None:
        self._saved[name] = sys.modules.pop(name, _MISSING)
        self._remember_parent_attr(name)
        parent_name, _, child = name.rpartition(".")
        parent = sys.modules.get(parent_name) if parent_name else None
        # Otherwise `from pkg import mod` would find the old attribute on the
        # package and never import the new module.
        if parent is not None and child in parent.__dict__:
            delattr(parent, child)

    def before_exec(self, module: ModuleType) -> None:
        name = module.__name__
        self._remember_parent_attr(name)
        if module.__spec__ is not None and module.__spec__.submodule_search_locations is not None:
            # A fresh package object starts without its submodule attributes;
            # unchanged submodules stay loaded, so attach them.
            prefix = name + "."
            for sub_name, sub in list(sys.modules.items()):
                rest = sub_name[len(prefix):] if sub_name.startswith(prefix) else ""
                if rest and "." not in rest and sub is not None:
                    setattr(module, rest, sub)

    def run(self) -> List[str]:
        """Load every step; returns the flattened reload order. Raises on failure
        (after undo())."""
        self._before = set(sys.modules)
        finder = _HotFinder(self._units, self)
        sys.meta_path.insert(0, finder)
        order: List[str] = []
        try:
            for step in self._steps:
                for name in step:
                    self._detach(name)
                for name in step:
                    importlib.import_module(name)
                    order.append(name)
        except BaseException:
            self.undo()
            raise
        finally:
            sys.meta_path.remove(finder)
        return order

    def close(self) -> None:
        """Forget the replaced modules and parent attributes (after commit or
        undo): only the generations the agent keeps may hold them."""
        self._closed = True
        self._units = {}
        self._steps = []
        self._saved = {}
        self._parent_attrs = []
        self._attr_seen = set()
        self._before = set()

    def undo(self) -> None:
        """Put back every entry the transaction changed, then close()."""
        if self._closed:
            return  # already committed or undone: nothing of it is left to put back
        for name in set(sys.modules) - self._before:
            module = sys.modules.get(name)
            if name in self._units or (module is not None and self._owned(module)):
                sys.modules.pop(name, None)
        for name, old in self._saved.items():
            if old is _MISSING:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
        for parent, child, value in reversed(self._parent_attrs):
            if value is _MISSING:
                parent.__dict__.pop(child, None)
            else:
                setattr(parent, child, value)
        self.close()

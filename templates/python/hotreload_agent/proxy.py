"""Stable handle to a hot-reloadable handler (seed 001's DynamicServicer).

Every attribute access resolves against the *current* generation; a call is
pinned to the generation it started on (and counted as in flight there), so a
reload that commits mid-call does not change the code under a running request.
While a canary generation is loaded, the agent picks which generation a new call
starts on (`route_generation`). Each call is timed and counted on its generation.
"""

import contextlib
import functools
import inspect
import time
from typing import Any, Iterator


class HandlerProxy:
    def __init__(self, agent: Any, name: str) -> None:
        object.__setattr__(self, "_agent", agent)
        object.__setattr__(self, "_name", name)

    def _acquire(self):
        agent = object.__getattribute__(self, "_agent")
        name = object.__getattribute__(self, "_name")
        while True:
            gen = agent.route_generation()
            gen.enter()
            if not gen.released:
                try:
                    return gen, agent.handler_for(gen, name)
                except BaseException:
                    gen.exit()
                    raise
            gen.exit()  # superseded and released between read and enter: retry

    @contextlib.contextmanager
    def pin(self) -> Iterator[Any]:
        """`with proxy.pin() as h:` keeps several calls on one generation."""
        gen, handler = self._acquire()
        started, failed = time.monotonic(), True
        try:
            yield handler
            failed = False
        finally:
            gen.stats.record(time.monotonic() - started, failed)
            gen.exit()

    def __getattr__(self, attr: str) -> Any:
        gen, handler = self._acquire()
        try:
            value = getattr(handler, attr)
        finally:
            gen.exit()
        if callable(value) and not isinstance(value, type):
            return _pinned(gen, value)
        return value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        gen, handler = self._acquire()
        try:
            return _pinned(gen, handler)(*args, **kwargs)
        finally:
            gen.exit()

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError("set state on the handler via a method, not through the proxy")

    def __repr__(self) -> str:
        return "<HandlerProxy %s>" % object.__getattribute__(self, "_name")


def _pinned(gen: Any, fn: Any) -> Any:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        gen.enter()
        started = time.monotonic()
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            gen.stats.record(time.monotonic() - started, True)
            gen.exit()
            raise
        if inspect.isawaitable(result):
            return _finish_async(result, gen, started)  # in flight until awaited to completion
        gen.stats.record(time.monotonic() - started, False)
        gen.exit()
        return result

    return call


async def _finish_async(awaitable: Any, gen: Any, started: float) -> Any:
    failed = True
    try:
        result = await awaitable
        failed = False
        return result
    finally:
        gen.stats.record(time.monotonic() - started, failed)
        gen.exit()

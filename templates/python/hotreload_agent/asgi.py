"""ASGI middleware: serves the agent endpoints for `http` scopes.

As with WSGI, check and rollback always need the token on the app's port.
"""

import asyncio
from typing import Any, Callable

from .agent import Agent
from .endpoints import dispatch, handles, maintenance, render


class HotReloadASGI:
    def __init__(self, app: Callable, agent: Agent, include_health: bool = True) -> None:
        self.app = app
        self.agent = agent
        self.include_health = include_health

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        path = scope.get("path", "")
        if scope.get("type") != "http" or not handles(path, self.include_health):
            closed = None if scope.get("type") != "http" or path == "/health" else maintenance(self.agent, path)
            if closed is None:
                await self.app(scope, receive, send)
            else:
                await _send(send, scope, *closed)
            return
        body = b""
        while True:
            message = await receive()
            if message.get("type") == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        authorization = accept = None
        for key, value in scope.get("headers", []):
            if key.lower() == b"authorization":
                authorization = value.decode("latin-1")
            elif key.lower() == b"accept":
                accept = value.decode("latin-1")
        # A reload is blocking work (disk, exec of modules): keep it off the loop.
        loop = asyncio.get_running_loop()
        query = scope.get("query_string", b"").decode("latin-1")
        status, payload, headers = await loop.run_in_executor(
            None, lambda: dispatch(self.agent, scope.get("method", "GET"), scope["path"],
                                   authorization, body, query=query, accept=accept))
        await _send(send, scope, status, payload, headers)


async def _send(send: Callable, scope: dict, status: int, payload: Any, headers: dict) -> None:
    data, header_list = render(payload, headers)
    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in header_list]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else data})


def wrap_asgi(app: Any, agent: Agent, include_health: bool = True) -> HotReloadASGI:
    return HotReloadASGI(app, agent, include_health)

"""ASGI middleware: serves the agent endpoints for `http` scopes.

As with WSGI, check and rollback always need the token on the app's port.
"""

import asyncio
from typing import Any, Callable

from .agent import Agent
from .endpoints import dispatch, encode, handles


class HotReloadASGI:
    def __init__(self, app: Callable, agent: Agent, include_health: bool = True) -> None:
        self.app = app
        self.agent = agent
        self.include_health = include_health

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http" or not handles(scope.get("path", ""), self.include_health):
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            if message.get("type") == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        authorization = None
        for key, value in scope.get("headers", []):
            if key.lower() == b"authorization":
                authorization = value.decode("latin-1")
        # A reload is blocking work (disk, exec of modules): keep it off the loop.
        loop = asyncio.get_running_loop()
        status, payload, headers = await loop.run_in_executor(
            None, dispatch, self.agent, scope.get("method", "GET"), scope["path"],
            authorization, body)
        data = encode(payload)
        raw_headers = [(b"content-type", b"application/json"),
                       (b"content-length", str(len(data)).encode())]
        raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else data})


def wrap_asgi(app: Any, agent: Agent, include_health: bool = True) -> HotReloadASGI:
    return HotReloadASGI(app, agent, include_health)

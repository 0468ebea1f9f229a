"""WSGI middleware: serves the agent endpoints, passes everything else on.

The app's port may be public or behind a proxy: check and rollback always
need the token here (without one they are refused with 403).
"""

from typing import Any, Callable, Iterable

from .agent import Agent
from .endpoints import dispatch, handles, maintenance, render


class HotReloadWSGI:
    def __init__(self, app: Callable, agent: Agent, include_health: bool = True) -> None:
        """include_health=False leaves GET /health to the wrapped app."""
        self.app = app
        self.agent = agent
        self.include_health = include_health

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if not handles(path, self.include_health):
            closed = None if path == "/health" else maintenance(self.agent, path)
            if closed is None:
                return self.app(environ, start_response)
            status, payload, headers = closed
            data, header_list = render(payload, headers)
            start_response(_status_line(status), header_list)
            return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else data]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        status, payload, headers = dispatch(
            self.agent, environ.get("REQUEST_METHOD", "GET"), path,
            environ.get("HTTP_AUTHORIZATION"), body, query=environ.get("QUERY_STRING", ""),
            accept=environ.get("HTTP_ACCEPT"))
        data, header_list = render(payload, headers)
        start_response(_status_line(status), header_list)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else data]


def _status_line(code: int) -> str:
    from http import HTTPStatus
    return "%d %s" % (code, HTTPStatus(code).phrase)


def wrap_wsgi(app: Any, agent: Agent, include_health: bool = True) -> HotReloadWSGI:
    return HotReloadWSGI(app, agent, include_health)

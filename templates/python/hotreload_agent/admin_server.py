"""Standalone admin server: the agent endpoints on their own port, in a daemon thread."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .agent import Agent
from .auth import is_loopback
from .endpoints import dispatch, handles, render


class AdminServer:
    def __init__(self, agent: Agent, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bound to a loopback address, check and rollback work without a token
        (only this host can connect; do not put a reverse proxy in front of
        this port). Bound anywhere else, they need the token."""
        handler = type("HotReloadAdminHandler", (_Handler,), {"agent": agent})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        handler.open_without_token = is_loopback(self.host)
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        name="hotreload-admin", daemon=True)

    @property
    def url(self) -> str:
        return "http://%s:%d" % (self.host, self.port)

    def start(self) -> "AdminServer":
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


def start_admin_server(agent: Agent, host: str = "127.0.0.1", port: int = 0) -> AdminServer:
    """Listen on host:port (0 = ephemeral; see .port) and serve in a daemon thread."""
    return AdminServer(agent, host, port).start()


class _Handler(BaseHTTPRequestHandler):
    agent: Any = None
    open_without_token = False
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if not handles(path):
            status, payload, headers = 404, {"error": "not found"}, {}
        else:
            status, payload, headers = dispatch(self.agent, self.command, path,
                                                self.headers.get("Authorization"), body,
                                                self.open_without_token, query=query,
                                                accept=self.headers.get("Accept"))
        data, header_list = render(payload, headers)
        self.send_response(status)
        for key, value in header_list:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the host service owns logging

"""Shared fixture: a throwaway package in a temp dir, imported for real."""

import http.client
import json
import os
import shutil
import sys
import tempfile
import textwrap
import threading
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from hotreload_agent import Agent, start_admin_server


class AgentTestCase(unittest.TestCase):
    """Builds <tmp>/root/<pkg>/... with a unique package name per test."""

    files = {}  # relative path (with {pkg}) -> source

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="hotreload-test-")
        self.root = os.path.join(self.tmp, "root")
        os.makedirs(self.root)
        self.pkg = "hrpkg_" + uuid.uuid4().hex[:10]
        for rel, source in self.files.items():
            self.write(rel, source)
        sys.path.insert(0, self.root)
        self.agents = []
        self.servers = []
        self.addCleanup(self._cleanup)

    def _cleanup(self) -> None:
        for server in self.servers:
            server.shutdown()
        for agent in self.agents:
            agent.stop_polling()
        for name in [n for n in sys.modules if n == self.pkg or n.startswith(self.pkg + ".")]:
            del sys.modules[name]
        if self.root in sys.path:
            sys.path.remove(self.root)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, rel: str, source: str) -> str:
        path = os.path.join(self.root, rel.format(pkg=self.pkg))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(textwrap.dedent(source).replace("{pkg}", self.pkg))
        return path

    def write_marker(self, release_id: str) -> None:
        with open(os.path.join(self.root, ".hotctl-release.json"), "w") as fh:
            json.dump({"id": release_id, "gitSha": "abc", "user": "t", "time": "2025-01-15T12:00:00Z"}, fh)

    def mod(self, suffix: str = ""):
        return sys.modules[self.pkg + suffix]

    def make_agent(self, **kwargs) -> Agent:
        kwargs.setdefault("token", "")
        kwargs.setdefault("poll_interval", 0)
        agent = Agent(self.root, **kwargs)
        self.agents.append(agent)
        return agent

    def serve(self, agent: Agent, host: str = "127.0.0.1") -> str:
        """The admin server; its URL always uses 127.0.0.1 (also when bound to 0.0.0.0)."""
        server = start_admin_server(agent, host, 0)
        self.servers.append(server)
        return "http://127.0.0.1:%d" % server.port

    def serve_wsgi(self, app) -> str:
        """A real wsgiref server on 127.0.0.1 (an app port), in a thread."""
        server = make_server("127.0.0.1", 0, app, server_class=_ThreadingWSGIServer,
                             handler_class=_QuietWSGIHandler)
        return self._run(server)

    def reverse_proxy(self, upstream: str) -> str:
        """A tiny reverse proxy on 127.0.0.1 forwarding everything to `upstream`,
        as nginx on the same host would: the app sees every request from 127.0.0.1."""
        handler = type("Proxy", (_ProxyHandler,), {"upstream": urllib.parse.urlsplit(upstream)})
        return self._run(ThreadingHTTPServer(("127.0.0.1", 0), handler))

    def _run(self, server) -> str:
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(5)

        self.addCleanup(stop)
        return "http://127.0.0.1:%d" % server.server_address[1]

    def http(self, url: str, method: str = "GET", body=None, token=None):
        """Returns (status, parsed JSON)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        if token is not None:
            req.add_header("Authorization", "Bearer " + token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read().decode())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read().decode())


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietWSGIHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


class _ProxyHandler(BaseHTTPRequestHandler):
    upstream = None
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        headers["X-Forwarded-For"] = self.client_address[0]
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=10)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_HEAD = _forward

    def log_message(self, format, *args) -> None:
        pass

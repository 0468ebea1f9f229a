"""Shared fixture: a throwaway package in a temp dir, imported for real."""

import json
import os
import shutil
import sys
import tempfile
import textwrap
import unittest
import urllib.error
import urllib.request
import uuid

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

    def serve(self, agent: Agent) -> str:
        server = start_admin_server(agent, "127.0.0.1", 0)
        self.servers.append(server)
        return server.url

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

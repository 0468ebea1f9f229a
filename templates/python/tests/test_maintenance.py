"""Maintenance mode: hotctl's marker closes the app's routes with 503 + Retry-After (issue 9)."""

import asyncio
import importlib
import json
import os
import threading
import time
import urllib.error
import urllib.request

from hotreload_agent import MAINTENANCE_NAME, HotReloadASGI, HotReloadWSGI

from .support import AgentTestCase
from .test_http import _asgi_call

TOKEN = "m41nt-test"  # a test value, not a secret


class MaintenanceTests(AgentTestCase):
    files = {"{pkg}/__init__.py": "", "{pkg}/handlers.py": "def calc(a, b):\n    return a + b\n"}

    def setUp(self) -> None:
        super().setUp()
        importlib.import_module(self.pkg + ".handlers")
        self.agent = self.make_agent(token=TOKEN)
        self.url = self.serve_wsgi(HotReloadWSGI(self.app, self.agent))

    def app(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app"]

    def marker(self, **fields) -> str:
        path = os.path.join(self.root, MAINTENANCE_NAME)
        with open(path, "w") as fh:
            json.dump(fields, fh)
        return path

    def get(self, path: str):
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def test_app_routes_answer_503_with_retry_after_while_the_marker_exists(self) -> None:
        self.assertEqual(self.get("/orders")[0], 200)
        until = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 120))
        path = self.marker(reason="migrating orders", until=until)
        for route in ("/orders", "/", "/api/v1/calc"):
            code, headers, body = self.get(route)
            self.assertEqual(code, 503, route)
            self.assertTrue(100 <= int(headers["Retry-After"]) <= 120, headers["Retry-After"])
            payload = json.loads(body)
            self.assertEqual((payload["error"], payload["reason"], payload["until"]),
                             ("maintenance", "migrating orders", until))
        # The agent's endpoints and /health keep answering: hotctl reloads and confirms meanwhile.
        self.assertEqual(self.get("/health")[0], 200)
        self.assertEqual(self.get("/api/v1/hot-reload/status")[0], 200)
        self.assertEqual(self.get("/api/v1/hot-reload/metrics")[0], 200)
        self.write("{pkg}/handlers.py", "def calc(a, b):\n    return a * b\n")
        code, body = self.http(self.url + "/api/v1/hot-reload/check", "POST", token=TOKEN)
        self.assertEqual((code, body["state"], body["changed_files"]), (200, "live", [self.pkg + "/handlers.py"]))
        os.remove(path)
        self.assertEqual(self.get("/orders")[:1], (200,))

    def test_marker_without_until_or_unreadable_still_closes_with_a_default_retry(self) -> None:
        with open(os.path.join(self.root, MAINTENANCE_NAME), "w") as fh:
            fh.write("not json")
        code, headers, body = self.get("/x")
        self.assertEqual((code, headers["Retry-After"], json.loads(body)["reason"]), (503, "30", "maintenance"))
        self.marker(reason="r", until="2000-01-01T00:00:00Z")  # past: the default, never 0 or negative
        self.assertEqual(self.get("/x")[1]["Retry-After"], "30")

    def test_health_left_to_the_app_stays_open(self) -> None:
        url = self.serve_wsgi(HotReloadWSGI(self.app, self.agent, include_health=False))
        self.marker(reason="r")
        with urllib.request.urlopen(url + "/health", timeout=10) as resp:
            self.assertEqual(resp.read(), b"app")

    def test_asgi_closes_app_routes_too(self) -> None:
        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        wrapped = HotReloadASGI(app, self.agent)
        self.marker(reason="r")

        async def scenario():
            self.assertEqual((await _asgi_call(wrapped, "GET", "/x"))[0], 503)
            self.assertEqual((await _asgi_call(wrapped, "GET", "/health"))[0], 200)
            self.assertEqual((await _asgi_call(wrapped, "GET", "/api/v1/hot-reload/status"))[0], 200)

        asyncio.run(scenario())

    def test_under_load_every_request_in_the_window_gets_503_and_none_outside(self) -> None:
        """Clients keep calling while the marker comes and goes; each answer matches the
        marker's presence around the request (no other status, no dropped connection)."""
        stop = threading.Event()
        seen = []
        path = os.path.join(self.root, MAINTENANCE_NAME)
        changes = [0]  # odd while a switch is under way; a request is judged only if none overlapped it

        def client() -> None:
            while not stop.is_set():
                before = changes[0]
                code, headers, _ = self.get("/work")
                if changes[0] == before and before % 2 == 0:
                    seen.append((before % 4 == 2, code, headers.get("Retry-After")))

        def switch(on: bool) -> None:
            changes[0] += 1
            self.marker(reason="load") if on else os.remove(path)
            changes[0] += 1

        workers = [threading.Thread(target=client) for _ in range(4)]
        for w in workers:
            w.start()
        for _ in range(5):
            time.sleep(0.05)
            switch(True)
            time.sleep(0.05)
            switch(False)
        stop.set()
        for w in workers:
            w.join(10)
        steady = seen
        self.assertGreater(len(steady), 20)
        for on, code, retry in steady:
            self.assertEqual(code, 503 if on else 200)
            if on:
                self.assertEqual(retry, "30")
        self.assertTrue(any(c == 503 for _, c, _ in steady) and any(c == 200 for _, c, _ in steady))

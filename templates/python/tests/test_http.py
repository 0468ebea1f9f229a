import asyncio
import hashlib
import importlib
import io
import json
import os
import tempfile
import time
import unittest

from hotreload_agent import HotReloadASGI, HotReloadWSGI, default_lock_path

from .support import AgentTestCase

FILES = {
    "{pkg}/__init__.py": "",
    "{pkg}/handlers.py": "def calc(a, b):\n    return a + b\n",
}


class AdminServerTests(AgentTestCase):
    files = FILES

    def setUp(self) -> None:
        super().setUp()
        importlib.import_module(self.pkg + ".handlers")

    def test_token_required_for_mutating_endpoints(self) -> None:
        agent = self.make_agent(token=None, token_env="HOTRELOAD_TEST_TOKEN")
        os.environ["HOTRELOAD_TEST_TOKEN"] = "s3cret"
        self.addCleanup(os.environ.pop, "HOTRELOAD_TEST_TOKEN", None)
        url = self.serve(agent)
        self.write("{pkg}/handlers.py", "def calc(a, b):\n    return a - b\n")
        for path in ("/check", "/rollback"):
            code, body = self.http(url + "/api/v1/hot-reload" + path, "POST")
            self.assertEqual((code, body["error"]), (401, "unauthorized"))
            code, _ = self.http(url + "/api/v1/hot-reload" + path, "POST", token="wrong")
            self.assertEqual(code, 401)
        self.assertEqual(self.mod(".handlers").calc(5, 1), 6)  # nothing was loaded
        self.assertEqual(self.http(url + "/api/v1/hot-reload/status")[0], 200)
        self.assertEqual(self.http(url + "/health")[1]["status"], "ok")
        code, body = self.http(url + "/api/v1/hot-reload/check", "POST", token="s3cret")
        self.assertEqual((code, body["state"]), (200, "live"))
        self.assertEqual(self.mod(".handlers").calc(5, 1), 4)
        # Unset token: mutating endpoints are open.
        os.environ["HOTRELOAD_TEST_TOKEN"] = ""
        self.assertEqual(self.http(url + "/api/v1/hot-reload/check", "POST")[0], 200)

    def test_expected_hash_mismatch_is_409_and_loads_nothing(self) -> None:
        agent = self.make_agent()
        url = self.serve(agent)
        new_source = "def calc(a, b):\n    return a * b\n"
        good = hashlib.sha256(new_source.encode()).hexdigest()
        rel = self.pkg + "/handlers.py"
        code, body = self.http(url + "/api/v1/hot-reload/check", "POST", {"expect": {rel: good}})
        self.assertEqual(code, 409)
        self.assertEqual(body, {"error": "tree not yet consistent", "mismatched": [rel]})
        self.write("{pkg}/handlers.py", new_source)
        code, body = self.http(url + "/api/v1/hot-reload/check", "POST",
                               {"expect": {rel: good, self.pkg + "/missing.py": "0" * 64}})
        self.assertEqual((code, body["mismatched"]), (409, [self.pkg + "/missing.py"]))
        self.assertEqual(self.mod(".handlers").calc(2, 3), 5)
        code, body = self.http(url + "/api/v1/hot-reload/check", "POST", {"expect": {rel: good}})
        self.assertEqual((code, body["state"]), (200, "live"))
        self.assertEqual(self.mod(".handlers").calc(2, 3), 6)

    def test_rollback_returns_to_previous_generation(self) -> None:
        agent = self.make_agent()
        url = self.serve(agent)
        proxy = agent.register("calc", self.pkg + ".handlers")
        code, body = self.http(url + "/api/v1/hot-reload/rollback", "POST")
        self.assertEqual(code, 409)
        gen0_module = self.mod(".handlers")
        self.write("{pkg}/handlers.py", "def calc(a, b):\n    return a * b\n")
        self.write_marker("r2")
        self.assertEqual(self.http(url + "/api/v1/hot-reload/check", "POST")[1]["generation"], 1)
        self.assertEqual(proxy.calc(2, 5), 10)
        code, body = self.http(url + "/api/v1/hot-reload/rollback", "POST")
        self.assertEqual(code, 200)
        self.assertEqual((body["state"], body["generation"], body["version"]), ("rolled_back", 0, None))
        self.assertEqual(proxy.calc(2, 5), 7)
        self.assertIs(self.mod(".handlers"), gen0_module)
        self.assertIs(self.mod().handlers, gen0_module)
        # The rollback sticks while the tree is unchanged ...
        self.assertEqual(self.http(url + "/api/v1/hot-reload/check", "POST")[1]["state"], "rolled_back")
        self.assertEqual(proxy.calc(2, 5), 7)
        # ... and hotctl restoring the old release on disk is applied like any deploy.
        self.write("{pkg}/handlers.py", "def calc(a, b):\n    return a + b\n")
        self.write_marker("r1")
        body = self.http(url + "/api/v1/hot-reload/check", "POST")[1]
        self.assertEqual((body["state"], body["version"]), ("live", "r1"))
        self.assertEqual(proxy.calc(2, 5), 7)
        versions = self.http(url + "/api/v1/hot-reload/versions")[1]
        self.assertEqual(versions["current"], body["generation"])
        self.assertEqual([g["current"] for g in versions["generations"]][-1], True)

    def test_wrong_method_and_unknown_path(self) -> None:
        url = self.serve(self.make_agent())
        self.assertEqual(self.http(url + "/api/v1/hot-reload/check")[0], 405)
        self.assertEqual(self.http(url + "/nope")[0], 404)


class PollingTests(AgentTestCase):
    files = FILES

    def test_polling_pauses_while_hotctl_lock_exists(self) -> None:
        importlib.import_module(self.pkg + ".handlers")
        lock = os.path.join(self.tmp, ".root.hotctl", "lock")
        self.assertEqual(default_lock_path(self.root), lock)
        os.makedirs(os.path.dirname(lock))
        open(lock, "w").close()
        agent = self.make_agent(poll_interval=0.02)
        self.write("{pkg}/handlers.py", "def calc(a, b):\n    return 0\n")
        time.sleep(0.3)
        self.assertEqual(agent.status()["generation"], 0)
        os.remove(lock)
        deadline = time.time() + 5
        while agent.status()["generation"] == 0 and time.time() < deadline:
            time.sleep(0.02)
        self.assertEqual(agent.status()["state"], "live")
        self.assertEqual(self.mod(".handlers").calc(1, 1), 0)


def _wsgi_call(app, method, path, body=b"", auth=None):
    captured = {}

    def start_response(status, headers):
        captured["status"], captured["headers"] = status, dict(headers)

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body)}
    if auth:
        environ["HTTP_AUTHORIZATION"] = auth
    out = b"".join(app(environ, start_response))
    return captured["status"], out


async def _asgi_call(app, method, path, body=b"", auth=None):
    sent = []
    headers = [(b"authorization", auth.encode())] if auth else []
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


class MiddlewareTests(AgentTestCase):
    files = FILES

    def setUp(self) -> None:
        super().setUp()
        importlib.import_module(self.pkg + ".handlers")
        self.agent = self.make_agent(token="t0ken")
        self.write_marker("rel-7")
        self.write("{pkg}/handlers.py", "def calc(a, b):\n    return 42\n")

    def test_wsgi_serves_agent_paths_and_passes_the_rest(self) -> None:
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"app:" + environ["PATH_INFO"].encode()]

        wrapped = HotReloadWSGI(app, self.agent)
        status, out = _wsgi_call(wrapped, "GET", "/api/v1/hot-reload/status")
        self.assertEqual(status, "200 OK")
        self.assertEqual(json.loads(out)["state"], "idle")
        self.assertEqual(_wsgi_call(wrapped, "GET", "/other"), ("200 OK", b"app:/other"))
        self.assertEqual(_wsgi_call(wrapped, "POST", "/api/v1/hot-reload/check")[0], "401 Unauthorized")
        status, out = _wsgi_call(wrapped, "POST", "/api/v1/hot-reload/check", b"{}", "Bearer t0ken")
        self.assertEqual((status, json.loads(out)["version"]), ("200 OK", "rel-7"))
        self.assertEqual(self.mod(".handlers").calc(1, 1), 42)
        self.assertEqual(_wsgi_call(wrapped, "POST", "/api/v1/hot-reload/check", b"not json",
                                    "Bearer t0ken")[0], "400 Bad Request")

    def test_asgi_serves_agent_paths_and_passes_the_rest(self) -> None:
        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        wrapped = HotReloadASGI(app, self.agent)

        async def scenario():
            status, out = await _asgi_call(wrapped, "GET", "/api/v1/hot-reload/status")
            self.assertEqual((status, json.loads(out)["generation"]), (200, 0))
            self.assertEqual((await _asgi_call(wrapped, "GET", "/elsewhere"))[0], 204)
            self.assertEqual((await _asgi_call(wrapped, "POST", "/api/v1/hot-reload/check"))[0], 401)
            status, out = await _asgi_call(wrapped, "POST", "/api/v1/hot-reload/check", b"", "Bearer t0ken")
            self.assertEqual((status, json.loads(out)["state"]), (200, "live"))
            status, out = await _asgi_call(wrapped, "GET", "/health")
            self.assertEqual(json.loads(out)["pid"], os.getpid())

        asyncio.run(scenario())
        self.assertEqual(self.mod(".handlers").calc(1, 1), 42)


if __name__ == "__main__":
    unittest.main()

"""Who may reload or roll back, and who sees tracebacks (issue 11, item 14)."""

import asyncio
import importlib
import os
import stat

from hotreload_agent import HotReloadASGI, HotReloadWSGI

from .support import AgentTestCase
from .test_http import _asgi_call

FILES = {
    "{pkg}/__init__.py": "",
    "{pkg}/handlers.py": "def calc(a, b):\n    return a + b\n",
}
CHECK = "/api/v1/hot-reload/check"
ROLLBACK = "/api/v1/hot-reload/rollback"
STATUS = "/api/v1/hot-reload/status"
TOKEN = "a3f1c0ffee"  # a test value, not a secret


class AuthTestCase(AgentTestCase):
    files = FILES

    def setUp(self) -> None:
        super().setUp()
        importlib.import_module(self.pkg + ".handlers")
        for name in ("HOTRELOAD_TOKEN", "HOTRELOAD_TOKEN_FILE"):  # the suite must not inherit them
            saved = os.environ.pop(name, None)
            if saved is not None:
                self.addCleanup(os.environ.__setitem__, name, saved)
            self.addCleanup(os.environ.pop, name, None)
        self.seen_from = []

    def app(self, environ, start_response):
        """The service's own app behind the middleware: records the client address."""
        self.seen_from.append(environ.get("REMOTE_ADDR"))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"app": true}']

    def change_code(self) -> None:
        self.write("{pkg}/handlers.py", "def calc(a, b):\n    return a * b\n")

    def assert_not_reloaded(self, agent) -> None:
        self.assertEqual(self.mod(".handlers").calc(2, 5), 7)
        self.assertEqual(agent.status()["generation"], 0)

    def token_file(self, content: str = TOKEN + "\n", mode: int = 0o600) -> str:
        path = os.path.join(self.tmp, "hotreload.token")
        with open(path, "w") as fh:
            fh.write(content)
        os.chmod(path, mode)
        return path


class NoTokenTests(AuthTestCase):
    def test_app_port_refuses_check_and_rollback_with_403_saying_how_to_set_a_token(self) -> None:
        agent = self.make_agent(token=None)
        url = self.serve_wsgi(HotReloadWSGI(self.app, agent))
        self.change_code()
        for path in (CHECK, ROLLBACK):
            code, body = self.http(url + path, "POST")
            self.assertEqual(code, 403, body)
            self.assertIn("no token configured", body["error"])
            self.assertIn("HOTRELOAD_TOKEN_FILE", body["error"])
            self.assertIn("HOTRELOAD_TOKEN ", body["error"])
            self.assertIn("0600", body["error"])
            # A bearer header does not help: there is nothing to compare it with.
            self.assertEqual(self.http(url + path, "POST", token="anything")[0], 403)
        self.assert_not_reloaded(agent)
        code, body = self.http(url + STATUS)
        self.assertEqual((code, body["state"], body["version"]), (200, "idle", None))

    def test_request_through_a_local_reverse_proxy_is_refused(self) -> None:
        agent = self.make_agent(token=None)
        app_url = self.serve_wsgi(HotReloadWSGI(self.app, agent))
        proxy_url = self.reverse_proxy(app_url)
        self.assertEqual(self.http(proxy_url + "/anything"), (200, {"app": True}))
        self.assertEqual(self.seen_from, ["127.0.0.1"])  # the proxy's requests come from loopback
        self.change_code()
        code, body = self.http(proxy_url + CHECK, "POST")
        self.assertEqual(code, 403, body)
        self.assertIn("no token configured", body["error"])
        self.assertEqual(self.http(proxy_url + ROLLBACK, "POST")[0], 403)
        self.assert_not_reloaded(agent)

    def test_asgi_refuses_without_token(self) -> None:
        agent = self.make_agent(token=None)

        async def app(scope, receive, send):
            raise AssertionError("agent paths never reach the app")

        status, _ = asyncio.run(_asgi_call(HotReloadASGI(app, agent), "POST", CHECK))
        self.assertEqual(status, 403)
        self.change_code()
        self.assert_not_reloaded(agent)

    def test_admin_server_on_loopback_is_open_without_token(self) -> None:
        agent = self.make_agent(token=None)
        url = self.serve(agent, "127.0.0.1")
        self.change_code()
        code, body = self.http(url + CHECK, "POST")
        self.assertEqual((code, body["state"]), (200, "live"))
        self.assertEqual(self.mod(".handlers").calc(2, 5), 10)
        self.assertEqual(self.http(url + ROLLBACK, "POST")[0], 200)

    def test_admin_server_on_all_interfaces_refuses_without_token(self) -> None:
        agent = self.make_agent(token=None)
        url = self.serve(agent, "0.0.0.0")
        self.change_code()
        code, body = self.http(url + CHECK, "POST")  # arrives on 127.0.0.1, still refused
        self.assertEqual(code, 403, body)
        self.assertIn("no token configured", body["error"])
        self.assert_not_reloaded(agent)


class TokenSourceTests(AuthTestCase):
    def test_token_from_env_on_the_app_port(self) -> None:
        os.environ["HOTRELOAD_TOKEN"] = TOKEN
        agent = self.make_agent(token=None)
        url = self.serve_wsgi(HotReloadWSGI(self.app, agent))
        self.change_code()
        self.assertEqual(self.http(url + CHECK, "POST")[0], 401)
        self.assertEqual(self.http(url + CHECK, "POST", token="wrong")[0], 401)
        self.assert_not_reloaded(agent)
        self.assertEqual(self.http(url + CHECK, "POST", token=TOKEN)[1]["state"], "live")

    def test_token_file_through_the_proxy_and_rotation(self) -> None:
        os.environ["HOTRELOAD_TOKEN_FILE"] = self.token_file()
        agent = self.make_agent(token=None)
        url = self.reverse_proxy(self.serve_wsgi(HotReloadWSGI(self.app, agent)))
        self.change_code()
        code, body = self.http(url + CHECK, "POST")
        self.assertEqual((code, body), (401, {"error": "unauthorized"}))
        self.assertEqual(self.http(url + CHECK, "POST", token="wrong")[0], 401)
        self.assert_not_reloaded(agent)
        code, body = self.http(url + CHECK, "POST", token=TOKEN)
        self.assertEqual((code, body["state"]), (200, "live"))
        # Read on every request: a new token needs no restart.
        self.token_file("rotated-token\n")
        self.assertEqual(self.http(url + ROLLBACK, "POST", token=TOKEN)[0], 401)
        self.assertEqual(self.http(url + ROLLBACK, "POST", token="rotated-token")[0], 200)

    def test_env_token_wins_over_token_file(self) -> None:
        os.environ["HOTRELOAD_TOKEN"] = "from-env"
        os.environ["HOTRELOAD_TOKEN_FILE"] = self.token_file()
        agent = self.make_agent(token=None)
        self.assertTrue(agent.authorized("Bearer from-env"))
        self.assertFalse(agent.authorized("Bearer " + TOKEN))

    def test_unusable_token_file_refuses_everywhere_and_names_the_fix(self) -> None:
        cases = {
            "open": (self.token_file(mode=0o644), "group or others can access it (mode 0644): chmod 600 it"),
            "missing": (os.path.join(self.tmp, "nope", "token"), "cannot be read (No such file or directory)"),
            "empty": (None, "empty"),
        }
        for case, (path, reason) in cases.items():
            with self.subTest(case):
                if path is None:
                    path = self.token_file(content="\n")
                os.environ["HOTRELOAD_TOKEN_FILE"] = path
                agent = self.make_agent(token=None)
                # Fails closed even on the loopback admin server, and with the file's token.
                url = self.serve(agent, "127.0.0.1")
                self.change_code()
                code, body = self.http(url + CHECK, "POST", token=TOKEN)
                self.assertEqual(code, 403, body)
                self.assertEqual(body["error"], "HOTRELOAD_TOKEN_FILE cannot be used: " + reason)
                self.assertNotIn(self.tmp, body["error"])
                self.assert_not_reloaded(agent)
                self.write("{pkg}/handlers.py", FILES["{pkg}/handlers.py"])

    def test_token_file_mode_0400_is_fine(self) -> None:
        path = self.token_file(mode=0o400)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o400)
        agent = self.make_agent(token=None, token_file=path)
        self.assertTrue(agent.authorized("Bearer " + TOKEN))
        self.assertFalse(agent.authorized(None, open_without_token=True))  # a token is set: it is needed


class ErrorDisclosureTests(AuthTestCase):
    # The traceback quotes this line (code, a password) and the message's second line.
    BROKEN = "raise RuntimeError('cannot open ' + __file__ + '\\nwith postgres://admin:hunter2@db')\n"

    def reject(self, url: str, token=None) -> None:
        self.write("{pkg}/handlers.py", self.BROKEN)
        code, body = self.http(url + CHECK, "POST", token=token)
        self.assertEqual((code, body["state"]), (200, "rejected"))
        self.assertIn("hunter2", body["last_error"]["traceback"])  # the caller had the right to reload

    def assert_public(self, body) -> None:
        self.assertEqual(body["state"], "rejected")
        error = body["last_error"]
        self.assertEqual(sorted(error), ["message", "type"])  # no traceback
        self.assertEqual(error["type"], "RuntimeError")
        self.assertEqual(error["message"], "cannot open %s/handlers.py" % self.pkg)  # relative, one line
        self.assertNotIn(self.root, str(body))
        self.assertNotIn("hunter2", str(body))
        self.assertEqual(body["history"][-1]["error"], error)

    def test_status_shows_traceback_only_with_the_token(self) -> None:
        agent = self.make_agent(token=TOKEN)
        url = self.reverse_proxy(self.serve_wsgi(HotReloadWSGI(self.app, agent)))
        self.reject(url, token=TOKEN)
        for token in (None, "wrong"):
            code, body = self.http(url + STATUS, token=token)
            self.assertEqual(code, 200)
            self.assert_public(body)
        code, body = self.http(url + STATUS, token=TOKEN)
        self.assertIn("hunter2", body["last_error"]["traceback"])
        self.assertIn(os.path.join(self.root, self.pkg, "handlers.py"), body["last_error"]["traceback"])

    def test_without_token_the_app_port_never_shows_a_traceback(self) -> None:
        agent = self.make_agent(token=None)
        admin = self.serve(agent, "127.0.0.1")  # the operator's side: open, full detail
        app = self.serve_wsgi(HotReloadWSGI(self.app, agent))
        self.reject(admin)
        self.assertIn("traceback", self.http(admin + STATUS)[1]["last_error"])
        self.assert_public(self.http(app + STATUS)[1])

    def test_absolute_paths_outside_the_tree_are_cut(self) -> None:
        agent = self.make_agent(token=TOKEN)
        self.write("{pkg}/handlers.py", "open('/etc/app/secret.yaml')\n")
        status = agent.check()
        self.assertEqual(status["last_error"]["type"], "FileNotFoundError")
        self.assertEqual(agent.status(full=False)["last_error"]["message"],
                         "[Errno 2] No such file or directory: '.../secret.yaml'")

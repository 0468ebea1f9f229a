"""In-process canary and per-generation metrics, driven by real HTTP traffic (issue 9)."""

import importlib
import json
import threading
import urllib.request

from hotreload_agent import HotReloadWSGI

from .support import AgentTestCase

TOKEN = "c4nary-test"  # a test value, not a secret
CHECK = "/api/v1/hot-reload/check"
PROMOTE = "/api/v1/hot-reload/promote"
ABORT = "/api/v1/hot-reload/abort"
METRICS = "/api/v1/hot-reload/metrics"

SERVICE = """
    import threading
    GATE = threading.Event()
    ENTERED = threading.Event()
    class Service:
        def __init__(self):
            self.n = 0
        def work(self, wait=False):
            self.n += 1
            if wait:
                ENTERED.set()
                GATE.wait(10)
            if FAIL_EVERY and self.n % FAIL_EVERY == 0:
                raise RuntimeError("boom")
            return VERSION
    VERSION = "v1"
    FAIL_EVERY = 0
"""


def release(version: str, fail_every: int = 0) -> str:
    return SERVICE.replace('VERSION = "v1"', "VERSION = %r" % version).replace(
        "FAIL_EVERY = 0", "FAIL_EVERY = %d" % fail_every)


class CanaryTestCase(AgentTestCase):
    files = {"{pkg}/__init__.py": "", "{pkg}/service.py": SERVICE}

    def setUp(self) -> None:
        super().setUp()
        self.write_marker("r1")
        self.agent = self.make_agent(token=TOKEN)
        self.svc = self.agent.register("svc", self.pkg + ".service:Service")
        self.url = self.serve_wsgi(HotReloadWSGI(self.app, self.agent))

    def app(self, environ, start_response):
        wait = environ.get("PATH_INFO") == "/slow"
        try:
            body, status = self.svc.work(wait=wait).encode(), "200 OK"
        except RuntimeError:
            body, status = b"error", "500 Internal Server Error"
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    def get(self, path: str = "/work") -> str:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return resp.read().decode()
        except urllib.error.HTTPError as err:
            return "%d %s" % (err.code, err.read().decode())

    def traffic(self, n: int):
        return [self.get() for _ in range(n)]

    def deploy(self, version: str, fail_every: int = 0, canary=10):
        self.write("{pkg}/service.py", release(version, fail_every))
        self.write_marker("r2")
        return self.http(self.url + CHECK, "POST", {"canary": canary}, token=TOKEN)

    def metrics(self):
        rows = self.http(self.url + METRICS)[1]["generations"]
        return {r["role"]: r for r in rows}


class CanaryRoutingTests(CanaryTestCase):
    def test_canary_gets_its_share_of_calls_and_promote_makes_it_all(self) -> None:
        code, body = self.deploy("v2")
        self.assertEqual((code, body["state"]), (200, "canary"), body)
        self.assertEqual(body["canary"], {"generation": 1, "version": "r2", "percent": 10})
        self.assertEqual(body["version"], "r1")  # current is still the old release
        answers = self.traffic(100)
        self.assertEqual((answers.count("v2"), answers.count("v1")), (10, 90))
        m = self.metrics()
        self.assertEqual((m["canary"]["calls"], m["current"]["calls"]), (10, 90))
        self.assertEqual(m["canary"]["percent"], 10)
        self.assertIsNotNone(m["canary"]["p95_ms"])
        # Raise the share on the same tree: only the percentage changes.
        code, body = self.http(self.url + CHECK, "POST", {"canary": 50}, token=TOKEN)
        self.assertEqual((body["state"], body["canary"]["percent"], body["canary"]["generation"]), ("canary", 50, 1))
        self.assertEqual(self.traffic(10).count("v2"), 5)
        code, body = self.http(self.url + PROMOTE, "POST", token=TOKEN)
        self.assertEqual((code, body["state"], body["version"], body["generation"], body["canary"]),
                         (200, "live", "r2", 1, None))
        self.assertEqual(set(self.traffic(20)), {"v2"})
        self.assertEqual(self.http(self.url + PROMOTE, "POST", token=TOKEN)[0], 409)
        # Metrics survive the promotion: generation 1 is now current.
        m = self.metrics()
        self.assertEqual((m["current"]["generation"], m["current"]["calls"]), (1, 10 + 5 + 20))
        self.assertEqual(m["previous"]["generation"], 0)

    def test_failing_canary_is_aborted_and_no_error_follows(self) -> None:
        self.deploy("v2", fail_every=5)  # 20 % of the canary's calls raise
        answers = self.traffic(200)
        m = self.metrics()
        self.assertEqual((m["canary"]["calls"], m["canary"]["errors"]), (20, 4))
        self.assertAlmostEqual(m["canary"]["error_rate"], 0.2)
        self.assertEqual((m["current"]["errors"], m["current"]["error_rate"]), (0, 0.0))
        self.assertEqual(answers.count("500 error"), 4)
        code, body = self.http(self.url + ABORT, "POST", token=TOKEN)
        self.assertEqual((code, body["state"], body["canary"], body["generation"]), (200, "canary_aborted", None, 0))
        self.assertEqual(set(self.traffic(100)), {"v1"})
        self.assertNotIn("canary", self.metrics())
        self.assertEqual(self.mod(".service").VERSION, "v1")  # sys.modules is the old code again
        # hotctl then puts the old files back: the check finds nothing to load.
        self.write("{pkg}/service.py", SERVICE)
        self.write_marker("r1")
        code, body = self.http(self.url + CHECK, "POST", token=TOKEN)
        self.assertEqual((body["state"], body["version"], body["generation"]), ("idle", "r1", 0))  # gen 0 = idle

    def test_plain_check_drops_a_canary_when_the_tree_moved_and_promotes_it_when_not(self) -> None:
        self.deploy("v2")
        self.write("{pkg}/service.py", release("v3"))
        self.write_marker("r3")
        body = self.http(self.url + CHECK, "POST", token=TOKEN)[1]
        self.assertEqual((body["state"], body["version"], body["canary"]), ("live", "r3", None))
        self.assertEqual(set(self.traffic(10)), {"v3"})
        self.deploy("v4")
        body = self.http(self.url + CHECK, "POST", token=TOKEN)[1]
        self.assertEqual((body["state"], body["version"]), ("live", "r2"))
        self.assertEqual(set(self.traffic(10)), {"v4"})

    def test_canary_endpoints_need_the_token_and_a_valid_share(self) -> None:
        self.write("{pkg}/service.py", release("v2"))
        for path in (PROMOTE, ABORT):
            self.assertEqual(self.http(self.url + path, "POST")[0], 401)
        self.assertEqual(self.http(self.url + CHECK, "POST", {"canary": 10})[0], 401)
        for bad in (0, 101, "10", 2.5, True):
            code, body = self.http(self.url + CHECK, "POST", {"canary": bad}, token=TOKEN)
            self.assertEqual(code, 400, bad)
            self.assertIn("canary", body["error"])
        self.assertEqual(self.agent.status()["state"], "idle")  # nothing loaded
        self.assertEqual(self.http(self.url + ABORT, "POST", token=TOKEN)[0], 409)

    def test_rollback_during_a_canary_drops_it(self) -> None:
        self.deploy("v2", canary=100)
        self.assertEqual(set(self.traffic(5)), {"v2"})
        code, body = self.http(self.url + "/api/v1/hot-reload/rollback", "POST", token=TOKEN)
        self.assertEqual((code, body["state"], body["generation"]), (200, "canary_aborted", 0))
        self.assertEqual(set(self.traffic(5)), {"v1"})


class InFlightTests(CanaryTestCase):
    def slow_call(self):
        result = {}
        worker = threading.Thread(target=lambda: result.setdefault("r", self.get("/slow")))
        worker.start()
        return worker, result

    def test_call_in_flight_on_the_canary_finishes_there_after_abort(self) -> None:
        self.deploy("v2", canary=100)
        canary_module = self.mod(".service")
        canary_gen = self.agent.metrics()["canary"]
        worker, result = self.slow_call()
        self.assertTrue(canary_module.ENTERED.wait(5))
        self.assertEqual(self.http(self.url + ABORT, "POST", token=TOKEN)[0], 200)
        self.assertEqual(self.get(), "v1")  # new calls: old generation
        canary_module.GATE.set()
        worker.join(10)
        self.assertEqual(result["r"], "v2")
        self.assertEqual(canary_gen["generation"], 1)

    def test_call_in_flight_on_the_old_generation_finishes_there_after_promote(self) -> None:
        old_module = self.mod(".service")
        worker, result = self.slow_call()
        self.assertTrue(old_module.ENTERED.wait(5))
        self.deploy("v2", canary=10)
        self.assertEqual(self.http(self.url + PROMOTE, "POST", token=TOKEN)[0], 200)
        self.assertEqual(self.get(), "v2")
        old_module.GATE.set()
        worker.join(10)
        self.assertEqual(result["r"], "v1")
        self.assertEqual(self.agent.generations()[0].inflight, 0)


class PrometheusTests(CanaryTestCase):
    def test_metrics_in_prometheus_text_by_query_or_accept(self) -> None:
        self.deploy("v2", fail_every=1)
        self.traffic(20)  # 2 canary calls, both fail
        for url, headers in ((self.url + METRICS + "?format=prometheus", {}),
                             (self.url + METRICS, {"Accept": "text/plain;version=0.0.4"})):
            req = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(req, timeout=10) as resp:
                self.assertTrue(resp.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
                text = resp.read().decode()
            self.assertIn('hotreload_calls_total{generation="1",version="r2",role="canary"} 2\n', text)
            self.assertIn('hotreload_call_errors_total{generation="1",version="r2",role="canary"} 2\n', text)
            self.assertIn('hotreload_calls_total{generation="0",version="r1",role="current"} 18\n', text)
            self.assertIn('hotreload_call_duration_seconds{generation="0",version="r1",role="current",quantile="0.95"} ',
                          text)
            self.assertIn("hotreload_canary_percent 10\n", text)
        req = urllib.request.Request(self.url + METRICS, headers={"Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            self.assertEqual(json.loads(resp.read())["canary"]["percent"], 10)


if __name__ == "__main__":
    importlib.import_module("unittest").main()

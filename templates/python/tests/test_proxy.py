import asyncio
import importlib
import threading

from .support import AgentTestCase

HANDLERS_V1 = """
    import threading
    GATE = threading.Event()
    ENTERED = threading.Event()
    class Service:
        def __init__(self):
            self.calls = 0
        def work(self, wait=False):
            self.calls += 1
            if wait:
                ENTERED.set()
                GATE.wait(10)
            return "v1"
        async def awork(self, gate):
            await gate.wait()
            return "v1"
"""


def v(n: int) -> str:
    return HANDLERS_V1.replace('"v1"', '"v%d"' % n)


class ProxyTests(AgentTestCase):
    files = {"{pkg}/__init__.py": "", "{pkg}/service.py": HANDLERS_V1}

    def setUp(self) -> None:
        super().setUp()
        self.agent = self.make_agent(keep_generations=2)
        self.proxy = self.agent.register("svc", self.pkg + ".service:Service")

    def test_in_flight_call_finishes_on_old_code(self) -> None:
        old_module = self.mod(".service")
        result = {}
        worker = threading.Thread(target=lambda: result.setdefault("r", self.proxy.work(wait=True)))
        worker.start()
        self.assertTrue(old_module.ENTERED.wait(5))
        gen0 = self.agent.current_generation()
        self.assertEqual(gen0.inflight, 1)
        self.write("{pkg}/service.py", v(2))
        status = self.agent.check()  # commits while the call is blocked
        self.assertEqual(status["state"], "live", status["last_error"])
        self.assertEqual(self.proxy.work(), "v2")  # new calls use the new generation
        old_module.GATE.set()
        worker.join(5)
        self.assertEqual(result["r"], "v1")
        self.assertEqual(gen0.inflight, 0)
        self.assertEqual(self.proxy.work(), "v2")

    def test_superseded_generation_released_when_last_call_ends(self) -> None:
        old_module = self.mod(".service")
        worker = threading.Thread(target=lambda: self.proxy.work(wait=True))
        worker.start()
        self.assertTrue(old_module.ENTERED.wait(5))
        gen0 = self.agent.current_generation()
        for n in (2, 3):  # keep_generations=2: gen0 leaves the rollback window at gen 2
            self.write("{pkg}/service.py", v(n))
            self.assertEqual(self.agent.check()["state"], "live")
        self.assertTrue(gen0.retired)
        self.assertFalse(gen0.released)  # a call still runs on it
        self.assertTrue(gen0.handlers)
        old_module.GATE.set()
        worker.join(5)
        self.assertTrue(gen0.released)
        self.assertEqual(gen0.handlers, {})
        self.assertEqual([g.number for g in self.agent.generations()], [1, 2])

    def test_unchanged_handler_keeps_instance_state(self) -> None:
        self.proxy.work()
        self.proxy.work()
        self.write("{pkg}/other.py", "X = 1\n")
        importlib.import_module(self.pkg + ".other")
        status = self.agent.check()
        self.assertEqual(status["reload_order"], [self.pkg + ".other"])
        self.assertEqual(self.proxy.calls, 2)  # service.py unchanged: same instance carried over
        self.write("{pkg}/service.py", v(2))
        self.agent.check()
        self.assertEqual(self.proxy.calls, 0)  # new code: new instance

    def test_async_call_pinned_until_awaited(self) -> None:
        async def scenario():
            gate = asyncio.Event()
            task = asyncio.ensure_future(self.proxy.awork(gate))
            await asyncio.sleep(0)
            gen0 = self.agent.current_generation()
            self.assertEqual(gen0.inflight, 1)
            self.write("{pkg}/service.py", v(2))
            self.assertEqual(self.agent.check()["state"], "live")
            gate.set()
            self.assertEqual(await task, "v1")
            self.assertEqual(gen0.inflight, 0)
            self.assertEqual(await self.proxy.awork(gate), "v2")

        asyncio.run(scenario())

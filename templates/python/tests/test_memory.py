"""Old generations are freed: only the rollback window and in-flight calls keep modules alive."""

import gc
import importlib
import threading
import types
import weakref

from .support import AgentTestCase

BIG = "DATA = list(range(1000))\nREV = {rev}\n"
HANDLERS = """
    import threading
    from . import big
    GATE = threading.Event()
    ENTERED = threading.Event()
    def rev(wait=False):
        if wait:
            ENTERED.set()
            GATE.wait(10)
        return big.REV
"""
KEEP = 3


class GenerationMemoryTests(AgentTestCase):
    files = {"{pkg}/__init__.py": "", "{pkg}/big.py": BIG.format(rev=0), "{pkg}/handlers.py": HANDLERS}

    def setUp(self) -> None:
        super().setUp()
        importlib.import_module(self.pkg + ".handlers")
        self.agent = self.make_agent(keep_generations=KEEP)
        self.proxy = self.agent.register("h", self.pkg + ".handlers")

    def live_copies(self, suffix: str) -> int:
        """Module objects named pkg<suffix> still alive anywhere in the process."""
        gc.collect()
        name = self.pkg + suffix
        return sum(1 for o in gc.get_objects() if isinstance(o, types.ModuleType) and o.__name__ == name)

    def reload(self, rev: int) -> None:
        self.write("{pkg}/big.py", BIG.format(rev=rev))
        status = self.agent.check()
        self.assertEqual(status["state"], "live", status["last_error"])
        self.assertEqual(self.proxy.rev(), rev)

    def test_reloads_keep_at_most_keep_generations_alive(self) -> None:
        for rev in range(1, 13):
            self.reload(rev)
        self.assertEqual(len(self.agent.generations()), KEEP)
        self.assertEqual(self.live_copies(".big"), KEEP)
        self.assertEqual(self.live_copies(".handlers"), KEEP)  # reloaded as a dependant
        self.assertEqual(self.live_copies(""), 1)  # the package itself never changed
        # The kept ones are real: rollback still reaches them.
        self.assertEqual(self.agent.rollback()["state"], "rolled_back")
        self.assertEqual(self.proxy.rev(), 11)
        self.assertLessEqual(self.live_copies(".big"), KEEP)

    def test_released_generation_is_freed_at_once(self) -> None:
        # Its modules are cycles: without a collection by the agent they would
        # linger (here for good: automatic collection is off) while the next
        # reload allocates, and RSS would creep up.
        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)
        first = weakref.ref(self.mod(".big"))
        for rev in range(1, KEEP):
            self.reload(rev)
        self.assertIsNotNone(first())  # still in the rollback window
        self.reload(KEEP)
        self.assertIsNone(first())

    def test_in_flight_call_keeps_only_its_own_generation(self) -> None:
        first = self.mod(".handlers")
        result = {}
        worker = threading.Thread(target=lambda: result.setdefault("r", self.proxy.rev(wait=True)))
        worker.start()
        self.assertTrue(first.ENTERED.wait(5))
        for rev in range(1, 9):
            self.reload(rev)
        self.assertEqual(self.live_copies(".big"), KEEP + 1)  # + generation 0, still serving a call
        first.GATE.set()
        worker.join(5)
        self.assertEqual(result["r"], 0)
        del first
        self.assertEqual(self.live_copies(".big"), KEEP)

    def test_rejected_and_undone_reloads_leave_nothing_behind(self) -> None:
        self.reload(1)
        before = self.live_copies(".big")

        def verify(gen):
            if gen.handlers["h"].rev() == 99:
                raise AssertionError("rev 99 is refused")

        self.agent.add_verify(verify)
        for n in range(6):
            # Fails while executing (the transaction undoes itself) ...
            self.write("{pkg}/big.py", BIG.format(rev=n) + "raise RuntimeError('boom %d')\n" % n)
            self.assertEqual(self.agent.check()["state"], "rejected")
            # ... or after executing, in a verify callback (the agent undoes it).
            self.write("{pkg}/big.py", BIG.format(rev=99) + "# %d\n" % n)
            self.assertEqual(self.agent.check()["state"], "rejected")
        self.assertEqual(self.proxy.rev(), 1)
        self.assertEqual(self.live_copies(".big"), before)

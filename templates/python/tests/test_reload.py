import importlib
import os
import sys

from hotreload_agent import depgraph

from .support import AgentTestCase

BASE = {
    "{pkg}/__init__.py": "",
    "{pkg}/util.py": """
        FACTOR = 2
        def scale(x):
            return x * FACTOR
    """,
    "{pkg}/handlers.py": """
        from {pkg}.util import scale, FACTOR
        from . import util
        def calc(a, b):
            return scale(a + b)
        def factor():
            return FACTOR
    """,
    "{pkg}/standalone.py": """
        def name():
            return "v1"
    """,
    "requirements.txt": "requests==2.0\n",
}


class ReloadTests(AgentTestCase):
    files = BASE

    def setUp(self) -> None:
        super().setUp()
        importlib.import_module(self.pkg + ".handlers")
        importlib.import_module(self.pkg + ".standalone")
        self.agent = self.make_agent()

    def test_changed_function_is_live_and_version_is_marker_id(self) -> None:
        url = self.serve(self.agent)
        handlers = self.agent.register("h", self.pkg + ".handlers")
        self.assertEqual(handlers.calc(1, 2), 6)
        self.write("{pkg}/handlers.py", BASE["{pkg}/handlers.py"].replace("scale(a + b)", "scale(a * b) + 100"))
        self.write_marker("20250115120000")
        code, body = self.http(url + "/api/v1/hot-reload/check", "POST")
        self.assertEqual(code, 200)
        self.assertEqual(body["state"], "live")
        self.assertEqual(body["version"], "20250115120000")
        self.assertEqual(body["generation"], 1)
        self.assertIn(self.pkg + "/handlers.py", body["changed_files"])
        self.assertEqual(body["reload_order"], [self.pkg + ".handlers"])
        self.assertEqual(handlers.calc(3, 4), 124)
        self.assertEqual(self.mod(".handlers").calc(3, 4), 124)
        self.assertEqual(body["history"][-1]["state"], "live")
        code, status = self.http(url + "/api/v1/hot-reload/status")
        self.assertEqual((code, status["version"], status["state"]), (200, "20250115120000", "live"))

    def test_marker_only_deploy_updates_version(self) -> None:
        self.assertIsNone(self.agent.status()["version"])
        self.write_marker("20250101000000")
        status = self.agent.check()
        self.assertEqual((status["state"], status["version"]), ("live", "20250101000000"))
        self.assertEqual(status["reload_order"], [])
        self.assertEqual(status["generation"], 0)  # no code changed, no new generation
        self.write("data/table.csv", "a,b\n")
        self.write_marker("20250102000000")
        status = self.agent.check()
        self.assertEqual(status["version"], "20250102000000")
        self.assertEqual(sorted(status["changed_files"]), [".hotctl-release.json", "data/table.csv"])

    def test_from_import_sees_new_value_and_dependants_reload_first_deps(self) -> None:
        before = self.mod(".handlers")
        self.write("{pkg}/util.py", "FACTOR = 10\ndef scale(x):\n    return x * FACTOR\n")
        status = self.agent.check()
        self.assertEqual(status["state"], "live", status["last_error"])
        self.assertEqual(status["reload_order"], [self.pkg + ".util", self.pkg + ".handlers"])
        handlers = self.mod(".handlers")
        self.assertIsNot(handlers, before)
        self.assertEqual(handlers.factor(), 10)
        self.assertEqual(handlers.calc(1, 2), 30)
        self.assertIs(handlers.util, self.mod(".util"))
        self.assertIs(self.mod().util, self.mod(".util"))  # package attribute updated too
        # Unrelated modules are not re-executed.
        self.assertNotIn(self.pkg + ".standalone", status["reload_order"])

    def _assert_rejected_keeps_old(self, source: str, error_type: str) -> None:
        handlers = self.agent.register("h", self.pkg + ".handlers")
        old_util = self.mod(".util")
        self.write("{pkg}/util.py", source)
        status = self.agent.check()
        self.assertEqual(status["state"], "rejected")
        self.assertEqual(status["generation"], 0)
        self.assertEqual(status["last_error"]["type"], error_type)
        self.assertTrue(status["last_error"]["traceback"])
        self.assertIs(self.mod(".util"), old_util)
        self.assertIs(self.mod().util, old_util)
        self.assertEqual(handlers.calc(1, 2), 6)
        self.assertEqual(status["history"][-1]["error"]["type"], error_type)

    def test_syntax_error_rejected(self) -> None:
        self._assert_rejected_keeps_old("def scale(x)\n    return x\n", "SyntaxError")

    def test_module_level_return_rejected(self) -> None:
        # ast.parse accepts this; compile() does not.
        self._assert_rejected_keeps_old("FACTOR = 3\nreturn FACTOR\ndef scale(x):\n    return x\n", "SyntaxError")

    def test_import_error_rejected_and_partial_load_undone(self) -> None:
        # util loads fine, then handlers fails: util must be put back as well.
        self.write("{pkg}/util.py", "FACTOR = 5\ndef scale(x):\n    return x * FACTOR\n")
        self.write("{pkg}/handlers.py", "from {pkg}.util import scale\nimport no_such_module_xyz\n")
        old_util, old_handlers = self.mod(".util"), self.mod(".handlers")
        status = self.agent.check()
        self.assertEqual(status["state"], "rejected")
        self.assertEqual(status["last_error"]["type"], "ModuleNotFoundError")
        self.assertIs(self.mod(".util"), old_util)
        self.assertIs(self.mod(".handlers"), old_handlers)
        self.assertEqual(self.mod(".handlers").calc(1, 2), 6)

    def test_rejected_then_fixed_goes_live(self) -> None:
        self.write("{pkg}/util.py", "def scale(x):\n  return x +\n")
        self.assertEqual(self.agent.check()["state"], "rejected")
        self.assertEqual(self.agent.check()["state"], "rejected")  # still broken on disk
        self.write("{pkg}/util.py", "FACTOR = 7\ndef scale(x):\n    return x * FACTOR\n")
        status = self.agent.check()
        self.assertEqual(status["state"], "live")
        self.assertIsNone(status["last_error"])
        self.assertEqual(self.mod(".handlers").calc(1, 1), 14)

    def test_requirements_change_needs_restart_and_loads_nothing(self) -> None:
        old_util = self.mod(".util")
        self.write("requirements.txt", "requests==3.0\n")
        self.write("{pkg}/util.py", "FACTOR = 9\ndef scale(x):\n    return x * FACTOR\n")
        status = self.agent.check()
        self.assertEqual(status["state"], "restart_required")
        self.assertEqual(status["last_error"]["type"], "RestartRequired")
        self.assertIn("requirements.txt", status["last_error"]["message"])
        self.assertIs(self.mod(".util"), old_util)
        self.assertEqual(self.mod(".handlers").calc(1, 1), 4)
        self.assertEqual(status["generation"], 0)

    def test_entry_file_and_extension_need_restart(self) -> None:
        agent = self.make_agent(entry_file=os.path.join(self.root, "main.py"))
        self.write("main.py", "print('hi')\n")
        self.assertEqual(agent.check()["state"], "restart_required")
        os.remove(os.path.join(self.root, "main.py"))
        status = agent.check()  # tree back to what is running
        self.assertEqual((status["state"], status["last_error"]), ("idle", None))
        self.write("{pkg}/fast.cpython-311-x86_64-linux-gnu.so", "binary")
        self.assertEqual(agent.check()["state"], "restart_required")

    def test_hot_reload_hook_carries_state(self) -> None:
        self.write("{pkg}/counter.py", "COUNT = 0\ndef bump():\n    global COUNT\n    COUNT += 1\n    return COUNT\n")
        counter = importlib.import_module(self.pkg + ".counter")
        agent = self.make_agent()
        counter.bump()
        counter.bump()
        self.write("{pkg}/counter.py", """
            COUNT = 0
            def bump():
                global COUNT
                COUNT += 10
                return COUNT
            def __hot_reload__(old):
                global COUNT
                COUNT = old.COUNT
        """)
        self.assertEqual(agent.check()["state"], "live")
        self.assertEqual(self.mod(".counter").bump(), 12)
        self.assertEqual(counter.COUNT, 2)  # the old module object was not touched

    def test_verify_failure_rejects(self) -> None:
        handlers = self.agent.register("h", self.pkg + ".handlers")

        def verify(gen):
            if gen.handlers["h"].calc(1, 1) != 4:
                raise AssertionError("calc(1, 1) must stay 4")

        self.agent.add_verify(verify)
        self.write("{pkg}/handlers.py", "def calc(a, b):\n    return -1\n")
        status = self.agent.check()
        self.assertEqual(status["state"], "rejected")
        self.assertEqual(status["last_error"]["type"], "AssertionError")
        self.assertEqual(handlers.calc(1, 1), 4)
        self.assertEqual(self.mod(".handlers").calc(1, 1), 4)

    def test_import_cycle_reloaded_together(self) -> None:
        self.write("{pkg}/cyc_a.py", "from {pkg} import cyc_b\nVALUE = 'a1'\ndef other():\n    return cyc_b.VALUE\n")
        self.write("{pkg}/cyc_b.py", "from {pkg} import cyc_a\nVALUE = 'b1'\ndef other():\n    return cyc_a.VALUE\n")
        importlib.import_module(self.pkg + ".cyc_a")
        agent = self.make_agent()
        self.write("{pkg}/cyc_b.py", "from {pkg} import cyc_a\nVALUE = 'b2'\ndef other():\n    return cyc_a.VALUE\n")
        status = agent.check()
        self.assertEqual(status["state"], "live", status["last_error"])
        self.assertEqual(sorted(status["reload_order"]), [self.pkg + ".cyc_a", self.pkg + ".cyc_b"])
        a, b = self.mod(".cyc_a"), self.mod(".cyc_b")
        self.assertEqual(a.other(), "b2")
        self.assertIs(b.cyc_a, a)
        self.assertIs(a.cyc_b, b)

    def test_new_module_imported_by_changed_module(self) -> None:
        self.write("{pkg}/extra.py", "def bonus():\n    return 1000\n")
        self.write("{pkg}/handlers.py", "from .extra import bonus\ndef calc(a, b):\n    return a + b + bonus()\n")
        status = self.agent.check()
        self.assertEqual(status["state"], "live", status["last_error"])
        self.assertEqual(self.mod(".handlers").calc(1, 2), 1003)
        self.assertIn(self.pkg + ".extra", sys.modules)

    def test_rsync_temporaries_and_pycache_ignored(self) -> None:
        self.write(".~tmp~/{pkg}/util.py", "broken(")
        self.write("{pkg}/.util.py.AbC123", "broken(")
        self.write("{pkg}/__pycache__/util.cpython-311.pyc", "junk")
        status = self.agent.check()
        self.assertEqual(status["state"], "idle")
        self.assertEqual(status["changed_files"], [])


class DepGraphTests(AgentTestCase):
    files = {}

    def test_relative_and_from_imports_resolve(self) -> None:
        known = {"p", "p.a", "p.b", "p.sub", "p.sub.c"}
        src = b"from .c import thing\nfrom .. import a\nfrom ..x import y\nimport p.b\ndef f():\n    import p.sub\n"
        deps = depgraph.imports_of(src, "p.sub.c2", False, known)
        self.assertEqual(deps, {"p.sub.c", "p", "p.a", "p.b"})  # function-level import ignored
        deps = depgraph.imports_of(b"from . import a\n", "p", True, known)
        self.assertEqual(deps, {"p.a"})

    def test_reload_steps_order_and_cycles(self) -> None:
        graph = {"a": {"b"}, "b": {"c"}, "c": {"b"}, "d": set()}
        steps = depgraph.reload_steps(graph, {"a", "b", "c"})
        self.assertEqual(steps, [["b", "c"], ["a"]])
        self.assertEqual(depgraph.dependents_closure({"x": set(), "y": {"x"}, "z": {"y"}, "w": set()}, ["x"]),
                         {"x", "y", "z"})

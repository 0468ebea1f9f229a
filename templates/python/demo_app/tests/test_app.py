"""Run from demo_app/: python3 -m unittest discover -s tests"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import handlers  # noqa: E402


class HandlersTest(unittest.TestCase):
    def test_calc_adds(self):
        self.assertEqual(handlers.calc(1, 2), 3)

    def test_hello_mentions_version(self):
        self.assertIn("v1", handlers.hello())


if __name__ == "__main__":
    unittest.main()

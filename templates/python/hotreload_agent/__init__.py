"""Reference hot-reload agent for services deployed with hotctl (stdlib only).

    agent = Agent("/srv/app")                     # the tree hotctl deploys into
    calc = agent.register("calc", "app.handlers") # proxy to the live generation
    app = HotReloadWSGI(app, agent)               # or HotReloadASGI / start_admin_server
"""

import logging

from .admin_server import AdminServer, start_admin_server
from .agent import Agent, NoCanary, NoPreviousGeneration, TreeNotConsistent
from .asgi import HotReloadASGI, wrap_asgi
from .generation import Generation
from .maintenance import MAINTENANCE_NAME, read_maintenance
from .marker import MARKER_NAME, default_lock_path, read_release_id
from .proxy import HandlerProxy
from .wsgi import HotReloadWSGI, wrap_wsgi

logging.getLogger("hotreload_agent").addHandler(logging.NullHandler())

__all__ = [
    "Agent", "AdminServer", "Generation", "HandlerProxy", "HotReloadASGI", "HotReloadWSGI",
    "MAINTENANCE_NAME", "MARKER_NAME", "NoCanary", "NoPreviousGeneration", "TreeNotConsistent", "default_lock_path",
    "read_maintenance", "read_release_id", "start_admin_server", "wrap_asgi", "wrap_wsgi",
]

"""Framework-neutral HTTP endpoints; WSGI, ASGI and the admin server adapt them."""

import json
from typing import Any, Dict, Optional, Tuple

from .agent import Agent, NoPreviousGeneration, TreeNotConsistent

PREFIX = "/api/v1/hot-reload"
STATUS_PATH = PREFIX + "/status"
CHECK_PATH = PREFIX + "/check"
VERSIONS_PATH = PREFIX + "/versions"
ROLLBACK_PATH = PREFIX + "/rollback"
HEALTH_PATH = "/health"

# path -> (method, needs token)
ROUTES = {
    STATUS_PATH: ("GET", False),
    VERSIONS_PATH: ("GET", False),
    HEALTH_PATH: ("GET", False),
    CHECK_PATH: ("POST", True),
    ROLLBACK_PATH: ("POST", True),
}

Response = Tuple[int, Dict[str, Any], Dict[str, str]]  # status, JSON body, extra headers


def handles(path: str, include_health: bool = True) -> bool:
    return path in ROUTES and (include_health or path != HEALTH_PATH)


def dispatch(agent: Agent, method: str, path: str, authorization: Optional[str],
             body: bytes) -> Response:
    """Serve one agent endpoint. `path` must satisfy handles()."""
    expected_method, needs_token = ROUTES[path]
    method = method.upper()
    if method != expected_method and not (expected_method == "GET" and method == "HEAD"):
        return 405, {"error": "method not allowed"}, {"Allow": expected_method}
    if needs_token and not agent.authorized(authorization):
        return 401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"}
    if path == STATUS_PATH:
        return 200, agent.status(), {}
    if path == VERSIONS_PATH:
        return 200, agent.versions(), {}
    if path == HEALTH_PATH:
        return 200, agent.health(), {}
    if path == ROLLBACK_PATH:
        try:
            return 200, agent.rollback(), {}
        except NoPreviousGeneration as exc:
            return 409, {"error": str(exc)}, {}
    # CHECK_PATH: every reload outcome is 200 with the state in the body.
    expect = None
    if body.strip():
        try:
            payload = json.loads(body.decode("utf-8"))
        except ValueError:
            return 400, {"error": "body must be JSON"}, {}
        expect = payload.get("expect") if isinstance(payload, dict) else None
        if expect is not None and not isinstance(expect, dict):
            return 400, {"error": "expect must be an object of path -> sha256"}, {}
    try:
        return 200, agent.check(expect=expect), {}
    except TreeNotConsistent as exc:
        return 409, {"error": "tree not yet consistent", "mismatched": exc.mismatched}, {}


def encode(body: Dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True).encode("utf-8")

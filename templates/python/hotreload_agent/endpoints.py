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

# path -> (method, needs token). The others answer anyone, but show a
# traceback in last_error only to a caller that could also reload.
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
             body: bytes, open_without_token: bool = False) -> Response:
    """Serve one agent endpoint. `path` must satisfy handles().
    open_without_token: only for an admin server bound to a loopback address."""
    expected_method, needs_token = ROUTES[path]
    method = method.upper()
    if method != expected_method and not (expected_method == "GET" and method == "HEAD"):
        return 405, {"error": "method not allowed"}, {"Allow": expected_method}
    allowed = (needs_token or path == STATUS_PATH) and agent.authorized(authorization, open_without_token)
    if needs_token and not allowed:
        return _refusal(agent)
    if path == STATUS_PATH:
        return 200, agent.status(full=allowed), {}
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


def _refusal(agent: Agent) -> Response:
    token, problem = agent.token_state()
    if token:
        return 401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"}
    # Nothing a caller could send would help: the service needs a token first.
    return 403, {"error": problem or agent.no_token_help()}, {}


def encode(body: Dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True).encode("utf-8")

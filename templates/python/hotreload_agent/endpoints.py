"""Framework-neutral HTTP endpoints; WSGI, ASGI and the admin server adapt them."""

import json
from typing import Any, Dict, Optional, Tuple, Union

from .agent import Agent, NoCanary, NoPreviousGeneration, TreeNotConsistent
from .maintenance import maintenance_response
from .metrics import prometheus_text

PREFIX = "/api/v1/hot-reload"
STATUS_PATH = PREFIX + "/status"
CHECK_PATH = PREFIX + "/check"
VERSIONS_PATH = PREFIX + "/versions"
ROLLBACK_PATH = PREFIX + "/rollback"
PROMOTE_PATH = PREFIX + "/promote"
ABORT_PATH = PREFIX + "/abort"
METRICS_PATH = PREFIX + "/metrics"
HEALTH_PATH = "/health"

# path -> (method, needs token). The others answer anyone, but show a
# traceback in last_error only to a caller that could also reload.
ROUTES = {
    STATUS_PATH: ("GET", False),
    VERSIONS_PATH: ("GET", False),
    HEALTH_PATH: ("GET", False),
    CHECK_PATH: ("POST", True),
    ROLLBACK_PATH: ("POST", True),
    PROMOTE_PATH: ("POST", True),
    ABORT_PATH: ("POST", True),
    METRICS_PATH: ("GET", False),
}
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# status, body (a JSON object, or text whose Content-Type is in the headers), extra headers
Response = Tuple[int, Union[Dict[str, Any], str], Dict[str, str]]


def handles(path: str, include_health: bool = True) -> bool:
    return path in ROUTES and (include_health or path != HEALTH_PATH)


def maintenance(agent: Agent, path: str) -> Optional[Response]:
    """503 + Retry-After for an app route while hotctl's maintenance marker exists;
    None for the agent's endpoints and /health (they keep answering) or when off."""
    if path in ROUTES:
        return None
    return maintenance_response(agent.root)


def wants_prometheus(query: str, accept: Optional[str]) -> bool:
    """?format=prometheus, or an Accept that asks for text/plain or OpenMetrics and not JSON."""
    params = dict(p.partition("=")[::2] for p in (query or "").split("&") if p)
    if params.get("format") in ("prometheus", "json"):
        return params["format"] == "prometheus"
    accept = (accept or "").lower()
    return ("text/plain" in accept or "openmetrics" in accept) and "application/json" not in accept


def dispatch(agent: Agent, method: str, path: str, authorization: Optional[str],
             body: bytes, open_without_token: bool = False, query: str = "",
             accept: Optional[str] = None) -> Response:
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
    if path == METRICS_PATH:
        metrics = agent.metrics()
        if wants_prometheus(query, accept):
            return 200, prometheus_text(metrics["generations"]), {"Content-Type": PROMETHEUS_TYPE}
        return 200, metrics, {}
    if path in (PROMOTE_PATH, ABORT_PATH):
        try:
            return 200, agent.promote() if path == PROMOTE_PATH else agent.abort(), {}
        except NoCanary as exc:
            return 409, {"error": str(exc)}, {}
    if path == ROLLBACK_PATH:
        try:
            return 200, agent.rollback(), {}
        except NoPreviousGeneration as exc:
            return 409, {"error": str(exc)}, {}
    # CHECK_PATH: every reload outcome is 200 with the state in the body.
    expect = canary = None
    if body.strip():
        try:
            payload = json.loads(body.decode("utf-8"))
        except ValueError:
            return 400, {"error": "body must be JSON"}, {}
        expect = payload.get("expect") if isinstance(payload, dict) else None
        if expect is not None and not isinstance(expect, dict):
            return 400, {"error": "expect must be an object of path -> sha256"}, {}
        canary = payload.get("canary") if isinstance(payload, dict) else None
        if canary is not None and (type(canary) is not int or not 1 <= canary <= 100):
            return 400, {"error": "canary must be an integer percentage, 1 to 100"}, {}
    try:
        return 200, agent.check(expect=expect, canary=canary), {}
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


def render(payload: Union[Dict[str, Any], str], headers: Dict[str, str]):
    """(bytes, [(header, value)]) with Content-Type and Content-Length."""
    if isinstance(payload, str):
        data = payload.encode("utf-8")
    else:
        data = encode(payload)
        headers = dict(headers, **{"Content-Type": "application/json"})
    return data, list(headers.items()) + [("Content-Length", str(len(data)))]

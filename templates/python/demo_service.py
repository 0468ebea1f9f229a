#!/usr/bin/env python3
"""Demo service for end-to-end hotctl runs (stdlib only).

    python3 demo_service.py --root DIR --port N

Imports the `app` package from DIR, serves on 127.0.0.1:N:
    GET  /health            {"status": "ok", "pid": ...}   (from the agent)
    POST /api/v1/calc       {"a": 1, "b": 2} -> {"success": true, "result": ...}
    GET  /api/v1/hello      text from app.handlers (hello() or VERSION_TEXT)
    /api/v1/hot-reload/*    agent endpoints, same port
and prints `READY <port> <pid>` once listening. check and rollback need the
token: from the file named by $HOTRELOAD_TOKEN_FILE (mode 0600) or from
$HOTRELOAD_TOKEN; without one they are refused (403).
"""

import argparse
import json
import os
import signal
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # hotreload_agent

from hotreload_agent import Agent, HotReloadWSGI  # noqa: E402


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow request must not block a reload check


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def _json(start_response, status, body):
    data = json.dumps(body).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def build_app(handlers):
    """`handlers` is the agent's proxy: every request uses the live generation."""

    def app(environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        if path == "/api/v1/calc" and method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                payload = json.loads(environ["wsgi.input"].read(length).decode("utf-8") or "{}")
                a, b = payload["a"], payload["b"]
            except (ValueError, KeyError, TypeError):
                return _json(start_response, "400 Bad Request",
                             {"success": False, "error": 'expected JSON {"a": ..., "b": ...}'})
            try:
                return _json(start_response, "200 OK", {"success": True, "result": handlers.calc(a, b)})
            except Exception as exc:
                return _json(start_response, "500 Internal Server Error",
                             {"success": False, "error": "%s: %s" % (type(exc).__name__, exc)})
        if path == "/api/v1/hello" and method == "GET":
            with handlers.pin() as current:  # one generation for the whole request
                hello = getattr(current, "hello", None)
                text = hello() if callable(hello) else str(getattr(current, "VERSION_TEXT", ""))
            data = (text + "\n").encode("utf-8")
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                                      ("Content-Length", str(len(data)))])
            return [data]
        return _json(start_response, "404 Not Found", {"success": False, "error": "not found"})

    return app


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="deployed tree containing the app package")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--handlers", default="app.handlers", help="module serving calc/hello")
    parser.add_argument("--poll", type=float, default=None,
                        help="auto-check interval in seconds (default $HOTRELOAD_POLL_INTERVAL, off)")
    args = parser.parse_args(argv)

    root = os.path.realpath(args.root)
    sys.path.insert(0, root)
    # The agent snapshots the tree before the app is imported, so a deploy
    # racing with start-up is picked up by the next check instead of missed.
    agent = Agent(root, entry_file=os.path.abspath(__file__), poll_interval=args.poll)
    handlers = agent.register("handlers", args.handlers)

    server = make_server(args.host, args.port, HotReloadWSGI(build_app(handlers), agent),
                         server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("READY %d %d" % (server.server_address[1], os.getpid()), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

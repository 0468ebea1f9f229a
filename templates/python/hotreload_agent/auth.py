"""Who may reload: the bearer token, where it comes from, and what callers may see.

Fails closed: without a usable token, check and rollback are refused
everywhere except on an admin server bound to a loopback address. The
client's address is never trusted: behind a reverse proxy on the same host,
every request comes from 127.0.0.1.
"""

import hmac
import ipaddress
import os
import re
import stat
from typing import Any, Dict, NamedTuple, Optional

TOKEN_ENV = "HOTRELOAD_TOKEN"
TOKEN_FILE_ENV = "HOTRELOAD_TOKEN_FILE"
_MAX_TOKEN_FILE = 4096
_SUMMARY_LIMIT = 300


class TokenState(NamedTuple):
    token: Optional[str]  # the expected token, or None
    problem: Optional[str]  # why a configured token cannot be used (fail closed)


class TokenSource:
    def __init__(self, token: Optional[str], token_env: str, token_file: Optional[str],
                 token_file_env: str) -> None:
        """token: explicit (""= none). Otherwise $token_env, then the file named
        by token_file or $token_file_env. Read on every call: rotation needs no
        restart."""
        self._token = token
        self._token_env = token_env
        self._token_file = token_file
        self._token_file_env = token_file_env

    def state(self) -> TokenState:
        if self._token is not None:
            return TokenState(self._token or None, None)
        value = os.environ.get(self._token_env, "")
        if value:
            return TokenState(value, None)
        path = self._token_file or os.environ.get(self._token_file_env, "")
        if not path:
            return TokenState(None, None)
        try:
            return TokenState(read_token_file(path), None)
        except TokenFileError as exc:
            return TokenState(None, "%s cannot be used: %s" % (self._token_file_env, exc))

    def how_to_set(self) -> str:
        return ("no token configured: set %s (a file holding the token that only the service's user "
                "can read, mode 0600) or %s for the service, and send 'Authorization: Bearer <token>' "
                "(hotctl: reload.trigger.headers)" % (self._token_file_env, self._token_env))


class TokenFileError(Exception):
    pass


def read_token_file(path: str) -> str:
    """The token in `path`, refused when group or others may read or write it."""
    try:
        with open(path, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise TokenFileError("not a regular file")
            if mode & 0o077:
                raise TokenFileError("group or others can access it (mode %04o): chmod 600 it"
                                     % stat.S_IMODE(mode))
            data = fh.read(_MAX_TOKEN_FILE + 1)
    except OSError as exc:
        raise TokenFileError("cannot be read (%s)" % (exc.strerror or type(exc).__name__))
    if len(data) > _MAX_TOKEN_FILE:
        raise TokenFileError("larger than %d bytes" % _MAX_TOKEN_FILE)
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise TokenFileError("not UTF-8 text")
    if not token:
        raise TokenFileError("empty")
    return token


def bearer_matches(authorization: Optional[str], expected: str) -> bool:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        value = ""
    return hmac.compare_digest(value.strip().encode("utf-8"), expected.encode("utf-8"))


def is_loopback(host: str) -> bool:
    """True for a bound address that only this host can reach (127.0.0.0/8, ::1)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def summarize(message: str, root: str) -> str:
    """One line fit for anyone: paths under the tree relative, other absolute
    paths cut to their last part, no code."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = text.replace(root.rstrip(os.sep) + os.sep, "")
    text = re.sub(r"(?<![\w.:/])/(?:[^\s'\"/]+/)+", ".../", text)
    return text if len(text) <= _SUMMARY_LIMIT else text[:_SUMMARY_LIMIT - 3] + "..."


def public_error(error: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """last_error for a caller without the token: type and summary, no traceback."""
    if error is None:
        return None
    return {"type": error.get("type"), "message": error.get("message")}

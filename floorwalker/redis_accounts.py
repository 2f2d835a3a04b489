"""Redis users per store-server process, for ``services up --secrets``.

With a secrets directory Redis has no ``default`` user: every client logs in with its own
user, whose rights the ACL file ``{secrets}/redis-users.acl`` (mode 0600, SHA-256 hashes
only) sets:

============  ==========================================================================
user          may
============  ==========================================================================
``recommender`` every data command, no administration (``CONFIG``, ``ACL``, ``FLUSHALL``,
              ``DEBUG``, ``SHUTDOWN`` ...); ``BGREWRITEAOF`` for ``member erase``
``api``       every data command, no administration
``admin``     everything: the operator's CLI (``token``, ``report``, ``member erase``)
============  ==========================================================================

The fuser, the recorder and replay never talk to Redis and get no user. A service's
password travels in its device credentials file (``devices/svc-NAME.json``, key
``redis``), the admin's in ``devices/redis-admin.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict

ACL_FILE: Final = "redis-users.acl"
ADMIN_FILE: Final = "devices/redis-admin.json"
ADMIN: Final = "admin"
#: The store-server services that use Redis, and what their users may do.
_DATA: Final = "~* &* +@all -@admin -flushall -flushdb -swapdb"
RIGHTS: Final[dict[str, str]] = {
    "recommender": _DATA + " +bgrewriteaof",
    "api": _DATA,
    ADMIN: "~* &* +@all",
}


class RedisLogin(BaseModel):
    """A Redis user and its password."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str
    password: str


def with_login(url: str, login: RedisLogin | None) -> str:
    """``url`` with ``login`` in it (a URL that already names a user is left alone)."""
    if login is None:
        return url
    parts = urlsplit(url)
    if parts.username or parts.password:
        return url
    userinfo = f"{quote(login.username, safe='')}:{quote(login.password, safe='')}@"
    return urlunsplit((parts.scheme, userinfo + parts.netloc, parts.path, parts.query, parts.fragment))


def redact(url: str) -> str:
    """``url`` fit for a log line or an error: the password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{parts.username or ''}:***@{host}", parts.path, parts.query, ""))


class RedisAccounts:
    """The Redis users of one store, kept in ``secrets_dir``."""

    def __init__(self, secrets_dir: Path) -> None:
        self.dir = secrets_dir

    @property
    def acl_file(self) -> Path:
        return self.dir / ACL_FILE

    def rotate(self, user: str) -> RedisLogin:
        """A fresh password for ``user`` (made if new), written to the ACL file as a hash."""
        if user not in RIGHTS:
            raise ValueError(f"no Redis user {user!r}: one of {', '.join(RIGHTS)}")
        password = secrets.token_urlsafe(32)
        hashes = self._hashes()
        hashes[user] = hashlib.sha256(password.encode()).hexdigest()
        self._write(hashes)
        return RedisLogin(username=user, password=password)

    def remove(self, user: str) -> None:
        """Delete ``user`` (a revoked service): its password no longer opens Redis."""
        hashes = self._hashes()
        if hashes.pop(user, None) is not None:
            self._write(hashes)

    def ensure(self) -> Path:
        """Make sure the ACL file exists with the admin user, whose login is in
        ``devices/redis-admin.json`` (mode 0600); return that file."""
        admin_file = self.dir / ADMIN_FILE
        if ADMIN not in self._hashes() or not admin_file.exists():
            _write_private(admin_file, self.rotate(ADMIN).model_dump_json(indent=2))
        self._write(self._hashes())
        return admin_file

    # -- internals ---------------------------------------------------------------------

    @property
    def _hash_file(self) -> Path:
        return self.dir / "redis-users.json"

    def _hashes(self) -> dict[str, str]:
        try:
            raw = json.loads(self._hash_file.read_text())
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in raw.items() if k in RIGHTS}

    def _write(self, hashes: dict[str, str]) -> None:
        lines = ["user default off nopass -@all"]
        lines += [f"user {user} on #{digest} {RIGHTS[user]}" for user, digest in sorted(hashes.items())]
        _write_private(self._hash_file, json.dumps(hashes, indent=2))
        _write_private(self.acl_file, "\n".join(lines) + "\n")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)

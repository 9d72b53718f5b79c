"""API keys: a JSON file named by ``Settings.api_keys_file``, each key stored as a bcrypt hash
with the user it belongs to and a role.

A key reads ``qa-<id>-<secret>``: the id (8 hex digits) is stored in the clear and picks the
one entry whose hash is checked, so a wrong key costs one bcrypt check at most and a key with
an unknown id none. A key that passed is remembered in memory (by its SHA-256) until the file
changes, so a client pays for bcrypt once, not on every request. The key itself is shown once,
when it is made (``qa api keys add``), and stored nowhere.

Roles: ``admin`` may change documents; ``user`` may read, ask and rate. A user named in
``Settings.admins`` (the Evaluate tab's admins) is an admin whatever the key's role says.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import bcrypt

from qa.errors import QAError

Role = Literal["admin", "user"]
ROLES: tuple[Role, ...] = ("admin", "user")
_KEY = re.compile(r"^qa-([0-9a-f]{8})-([A-Za-z0-9_-]{20,64})$")
_NAME = re.compile(r"^[\w.@+-]{1,64}$")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's user name and whether they may change documents. Without
    keys every (loopback) caller is ``Caller("", admin=True)``, as the UI without a login."""

    name: str
    admin: bool


@dataclass(frozen=True)
class KeyEntry:
    """One stored key: its public id, the bcrypt hash of the whole key, who and which role."""

    id: str
    name: str
    role: Role
    hash: str
    created: str = ""


class KeyFile:
    """The keys in ``path`` (read again whenever the file changes)."""

    def __init__(self, path: Path | None, admins: list[str] | tuple[str, ...] = ()) -> None:
        self.path = path
        self.admins = set(admins)
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._entries: dict[str, KeyEntry] = {}
        self._checked: dict[str, KeyEntry] = {}  # sha256(key) -> entry, for keys that passed

    @property
    def enabled(self) -> bool:
        """Whether any key is set (then every request needs one)."""
        return bool(self._load())

    def entries(self) -> list[KeyEntry]:
        """The stored keys, oldest first."""
        return list(self._load().values())

    def check(self, key: str) -> Caller | None:
        """The caller ``key`` belongs to, or None for a wrong key."""
        entries = self._load()
        match = _KEY.match(key.strip())
        if not match or match.group(1) not in entries:
            return None
        digest = hashlib.sha256(key.strip().encode()).hexdigest()
        entry = self._checked.get(digest)
        if entry is None:
            candidate = entries[match.group(1)]
            if not bcrypt.checkpw(key.strip().encode(), candidate.hash.encode()):
                return None
            entry = self._checked.setdefault(digest, candidate)
        return Caller(entry.name, entry.role == "admin" or entry.name in self.admins)

    def add(self, name: str, role: Role = "user") -> str:
        """Make a key for ``name`` with ``role``, store its hash; returns the key (shown once)."""
        if not _NAME.match(name):
            raise QAError(
                f"{name!r} is not a usable user name: letters, digits and ._@+- only, up to 64"
            )
        if role not in ROLES:
            raise QAError(f"Unknown role {role!r}; use one of {', '.join(ROLES)}")
        entries = dict(self._load())
        key_id = secrets.token_hex(4)
        while key_id in entries:
            key_id = secrets.token_hex(4)
        key = f"qa-{key_id}-{secrets.token_urlsafe(24)}"
        hashed = bcrypt.hashpw(key.encode(), bcrypt.gensalt()).decode()
        created = datetime.now(UTC).isoformat(timespec="seconds")
        entries[key_id] = KeyEntry(key_id, name, role, hashed, created)
        self._save(entries)
        return key

    def remove(self, name_or_id: str) -> int:
        """Delete every key of user ``name_or_id`` (or the key with that id); returns how many."""
        entries = self._load()
        kept = {k: e for k, e in entries.items() if name_or_id not in (e.name, e.id, f"qa-{e.id}")}
        if len(kept) != len(entries):
            self._save(kept)
        return len(entries) - len(kept)

    def _require_path(self) -> Path:
        if self.path is None:
            raise QAError("No key file: set QA_API_KEYS_FILE (setting api_keys_file) first")
        return self.path

    def _save(self, entries: dict[str, KeyEntry]) -> None:
        path = self._require_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        data = {"keys": [asdict(e) for e in entries.values()]}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # hashes: owner only
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)

    def _load(self) -> dict[str, KeyEntry]:
        if self.path is None:
            return {}
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    raw = json.loads(self.path.read_text() or "{}")
                    keys = [KeyEntry(**k) for k in raw.get("keys", [])]
                except (OSError, ValueError, TypeError) as err:
                    raise QAError(
                        f"Cannot read the API key file {self.path}: {err}; fix or delete it"
                    ) from err
                self._entries = {k.id: k for k in keys}
                self._checked = {}
                self._stamp = stamp
            return self._entries

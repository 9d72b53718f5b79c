"""API keys: a JSON file named by ``Settings.api_keys_file``, each key stored as a bcrypt hash
with the user it belongs to and a role.

A key reads ``qa-<id>-<secret>``: the id (8 hex digits) is stored in the clear and picks the
one entry whose hash is checked, so a wrong key costs one bcrypt check at most and a key with
an unknown id none. A key that passed is remembered in memory (by its SHA-256) until the file
changes, so a client pays for bcrypt once, not on every request. The key itself is shown once,
when it is made (``qa api keys add``), and stored nowhere.

Roles: ``admin`` may change documents; ``user`` may read, ask and rate. A user named in
``Settings.admins`` (the Evaluate tab's admins) is an admin whatever the key's role says.

Workspaces: a key may be limited to some workspaces (:mod:`qa.workspaces`) with a role in each
(``"workspaces": {"manuals": "admin", "qa": "user"}``); without that map it may use every
workspace with its role, so key files written before workspaces keep working.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import bcrypt

from qa.errors import QAError
from qa.workspaces import DEFAULT, RESERVED, WorkspaceError, check_name

Role = Literal["admin", "user"]
ROLES: tuple[Role, ...] = ("admin", "user")
_KEY = re.compile(r"^qa-([0-9a-f]{8})-([A-Za-z0-9_-]{20,64})$")
_NAME = re.compile(r"^[\w.@+-]{1,64}$")


def workspace_id(name: str) -> str:
    """The name a workspace is known by in a key: ``qa`` for the project root's (``default``
    and any case of ``qa`` too)."""
    return DEFAULT if name.lower() in RESERVED else name


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's user name, whether they may change documents, and the
    workspaces they may use with their role in each (None: every workspace, as ``admin``
    says). Without keys every (loopback) caller is ``Caller("", admin=True)``, as the UI
    without a login."""

    name: str
    admin: bool
    workspaces: Mapping[str, Role] | None = None

    def may_use(self, workspace: str) -> bool:
        """Whether the caller may read and ask in ``workspace``."""
        return self.workspaces is None or workspace_id(workspace) in self.workspaces

    def may_change(self, workspace: str) -> bool:
        """Whether the caller may change the documents of ``workspace``."""
        if self.workspaces is None:
            return self.admin
        return self.workspaces.get(workspace_id(workspace)) == "admin"


@dataclass(frozen=True)
class KeyEntry:
    """One stored key: its public id, the bcrypt hash of the whole key, who, which role, and
    the workspaces it is limited to with a role in each (None: every one, with ``role``)."""

    id: str
    name: str
    role: Role
    hash: str
    created: str = ""
    workspaces: dict[str, Role] | None = None

    def stored(self) -> dict[str, Any]:
        """As the key file holds it (no ``workspaces`` when unlimited, as before them)."""
        data = asdict(self)
        if self.workspaces is None:
            del data["workspaces"]
        return data


def limits(spec: Mapping[str, str], role: Role = "user") -> dict[str, Role]:
    """Workspace limits checked: each name a workspace name (``qa`` the root's), each role one
    of :data:`ROLES` ("" means ``role``).

    Raises:
        QAError: a bad workspace name or role, saying which.
    """
    checked: dict[str, Role] = {}
    for name, given in spec.items():
        name = workspace_id(name.strip())
        if name != DEFAULT:
            try:
                check_name(name)
            except WorkspaceError as err:
                raise QAError(f"Cannot limit a key to it: {err}") from err
        chosen = given or role
        if chosen not in ROLES:
            raise QAError(f"Unknown role {chosen!r} for {name}; use one of {', '.join(ROLES)}")
        checked[name] = chosen  # type: ignore[assignment]
    return checked


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
        return self.caller(entry)

    def caller(self, entry: KeyEntry) -> Caller:
        """Who ``entry`` lets call: a user named in ``admins`` is an admin wherever the key
        reaches."""
        boss = entry.name in self.admins
        allowed = entry.workspaces
        if allowed is not None:
            allowed = {ws: "admin" if boss else role for ws, role in allowed.items()}
        return Caller(entry.name, entry.role == "admin" or boss, allowed)

    def add(
        self, name: str, role: Role = "user", workspaces: Mapping[str, str] | None = None
    ) -> str:
        """Make a key for ``name`` with ``role``, store its hash; returns the key (shown once).
        With ``workspaces`` (name -> role, "" for ``role``) it may use only those.

        Raises:
            QAError: a bad user name, role or workspace limit.
        """
        if not _NAME.match(name):
            raise QAError(
                f"{name!r} is not a usable user name: letters, digits and ._@+- only, up to 64"
            )
        if role not in ROLES:
            raise QAError(f"Unknown role {role!r}; use one of {', '.join(ROLES)}")
        allowed = limits(workspaces, role) if workspaces is not None else None
        if allowed == {}:
            raise QAError("A key limited to no workspace could do nothing; name at least one")
        entries = dict(self._load())
        key_id = secrets.token_hex(4)
        while key_id in entries:
            key_id = secrets.token_hex(4)
        key = f"qa-{key_id}-{secrets.token_urlsafe(24)}"
        hashed = bcrypt.hashpw(key.encode(), bcrypt.gensalt()).decode()
        created = datetime.now(UTC).isoformat(timespec="seconds")
        entries[key_id] = KeyEntry(key_id, name, role, hashed, created, allowed)
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
        data = {"keys": [e.stored() for e in entries.values()]}
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

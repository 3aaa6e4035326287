"""What a mount of a remote store knows of its names, and for how long it trusts it.

Every question to an object store is a request, and a guest asks the same ones over and
over (path resolution looks up each component, the open looks the name up again, the file
object again). A mount keeps what it learned in one :class:`MetadataCache`:

* exact about this world's own changes: a file stored, a directory made, a rename, a
  removal update it at once, so the world sees its own tree as it made it;
* explicit about other writers of the store: what was learned from the store is trusted
  for ``ttl`` seconds (``None``: as long as the mount lasts; ``0``: not at all, every
  operation asks again), then asked again.

Entries come from single lookups and from directory listings; a complete listing also
tells that a name is absent. The cache holds at most :data:`LIMIT` entries: past that it
starts afresh, which costs requests, never correctness.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from .base import FileKind


@dataclass(frozen=True, slots=True)
class Entry:
    """One name as the store describes it: what it is, its size, its modification time
    (0: the store keeps none) and a symlink's target, where the store tells it."""

    kind: FileKind
    size: int
    mtime_ns: int
    target: str | None = None


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()
"""What :meth:`MetadataCache.lookup` answers when it must ask the store."""

LIMIT = 1 << 17


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


class MetadataCache:
    """Entries (or absences) by path and listings by directory, each until it expires."""

    def __init__(self, ttl: float | None) -> None:
        if ttl is not None and ttl < 0:
            raise ValueError(f"a cache lifetime is seconds, 0 or more, not {ttl}")
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Entry | None]] = {}
        self._listings: dict[str, tuple[float, dict[str, Entry]]] = {}
        self._held = 0

    @property
    def keeps(self) -> bool:
        """Whether anything is kept at all (``ttl`` is not 0)."""
        return self.ttl is None or self.ttl > 0

    def _until(self) -> float:
        return math.inf if self.ttl is None else time.monotonic() + self.ttl

    def _hold(self, more: int) -> None:
        self._held += more
        if self._held > LIMIT:
            self.clear()
            self._held = more

    def clear(self) -> None:
        self._entries.clear()
        self._listings.clear()
        self._held = 0

    def listing(self, path: str) -> dict[str, Entry] | None:
        """The entries of directory ``path`` by name, if it was listed whole and still fresh."""
        found = self._listings.get(path)
        if found is None:
            return None
        if found[0] <= time.monotonic():
            del self._listings[path]
            return None
        return found[1]

    def lookup(self, path: str) -> Entry | _Unknown | None:
        """``path``'s entry, None if it is known to be absent, or :data:`UNKNOWN`."""
        parent, _, name = path.rpartition("/")
        if path:
            listed = self.listing(parent)
            if listed is not None:
                return listed.get(name)
        found = self._entries.get(path)
        if found is None:
            return UNKNOWN
        if found[0] <= time.monotonic():
            del self._entries[path]
            return UNKNOWN
        return found[1]

    def note(self, path: str, entry: Entry | None) -> None:
        """What ``path`` is now (None: absent), learned from the store or changed here."""
        if not self.keeps:
            return
        self._entries[path] = (self._until(), entry)
        self._hold(1)
        if not path:
            return
        parent, _, name = path.rpartition("/")
        listed = self.listing(parent)
        if listed is not None:
            if entry is None:
                listed.pop(name, None)
            else:
                listed[name] = entry

    def listed(self, path: str, entries: dict[str, Entry], *, complete: bool) -> None:
        """Directory ``path`` holds ``entries`` (by name), all of them if ``complete``."""
        if not self.keeps:
            return
        until = self._until()
        prefix = f"{path}/" if path else ""
        if complete:
            self._listings[path] = (until, dict(entries))
            self._hold(len(entries) + 1)
        else:
            for name, entry in entries.items():
                self._entries[prefix + name] = (until, entry)
            self._hold(len(entries))

    def forget_below(self, path: str) -> None:
        """Everything under directory ``path`` (not ``path`` itself) is unknown again: it
        moved or went away as a whole."""
        self._listings.pop(path, None)
        if not path:
            self.clear()
            return
        below = path + "/"
        for table in (self._entries, self._listings):
            for key in [key for key in table if key.startswith(below)]:
                del table[key]

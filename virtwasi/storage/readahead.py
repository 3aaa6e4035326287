"""Reading a folder's small files ahead of a guest that reads them one after another.

A batch tool reads the files of a folder in the order it lists them, and on an object
store each read waits for its own GET. Once a guest has read two small files of a folder
in a row (in listing order), the next :data:`WINDOW` small files of that listing are
fetched at once, concurrently, while it works on the one it has; each read tops the
window up. A single read, or reads in any other order, fetch nothing ahead, so an
operation still asks only what it needs; a guest that stops half way leaves at most
:data:`WINDOW` fetches unused.

What was fetched ahead is forgotten when this world changes the name, and once read: a
file is fetched ahead at most once, just before the guest gets to it.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from concurrent.futures import Future

WINDOW = 8
"""How many files are fetched ahead of the one being read."""

SMALL = 1 << 20
"""Only files of at most this many bytes are fetched ahead (so at most 8 MiB wait)."""


class ReadAhead:
    """Fetches ahead by ``fetch(path)`` (None: this one cannot be), and hands out what it
    fetched (:meth:`take`)."""

    def __init__(self, fetch: Callable[[str], Future[bytes] | None]) -> None:
        self._fetch = fetch
        self._ahead: dict[str, Future[bytes]] = {}
        self._last: str | None = None

    def take(self, path: str) -> bytes | None:
        """The content fetched ahead for ``path``, if any (None also if the fetch failed:
        the caller reads it itself and meets the error, if there still is one)."""
        ahead = self._ahead.pop(path, None)
        if ahead is None:
            return None
        try:
            return ahead.result()
        except Exception:
            return None

    def read(self, path: str, folder: list[str]) -> None:
        """``path`` was just read from the store; ``folder`` lists the small files of its
        directory (``path`` among them) in listing order."""
        last, self._last = self._last, path
        at = bisect.bisect_left(folder, path)
        if at == len(folder) or folder[at] != path or at == 0 or folder[at - 1] != last:
            return  # not the next of a folder read in order
        for name in folder[at + 1:at + 1 + WINDOW]:
            if name not in self._ahead:
                fetching = self._fetch(name)
                if fetching is None:
                    return
                self._ahead[name] = fetching
        while len(self._ahead) > 2 * WINDOW:  # skipped over: drop the oldest
            self._drop(next(iter(self._ahead)))

    def _drop(self, path: str) -> None:
        ahead = self._ahead.pop(path, None)
        if ahead is not None:
            ahead.cancel()

    def forget(self, path: str) -> None:
        """This world changed ``path``, or everything under it."""
        for name in [name for name in self._ahead
                     if name == path or name.startswith(path + "/") or not path]:
            self._drop(name)

    def close(self) -> None:
        self.forget("")
        self._last = None

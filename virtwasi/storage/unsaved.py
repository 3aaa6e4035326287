"""Written data a run could not store, kept on the host in virtwasi's cache folder.

Two folders under :func:`cache_folder`:

* ``spill/``: what a guest is writing to a remote file, while it writes. Each spill has a
  record ``ID.json`` (the owning process id, the object's URL, since when it holds data
  not stored) and, once too large for memory, its data ``ID.spill``. The owner holds a lock
  on the record for as long as it lives, so that a record nobody holds was left by a
  process that died without cleaning up (SIGKILL, the out-of-memory killer): the next
  virtwasi run finds it with one directory listing (:func:`recover_spills`).
* ``unsaved/``: what could not be stored, one folder per run (its time and process id)
  holding the files, with a manifest ``RUN.json`` beside it saying what each was meant
  for (:func:`record_kept`, :func:`kept_files`).

No fsspec here: a run that writes nothing remote only lists a folder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

_RECORD, _DATA = ".json", ".spill"
_YOUNG_S = 60  # an empty record younger than this may be one being written right now


def cache_folder() -> Path:
    """``$VIRTWASI_CACHE``, else ``virtwasi`` in ``$XDG_CACHE_HOME`` or ``~/.cache``
    (also when ``VIRTWASI_CACHE=off``, which turns off only the module cache)."""
    configured = os.environ.get("VIRTWASI_CACHE")
    if configured and configured != "off":
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "virtwasi"


def unsaved_folder() -> Path:
    """Where written data that could not be stored is kept for the user to recover:
    ``unsaved`` in :func:`cache_folder`. Nothing there is ever removed but by the user."""
    return cache_folder() / "unsaved"


def spill_folder() -> Path:
    """Where the spills of files being written live (see the module doc)."""
    return cache_folder() / "spill"


def unsaved_run_folder() -> Path:
    """A folder of :func:`unsaved_folder` for what a run could not store at its end (the
    time and process id), not made yet: the files go under the paths they had."""
    return unsaved_folder() / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


_process_run = ""


def _process_run_name() -> str:
    """The folder name under :func:`unsaved_folder` for the spills of this process, should
    it be killed: when it first wrote a spill, and its process id."""
    global _process_run
    if not _process_run.endswith(f"-{os.getpid()}"):  # unset, or a fork: a new process
        _process_run = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    return _process_run


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


class SpillRecord:
    """The record of one spill in :func:`spill_folder`, locked by this process while the
    spill lives: where its data is meant to go, and whether it holds data not stored."""

    def __init__(self, fd: int, path: Path, url: str | None) -> None:
        self._fd = fd
        self.path = path
        self.url = url
        self.data_path = path.with_suffix(_DATA)
        self._since: float | None = None

    @classmethod
    def create(cls, url: str | None) -> SpillRecord | None:
        """A new locked record for data meant for ``url`` (None: for nowhere that outlives
        this process, such as fsspec's ``memory://``); None if the cache folder cannot
        be written (the spill then lives in the temporary folder, as a last resort)."""
        folder = spill_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(100):  # a clash of random names is rare; a hundred, impossible
                path = folder / f"{os.getpid()}-{os.urandom(6).hex()}{_RECORD}"
                try:
                    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX)  # new and empty: recover_spills waits
                record = cls(fd, path, url)
                record._write()
                return record
        except OSError:
            pass
        return None

    def _write(self) -> None:
        import json

        since = None if self._since is None else _stamp(self._since)
        text = json.dumps({"pid": os.getpid(), "run": _process_run_name(), "url": self.url,
                           "unstored_since": since}).encode()
        os.pwrite(self._fd, text, 0)
        os.ftruncate(self._fd, len(text))

    def unstored(self) -> None:
        """The spill now holds data the store has not (a write): kept if this process dies."""
        if self._since is None:
            self._since = time.time()
            self._write()

    def stored(self) -> None:
        """The store has every byte of the spill (an upload): nothing to keep."""
        if self._since is not None:
            self._since = None
            self._write()

    def retarget(self, url: str | None) -> None:
        """The file was renamed: its data is meant for ``url`` now."""
        if url != self.url:
            self.url = url
            self._write()

    def open_data(self) -> int:
        """The spill's data file, made empty."""
        return os.open(self.data_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def remove(self) -> None:
        """The spill was stored or discarded: remove the record, then its data (data found
        without a record is known to be done with)."""
        self.path.unlink(missing_ok=True)
        self.data_path.unlink(missing_ok=True)
        os.close(self._fd)


class Recovered(NamedTuple):
    """A spill left by a process that died: the ``url`` it was meant for, why it was not
    saved, and where its data is ``kept`` now (None: it was held in memory, lost)."""

    url: str
    reason: str
    kept: Path | None

    def __str__(self) -> str:
        if self.kept is None:
            return f"{self.url}: lost ({self.reason}; its data was held in memory only)"
        return f"{self.url}: not saved ({self.reason}); kept in {self.kept}"


def recover_spills() -> list[Recovered]:
    """Move the spills of processes that died to :func:`unsaved_folder`, and say what each
    was; those of living processes are left alone. One listing when there is nothing."""
    folder = spill_folder()
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in sorted(names):
        path = folder / name
        if name.endswith(_RECORD):
            recovered = _recover(path)
            if recovered is not None:
                found.append(recovered)
        elif name.endswith(_DATA) and name[: -len(_DATA)] + _RECORD not in names:
            _drop_done(path)
    return found


def _drop_done(data: Path) -> None:
    """A data file without a record: its owner was removing it (stored or discarded), as
    the record goes first and the data is made only after its record."""
    data.unlink(missing_ok=True)


def _recover(path: Path) -> Recovered | None:
    import json

    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None  # gone meanwhile: its owner finished with it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None  # its owner lives
            raise
        st = os.fstat(fd)
        if st.st_nlink == 0:
            return None  # removed by its owner after the listing
        text = os.pread(fd, 1 << 16, 0)
        if not text and time.time() - st.st_mtime < _YOUNG_S:
            return None  # being made (created, not yet locked)
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        return _settle(path, record if isinstance(record, dict) else {})
    finally:
        os.close(fd)


def _settle(path: Path, record: dict[str, Any]) -> Recovered | None:
    """Keep what a dead process's record says was not stored, then remove the record."""
    data = path.with_suffix(_DATA)
    url = record.get("url")
    since = record.get("unstored_since")
    recovered = None
    # Kept unless stored, or meant for nowhere lasting (a store that died with its process);
    # a record that cannot be read is kept too, as meant for an unknown destination.
    if not record or (since is not None and url):
        who = f"virtwasi process {record.get('pid', '?')}"
        reason = f"{who} was killed while writing it, {since or 'at an unknown time'}"
        kept = None
        if data.exists():
            run = os.path.basename(str(record.get("run") or "")) or f"unknown-{path.stem}"
            kept = keep(data, run, str(url) if url else None, reason)
        recovered = Recovered(str(url or "an unknown destination"), reason, kept)
    path.unlink(missing_ok=True)  # the data is kept, or was stored: done either way
    data.unlink(missing_ok=True)
    return recovered


def keep(data: Path | bytes, run: str, url: str | None, reason: str) -> Path:
    """Keep ``data`` (a file, moved; or bytes, written) in the unsaved run folder ``run``,
    at a path made of ``url``, with what it was meant for and why in its manifest."""
    scheme, _, rest = (url or "unknown://spill").partition("://")
    relative = Path(scheme, *[part for part in rest.split("/") if part not in ("", ".", "..")])
    dest = unsaved_folder() / run / relative
    n = 1
    while dest.exists():
        dest = dest.with_name(f"{relative.name}.{n}")
        n += 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        with open(dest, "xb") as out:
            out.write(data)
    else:
        import shutil  # a rename, or a copy where the cache spans file systems

        shutil.move(data, dest)
    record_kept(unsaved_folder() / run, {dest: (url, reason)})
    return dest


# -- the unsaved folder ----------------------------------------------------------------


class KeptFile(NamedTuple):
    """A file in :func:`unsaved_folder`: its ``path``, the ``url`` it was meant for (None if
    not recorded), why it was kept, its size and when it was kept."""

    path: Path
    url: str | None
    reason: str
    size: int
    kept_at: float


def _manifest(run: Path) -> Path:
    return run.with_name(run.name + ".json")


def _read_manifest(run: Path) -> dict[str, dict[str, Any]]:
    import json

    try:
        entries = json.loads(_manifest(run).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _write_manifest(run: Path, entries: dict[str, dict[str, Any]]) -> None:
    import json

    manifest = _manifest(run)
    if not entries:
        manifest.unlink(missing_ok=True)
        return
    partial = manifest.with_name(manifest.name + ".new")
    partial.write_text(json.dumps(entries, indent=1, sort_keys=True), encoding="utf-8")
    partial.replace(manifest)


def record_kept(run: Path, files: dict[Path, tuple[str | None, str]]) -> None:
    """Say in ``run``'s manifest what each kept file (a path under ``run``) was meant for:
    (URL, or None if it has none that lasts; reason)."""
    entries = _read_manifest(run)
    for path, (url, reason) in files.items():
        entries[path.relative_to(run).as_posix()] = {"url": url, "reason": reason}
    _write_manifest(run, entries)


def kept_files() -> list[KeptFile]:
    """Every file kept in :func:`unsaved_folder`, oldest run first."""
    folder = unsaved_folder()
    try:
        runs = sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return []
    found = []
    for run in runs:
        entries = _read_manifest(run)
        for path in sorted(p for p in run.rglob("*") if p.is_file()):
            entry = entries.get(path.relative_to(run).as_posix(), {})
            st = path.stat()
            found.append(KeptFile(path, entry.get("url"), entry.get("reason", ""),
                                  st.st_size, st.st_mtime))
    return found


def forget(path: Path) -> None:
    """Remove the kept file ``path``, its manifest entry, and folders it leaves empty."""
    folder = unsaved_folder()
    run = folder / path.relative_to(folder).parts[0]
    path.unlink(missing_ok=True)
    entries = _read_manifest(run)
    entries.pop(path.relative_to(run).as_posix(), None)
    _write_manifest(run, entries)
    parent = path.parent
    while parent != folder and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent

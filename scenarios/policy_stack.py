"""Policy layers stacked by the linker: a read-only view over a quota over an S3 bucket.

An S3 bucket, served by a local S3 server (moto, on 127.0.0.1 only), holds a shopping list.
The same wasm program, spacetool.wasm (a small C file tool), runs the same seven commands
four times, each time on a fresh copy of the list: natively on a host folder, for reference;
on the bucket through the virtual implementation; through a quota layer of 32 bytes stacked
on it; and through a read-only layer stacked on that quota. Each layer is an ordinary,
unprivileged instance that imports the one below and exports the same interface, with
private resource types of its own wrapping the handles it holds below. Each refuses what it
must, and nothing else: the bucket has no symlinks (ENOTSUP, as its storage declares), the
quota refuses the write that would take the bucket past 32 bytes (EDQUOT) before any of it
reaches the object, and the read-only view refuses every change (EROFS) before the quota or
the bucket is asked.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from virtwasi.demo.narrate import Narration
from virtwasi.layers import quota_layer, read_only_layer
from virtwasi.runtime import WasiWorld
from virtwasi.storage.fsspec_storage import FsspecStorage
from virtwasi.wasi.abi import Errno
from virtwasi.wasi.errnos import errno_name
from virtwasi.world import Definition, ResourceType

SPACETOOL = Path(__file__).resolve().parent / "programs" / "spacetool.wasm"
NOTES = b"buy milk\n"
QUOTA = 32
COMMANDS = [
    ("size", "/notes.txt"),
    ("append", "/notes.txt", "and eggs\n"),
    ("append", "/notes.txt", "and flour, sugar, butter, vanilla\n"),
    ("write", "/draft.txt", "0", "first draft"),
    ("symlink", "notes.txt", "/latest"),
    ("mkdir", "/archive"),
    ("rm", "/draft.txt"),
]
BIG_APPEND, SYMLINK = 2, 4  # rows of COMMANDS
CHANGES = range(1, len(COMMANDS))  # every command but the first would change the tree
NATIVE, S3, QUOTAED, READ_ONLY = ("native, host folder", "S3", f"quota {QUOTA} B over S3",
                                  "read-only over quota over S3")
COLUMNS = [NATIVE, S3, QUOTAED, READ_ONLY]
ROOTS = {S3: "plain", QUOTAED: "quota", READ_ONLY: "read-only"}  # a prefix of the bucket each


def layers_of(column: str) -> list[tuple[str, Definition]]:
    quota = [("quota", quota_layer(max_bytes=QUOTA))]
    return {QUOTAED: quota, READ_ONLY: [*quota, ("read-only", read_only_layer())]}.get(column, [])


def shown(command: tuple[str, ...]) -> str:
    """A command as typed, text quoted and kept short."""
    words = [repr(w.strip()) if " " in w or "\n" in w else w for w in command]
    text = " ".join(words)
    return text if len(text) <= 34 else text[:31] + "...'"


def answer(line: str) -> str:
    """spacetool's answer ("cmd path: ..."), an errno given by its name."""
    text = line.split(": ", 1)[1]
    if text.startswith("errno "):
        return errno_name(Errno(int(text.split()[1])))
    return text


@dataclass
class Run:
    """What spacetool answered, what the store held after, and (layered) the stack."""

    answers: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # path -> bytes; a folder -> b"/"
    held: dict[str, set[str]] = field(default_factory=dict)  # instance -> its handles' types
    open_below: int = 0  # descriptors alive in the implementation after teardown


def run_spacetool(column: str, mounts: dict[str, Any], say: Narration) -> Run:
    args = [word for command in COMMANDS for word in command]
    result = Run()
    native = column == NATIVE
    with WasiWorld(mounts, layers=layers_of(column),
                   impl="native" if native else "virtual") as world:
        client = world.client(str(SPACETOOL), args)
        client.start()
        # Who holds which handles now, the program's own still open (its preopen).
        for instance in [client.instance, *reversed(world.stack)]:
            result.held[instance.name] = {held.type_name for held in instance.holdings()}
        client.close()
        if not native:
            descriptor = world.implementation.types["descriptor"]
            assert isinstance(descriptor, ResourceType)
            result.open_below = descriptor.live_count
    result.answers = [answer(line) for line in client.stdout.decode().splitlines()]
    for command, got in zip(COMMANDS, result.answers, strict=True):
        say.step("spacetool", shown(command), got)
    return result


@contextmanager
def bucket() -> Iterator[tuple[str, Any]]:
    """A local S3 endpoint with a fresh bucket: (endpoint, bucket name)."""
    from virtwasi.storage.loopback import s3_filesystem, s3_server

    with s3_server() as endpoint:
        name = f"shopping-{uuid.uuid4().hex[:8]}"
        s3_filesystem(endpoint).mkdir(name)
        yield endpoint, name


def s3_files(endpoint: str, root: str) -> dict[str, bytes]:
    """Every object under ``root``, as a fresh client sees the bucket (no cached listing)."""
    from virtwasi.storage.loopback import s3_filesystem

    fs = s3_filesystem(endpoint, fresh=True)
    files: dict[str, bytes] = {}
    for path, info in fs.find(root, withdirs=True, detail=True).items():
        name = path.removeprefix(root + "/")
        if name and name != root and not name.endswith("/"):  # not a folder's marker
            files[name] = b"/" if info["type"] == "directory" else fs.cat_file(path)
    return files


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): b"/" if p.is_dir() and not p.is_symlink()
            else (b"-> " + str(p.readlink()).encode() if p.is_symlink() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


def listing(files: dict[str, bytes]) -> str:
    return ", ".join(f"{n}/" if d == b"/" else n for n, d in sorted(files.items())) or "empty"


def tell(say: Narration) -> dict[str, Run]:
    runs: dict[str, Run] = {}
    with tempfile.TemporaryDirectory(prefix="virtwasi-policy-stack-") as tmp:
        folder = Path(tmp)
        (folder / "notes.txt").write_bytes(NOTES)
        say.section(NATIVE)
        say.say("The native implementation on a host folder holding notes.txt: what POSIX "
                "answers with no policy in between.")
        runs[NATIVE] = run_spacetool(NATIVE, {"/": folder}, say)
        runs[NATIVE].files = folder_files(folder)
    with bucket() as (endpoint, name):
        from virtwasi.storage.loopback import s3_filesystem

        fs = s3_filesystem(endpoint)
        for column in COLUMNS[1:]:
            root = f"{name}/{ROOTS[column]}"
            fs.pipe_file(f"{root}/notes.txt", NOTES)
            say.section(column)
            stack = ["the virtual implementation over the bucket",
                     *(f"a {n} layer" for n, _ in layers_of(column))]
            say.say(f"s3://{root}, a fresh copy of notes.txt, served by FsspecStorage over "
                    f"s3fs; the program imports {' over '.join(reversed(stack))}.")
            runs[column] = run_spacetool(column, {"/": FsspecStorage(fs, root)}, say)
            runs[column].files = s3_files(endpoint, root)
    return runs


def main() -> int:
    say = Narration("policy-stack: read-only over a quota over S3, each layer refusing its own")
    say.say(__doc__.split("\n\n", 1)[1] if __doc__ else "")
    try:
        runs = tell(say)
    except ImportError as exc:  # moto or s3fs missing: nothing can be shown
        say.claim(f"a local S3 server can be started ({exc})", False)
        return say.finish()

    say.section("side by side")
    say.columns(["spacetool command", *COLUMNS],
                [[shown(c), *(runs[col].answers[i] for col in COLUMNS)]
                 for i, c in enumerate(COMMANDS)]
                + [["afterwards, notes.txt", *(f'{len(runs[c].files.get("notes.txt", b""))} B'
                                               for c in COLUMNS)],
                   ["afterwards, the tree", *(listing(runs[c].files) for c in COLUMNS)]])
    for column in (QUOTAED, READ_ONLY):
        say.say(f"{column}: notes.txt in the bucket is now "
                f"{runs[column].files.get('notes.txt', b'')!r}.")

    native, s3, quota, ro = (runs[c] for c in COLUMNS)
    say.section("the stack")
    say.say("While the program ran through both layers, each instance held handles of one "
            "type only, the private type of the instance below it: the program holds the "
            "read-only layer's 'ro-descriptor'; the read-only layer holds a 'quota-descriptor' "
            "behind each; the quota holds the implementation's 'descriptor' behind that.")
    for instance, types in ro.held.items():
        say.step("world", f"{instance} holds", ", ".join(sorted(types)) or "nothing")
    expected_held = {"spacetool.wasm": {"ro-descriptor"}, "read-only": {"quota-descriptor"},
                     "quota": {"descriptor"}, "wasi-virtual": set()}

    say.section("what this shows")
    others = [i for i in range(len(COMMANDS)) if i != SYMLINK]
    say.claim("S3 answers every command as the host folder does, but the symlink",
              all(s3.answers[i] == native.answers[i] for i in others)
              and native.answers[SYMLINK] == "ok")
    say.claim("S3 has no symlinks: ENOTSUP, as its storage declares, with or without the "
              "quota above it", s3.answers[SYMLINK] == quota.answers[SYMLINK] == "ENOTSUP")
    say.claim(f"quota: the append that would take the bucket past {QUOTA} bytes is EDQUOT; "
              "everything that fits passes as it does without the layer",
              quota.answers[BIG_APPEND] == "EDQUOT"
              and all(quota.answers[i] == s3.answers[i] for i in range(len(COMMANDS))
                      if i != BIG_APPEND))
    say.claim("quota: the object in S3 holds what fit and nothing of the refused write, "
              "no partial object", quota.files.get("notes.txt") == NOTES + b"and eggs\n"
              and s3.files.get("notes.txt", b"").endswith(b"vanilla\n"))
    say.claim("read-only: every command that would change the bucket is EROFS, the symlink "
              "too: the top layer answers before the quota or S3 is asked",
              all(ro.answers[i] == "EROFS" for i in CHANGES)
              and ro.answers[0] == s3.answers[0])
    say.claim("read-only: the bucket is exactly as it was", ro.files == {"notes.txt": NOTES})
    say.claim("each layer holds only the private type of the one below it",
              ro.held == expected_held)
    say.claim("once the program is torn down, nothing is left open in the implementation",
              s3.open_below == quota.open_below == ro.open_below == 0)
    return say.finish()


if __name__ == "__main__":
    sys.exit(main())

"""Every preview 1 import, fuzzed in lockstep with wasmtime's built-in WASI (see fuzzkit).

A few fixed seeds run on each kind of mount, and every difference in trap-or-errno or in
the bytes written must be one of the documented ones below; the corpus replays the calls
that once differed, each in a fresh episode, and its last call must now agree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import fuzzkit
import pytest

SEEDS = (1, 2, 3)
CALLS = 700  # per seed and mount: about 2 s a mount
CORPUS = Path(__file__).with_name("fuzz_corpus.json")

# Differences left on purpose: (name, matches a difference, why).
DOCUMENTED: list[tuple[str, Callable[[fuzzkit.Difference], bool], str]] = [
    ("padding", lambda d: d.detail.startswith("padding"),
     "wasmtime writes a struct's fields one by one and leaves the bytes between them as "
     "they were; virtwasi packs the struct whole, zeros between fields. No guest reads "
     "padding, and packing whole is what keeps fdstat and stat calls fast."),
    ("listing continued", lambda d: d.call.name == "fd_readdir" and d.kind == "memory"
     and any(c.name == "fd_readdir" and c.args[0] == d.call.args[0] for c in d.prefix),
     "fd_readdir called with the cookie where the last call on that fd stopped goes on "
     "reading the listing it started, as readdir(3) goes on with one DIR stream; wasmtime "
     "reads the whole directory again on every call. The two differ only when the "
     "directory changed in between, where POSIX leaves open whether the change is seen, "
     "and going on is what keeps listing a large directory linear."),
    ("file poll readiness", lambda d: d.kind == "memory" and _polls_a_file(d),
     "wasmtime reads a file through a stream that becomes ready on a worker thread: "
     "polled together with a subscription ready at once, the file's may or may not be "
     "reported yet. virtwasi reports a file as ready always, as poll(2) does."),
]


def _polls_a_file(diff: fuzzkit.Difference) -> bool:
    """A poll_oneoff whose subscriptions include reading a file (not stdin)."""
    if diff.call.name != "poll_oneoff":
        return False
    for _, raw in diff.call.data:
        for at in range(0, len(raw) - 47, 48):
            tag, fd = raw[at + 8], int.from_bytes(raw[at + 16:at + 20], "little")
            if tag == 1 and fd > 2:
                return True
    return False


def documented(diff: fuzzkit.Difference) -> str | None:
    for name, matches, _ in DOCUMENTED:
        if matches(diff):
            return name
    return None


@pytest.mark.parametrize("mount", fuzzkit.MOUNTS)
def test_fuzzed_calls_answer_as_wasmtime(mount: str) -> None:
    report = fuzzkit.Report(mount)
    for seed in SEEDS:
        fuzzkit.run(seed, CALLS, mount, report=report)
    assert report.calls == CALLS * len(SEEDS)
    left = [str(d) for d in report.differences if documented(d) is None]
    assert not left, f"{report.summary()}\n" + "\n".join(left[:20])


@pytest.mark.parametrize("case", list(fuzzkit.iter_corpus(CORPUS)) if CORPUS.exists() else [],
                         ids=lambda case: case[0])
@pytest.mark.parametrize("mount", fuzzkit.MOUNTS)
def test_corpus_case_answers_as_wasmtime(case: tuple[str, list[fuzzkit.Call]],
                                         mount: str) -> None:
    _, calls = case
    virt, ref, detail = fuzzkit.replay(calls, mount)[-1]
    assert (virt, detail) == (ref, ""), f"{calls[-1]}: virtwasi {virt}, wasmtime {ref} {detail}"


def test_fuzzer_finds_a_planted_difference() -> None:
    """The fuzzer sees what it should: a call whose memory differs on purpose is reported."""
    call = fuzzkit.Call("random_get", (0x5000, 16))  # random bytes, not masked here
    virt, ref, detail = fuzzkit.replay([call], "memory")[-1]
    assert virt == ref == ("errno", 0)
    assert detail.startswith("memory first differs at 0x5000")

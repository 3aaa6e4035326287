"""The component model's rules for entering and leaving a component, on virtwasi and wasmtime.

``rules.wat`` imports ``test:rules/host`` with ``call-back: func()`` (served by Python) and
defines a resource type. Its ``realloc`` makes a handle once armed with 1, the post-return
of ``length`` once armed with 2; ``reenter`` calls the host, which calls back into the
component's ``noop``; ``crash`` traps. Each story runs on virtwasi (``Session``) and on
wasmtime's own component runtime, and ends with a call of ``noop``, which shows whether the
component can still be entered: both must trap (or not) at the same steps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wasmtime
import wasmtime.component as wc
from componentkit import parse_wat

from virtwasi.runtime import GuestTrap, Session

FIXTURES = Path(__file__).parent / "fixtures" / "components"
Steps = list[tuple[str, tuple[Any, ...]]]

STORIES: dict[str, Steps] = {
    "a host function calls back into its component": [("reenter", ())],
    "realloc makes a handle": [("arm", (1,)), ("length", ("hello",))],
    "post-return makes a handle": [("arm", (2,)), ("length", ("hello",))],
    "the component traps": [("crash", ())],
    "nothing wrong": [("length", ("hello",))],
}


@pytest.fixture(scope="module")
def rules() -> bytes:
    return parse_wat((FIXTURES / "rules.wat").read_text())


def on_virtwasi(binary: bytes, steps: Steps) -> list[str]:
    """What each step (and a last ``noop``) gave: ``ok`` or the trap's reason."""
    sessions: list[Session] = []

    def call_back() -> None:
        sessions[0].call("noop")

    with Session(binary, imports={"test:rules/host": {"call-back": call_back}}) as session:
        sessions.append(session)
        return [_outcome(session.call, name, args) for name, args in [*steps, ("noop", ())]]


def on_wasmtime(binary: bytes, steps: Steps) -> list[str]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wc.Linker(engine)
    made: list[Any] = []
    with linker.root() as root, root.add_instance("test:rules/host") as host:
        host.add_func("call-back", lambda store: made[0].get_func(store, "noop")(store))
    instance = linker.instantiate(store, wc.Component(engine, binary))
    made.append(instance)
    def call(name: str, *args: Any) -> Any:
        func = instance.get_func(store, name)
        assert func is not None
        return func(store, *args)

    return [_outcome(call, name, args) for name, args in [*steps, ("noop", ())]]


def _outcome(call: Callable[..., Any], name: str, args: tuple[Any, ...]) -> str:
    try:
        call(name, *args)
        return "ok"
    except (GuestTrap, wasmtime.Trap, wasmtime.WasmtimeError) as trap:
        return "trap: " + _reason(str(trap))


def _reason(message: str) -> str:
    """The rule a trap names, in words both runtimes' messages reduce to."""
    # A locked instance's trap names the trap that locked it: that reason comes first.
    for words, reason in (("[instance-trapped]", "cannot enter"),
                          ("cannot enter component instance", "cannot enter"),
                          ("may-not-leave", "may not leave"),
                          ("cannot leave component instance", "may not leave"),
                          ("unreachable", "unreachable")):
        if words in message:
            return reason
    return message


@pytest.mark.parametrize("story", sorted(STORIES))
def test_the_same_steps_trap_on_virtwasi_and_on_wasmtime(story: str, rules: bytes) -> None:
    ours = on_virtwasi(rules, STORIES[story])
    assert ours == on_wasmtime(rules, STORIES[story])
    expected = {
        "a host function calls back into its component": ["ok", "ok"],
        "realloc makes a handle": ["ok", "trap: may not leave", "trap: cannot enter"],
        "post-return makes a handle": ["ok", "trap: may not leave", "trap: cannot enter"],
        "the component traps": ["trap: unreachable", "trap: cannot enter"],
        "nothing wrong": ["ok", "ok"],
    }[story]
    assert ours == expected


def test_a_locked_component_says_which_trap_locked_it(rules: bytes) -> None:
    with Session(rules, imports={"test:rules/host": {"call-back": lambda: None}}) as session:
        with pytest.raises(GuestTrap):
            session.call("crash")
        locked = r"(?s)trapped before .*unreachable.*\[instance-trapped\]"
        with pytest.raises(GuestTrap, match=locked):
            session.call("noop")

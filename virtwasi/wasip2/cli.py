"""``wasi:cli``: arguments and environment, exit, standard streams and terminals.

The standard streams are the embedder's byte streams, read and written as preview 1 does
(:class:`~.io.ReaderInput`, :class:`~.io.WriterOutput`); each ``get-stdin``, ``get-stdout``
or ``get-stderr`` is a new handle to the same stream, as in wasmtime. No standard stream
is a terminal, as preview 1 reports none (its stdio fds have an unknown file type), so every
``get-terminal-*`` answers none; the two terminal types exist for the component to name.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from ..component.hosting import HostInterface
from ..component.values import Ok
from ..wasi.common import ProcExit
from ..world import Context
from .io import Io, ReaderInput, WriterOutput


def _exit(status: Ok | Any) -> None:
    raise ProcExit(0 if isinstance(status, Ok) else 1)


def _exit_with_code(code: int) -> None:
    raise ProcExit(code)


def interfaces(ctx: Context, io: Io, *, args: list[str], env: list[tuple[str, str]],
               stdin: BinaryIO | None, stdout: BinaryIO | None, stderr: BinaryIO | None
               ) -> dict[str, HostInterface]:
    arguments, environment = list(args), [(key, value) for key, value in env]
    terminal_input = ctx.resource_type("terminal-input")
    terminal_output = ctx.resource_type("terminal-output")
    reads, writes = {"input-stream": io.input_stream}, {"output-stream": io.output_stream}

    def no_terminal() -> None:
        return None

    return {
        "wasi:cli/environment": HostInterface({
            "get-environment": lambda: list(environment),
            "get-arguments": lambda: list(arguments),
            "initial-cwd": lambda: None,
        }),
        "wasi:cli/exit": HostInterface({"exit": _exit, "exit-with-code": _exit_with_code}),
        "wasi:cli/stdin": HostInterface(
            {"get-stdin": lambda: io.new_input(ReaderInput(stdin))}, reads),
        "wasi:cli/stdout": HostInterface(
            {"get-stdout": lambda: io.new_output(WriterOutput(stdout))}, writes),
        "wasi:cli/stderr": HostInterface(
            {"get-stderr": lambda: io.new_output(WriterOutput(stderr))}, writes),
        "wasi:cli/terminal-input": HostInterface({}, {"terminal-input": terminal_input}),
        "wasi:cli/terminal-output": HostInterface({}, {"terminal-output": terminal_output}),
        "wasi:cli/terminal-stdin": HostInterface(
            {"get-terminal-stdin": no_terminal}, {"terminal-input": terminal_input}),
        "wasi:cli/terminal-stdout": HostInterface(
            {"get-terminal-stdout": no_terminal}, {"terminal-output": terminal_output}),
        "wasi:cli/terminal-stderr": HostInterface(
            {"get-terminal-stderr": no_terminal}, {"terminal-output": terminal_output}),
    }

"""What a benchmark ran on, and how its section gets into BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path


def describe() -> str:
    """CPU model, core count, kernel, Python and wasmtime-py versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, wasmtime-py {version('wasmtime')}")


def replace_section(document: str, section: str) -> str:
    """``document`` with the section titled as ``section`` (its first line) replaced, or
    added at the end."""
    title = section.split("\n", 1)[0]
    start = document.find(title + "\n")
    if start < 0:
        return document.rstrip("\n") + "\n\n" + section if document.strip() else section
    end = document.find("\n## ", start + len(title))
    rest = "" if end < 0 else document[end + 1:]
    return document[:start] + section + ("\n" + rest if rest else "")


def publish(section: str) -> int:
    """Print ``section`` and, given a file on the command line, put it in there."""
    print(section)
    if len(sys.argv) > 1:
        out = Path(sys.argv[1])
        out.write_text(replace_section(out.read_text() if out.exists() else "", section))
    return 0

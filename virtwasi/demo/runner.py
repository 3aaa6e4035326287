"""Finding and running the scenarios.

A scenario is a module of :mod:`virtwasi.scenarios` (the repository's ``scenarios/`` folder)
whose docstring's first line says what it shows and whose ``main()`` returns the exit code:
non-zero when its claim does not hold. ``two-clients`` names ``two_clients``. Listing reads
the docstrings without importing the scenarios; running one imports it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from dataclasses import dataclass
from pathlib import Path

from .. import scenarios

PACKAGE = scenarios.__name__


@dataclass(frozen=True)
class Scenario:
    name: str
    module: str  # the module's full name, virtwasi.scenarios.two_clients
    path: Path
    summary: str

    def run(self) -> int:
        code = importlib.import_module(self.module).main()
        return int(code)


def discover() -> list[Scenario]:
    found = []
    for info in sorted(pkgutil.iter_modules(scenarios.__path__), key=lambda i: i.name):
        if info.ispkg or info.name.startswith("_"):
            continue
        module = f"{PACKAGE}.{info.name}"
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            continue
        path = Path(spec.origin)
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        summary = doc.strip().splitlines()[0] if doc.strip() else ""
        found.append(Scenario(info.name.replace("_", "-"), module, path, summary))
    return found


def find(name: str) -> Scenario | None:
    wanted = name.replace("_", "-").removesuffix(".py")
    return next((s for s in discover() if s.name == wanted), None)

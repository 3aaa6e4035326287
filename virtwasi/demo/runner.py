"""Finding and running the scenario scripts.

A scenario is a Python file under ``scenarios/`` (packaged as ``virtwasi/scenarios`` in a
wheel) whose docstring's first line says what it shows and whose ``main()`` returns the exit
code: non-zero when its claim does not hold. ``two-clients`` names ``two_clients.py``.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path


def scenario_dir() -> Path:
    packaged = Path(__file__).parents[1] / "scenarios"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "scenarios"


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    summary: str

    def run(self) -> int:
        # A private module name: scenario files are scripts, not an importable package.
        module_name = f"_virtwasi_scenario_{self.path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, self.path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load scenario {self.path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        code = module.main()
        return int(code)


def discover() -> list[Scenario]:
    found = []
    for path in sorted(scenario_dir().glob("*.py")):
        if path.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        summary = doc.strip().splitlines()[0] if doc.strip() else ""
        found.append(Scenario(path.stem.replace("_", "-"), path, summary))
    return found


def find(name: str) -> Scenario | None:
    wanted = name.replace("_", "-").removesuffix(".py")
    return next((s for s in discover() if s.name == wanted), None)

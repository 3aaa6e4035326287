from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# The test helpers (worldkit) live beside the tests; they are not part of the package.
sys.path.insert(0, str(Path(__file__).parent))


def load_adapter(name: str) -> ModuleType:
    """A runtime adapter from adapters/, loaded by path under a private module name."""
    module_name = f"_virtwasi_adapter_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "adapters" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module

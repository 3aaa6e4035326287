from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

from virtwasi.compare import diff

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# The test helpers (worldkit) live beside the tests; they are not part of the package.
sys.path.insert(0, str(Path(__file__).parent))

# Fixtures that start S3, FTP and HTTP servers on 127.0.0.1 (tests/servers.py).
pytest_plugins = ["servers"]


def load_adapter(name: str) -> ModuleType:
    """A runtime adapter, the module virtwasi.adapters.NAME (the file adapters/NAME.py)."""
    return diff.load_adapter(name)

"""The runtime adapters: one module per runtime with one run contract (see the repository's
``adapters/README.md``), used by :mod:`virtwasi.compare.diff`, the tests and the benchmarks.

Their files are the repository's top-level ``adapters/`` folder. A wheel copies that
folder's files into this package; in a checkout this package's path reaches the folder
itself, so ``virtwasi.adapters.wasmtime_wasi`` imports the same way in both (and nothing is
ever installed as a top-level ``adapters``, a name another project owns).
"""

from pathlib import Path

_folder = Path(__file__).resolve().parents[2] / "adapters"
if (_folder.parent / "pyproject.toml").is_file() and _folder.is_dir():
    __path__.append(str(_folder))

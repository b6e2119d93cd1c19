"""alignlib's C++ kernels, compiled on first use and loaded with ctypes.

A kernel is one C++ source file beside this module with a plain C ABI (``<name>.cpp``; shared
code in the headers beside it): ``selective_scan`` (:mod:`alignlib.ssm.selective_scan`),
``monotone`` (:mod:`alignlib.align.monotone`) and ``sinkhorn`` (:func:`alignlib.align.ot.sinkhorn_log`). It is compiled by the system compiler (``$CXX``,
else ``g++``) into a shared library in the cache directory (``$ALIGNLIB_CACHE``, else
``$XDG_CACHE_HOME/alignlib`` or ``~/.cache/alignlib``), named by a hash of the source and the
headers, the flags, the compiler's version and the CPU: one build per machine
(``-march=native``), a rebuild when any of them changes, and the library is renamed into place
only once complete, so processes that build at the same time never load a half-written file.
``make`` builds it while setting up the environment (``python -m alignlib.ssm.kernels``).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

SOURCES = Path(__file__).resolve().parent
# -fno-trapping-math: the scan's exp clamps its argument; with trapping comparisons GCC keeps those
# branches and leaves the inner loop scalar on AVX2 CPUs (3x slower there; AVX-512 masks hid it).
FLAGS = ("-O3", "-march=native", "-fno-trapping-math", "-fopenmp", "-std=c++17", "-shared", "-fPIC")


class KernelBuildError(RuntimeError):
    """The C++ compiler is missing or failed."""


def cache_dir() -> Path:
    if os.environ.get("ALIGNLIB_CACHE"):
        return Path(os.environ["ALIGNLIB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "alignlib"


def _cpu_signature() -> str:
    """The CPU's model and instruction-set flags (``-march=native`` code runs on that CPU only)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


def library_path(name: str) -> Path:
    """Where the compiled ``<name>.cpp`` lives in the cache; raises KernelBuildError without a compiler."""
    compiler = shutil.which(os.environ.get("CXX") or "g++")
    if compiler is None:
        raise KernelBuildError(f"no C++ compiler found ({os.environ.get('CXX') or 'g++'}; set CXX)")
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise KernelBuildError(f"{compiler} --version failed: {error}") from error
    key = hashlib.sha256()
    headers = [path.read_bytes() for path in sorted(SOURCES.glob("*.h"))]  # what every source may include
    for part in ((SOURCES / f"{name}.cpp").read_bytes(), *headers, " ".join(FLAGS).encode(), compiler.encode(),
                 version.encode(), _cpu_signature().encode()):
        key.update(part + b"\0")
    return cache_dir() / f"{name}-{key.hexdigest()[:16]}.so"


def build(name: str) -> Path:
    """Compile ``<name>.cpp`` unless the cache holds it; the library's path."""
    target = library_path(name)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        compiler = shutil.which(os.environ.get("CXX") or "g++")
        result = subprocess.run([compiler, *FLAGS, str(SOURCES / f"{name}.cpp"), "-o", tmp],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise KernelBuildError(f"{compiler} failed on {name}.cpp: {result.stderr.strip()[-2000:]}")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


@functools.cache
def load(name: str) -> ctypes.CDLL | None:
    """The compiled kernel library, or None (with one warning per process) where it cannot be built."""
    try:
        return ctypes.CDLL(str(build(name)))
    except (KernelBuildError, OSError) as error:
        warnings.warn(f"alignlib: the C++ kernel {name!r} is unavailable, using the pure-PyTorch "
                      f"fallback: {error}", RuntimeWarning, stacklevel=2)
        return None

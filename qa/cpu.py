"""Choosing the llama.cpp CPU build at run time: AVX-512 where the operating system really
enables it, the portable x86-64-v3 build everywhere else.

Why: prompt processing, most of an answer's time in retrieval mode, is ~1.8x faster with
AVX-512 (docs/benchmarks.md). But an AVX-512 build dies with "Illegal instruction" where the
CPU lacks it, and also where the CPU has it but the OS (or hypervisor) did not enable its
register state: CPUID alone says yes there, which is why llama.cpp's own variant selection is
not trusted. The OS answer comes from two places that must agree: the kernel's CPU flags
(Linux drops the AVX-512 flags when it does not manage their state) and XCR0, the register in
which the OS enables the opmask and ZMM state (read with ``xgetbv``, only where the kernel
reports ``xsave``, i.e. has set CR4.OSXSAVE).

``scripts/install-llama`` builds the AVX-512 CPU backend (``libggml-cpu.so``, the only
library holding ISA-specific code) next to the portable wheel; :func:`use_fastest_build`
preloads it before llama_cpp is imported, so the portable ``libggml.so`` links against it.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

AVX512_FLAGS = frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"})
"""What the AVX-512 build is compiled for (GGML_AVX512=ON)."""
XCR0_AVX512 = 0b1110_0110
"""XCR0 bits the OS must set: SSE, AVX (YMM), opmask, ZMM_Hi256, Hi16_ZMM."""

# xor ecx, ecx; xgetbv; shl rdx, 32; or rax, rdx; ret
_XGETBV = bytes.fromhex("31c90f01d048c1e2204809d0c3")


def kernel_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU flags the kernel reports (first processor of /proc/cpuinfo)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def read_xcr0() -> int | None:
    """XCR0 via ``xgetbv`` (x86-64 Linux only; the caller checks the ``xsave`` flag first)."""
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return None
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError):  # W^X policies forbid executable pages
        return None
    page.write(_XGETBV)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    value = int(ctypes.CFUNCTYPE(ctypes.c_uint64)(address)())
    return value


def os_enables_avx512(flags: set[str] | None = None, xcr0: int | None = None) -> bool:
    """Whether AVX-512 code may run here: the kernel reports every flag the build needs, and
    XCR0 has the AVX-512 state enabled."""
    flags = kernel_flags() if flags is None else flags
    if not flags >= AVX512_FLAGS or "xsave" not in flags:
        return False
    xcr0 = read_xcr0() if xcr0 is None else xcr0
    return xcr0 is not None and xcr0 & XCR0_AVX512 == XCR0_AVX512


def avx512_library(cache_dir: Path) -> Path | None:
    """The AVX-512 CPU backend built by scripts/install-llama for the installed llama_cpp."""
    try:
        from importlib.metadata import version

        wanted = version("llama-cpp-python")
    except Exception:
        return None
    path = cache_dir / "llama-avx512" / wanted / "libggml-cpu.so"
    return path if path.is_file() else None


def use_fastest_build(cache_dir: Path) -> str:
    """Preload the AVX-512 CPU backend if this machine may run it and it is installed; return
    which build llama.cpp will use ("avx512" or "portable"). Must run before llama_cpp is
    imported; later it changes nothing."""
    if "llama_cpp" in sys.modules:
        return "portable" if not _preloaded else "avx512"
    library = avx512_library(cache_dir)
    if library is None or not os_enables_avx512():
        return "portable"
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return "portable"
    base = Path(spec.submodule_search_locations[0]) / "lib" / "libggml-base.so"
    # The portable base library first (the AVX-512 backend links against it), then the
    # backend: libggml.so's NEEDED libggml-cpu.so.0 then resolves to the loaded one.
    ctypes.CDLL(str(base), mode=ctypes.RTLD_GLOBAL)
    ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
    _preloaded.append(library)
    log.info("llama.cpp uses the AVX-512 CPU backend %s", library)
    return "avx512"


_preloaded: list[Path] = []

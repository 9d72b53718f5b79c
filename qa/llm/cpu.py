"""Whether the installed llama.cpp build runs on this CPU, asked before the library loads.

``scripts/install-llama`` builds AVX-512 kernels where the CPU lists them and the kernel has
enabled their register state, the portable AVX2 set elsewhere, and records which set it built
(``llama_cpp/qa-build.json``). A venv copied to another machine, or a VM that hides AVX-512,
would otherwise die with "Illegal instruction" at the first answer; :func:`check_build` turns
that into one line that says how to rebuild.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import mmap
import platform
import re
from pathlib import Path

from qa.errors import ModelUnavailableError

AVX512_STATE = 0xE6
"""XCR0 bits the OS sets when it saves AVX-512 registers: SSE, AVX, opmask, ZMM_Hi256,
Hi16_ZMM. CPUID can list AVX-512 while the OS leaves these off; the instructions then fault."""

# xor ecx, ecx; xgetbv; shl rdx, 32; or rax, rdx; ret
_XGETBV = bytes.fromhex("31c90f01d048c1e2204809d0c3")


def cpu_flags(cpuinfo: str) -> set[str]:
    """The first ``flags`` line of a ``/proc/cpuinfo`` text (what CPU and kernel offer)."""
    found = re.search(r"^flags\s*:(.*)$", cpuinfo, re.M)
    return set(found[1].split()) if found else set()


def xcr0() -> int | None:
    """The XCR0 register (which register states the OS saves), or None where it cannot be
    read: not x86-64, no ``xsave``, or no executable memory."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        if "xsave" not in cpu_flags(Path("/proc/cpuinfo").read_text()):
            return None  # xgetbv would fault
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError):
        return None
    page.write(_XGETBV)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    value = ctypes.CFUNCTYPE(ctypes.c_uint64)(address)()
    return int(value)


def missing(needs: list[str], flags: set[str], state: int | None) -> list[str]:
    """What of ``needs`` (cpuinfo flag names a build requires) this CPU does not give: the
    flags it lacks, and ``"AVX-512 state (XCR0)"`` when AVX-512 is needed but not enabled."""
    lacking = [f for f in needs if f not in flags]
    wants_avx512 = any(f.startswith("avx512") for f in needs)
    if wants_avx512 and state is not None and state & AVX512_STATE != AVX512_STATE:
        lacking.append("AVX-512 state (XCR0)")
    return lacking


def build_record() -> dict | None:
    """What ``scripts/install-llama`` recorded of the installed build, found without importing
    llama_cpp (None: not installed by it)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "qa-build.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_build(cpuinfo: str | None = None, state: int | None = None) -> None:
    """Refuse, with how to rebuild, a llama.cpp build that needs what this CPU lacks.

    Raises:
        ModelUnavailableError: the build was made for instructions this CPU or kernel lacks.
    """
    record = build_record()
    if not record or platform.machine() not in ("x86_64", "AMD64"):
        return
    if cpuinfo is None:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        state = xcr0()
    lacking = missing(record.get("cpu_flags", []), cpu_flags(cpuinfo), state)
    if lacking:
        raise ModelUnavailableError(
            f"The installed llama.cpp was built for {record.get('variant', 'another')} x86 and "
            f"this CPU lacks {', '.join(lacking)}; rebuild it for this machine with "
            "`scripts/install-llama .venv/bin/python`"
        )

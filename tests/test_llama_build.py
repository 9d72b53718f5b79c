"""The installed llama.cpp must be one of the two flag sets ``scripts/install-llama`` builds:
the portable AVX2 baseline, or AVX-512 where this CPU and kernel enable it; never AMX, never
the build machine's ``-march=native``.

A wheel compiled with llama.cpp's default ``GGML_NATIVE=ON`` carries the build machine's
instructions (AVX-512, AMX, ...) and dies with "Illegal instruction" elsewhere, or on a VM that
advertises them without enabling them. These tests fail if the installed library was built
otherwise, whatever CPU runs them.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"), reason="the baseline is defined for x86-64"
)

# What scripts/install-llama compiles for (x86-64-v3), as llama.cpp's system info names it.
BASELINE = {"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"}
# What its AVX-512 set adds (VBMI and BF16 only where the CPU lists them).
AVX512 = {"AVX512", "AVX512_VNNI", "AVX512_VBMI", "AVX512_BF16"}
# Feature names in llama.cpp's system info -> /proc/cpuinfo flags the CPU (and kernel) must show.
CPU_FLAGS = {
    "SSE3": "pni",
    "SSSE3": "ssse3",
    "AVX": "avx",
    "AVX2": "avx2",
    "F16C": "f16c",
    "FMA": "fma",
    "BMI2": "bmi2",
    "AVX_VNNI": "avx_vnni",
    "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
}
# Instruction-set features llama.cpp reports; the rest (OPENMP, LLAMAFILE, ...) are not ISA.
ISA = set(CPU_FLAGS)


def compiled_features() -> set[str]:
    """CPU features the installed llama.cpp was compiled with (``FEATURE = 1``)."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    return {name for name, on in re.findall(r"(\w+) = (\d)", info) if on == "1"} & ISA


def ggml_cpu_library() -> Path:
    import llama_cpp

    lib = Path(llama_cpp.__file__).parent / "lib"
    found = sorted(lib.glob("libggml-cpu*.so*")) or sorted(lib.glob("libggml*.so*"))
    assert found, f"no ggml library under {lib}"
    return found[0]


def variant() -> str:
    """The flag set install-llama recorded ("portable" when it recorded none)."""
    from qa.llm.cpu import build_record

    return (build_record() or {}).get("variant", "portable")


def test_compiled_for_the_recorded_flag_set() -> None:
    allowed = BASELINE | (AVX512 if variant() == "avx512" else set())
    extra = compiled_features() - allowed
    assert not extra, (
        f"llama.cpp was compiled with {sorted(extra)} beyond its {variant()} flag set: probably "
        "a native build (pip reused a cached wheel?). Reinstall with scripts/install-llama"
    )
    if variant() == "avx512":
        assert "AVX512" in compiled_features()


def test_this_cpu_runs_every_compiled_feature() -> None:
    flags = set(re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.M)[1].split())
    missing = {f for f in compiled_features() if CPU_FLAGS[f] not in flags}
    assert not missing, f"this CPU lacks {sorted(missing)}, which llama.cpp was compiled with"


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not installed")
def test_library_holds_no_amx_code_and_no_avx512_code_in_a_portable_build() -> None:
    # System info reports compile flags; code built with per-function target attributes would
    # not show there, so the machine code itself is read too.
    lib = ggml_cpu_library()
    asm = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(lib)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    zmm = len(re.findall(r"%zmm\d", asm)) if variant() == "portable" else 0
    tiles = len(re.findall(r"\b(tilezero|tileloadd|tdpbssd|tdpbf16ps|ldtilecfg)\b", asm))
    assert zmm == 0 and tiles == 0, (
        f"{lib.name} uses AVX-512 ({zmm} zmm operands) or AMX ({tiles} tile instructions): "
        "it will crash with 'Illegal instruction' on CPUs without them; reinstall with "
        "scripts/install-llama"
    )

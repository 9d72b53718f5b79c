"""Which llama.cpp build a CPU may run: the install's choice and the start-up check, on sample
/proc/cpuinfo texts (the real machine is checked by tests/test_llama_build.py)."""

from __future__ import annotations

import pytest

from qa.errors import ModelUnavailableError
from qa.llm import cpu

AVX2_EPYC = "processor\t: 0\nflags\t\t: fpu sse sse2 pni ssse3 fma avx avx2 f16c bmi2 xsave\n"
AVX512_XEON = (
    "processor\t: 0\nflags\t\t: fpu pni ssse3 fma avx avx2 f16c bmi2 xsave avx512f avx512dq "
    "avx512cd avx512bw avx512vl avx512_vnni avx512vbmi avx512_bf16 amx_int8\n"
    "processor\t: 1\nflags\t\t: fpu\n"
)
AVX512_BUILD = {
    "variant": "avx512",
    "cpu_flags": "avx avx2 fma f16c bmi2 avx512f avx512cd avx512vl avx512dq avx512bw".split(),
}
ENABLED, DISABLED = 0x602E7, 0x7  # XCR0 with and without the AVX-512 register state


def test_the_first_flags_line_is_read() -> None:
    flags = cpu.cpu_flags(AVX512_XEON)
    assert {"avx512f", "avx512_vnni", "amx_int8"} <= flags and "fpu" in flags
    assert cpu.cpu_flags("no flags here") == set()


def test_avx512_is_missing_where_listed_but_not_enabled_by_the_kernel() -> None:
    needs = AVX512_BUILD["cpu_flags"]
    assert cpu.missing(needs, cpu.cpu_flags(AVX512_XEON), ENABLED) == []
    assert cpu.missing(needs, cpu.cpu_flags(AVX512_XEON), DISABLED) == ["AVX-512 state (XCR0)"]
    assert cpu.missing(needs, cpu.cpu_flags(AVX2_EPYC), ENABLED)[:2] == ["avx512f", "avx512cd"]
    assert cpu.missing(["avx2", "fma"], cpu.cpu_flags(AVX2_EPYC), DISABLED) == []


def test_an_avx512_build_is_refused_on_an_avx2_cpu_with_how_to_rebuild(monkeypatch) -> None:
    monkeypatch.setattr(cpu, "build_record", lambda: AVX512_BUILD)
    with pytest.raises(ModelUnavailableError, match="lacks avx512f.*scripts/install-llama"):
        cpu.check_build(AVX2_EPYC, ENABLED)
    with pytest.raises(ModelUnavailableError, match=r"AVX-512 state \(XCR0\)"):
        cpu.check_build(AVX512_XEON, DISABLED)
    cpu.check_build(AVX512_XEON, ENABLED)


def test_a_portable_build_runs_anywhere_with_avx2(monkeypatch) -> None:
    monkeypatch.setattr(
        cpu, "build_record", lambda: {"variant": "portable", "cpu_flags": ["avx2", "fma"]}
    )
    cpu.check_build(AVX2_EPYC, None)
    cpu.check_build(AVX512_XEON, DISABLED)
    monkeypatch.setattr(cpu, "build_record", lambda: None)  # not installed by install-llama
    cpu.check_build(AVX2_EPYC, None)


def test_this_machine_runs_the_installed_build() -> None:
    record = cpu.build_record()
    if record is None:
        pytest.skip("llama.cpp was not installed by scripts/install-llama")
    cpu.check_build()  # the real /proc/cpuinfo and XCR0
    if record["variant"] == "avx512":
        assert (cpu.xcr0() or 0) & cpu.AVX512_STATE == cpu.AVX512_STATE

"""The AVX-512 llama.cpp backend is used only where the OS enables AVX-512: kernel flags and
XCR0 must both say so (CPUID alone is not enough on VMs that do not enable the state)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import cpu

AVX512 = set(cpu.AVX512_FLAGS) | {"avx2", "xsave"}
XCR0_ON = 0x2E7  # x87, SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM, PKRU
XCR0_AVX2 = 0x207  # an AVX2 machine (or AVX-512 state not enabled by the OS)


@pytest.mark.parametrize(
    ("flags", "xcr0", "expected"),
    [
        (AVX512, XCR0_ON, True),
        (AVX512, XCR0_AVX2, False),  # the CPU has it, the OS did not enable its state
        (AVX512 - {"avx512bw"}, XCR0_ON, False),  # an AVX-512 subset the build cannot use
        (AVX512 - {"xsave"}, XCR0_ON, False),  # no OSXSAVE: xgetbv would fault
        ({"avx2", "xsave"}, XCR0_ON, False),
    ],
)
def test_avx512_needs_both_the_kernel_flags_and_xcr0(flags, xcr0, expected) -> None:
    assert cpu.os_enables_avx512(flags, xcr0) is expected


def test_the_kernel_flags_are_read_from_cpuinfo() -> None:
    text = "processor\t: 0\nflags\t\t: fpu avx2 avx512f\nbugs\t\t: spectre\n"
    assert cpu.kernel_flags(text) == {"fpu", "avx2", "avx512f"}


def test_this_machine_reads_xcr0_consistently_with_its_flags() -> None:
    flags = cpu.kernel_flags()
    if "xsave" not in flags:
        pytest.skip("no xsave: xgetbv is not allowed here")
    xcr0 = cpu.read_xcr0()
    assert xcr0 is not None and xcr0 & 0b110 == 0b110  # SSE and AVX state, as "avx" implies
    assert (xcr0 & cpu.XCR0_AVX512 == cpu.XCR0_AVX512) == ("avx512f" in flags)


def test_without_the_avx512_backend_the_portable_build_is_used(tmp_path: Path) -> None:
    assert cpu.avx512_library(tmp_path) is None

"""The AVX-512 body of Gaussian dropout on a CPU without AVX-512.

src_c/df_kernels_gaussian_avx512.c built against SIMDe's portable AVX-512
(-DDF_GAUSS_SIMDE; Debian package libsimde-dev) and compared bit for bit with the
scalar specification by tests/c/gauss_simde.c. On an AVX-512 machine
tests/test_gaussian.py and test_kat.c also run it natively. A missing compiler or
SIMDe skips, except in CI (CI=true), where it fails."""
import glob
import os
import platform
import subprocess

import pytest

from ctools import IN_CI, require, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = os.environ.get("CC", "cc")
SIMDE_PROBE = "#include <simde/x86/avx512.h>\nint main(void){return 0;}\n"


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="the AVX-512 body is built on x86-64 only")
def test_avx512_body_under_simde(tmp_path):
    require(CC, what="the SIMDe build of the AVX-512 Gaussian body")
    probe = tmp_path / "probe.c"
    probe.write_text(SIMDE_PROBE)
    res = subprocess.run([CC, "-fsyntax-only", str(probe)], capture_output=True, text=True)
    if res.returncode != 0:
        if IN_CI:
            pytest.fail("SIMDe headers not found (install libsimde-dev)")
        pytest.skip("SIMDe headers not found (libsimde-dev)")
    exe = tmp_path / "gauss_simde"
    sources = sorted(glob.glob(os.path.join(ROOT, "src_c", "*.c")))
    run([CC, "-O1", "-std=gnu11", "-ffp-contract=off", "-fno-strict-aliasing", "-Wno-psabi",
         "-DDF_GAUSS_SIMDE", "-DDF_USE_OPENMP=0", "-I", os.path.join(ROOT, "src_c"),
         os.path.join(ROOT, "tests", "c", "gauss_simde.c"), *sources, "-lm", "-o", str(exe)])
    out = run([str(exe)])
    assert "80 of 80 cases bit-identical" in out, out

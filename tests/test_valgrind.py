"""The C test programs (tests/c/test_*.c) under valgrind memcheck: no invalid
read or write, no use of uninitialised memory, no leak.

They are built as test_c_library.py builds them without OpenMP (the same
static library, compiled once per session; libgomp's thread pool is reported
by memcheck as reachable memory and its barriers are opaque to it) and run with
DF_TEST_QUICK=1 (tests/c/df_check.h), which drops their largest sizes and
repeated thread counts so the four runs take about a minute under valgrind;
every code path still runs. Valgrind's virtual CPU has no AVX-512, so the
scalar and AVX2 bodies are the ones checked. The four programs run at once.

A missing valgrind skips, except in CI (CI=true): there it fails.
"""
import os
import shutil
import subprocess

import pytest
from test_c_library import CC, PROGRAMS, ROOT, build, library

VALGRIND = ["valgrind", "-q", "--error-exitcode=1", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect,possible"]


def test_c_programs_under_valgrind(tmp_path, tmp_path_factory):
    if shutil.which("valgrind") is None or shutil.which(CC) is None:
        why = "valgrind or the C compiler is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(why + " (CI=true: the valgrind run may not be skipped)")
        pytest.skip(why)
    flags = ("-DDF_USE_OPENMP=0",)  # test_c_library's "serial" build: one compile for both
    lib = library(tmp_path_factory, flags)
    env = dict(os.environ, DF_TEST_QUICK="1",
               DF_TEST_DATA_DIR=os.path.join(ROOT, "tests", "data"))
    runs = {}
    for program in PROGRAMS:
        exe = build(tmp_path, lib, program, *flags, "-g")
        runs[os.path.basename(exe)] = subprocess.Popen(
            VALGRIND + [exe], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
    failed = []
    for name, proc in runs.items():
        out, _ = proc.communicate(timeout=900)
        if proc.returncode != 0 or "C tests: ok" not in out:
            failed.append(f"{name} (exit {proc.returncode}):\n{out[-4000:]}")
    assert not failed, "\n\n".join(failed)
    assert len(runs) >= 4

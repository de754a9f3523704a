"""The C library on its own: every tests/c/test_*.c program built with the system
compiler, without Python, and run (known answers, status codes, every ISA
against scalar), with and without OpenMP and under ASan/UBSan."""
import os
import shutil
import subprocess
from glob import glob

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = os.environ.get("CC", "cc")


PROGRAMS = sorted(glob(os.path.join(ROOT, "tests", "c", "test_*.c")))


def build(tmp_path, program, *flags):
    exe = str(tmp_path / os.path.basename(program)[:-2])
    src = sorted(glob(os.path.join(ROOT, "src_c", "*.c"))) + [program]
    cmd = [CC, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
           "-I", os.path.join(ROOT, "src_c"), *flags, *src, "-o", exe, "-lm"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


@pytest.mark.skipif(shutil.which(CC) is None, reason="no C compiler")
@pytest.mark.parametrize("flags", [
    ("-fopenmp", "-DDF_USE_OPENMP=1"),
    ("-DDF_USE_OPENMP=0",),
    ("-DDF_USE_OPENMP=0", "-O1", "-g", "-fsanitize=address,undefined",
     "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"),
], ids=["openmp", "serial", "asan-ubsan"])
@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: os.path.basename(p)[:-2])
def test_c_program(tmp_path, program, flags):
    """Each tests/c/test_*.c is a program that prints "... C tests: ok" and exits 0."""
    exe = build(tmp_path, program, *flags)
    run = subprocess.run([exe], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "C tests: ok" in run.stdout

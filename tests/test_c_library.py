"""The C library on its own: tests/c/test_kat.c built with the system compiler,
without Python, and run (known answers, status codes, every ISA against scalar)."""
import os
import shutil
import subprocess
from glob import glob

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = os.environ.get("CC", "cc")


def build(tmp_path, *flags):
    exe = str(tmp_path / "test_kat")
    src = sorted(glob(os.path.join(ROOT, "src_c", "*.c"))) + [
        os.path.join(ROOT, "tests", "c", "test_kat.c")]
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
def test_c_program(tmp_path, flags):
    exe = build(tmp_path, *flags)
    run = subprocess.run([exe], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "dropout_fast C tests: ok" in run.stdout

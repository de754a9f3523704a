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


BASE = [CC, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
        "-I", os.path.join(ROOT, "src_c")]
_libraries = {}


def library(tmp_path_factory, flags):
    """src_c/ compiled once per flag set into a static archive (the compile is
    the slow part; every test program links against it)."""
    if flags not in _libraries:
        out = tmp_path_factory.mktemp("libdf")
        objs = []
        for src in sorted(glob(os.path.join(ROOT, "src_c", "*.c"))):
            obj = str(out / (os.path.basename(src)[:-2] + ".o"))
            subprocess.run(BASE + [*flags, "-c", src, "-o", obj], check=True,
                           capture_output=True, text=True)
            objs.append(obj)
        lib = str(out / "libdropout_fast.a")
        subprocess.run(["ar", "rcs", lib, *objs], check=True, capture_output=True, text=True)
        _libraries[flags] = lib
    return _libraries[flags]


def build(tmp_path, lib, program, *flags):
    exe = str(tmp_path / os.path.basename(program)[:-2])
    cmd = BASE + [*flags, program, lib, "-o", exe, "-lm", "-pthread"]
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
def test_c_program(tmp_path, tmp_path_factory, program, flags):
    """Each tests/c/test_*.c is a program that prints "... C tests: ok" and exits 0."""
    exe = build(tmp_path, library(tmp_path_factory, flags), program, *flags)
    env = dict(os.environ, DF_TEST_DATA_DIR=os.path.join(ROOT, "tests", "data"))
    run = subprocess.run([exe], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "C tests: ok" in run.stdout

"""Build of dropout_fast: the C kernels of src_c/ compiled into one Cython extension.

One table of compile flags. The kernels are portable C11 with per-function
target attributes for AVX2/AVX-512, chosen at run time: the build never uses
the host-tuning -march flag, so a built wheel runs on any x86-64 (and the scalar body on
any other CPU). -ffp-contract=off keeps every path rounding the same.

Environment switches:
  DROPOUT_FAST_NO_OPENMP=1      build without OpenMP (single-threaded kernels)
  DROPOUT_FAST_CYTHON_DEBUG=1   turn Cython bounds and wraparound checks back on
"""
import os
import shutil
import subprocess
import sys
import tempfile
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
C_SOURCES = sorted(glob(os.path.join("src_c", "*.c")))
CFLAGS = ["-O3", "-std=gnu11", "-ffp-contract=off", "-fno-strict-aliasing"]


def _openmp_flags():
    """-fopenmp if the compiler links an OpenMP program, else none."""
    if os.environ.get("DROPOUT_FAST_NO_OPENMP") == "1":
        return []
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc.split()[0]) is None:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n")
        cmd = cc.split() + ["-fopenmp", src, "-o", os.path.join(tmp, "omp")]
        ok = subprocess.run(cmd, capture_output=True).returncode == 0
    if not ok:
        print("dropout_fast: OpenMP not found, building single-threaded kernels", file=sys.stderr)
    return ["-fopenmp"] if ok else []


OPENMP = _openmp_flags()
DEBUG = os.environ.get("DROPOUT_FAST_CYTHON_DEBUG") == "1"

extensions = [
    Extension(
        "dropout_fast._core",
        # src_c/bench/: the benchmark's bandwidth probes, in the extension only.
        sources=["dropout_fast/_core.pyx"] + C_SOURCES + ["src_c/bench/df_bandwidth.c"],
        include_dirs=["src_c", numpy.get_include()],
        depends=sorted(glob(os.path.join("src_c", "*.h")) + ["src_c/bench/df_bandwidth.h"]
                       + glob(os.path.join("dropout_fast", "*.pxi"))),
        define_macros=[
            ("DF_USE_OPENMP", "1" if OPENMP else "0"),
            ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
        ],
        extra_compile_args=CFLAGS + OPENMP,
        extra_link_args=OPENMP,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "cdivision": not DEBUG,
            "initializedcheck": DEBUG,
        },
    ),
)

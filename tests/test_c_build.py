"""The C library as a C user builds it: CMake (src_c/CMakeLists.txt) configure, build,
ctest, install to a prefix, and a consumer compiled through pkg-config, linked
statically and against the shared library; then the same library and tests
cross-compiled for aarch64 and run under qemu (tests/c/cross_aarch64.sh).

A missing tool skips, except in CI (CI=true): there it fails, so CI cannot pass
without having run these."""
import glob
import os
import re
import shutil
import subprocess

import pytest

import oracle
from ctools import require, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = os.environ.get("CC", "cc")
IN_CI = os.environ.get("CI") == "true"
JOBS = str(min(os.cpu_count() or 2, 8))

# The example of README.md's "Using the C library" section. consumer_source() takes
# the README's own copy once the section is there, so the README's code is what
# compiles here; keep the two identical.
CONSUMER = r"""
#include <stdio.h>
#include <dropout_fast.h>

int main(void)
{
    enum { N = 1000 };
    static float x[N], y[N], dx[N];
    static uint8_t bits[(N + 7) / 8];        /* keep(i) at bit i % 8 of byte i / 8 */
    const double p = 0.1;                    /* drop probability */
    const uint64_t seed = 42, offset = 0;    /* offset: counter blocks used by earlier calls */
    const df_key_t key = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const float scale = (float)(1.0 / (1.0 - p));
    for (int i = 0; i < N; ++i) x[i] = 1.0f;
    df_status_t rc = df_dropout_fwd_f32(x, y, bits, N, key, (df_block_t){offset, 0},
                                        df_threshold(p), scale, NULL); /* NULL: best ISA, all threads */
    if (rc == DF_OK)                         /* backward from the bits: dx = keep ? dy * scale : 0 */
        rc = df_dropout_bwd_bits_f32(y, dx, bits, N, scale, NULL);
    int kept = 0;
    for (int i = 0; i < N; ++i) kept += y[i] != 0.0f;
    printf("dropout_fast %s (%s): %s, kept %d of %d\n", df_version(),
           df_isa_name(df_isa_default()), df_status_str(rc), kept, N);
    return rc != DF_OK;                      /* the next call starts at offset + (N + 7) / 8 */
}
"""


def header_version():
    with open(os.path.join(ROOT, "src_c", "dropout_fast.h")) as f:
        return re.search(r'#define DF_VERSION_STRING "([^"]+)"', f.read()).group(1)


def consumer_source():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    section = re.search(r"^## Using the C library\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    if section is None:
        return CONSUMER
    block = re.search(r"```c\n(.*?)```", section.group(1), re.S)
    assert block, 'README\'s "Using the C library" section has no ```c example'
    return block.group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Configure, build, ctest and install into a temporary prefix: (build, prefix).
    Skips (fails under CI=true) without cmake, ctest or the C compiler."""
    require("cmake", "ctest", CC)
    tmp = tmp_path_factory.mktemp("cmake")
    build, prefix = tmp / "build", tmp / "prefix"
    run(["cmake", "-S", os.path.join(ROOT, "src_c"), "-B", str(build),
         "-DCMAKE_BUILD_TYPE=Release"])
    # Every tests/c/test_*.c is registered; test_c_library.py already builds and
    # runs each of them natively (three builds), so here only the libraries and the
    # stored-vector programs (static and shared) are built and run. The cross test
    # builds and runs them all.
    run(["cmake", "--build", str(build), "--parallel", JOBS, "--target", "dropout_fast_static",
         "dropout_fast_shared", "test_vectors", "test_vectors_shared"])
    listed = run(["ctest", "--test-dir", str(build), "-N"])
    for src in glob.glob(os.path.join(ROOT, "tests", "c", "test_*.c")):
        name = os.path.basename(src)[:-2]
        assert re.search(rf": {name}$", listed, re.M), (name, listed)
    out = run(["ctest", "--test-dir", str(build), "--output-on-failure", "-R", "^test_vectors"])
    assert "100% tests passed" in out, out
    for name in ("test_vectors", "test_vectors_shared"):
        assert re.search(rf"\b{name} \.+ +Passed", out), out
    run(["cmake", "--install", str(build), "--prefix", str(prefix)])
    return build, prefix


def test_install_tree(installed):
    """Header, static and shared library (SONAME with the major version), .pc file."""
    _, prefix = installed
    version = header_version()
    major = version.split(".")[0]
    assert (prefix / "include" / "dropout_fast.h").is_file()
    pcs = glob.glob(str(prefix / "lib*" / "**" / "dropout_fast.pc"), recursive=True)
    assert len(pcs) == 1, pcs
    libdir = os.path.dirname(os.path.dirname(pcs[0]))
    for name in ("libdropout_fast.a", "libdropout_fast.so", f"libdropout_fast.so.{major}",
                 f"libdropout_fast.so.{version}"):
        assert os.path.exists(os.path.join(libdir, name)), name
    if shutil.which("readelf"):
        dyn = run(["readelf", "-d", os.path.join(libdir, f"libdropout_fast.so.{version}")])
        assert f"[libdropout_fast.so.{major}]" in dyn, dyn


def test_global_state(installed):
    """No global mutable state beyond the dispatch chosen once: the only objects in
    writable sections of the archive (.data, .bss, thread-local; not .data.rel.ro,
    read-only after relocation) are the resolved default ISA and the streaming
    threshold of df_dispatch.c, both written once through atomics."""
    require("objdump")
    build, _ = installed
    table = run(["objdump", "-t", str(build / "libdropout_fast.a")])
    writable = set()
    for line in table.splitlines():
        m = re.match(r"^[0-9a-f]+ .{7} (\S+)\s+[0-9a-f]+\s+(?:\.hidden )?(\S+)$", line)
        if m and " O " in line and re.match(r"\.(data|bss|tdata|tbss)\b", m.group(1)) \
                and not m.group(1).startswith(".data.rel.ro"):
            writable.add(m.group(2))
    assert writable == {"default_isa", "stream_min"}, (writable, table)


def stripped_size(archive, tmp_path):
    """Bytes of the archive after strip --strip-unneeded (the size a package ships)."""
    copy = tmp_path / "libdropout_fast.a"
    shutil.copyfile(archive, copy)
    run(["strip", "--strip-unneeded", str(copy)])
    return copy.stat().st_size


@pytest.mark.parametrize("link", ["shared", "static"])
def test_pkg_config_consumer(installed, tmp_path, link):
    """README's example, compiled with the flags pkg-config gives and run: its keep
    count is the numpy oracle's for the same seed, offset and p."""
    require("pkg-config", CC)
    _, prefix = installed
    pcdir = os.path.dirname(glob.glob(str(prefix / "lib*" / "**" / "dropout_fast.pc"),
                                      recursive=True)[0])
    env = dict(os.environ, PKG_CONFIG_PATH=pcdir)
    pc = ["pkg-config"] + (["--static"] if link == "static" else [])
    assert run(["pkg-config", "--modversion", "dropout_fast"], env=env).strip() == header_version()
    flags = run(pc + ["--cflags", "--libs", "dropout_fast"], env=env).split()
    libdir = run(["pkg-config", "--variable=libdir", "dropout_fast"], env=env).strip()
    if link == "static":
        # A fully static program: `cc -static ... $(pkg-config --static --cflags --libs)`.
        libc_a = run([CC, "-print-file-name=libc.a"]).strip()
        if not os.path.isabs(libc_a):
            if IN_CI:
                pytest.fail("no static C library (libc.a) for the static consumer")
            pytest.skip("no static C library (libc.a)")
        flags = ["-static"] + flags
    src = tmp_path / "consumer.c"
    src.write_text(consumer_source())
    exe = str(tmp_path / f"consumer_{link}")
    run([CC, "-std=c11", "-Wall", "-Wextra", "-Werror", str(src), *flags, "-o", exe], env=env)
    out = run([exe], env=dict(os.environ, LD_LIBRARY_PATH=libdir))
    kept = int(oracle.mask_bool(1000, 42, 0, 0.1).sum())
    assert f"dropout_fast {header_version()} (" in out, out
    assert f"ok, kept {kept} of 1000" in out, out
    if shutil.which("readelf"):
        dyn = run(["readelf", "-d", exe])
        needs_lib = "libdropout_fast.so" in dyn
        assert needs_lib == (link == "shared"), dyn
    if link == "static" and shutil.which("strip"):
        archive = os.path.join(libdir, "libdropout_fast.a")
        print(f"\nlibdropout_fast.a: {os.path.getsize(archive)} bytes, "
              f"{stripped_size(archive, tmp_path)} bytes after strip --strip-unneeded")


def test_cross_aarch64(tmp_path):
    """tests/c/cross_aarch64.sh: the library and C tests built for aarch64 pass under
    qemu, stored vectors included (ARM masks bit-identical to x86-64's)."""
    require("cmake", "ctest", "aarch64-linux-gnu-gcc", "qemu-aarch64", "readelf")
    script = os.path.join(ROOT, "tests", "c", "cross_aarch64.sh")
    res = subprocess.run(["bash", script, str(tmp_path / "build")], capture_output=True,
                         text=True, timeout=600)
    out = res.stdout + res.stderr
    if res.returncode == 77:  # a piece of the toolchain is missing (the sysroot)
        if IN_CI:
            pytest.fail(out)
        pytest.skip(out.strip())
    assert res.returncode == 0, out
    assert re.search(r"\btest_vectors \.+ +Passed", out), out
    assert "100% tests passed" in out, out

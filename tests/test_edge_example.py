"""examples/edge_mc_dropout.c end to end: a digits MLP trained and exported by
examples/export_digits_mlp.py, the example built by the library's CMake project
and run, natively and cross-compiled for aarch64 under qemu; its per-input class,
mean probability, predictive entropy and mutual information equal Python's
`dropout_fast.mc.mc_predict` on the same model, seed and offset, to rounding.

A missing tool (cmake, the cross compiler, qemu) skips, except in CI (CI=true):
there it fails, as in test_c_build.py."""
import importlib.util
import os
import re
import shutil
import subprocess

import pytest

import dropout_fast as df
from dropout_fast.mc import mc_predict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_CI = os.environ.get("CI") == "true"
JOBS = str(min(os.cpu_count() or 2, 8))
SYSROOT = os.environ.get("SYSROOT", "/usr/aarch64-linux-gnu")

T, SEED, OFFSET = 40, 7, 1000
# Printed with 6 decimals (+-5e-7); the float32 matrix products of C and numpy sum
# in different orders, which moves the figures by well under 1e-7 here (measured:
# the largest difference of 8 inputs x 3 figures at T = 200 was 4.9e-7, the print's).
ATOL = 2e-6

LINE = re.compile(r"^input (\d+): label (-?\d+) class (\d+) mean_prob ([0-9.]+) "
                  r"entropy ([0-9.]+) mutual_info ([0-9.]+)$", re.MULTILINE)


def require(*tools):
    """Skip (fail under CI=true) unless every tool is on PATH."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        why = "not found: " + ", ".join(missing)
        if IN_CI:
            pytest.fail(why + " (CI=true: the example tests may not be skipped)")
        pytest.skip(why)


def run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def exporter():
    spec = importlib.util.spec_from_file_location(
        "export_digits_mlp", os.path.join(ROOT, "examples", "export_digits_mlp.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The exported model file (trained here: sklearn's digits, a few epochs)."""
    if not IN_CI:  # in CI scikit-learn comes with the test extra and must be there
        pytest.importorskip("sklearn")
    path = str(tmp_path_factory.mktemp("model") / "edge_mlp.dfm")
    exporter().main([path, "--epochs", "10", "--samples", "12"])
    return path


def python_mc(path, T, seed, offset):
    """The Python MC path: mc_predict over the loaded model's forward pass."""
    mod = exporter()
    params, p, X, labels = mod.load(path)
    rng = df.Generator(seed).advance(offset)
    r = mc_predict(lambda x, g: mod.forward(params, x, p, g), X, T, rng=rng, output="logits")
    return r, labels


def parse(out):
    rows = LINE.findall(out)
    assert rows, out
    return [(int(i), int(lab), int(c), float(mp), float(h), float(mi))
            for i, lab, c, mp, h, mi in rows]


def check_matches(out, path, T, seed, offset):
    r, labels = python_mc(path, T, seed, offset)
    rows = parse(out)
    assert [row[0] for row in rows] == list(range(len(labels))), out
    for i, lab, c, mp, h, mi in rows:
        assert lab == labels[i]
        assert c == r.predicted_class[i], (i, out)
        assert abs(mp - r.mean[i, c]) <= ATOL, (i, mp, r.mean[i, c])
        assert abs(h - r.predictive_entropy[i]) <= ATOL, (i, h, r.predictive_entropy[i])
        assert abs(mi - r.mutual_information[i]) <= ATOL, (i, mi, r.mutual_information[i])
    return rows


def cmake_build(build, *args):
    run(["cmake", "-S", os.path.join(ROOT, "src_c"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         "-DDF_BUILD_TESTS=OFF", "-DDF_BUILD_EXAMPLES=ON", *args])
    run(["cmake", "--build", str(build), "--parallel", JOBS, "--target", "edge_mc_dropout"])
    exe = os.path.join(str(build), "edge_mc_dropout")
    assert os.path.isfile(exe)
    return exe


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """The example built natively, without OpenMP (-DDF_OPENMP=OFF: the library's
    single-threaded build, which needs no OpenMP runtime)."""
    require("cmake")
    exe = cmake_build(tmp_path_factory.mktemp("native"), "-DDF_OPENMP=OFF")
    if shutil.which("readelf"):
        dyn = run(["readelf", "-d", exe])
        assert "libgomp" not in dyn and "libomp" not in dyn, dyn
    return exe


def test_export_roundtrip(model):
    """The file is what its docstring says: header, sizes, exact length."""
    mod = exporter()
    params, p, X, labels = mod.load(model)
    assert params["W1"].shape == (64, 64) and params["W2"].shape == (64, 10)
    assert X.shape == (12, 64) and labels.shape == (12,) and p == 0.25
    size = 32 + 4 * (64 * 64 + 64 + 64 * 10 + 10 + 12 * 64 + 12)
    assert os.path.getsize(model) == size
    with open(model, "rb") as f:
        assert f.read(8) == b"DFMC\x01\x00\x00\x00"


def test_native_matches_python(native, model):
    """The C program's figures equal mc_predict's; a different seed does not (so
    the comparison can fail), and the model is a real classifier."""
    out = run([native, model, str(T), str(SEED), str(OFFSET)])
    assert f"T = {T}, seed {SEED}, offset {OFFSET}" in out, out
    rows = check_matches(out, model, T, SEED, OFFSET)
    other, _ = python_mc(model, T, SEED + 1, OFFSET)
    far = max(abs(row[3] - other.mean[row[0], row[2]]) for row in rows)
    assert far > 100 * ATOL, far
    assert sum(row[1] == row[2] for row in rows) >= 9, out  # ~98% accurate model


def test_native_defaults_and_errors(native, model, tmp_path):
    """Defaults T = 100, seed 0, offset 0; bad arguments and files fail with a message."""
    out = run([native, model])
    check_matches(out, model, 100, 0, 0)
    with open(model, "rb") as f:
        raw = f.read()
    bad = tmp_path / "bad.dfm"
    bad.write_bytes(raw[:-1])
    for args, msg in [([str(bad)], "file length does not match its header"),
                      ([str(tmp_path / "missing")], "cannot open"),
                      ([model, "0"], "T: expected an integer >= 1"),
                      ([model, "5", "x"], "SEED: expected an integer")]:
        res = subprocess.run([native, *args], capture_output=True, text=True)
        assert res.returncode != 0 and msg in res.stderr, (args, res.stderr)
    bad.write_bytes(raw[:4] + b"\x02" + raw[5:])
    res = subprocess.run([native, str(bad)], capture_output=True, text=True)
    assert res.returncode == 1 and "unsupported format version" in res.stderr


def test_native_sanitized(native, model, tmp_path):
    """The example's own code (the loader included) under ASan and UBSan, linked
    against the CMake build's archive: clean on a good and a truncated file."""
    cc = os.environ.get("CC", "cc")
    require(cc)
    exe = str(tmp_path / "edge_mc_dropout_san")
    run([cc, "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
         "-fno-omit-frame-pointer", "-I", os.path.join(ROOT, "src_c"),
         os.path.join(ROOT, "examples", "edge_mc_dropout.c"),
         os.path.join(os.path.dirname(native), "libdropout_fast.a"), "-lm", "-o", exe])
    check_matches(run([exe, model, "10", "3"]), model, 10, 3, 0)
    with open(model, "rb") as f:
        raw = f.read()
    for cut in (3, 40, len(raw) - 4):
        (tmp_path / "cut.dfm").write_bytes(raw[:cut])
        res = subprocess.run([exe, str(tmp_path / "cut.dfm")], capture_output=True, text=True)
        assert res.returncode == 1 and "edge_mc_dropout:" in res.stderr, res.stderr
        assert "Sanitizer" not in res.stderr, res.stderr


def test_aarch64_qemu_matches_python(model, tmp_path):
    """Cross-compiled for aarch64 and run under qemu, with the NEON kernels (the
    default there) and with the scalar ones: the same figures as Python's, and the
    same bytes as each other, so the masks on ARM are the ones Python drew on x86-64."""
    cc, qemu = "aarch64-linux-gnu-gcc", "qemu-aarch64"
    require("cmake", cc, qemu, "readelf")
    if not os.path.isdir(SYSROOT):
        if IN_CI:
            pytest.fail(f"no aarch64 sysroot at {SYSROOT} (libc6-dev-arm64-cross)")
        pytest.skip(f"no aarch64 sysroot at {SYSROOT}")
    # The toolchain settings of tests/c/cross_aarch64.sh.
    exe = cmake_build(tmp_path / "aarch64", "-DCMAKE_SYSTEM_NAME=Linux",
                      "-DCMAKE_SYSTEM_PROCESSOR=aarch64", f"-DCMAKE_C_COMPILER={cc}",
                      f"-DCMAKE_FIND_ROOT_PATH={SYSROOT}",
                      "-DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER",
                      "-DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY",
                      "-DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY")
    assert "AArch64" in run(["readelf", "-h", exe])
    cmd = [qemu, "-L", SYSROOT, exe, model, str(T), str(SEED), str(OFFSET)]
    out = run(cmd, timeout=300)
    assert "(neon)" in out, out
    check_matches(out, model, T, SEED, OFFSET)
    scalar = run(cmd, timeout=300, env=dict(os.environ, DROPOUT_FAST_ISA="scalar"))
    assert "(scalar)" in scalar, scalar
    assert scalar.replace("(scalar)", "(neon)") == out

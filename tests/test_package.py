"""The package as a whole: info, environment switches, the fallback backend and
the command line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import dropout_fast as df
from dropout_fast import _config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python(code, **env):
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, **env}, timeout=300)
    assert run.returncode == 0, run.stderr
    return run


def test_info():
    info = df.info()
    assert info["version"] == df.__version__
    assert info["backend"] == "c"
    assert info["isa"] in info["isa_available"] and "scalar" in info["isa_available"]
    assert info["num_threads"] >= 1


def test_isa_environment_switch():
    out = python("import dropout_fast as d; print(d.info()['isa'])", DROPOUT_FAST_ISA="scalar")
    assert out.stdout.strip() == "scalar"


def test_threads_environment_switch():
    out = python("import dropout_fast as d; print(d.get_num_threads())",
                 DROPOUT_FAST_NUM_THREADS="3")
    assert out.stdout.strip() == "3"
    bad = python("import dropout_fast as d; print(d.get_num_threads())",
                 DROPOUT_FAST_NUM_THREADS="zero")
    assert "DROPOUT_FAST_NUM_THREADS" in bad.stderr


def test_fallback_to_numba_when_extension_missing():
    code = """
import sys, warnings
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "dropout_fast._core":
            raise ImportError("blocked for the test")
sys.meta_path.insert(0, Block())
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    import dropout_fast as d
assert any("Numba reference" in str(m.message) for m in w), [str(m.message) for m in w]
import numpy as np
y = d.dropout(np.ones(1000, np.float32), 0.3, rng=5)
print(d.info()["backend"], d.info()["isa"])
print(",".join(str(v) for v in np.flatnonzero(y)[:20]))
"""
    out = python(code)
    backend, kept = out.stdout.split("\n")[:2]
    assert backend == "numba numba"
    y = df.dropout(np.ones(1000, np.float32), 0.3, rng=5)
    assert kept == ",".join(str(v) for v in np.flatnonzero(y)[:20])


def test_command_line_info_and_bench(tmp_path):
    out = python("from dropout_fast.__main__ import main; main(['info'])")
    assert json.loads(out.stdout)["backend"] == "c"
    report = tmp_path / "bench.json"
    out = python("from dropout_fast.__main__ import main; "
                 f"main(['bench', '--quick', '--sizes', '10', '--ops', 'dropout', "
                 f"'--peers', 'numpy', '--json', r'{report}'])")
    assert "| dropout | for | 2**10 | float32 | 1 | dropout_fast |" in out.stdout
    rows = json.loads(report.read_text())["rows"]
    assert {r["impl"] for r in rows} == {"dropout_fast", "dropout_fast (alloc)", "numpy"}
    assert all(r["elem_per_ns"] > 0 for r in rows if not r["skipped"])


def test_isa_override_rejects_unavailable():
    with pytest.raises(ValueError, match="isa"):
        with _config.force_isa("neon"):
            pass

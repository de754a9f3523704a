"""Helpers of the tests that build and run C programs (test_c_build, test_edge_example)."""
import os
import shutil
import subprocess

import pytest

IN_CI = os.environ.get("CI") == "true"


def require(*tools, what: str = "these tests"):
    """Skip (fail under CI=true) unless every tool is on PATH."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        why = "not found: " + ", ".join(missing)
        if IN_CI:
            pytest.fail(f"{why} (CI=true: {what} may not be skipped)")
        pytest.skip(why)


def run(cmd, **kw) -> str:
    """Run cmd; on failure, fail with its whole output."""
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))}\n{res.stdout}\n{res.stderr}"
    return res.stdout

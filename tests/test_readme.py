"""The README's Python examples run, in order, in one namespace (as a reader
would paste them), so the documentation cannot drift from the API."""
import importlib.util
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_examples_run():
    blocks = python_blocks()
    assert len(blocks) >= 3
    namespace = {}
    has_torch = importlib.util.find_spec("torch") is not None
    for i, code in enumerate(blocks):
        if "import torch" in code and not has_torch:
            continue  # the PyTorch section's examples need the optional torch extra
        exec(compile(code, f"README.md python block {i}", "exec"), namespace)

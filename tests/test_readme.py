"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path


def test_readme_python_examples_run(capsys, tmp_path, monkeypatch):
    text = (Path(__file__).parent.parent / "README.md").read_text()
    monkeypatch.chdir(tmp_path)  # the examples may write files (the tuning example saves plan.json)
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "SampleMetric(name='mode_tv'" in out and "W2(plan, target) <=" in out
    assert (tmp_path / "plan.json").is_file()

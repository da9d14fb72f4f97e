"""Every JSON file the commands write is strict JSON (RFC 8259): no NaN or Infinity, which strict
parsers (JavaScript's JSON.parse, jq, most non-Python readers) reject; non-finite values are null."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from sgmlab._io import strict_json, write_json
from sgmlab.cli import main


def _strict(path: Path) -> object:
    def refuse(constant: str) -> None:
        raise ValueError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_write_json_writes_non_finite_numbers_as_null(tmp_path):
    obj = {"nan": math.nan, "inf": [1.0, -math.inf], "np": np.float64("nan"), "t": torch.tensor([1.0, math.inf]),
           "scalar": torch.tensor(2.5), "np32": np.float32(1.5), "int": np.int64(3)}
    back = _strict(write_json(tmp_path / "x.json", obj))
    assert back == {"nan": None, "inf": [1.0, None], "np": None, "t": [1.0, None], "scalar": 2.5, "np32": 1.5,
                    "int": 3}
    assert strict_json((1.0, math.nan)) == [1.0, None]


def test_every_json_file_the_commands_write_is_strict(tmp_path, capsys):
    runs = [["sample", "--target", "mixture2d", "--steps", "6", "--n", "400"],
            ["tune", "--target", "gaussian", "--dim", "2", "--nfe", "5", "--n-pilot", "16", "--trials", "6"],
            ["bound", "--target", "mixture2d", "--steps", "8", "--n", "500", "--n-paths", "100"],
            ["plan", "--target", "gaussian", "--dim", "2", "--eps", "0.3", "--n-max", "64"],
            ["claims", "--quick"]]
    written = []
    for i, argv in enumerate(runs):
        out = tmp_path / f"run{i}"
        assert main(argv + ["--out", str(out), "--no-progress"]) == 0, argv
        written += sorted(out.rglob("*.json"))
    capsys.readouterr()
    assert len(written) >= len(runs)
    for path in written:
        _strict(path)

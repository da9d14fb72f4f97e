"""What every experiment returns: a typed result that reports and saves itself.

The command line only parses arguments into a config, prepares the output folder, runs the
experiment, prints ``result.report()`` and calls ``result.save(folder)``; file formats and figures
live with the results, here and in :mod:`sgmlab.experiments`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import _io


class Result(ABC):
    """A result: ``report()`` is the text a user reads, ``files()`` what ``save(folder)`` writes."""

    @abstractmethod
    def report(self) -> str:
        """What the command line prints."""

    @abstractmethod
    def files(self) -> dict[str, Any]:
        """File name -> content, by suffix: ``.json`` any JSON-able object, ``.csv`` a list of rows
        (dicts or dataclasses), ``.npy`` an array or tensor, ``.md``/``.txt`` text, ``.png`` a
        matplotlib figure."""

    def save(self, folder: str | Path) -> list[str]:
        """Write :meth:`files` into ``folder`` (which must exist), each atomically; everything, the
        figures included, is computed before the first file is written. Returns the names."""
        files = self.files()
        for name, content in files.items():
            write(Path(folder) / name, content)
        return list(files)


class Row:
    """A typed table row (a dataclass) that old code may still index like the dict it replaced."""

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


def rows_of(rows: list[Any]) -> list[dict[str, Any]]:
    """Dataclass rows as dicts (CSV and JSON); dicts unchanged."""
    return [asdict(r) if is_dataclass(r) else dict(r) for r in rows]


def write(path: Path, content: Any) -> Path:
    """One file, its format chosen by the suffix of ``path``."""
    kind = path.suffix
    if kind == ".json":
        return _io.write_json(path, content)
    if kind == ".csv":
        return _io.write_csv(path, rows_of(content))
    if kind == ".npy":
        return _io.write_npy(path, content.detach().cpu().numpy() if isinstance(content, torch.Tensor)
                             else np.asarray(content))
    if kind in (".md", ".txt"):
        return _io.write_text(path, content)
    if kind == ".png":
        from ..plotting import readable_log_axes

        return _io.write_figure(path, readable_log_axes(content))
    raise ValueError(f"no writer for {path.name} (suffix {kind!r})")


def wrote(folder: str | Path, names: list[str]) -> str:
    """The line the command line prints after saving."""
    return f"  wrote {folder}/{', '.join(names)}"

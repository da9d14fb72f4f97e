"""Result folders: every file written atomically (temporary file, then rename), and an existing
result never overwritten unless asked."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


CREATED: list[Path] = []  # folders prepare_dir made in this process (the CLI removes them if a run fails empty)


def remove_empty_created() -> None:
    """Remove the folders this process created that are still empty (a run that failed before writing)."""
    for p in reversed(CREATED):
        try:
            p.rmdir()  # only if empty
        except OSError:
            pass
    CREATED.clear()


def prepare_dir(path: str | Path, *, force: bool = False) -> Path:
    """Create ``path``; refuse a non-empty existing folder unless ``force``."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"--out {p} exists and is not a folder")
    if p.is_dir() and any(p.iterdir()) and not force:
        raise ValueError(f"--out {p} already holds results; choose another folder or pass --force to overwrite")
    try:
        missing, q = [], p
        while not q.exists() and q != q.parent:
            missing.append(q)
            q = q.parent
        CREATED.extend(reversed(missing))  # the topmost first: removed last
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".write-test.")  # refuse an unwritable folder before any work
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"--out {p}: cannot write there ({e.strerror or e})") from None
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Callable[[str], None]) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results follow the user's umask like any file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path: Path, obj: Any) -> Path:
    """``obj`` as strict JSON (RFC 8259), written atomically: a non-finite number (NaN, an infinite
    bound) is written as null, which every parser reads; the text beside it says what it stands for."""
    text = json.dumps(strict_json(obj), indent=2, allow_nan=False) + "\n"  # before the file is touched
    return _atomic(path, lambda tmp: Path(tmp).write_text(text))


def strict_json(o: Any) -> Any:
    """``o`` with tensors and arrays as lists, objects with ``as_dict`` as dicts, and every
    non-finite float as None: what strict JSON can hold."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: strict_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [strict_json(v) for v in o]
    if o is None or isinstance(o, (str, bool, int)):
        return o
    return strict_json(_json_default(o))


def write_text(path: Path, text: str) -> Path:
    return _atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows of dicts as CSV, the columns those of the first row."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return write_text(path, buf.getvalue())


def write_npy(path: Path, array: np.ndarray) -> Path:
    def w(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)
    return _atomic(path, w)


def write_figure(path: Path, fig: Any) -> Path:
    """Save a matplotlib figure atomically, then close it (pyplot keeps open figures alive)."""
    out = _atomic(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=120, bbox_inches="tight"))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out


def _json_default(o: Any) -> Any:
    if hasattr(o, "item") and getattr(o, "ndim", None) == 0:  # numpy and torch scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "as_dict"):
        return o.as_dict()
    raise TypeError(f"cannot write {type(o).__name__} to JSON")

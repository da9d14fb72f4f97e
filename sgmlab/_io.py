"""Result folders: every file written atomically (temporary file, then rename), and an existing
result never overwritten unless asked."""

from __future__ import annotations

import json
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
    def w(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, default=_json_default)
            f.write("\n")
    return _atomic(path, w)


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
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "as_dict"):
        return o.as_dict()
    raise TypeError(f"cannot write {type(o).__name__} to JSON")

"""Training data: built-in targets, scikit-learn's bundled sets, and user files (.npy, .csv)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..targets import BUILTIN, Target, builtin

BUNDLED = {"digits": "scikit-learn's 8x8 handwritten digits (1797 images, d = 64)",
           "wine": "scikit-learn's wine recognition data (178 rows, 13 numeric features)"}


@dataclass(frozen=True)
class Data:
    """Rows (N, d) in float64, what they are, and the exact target when known."""

    x: torch.Tensor
    name: str
    target: Target | None = None
    image_shape: tuple[int, int] | None = None
    labels: torch.Tensor | None = None
    standardize: str = "feature"
    columns: tuple[str, ...] | None = None  # the columns' names, where the data has them (a CSV header, wine)


def _check(x: np.ndarray, source: str) -> torch.Tensor:
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{source}: expected a table of shape (N, d); got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{source}: no data (shape {x.shape})")
    kind = x.dtype.kind  # b bool, i/u integers, f floats, c complex, m/M times, O objects, U/S text, V records
    if kind == "c":
        raise ValueError(f"{source}: complex numbers (dtype {x.dtype}); the data must be real: pass the real and "
                         "imaginary parts as columns of their own")
    if kind not in "iuf" or kind == "f" and x.dtype.itemsize > 8:
        want = " (convert it with .astype(np.float64))" if kind in "fb" else ""
        raise ValueError(f"{source}: expected integers or floats of at most 64 bits; got dtype {x.dtype}{want}")
    x = x.astype(np.float64)  # every integer and float up to 64 bits, exactly (integers beyond 2^53 rounded)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{source}: NaN or infinite value at row {r}, column {c}")
    big = np.abs(x) > 1e150
    if big.any():  # their squares overflow: no mean, variance or score can be computed in float64
        r, c = np.argwhere(big)[0]
        raise ValueError(f"{source}: value {x[r, c]:.3g} at row {r}, column {c} is too large to standardize in "
                         "float64 (|x| <= 1e150); rescale the data")
    return torch.as_tensor(x, dtype=torch.float64)


def _sniff(lines: list[str]) -> str:
    """The delimiter among ',', ';' and tab that splits the first lines into the same number (> 1)
    of columns, the most columns winning; ',' when none does (one column)."""
    best, width = ",", 1
    for d in (",", ";", "\t"):
        counts = {len(next(csv.reader([ln], delimiter=d))) for ln in lines if ln.strip()}
        if len(counts) == 1 and (k := counts.pop()) > width:
            best, width = d, k
    return best


def _decode(path: Path) -> str:
    """A text file's content: UTF-8 (a byte-order mark dropped) or UTF-16 with its mark; any other
    encoding is refused naming the file."""
    raw = Path(path).read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start} is {raw[e.start:e.start + 1]!r}); save it as UTF-8 "
                         "(Latin-1 and other encodings are not guessed)") from None


def read_csv(path: Path, columns: list[str] | None, delimiter: str | None = None, *,
             with_names: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[str]]:
    """A numeric table from a CSV file: the delimiter (',', ';' or tab) detected unless given, a
    header row recognised, decimal commas read as decimal points when the delimiter is not a comma,
    and a text or missing value refused naming its row and column (rows counted from 1, the header
    included). ``with_names``: also the kept columns' names (c0, c1, ... without a header)."""
    text = _decode(path)
    lines = text.splitlines()
    if not any(ln.strip() for ln in lines):
        raise ValueError(f"{path}: the file is empty")
    if delimiter is None:
        delimiter = _sniff(lines[:20])
    rows = [r for r in csv.reader(lines, delimiter=delimiter) if r]
    decimal_comma = delimiter != "," and any("," in v and "." not in v for r in rows[1:6] for v in r)

    def number(v: str) -> float:
        return float(v.replace(",", ".") if decimal_comma else v)

    header = rows[0]
    try:
        [number(v) for v in header]
        header, body, first = [f"c{i}" for i in range(len(rows[0]))], rows, 1
    except ValueError:
        body, first = rows[1:], 2
        names = [h.strip() for h in header]
        twice = sorted({h for h in names if names.count(h) > 1})
        if twice:
            raise ValueError(f"{path}: the header names {twice} more than once; columns must have names of their own")
    if columns and len(set(columns)) != len(columns):
        raise ValueError(f"--columns names {sorted({c for c in columns if columns.count(c) > 1})} more than once")
    if columns:
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path}: unknown column(s) {missing}; the columns are {header}")
        keep = [header.index(c) for c in columns]
    else:
        keep = list(range(len(header)))
    out = np.empty((len(body), len(keep)), dtype=np.float64)
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise ValueError(f"{path}: row {i + first} has {len(r)} values, the header {len(header)} "
                             f"(delimiter {delimiter!r}; pass --delimiter if that is wrong)")
        for j, c in enumerate(keep):
            v = r[c].strip()
            if not v:
                raise ValueError(f"{path}: missing value at row {i + first}, column {header[c]!r}")
            try:
                out[i, j] = number(v)
            except ValueError:
                raise ValueError(f"{path}: {v!r} at row {i + first}, column {header[c]!r} is not a number "
                                 f"(delimiter {delimiter!r}{', decimal comma' if decimal_comma else ''})") from None
    x = _check(out, str(path))
    return (x, [header[c].strip() for c in keep]) if with_names else x


def load_data(spec: str, *, n: int = 20_000, columns: list[str] | None = None, seed: int = 0,
              delimiter: str | None = None, image_shape: tuple[int, int] | None = None) -> Data:
    """``spec``: a built-in target name (``n`` exact samples), ``"digits"``, ``"wine"``, or a path to
    a .npy or .csv file (``columns`` picks CSV columns by header name).

    Images are image data: a .npy of shape (N, H, W) or (N, 1, H, W) is recognised as N images, and
    a table of N rows of H*W pixels is read as images when ``image_shape`` = (H, W) is given. Images
    are standardized globally (one mean and one scale for every pixel: a pixel that barely varies is
    not blown up), tables per column."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"data must be a built-in name or a file path; got {spec!r}")
    if spec in BUILTIN:
        target = builtin(spec)
        x = target.sample(n, generator=torch.Generator().manual_seed(seed))
        return Data(x, spec, target=target)
    if spec == "digits":
        from sklearn.datasets import load_digits

        ds = load_digits()
        return Data(_check(ds.data, "digits"), spec, image_shape=(8, 8), labels=torch.as_tensor(ds.target),
                    standardize="global")
    if spec == "wine":
        from sklearn.datasets import load_wine

        ds = load_wine()
        return Data(_check(ds.data, "wine"), spec, columns=tuple(ds.feature_names))
    path = Path(spec)
    if not path.exists():
        raise ValueError(f"unknown data {spec!r}: not a built-in target ({sorted(BUILTIN)}), "
                         f"not one of {sorted(BUNDLED)}, and no such file")
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:
            raise ValueError(f"{path}: cannot read as .npy ({e})") from None
        if not isinstance(arr, np.ndarray):  # an .npz archive under another name
            names = list(arr.files)
            arr.close()
            raise ValueError(f"{path}: holds an .npz archive of arrays {names}, not one array; save the one to train "
                             "on with np.save")
        if columns:
            raise ValueError("columns apply to .csv files only")
        if arr.ndim == 4 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim == 3:  # N images of H x W
            if image_shape is not None and tuple(image_shape) != arr.shape[1:]:
                raise ValueError(f"{path}: holds images of {arr.shape[1]}x{arr.shape[2]}; --image-shape says "
                                 f"{image_shape[0]}x{image_shape[1]}")
            image_shape = (int(arr.shape[1]), int(arr.shape[2]))
            arr = arr.reshape(arr.shape[0], -1)
        return _as_images(Data(_check(arr, str(path)), path.name), image_shape)
    if path.suffix == ".csv":
        x, names = read_csv(path, columns, delimiter, with_names=True)
        return _as_images(Data(x, path.name, columns=tuple(names)), image_shape)
    raise ValueError(f"{path}: expected a .npy or .csv file")


def _as_images(data: Data, image_shape: tuple[int, int] | None) -> Data:
    if image_shape is None:
        return data
    h, w = (int(v) for v in image_shape)
    if h < 1 or w < 1 or h * w != data.x.shape[1]:
        raise ValueError(f"{data.name}: rows of {data.x.shape[1]} values are not images of {h}x{w} ({h * w} pixels)")
    return Data(data.x, data.name, image_shape=(h, w), standardize="global")

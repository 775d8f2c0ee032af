"""Reading representations from files: .npy, .npz, .pt/.pth and .csv.

:func:`load_arrays` returns every array a file holds, by name; :func:`load_representation`
returns one of them. Nothing here checks shapes or values: the metrics do that (through
:func:`simmetrics._validation.check_representation`). Every failure is a ``ValueError`` (or a
``FileNotFoundError``) whose message names the file and the problem on one line.
"""

import csv
from pathlib import Path

import numpy as np

__all__ = ["SUFFIXES", "load_arrays", "load_representation"]

#: File suffixes understood, and what they hold.
SUFFIXES = {
    ".npy": "one numpy array",
    ".npz": "numpy arrays by name (choose one with key)",
    ".pt": "a torch tensor, or a dict / list of tensors (choose one with key)",
    ".pth": "a torch tensor, or a dict / list of tensors (choose one with key)",
    ".csv": "a numeric table, one row per stimulus (a header row is detected and skipped)",
}


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_magic(path, magic, kind):
    with open(path, "rb") as f:
        if f.read(len(magic)) != magic:
            raise ValueError(f"cannot read {path}: it is not a {kind} file")


def _load_npz(path):
    _check_magic(path, b"PK", ".npz (zip)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except Exception as exc:  # zip, header and pickle errors all mean "cannot read"
        raise ValueError(f"cannot read {path} as .npz: {_first_line(exc)}") from None


def _load_npy(path):
    _check_magic(path, b"\x93NUMPY", "numpy .npy")
    try:
        return {"": np.load(path, allow_pickle=False)}
    except Exception as exc:
        raise ValueError(f"cannot read {path} as .npy: {_first_line(exc)}") from None


def _tensor_to_array(value, path, name):
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy() if value.dtype != torch.bfloat16 else (
            value.detach().cpu().float().numpy())
    if isinstance(value, np.ndarray):
        return value
    where = f"entry {name!r} of {path}" if name else str(path)
    raise ValueError(f"{where} is a {type(value).__name__}, not a tensor")


def _load_torch(path):
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"cannot read {path} with torch.load(weights_only=True): {_first_line(exc)}"
        ) from None
    if isinstance(obj, (list, tuple)):
        obj = {str(i): v for i, v in enumerate(obj)}
    if isinstance(obj, dict):
        if not obj:
            raise ValueError(f"{path} holds an empty {type(obj).__name__}")
        return {str(k): _tensor_to_array(v, path, str(k)) for k, v in obj.items()}
    return {"": _tensor_to_array(obj, path, "")}


def _parse_float(cell):
    try:
        return float(cell)
    except ValueError:
        return None


def _load_csv(path):
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError:
        raise ValueError(f"cannot read {path} as .csv: it is not a text file") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path} is empty")
    first = lines[0]
    delimiter = next((d for d in (",", "\t", ";") if d in first), None)
    if delimiter is None:
        rows = [line.split() for line in lines]
    else:
        rows = list(csv.reader(lines, delimiter=delimiter))
    start = 0
    if any(_parse_float(cell) is None for cell in rows[0]):
        start = 1  # a header row
    width = len(rows[0])
    values = []
    for lineno, row in enumerate(rows[start:], start=start + 1):
        if len(row) != width:
            raise ValueError(
                f"{path}, line {lineno}: {len(row)} fields, but the first line has {width}"
            )
        parsed = [_parse_float(cell) for cell in row]
        for col, (cell, value) in enumerate(zip(row, parsed), start=1):
            if value is None:
                raise ValueError(f"{path}, line {lineno}, column {col}: {cell!r} is not a number")
        values.append(parsed)
    if not values:
        raise ValueError(f"{path} holds a header but no rows of numbers")
    return {"": np.asarray(values, dtype=np.float64)}


_LOADERS = {".npy": _load_npy, ".npz": _load_npz, ".pt": _load_torch, ".pth": _load_torch,
            ".csv": _load_csv}


def load_arrays(path):
    """Every array stored in ``path``, by name, in the order stored.

    Parameters
    ----------
    path : str or path-like
        A .npy, .npz, .pt/.pth or .csv file (see :data:`SUFFIXES`). .pt files are read with
        ``torch.load(weights_only=True)``, which runs no code from the file; a list of tensors
        is read as names "0", "1", ...

    Returns
    -------
    dict of str to numpy.ndarray
        Files that hold a single array (.npy, .csv, a lone tensor) give ``{"": array}``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Unknown suffix; the file cannot be read; non-numeric CSV cells.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "layers.npz")
    >>> np.savez(path, conv1=np.ones((5, 3)), fc=np.zeros((5, 2)))
    >>> {name: a.shape for name, a in load_arrays(path).items()}
    {'conv1': (5, 3), 'fc': (5, 2)}
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _LOADERS:
        raise ValueError(
            f"{path}: unsupported file type {suffix or '(no suffix)'!r}; expected one of "
            f"{', '.join(_LOADERS)}"
        )
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a file")
    return _LOADERS[suffix](path)


def load_representation(path, key=None):
    """One array from ``path``: the only one it holds, or the one named ``key``.

    Parameters
    ----------
    path : str or path-like
        See :func:`load_arrays`.
    key : str, optional
        Which array of a .npz file or of a saved dict / list of tensors. Needed when the file
        holds more than one; an error lists the names it holds.

    Returns
    -------
    numpy.ndarray
        As stored (any number of axes, any numeric dtype); the metrics validate it.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> np.save(os.path.join(folder, "a.npy"), np.arange(6.0).reshape(3, 2))
    >>> load_representation(os.path.join(folder, "a.npy")).shape
    (3, 2)
    >>> path = os.path.join(folder, "layers.npz")
    >>> np.savez(path, conv1=np.ones((5, 3)), fc=np.zeros((5, 2)))
    >>> load_representation(path, key="fc").shape
    (5, 2)
    >>> load_representation(path)
    Traceback (most recent call last):
    ...
    ValueError: .../layers.npz holds 2 arrays (conv1, fc); choose one with key= (--key ...)
    """
    arrays = load_arrays(path)
    names = ", ".join(arrays)
    if key is None:
        if len(arrays) == 1:
            return next(iter(arrays.values()))
        raise ValueError(
            f"{path} holds {len(arrays)} arrays ({names}); choose one with key= (--key on the "
            "command line)"
        )
    if list(arrays) == [""]:
        raise ValueError(f"{path} holds a single unnamed array, so key={key!r} names nothing")
    if str(key) not in arrays:
        raise ValueError(f"{path} has no array named {key!r}; it holds: {names}")
    return arrays[str(key)]

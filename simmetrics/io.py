"""Reading representations from files: .npy, .npz, .pt/.pth and .csv.

:func:`load_arrays` returns every array a file holds, by name; :func:`load_representation`
returns one of them. Nothing here checks shapes or values: the metrics do that (through
:func:`simmetrics._core.validation.check_representation`). Every failure is a ``ValueError`` (or a
``FileNotFoundError``) whose message names the file and the problem on one line.
"""

import csv
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SUFFIXES", "FileInfo", "load_arrays", "load_representation"]

#: File suffixes understood, and what they hold.
SUFFIXES = {
    ".npy": "one numpy array",
    ".npz": "numpy arrays by name (choose one with key)",
    ".pt": "a torch tensor, or a dict / list of tensors (choose one with key)",
    ".pth": "a torch tensor, or a dict / list of tensors (choose one with key)",
    ".csv": "a numeric table, one row per stimulus (header and index column detected; see "
            "load_arrays)",
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
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:  # zip, header and pickle errors all mean "cannot read"
        raise ValueError(f"cannot read {path} as .npz: {_first_line(exc)}") from None
    if not arrays:
        raise ValueError(f"{path} holds no arrays (an empty .npz archive)")
    return arrays, {}


def _load_npy(path):
    _check_magic(path, b"\x93NUMPY", "numpy .npy")
    try:
        return {"": np.load(path, allow_pickle=False)}, {}
    except Exception as exc:
        raise ValueError(f"cannot read {path} as .npy: {_first_line(exc)}") from None


def _tensor_to_array(value, path, name):
    import torch

    where = f"entry {name!r} of {path}" if name else str(path)
    notes = []
    if isinstance(value, np.ndarray):
        return value, notes
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{where} is a {type(value).__name__}, not a tensor")
    tensor = value.detach()
    try:
        if tensor.is_quantized:  # the values it stands for: (q - zero_point) * scale
            notes.append(f"a quantized tensor ({tensor.dtype}), read as its dequantized "
                         "float32 values")
            tensor = tensor.dequantize()
        if tensor.layout != torch.strided:
            notes.append(f"a sparse tensor ({tensor.layout}), read dense")
            tensor = tensor.to_dense()
        if tensor.is_floating_point() and tensor.dtype not in (
                torch.float16, torch.float32, torch.float64):
            tensor = tensor.float()  # bfloat16 and float8 have no numpy dtype; exact in float32
        return tensor.cpu().numpy(), notes
    except (TypeError, RuntimeError, ValueError) as exc:
        raise ValueError(
            f"{where}: cannot convert its {value.dtype} values to a numpy array: "
            f"{_first_line(exc)}"
        ) from None


def _load_torch(path):
    import torch

    try:
        with warnings.catch_warnings():  # torch's own, on loading quantized tensors
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"cannot read {path} with torch.load(weights_only=True): {_first_line(exc)}"
        ) from None
    if isinstance(obj, (list, tuple, dict)) and not obj:
        raise ValueError(f"{path} holds an empty {type(obj).__name__}")
    if isinstance(obj, (list, tuple)):
        obj = {str(i): v for i, v in enumerate(obj)}
    if not isinstance(obj, dict):
        obj = {"": obj}
    arrays, extras = {}, {}
    for key, value in obj.items():
        arrays[str(key)], notes = _tensor_to_array(value, path, str(key))
        if notes:
            extras[str(key)] = {"notes": tuple(notes)}
    return arrays, extras


# -- CSV -------------------------------------------------------------------------------------
#: Cells that mean "no value" in the files people write (pandas writes NaN as an empty cell,
#: R as NA, spreadsheets #N/A). They are errors, never dropped and never read as NaN.
_MISSING = {"", "na", "n/a", "nan", "-nan", "+nan", "null", "none", "#n/a", "<na>", "nat", "?"}
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_NONFINITE = re.compile(r"[+-]?inf(?:inity)?\Z", re.IGNORECASE)
_PLAIN_INT = re.compile(r"[+-]?\d+\Z")


def _kind(cell):
    """The kind of one (unquoted) cell: "number", "missing", "nonfinite" or "text"."""
    s = cell.strip()
    if _NUMBER.match(s):
        return "number"
    if s.lower() in _MISSING:
        return "missing"
    if _NONFINITE.match(s):
        return "nonfinite"
    return "text"


def _counts_up(cells, start):
    """Whether ``cells`` are the plain integers start, start + 1, ... in order."""
    if not cells or not all(_PLAIN_INT.match(c.strip()) for c in cells):
        return False
    return [int(c) for c in cells] == list(range(start, start + len(cells)))


def _has_decimals(cells):
    """Whether some number among ``cells`` is written with a decimal point or an exponent."""
    return any(_kind(c) == "number" and not _PLAIN_INT.match(c.strip()) for c in cells)


def _decode(path):
    data = Path(path).read_bytes()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ValueError(f"cannot read {path} as .csv: it is UTF-16 text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig"), "UTF-8"  # utf-8-sig drops a byte order mark
    except UnicodeDecodeError:
        if b"\x00" in data:
            raise ValueError(f"cannot read {path} as .csv: it is not a text file") from None
        return data.decode("latin-1"), "Latin-1"  # names may be Latin-1; numbers are ASCII


def _unquote(cell):
    return cell[1:-1] if len(cell) >= 2 and cell[0] == cell[-1] == '"' else cell


def _csv_rows(text):
    """[(line number, cells)] of every line, blank lines as empty cell lists, and the
    delimiter (None: runs of whitespace)."""
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    delimiter = next((d for d in (",", "\t", ";") if d in first), None)
    if delimiter is None and len(first.split()) > 1:
        rows = [(i, [_unquote(c) for c in line.split()]) for i, line in enumerate(lines, 1)]
        return rows, None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or ",",
                        skipinitialspace=True, strict=True)
    rows, lineno = [], 1
    try:
        for cells in reader:
            # a blank (or all-space) line; a quoted "" is an empty cell, not a blank line
            blank = not cells or (len(cells) == 1 and cells[0] != "" and not cells[0].strip())
            rows.append((lineno, [] if blank else cells))
            lineno = reader.line_num + 1
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: {exc}") from None
    return rows, delimiter or ","


def _check_flag(value, name):
    if value is not None and not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be None, True or False, got {value!r}")
    return None if value is None else bool(value)


def _load_csv(path, header=None, index=None):
    """Read a numeric table: one row per stimulus, one column per neuron.

    The rules (what :func:`load_arrays` documents) are applied in this order; ``header`` and
    ``index`` (True / False) override the detection.

    1. Text: UTF-8, with or without a byte order mark (Latin-1 when it is not UTF-8). The
       delimiter is the first of "," tab ";" found in the first line, else runs of
       whitespace; quoted fields follow the csv module (RFC 4180), spaces after a delimiter
       are skipped. Blank lines before and after the table are ignored; a blank line inside
       it is an error.
    2. Line 1 is a header when a cell of it is text (not a number, not a missing value); or
       when it reads (an empty cell, then) 0, 1, ..., k-1 as plain integers, the column names
       pandas writes for an unnamed frame, and either it starts with the empty cell or the
       rows below hold decimals. A line 1 of 0..k-1 over rows of integers is ambiguous and
       an error that asks for ``header=``.
    3. Column 1 is an index (row labels, not a neuron) when the header is one field shorter
       than the rows (R's ``write.table``), when the header's first cell is empty or
       ``Unnamed: 0`` (pandas' and R's ``write.csv`` corner over row labels), when every
       cell below holds text (row names), or when it counts 0..n-1 or 1..n in plain
       integers beside decimal data (pandas' default index without a header).
    4. Every other cell must be a finite number: an empty, NA, NaN... cell or inf is an error
       naming the file, line and column.
    """
    header, index = _check_flag(header, "header"), _check_flag(index, "index")
    text, encoding = _decode(path)
    try:
        rows, delimiter = _csv_rows(text)
    except ValueError as exc:
        raise ValueError(f"cannot read {path} as .csv, {exc}") from None
    while rows and not rows[-1][1]:
        rows.pop()
    while rows and not rows[0][1]:
        rows.pop(0)
    if not rows:
        raise ValueError(f"{path} is empty")
    for lineno, cells in rows:
        if not cells:
            raise ValueError(
                f"{path}, line {lineno} is blank: a table of stimuli has no blank rows (a "
                "missing stimulus?); remove the line or fill it"
            )
    notes = []
    first_line, first = rows[0]
    if header is None:
        text_cells = [c for c in first if _kind(c) == "text"]
        corner = first[0].strip() == ""
        if text_cells:
            header = True
            notes.append("line 1 holds text, so it is a header")
        elif _counts_up(first[1:] if corner else first, 0):
            shown = ",".join(c.strip() for c in first)
            decimals = _has_decimals(c for _, cells in rows[1:] for c in cells)
            if not (corner or decimals or len(rows) == 1):
                raise ValueError(
                    f"{path}: line 1 ({shown}) may be a header (pandas writes column names 0, "
                    f"1, ... for an unnamed frame) or the first stimulus, and the rows below "
                    f"are integers too; say which with header=True or header=False "
                    f"(--csv-header yes/no on the command line)"
                )
            header = corner or decimals
            if header:
                notes.append(f"line 1 ({shown}) is a header: the column names pandas writes "
                             "for an unnamed frame")
        else:
            header = False
    names = [c.strip() for c in first] if header else None
    data = rows[1:] if header else rows
    if not data:
        raise ValueError(f"{path} holds a header but no rows of numbers")
    ref_line, width = data[0][0], len(data[0][1])
    ref = "the first line" if ref_line == first_line else f"line {ref_line}"
    for lineno, cells in data:
        if len(cells) != width:
            raise ValueError(f"{path}, line {lineno}: {len(cells)} fields, but {ref} has {width}")
    short_header = header and len(names) == width - 1
    if header and not short_header and len(names) != width:
        raise ValueError(
            f"{path}: the header (line {first_line}) has {len(names)} fields, but line "
            f"{ref_line} has {width}"
        )
    column1 = [cells[0] for _, cells in data]
    if index is None:
        others = (c for _, cells in data for c in cells[1:])
        if short_header:
            index = True
            notes.append("the header is one field shorter than the rows, so column 1 holds row "
                         "names (as R's write.table writes them)")
        elif width < 2:
            index = False
        elif header and names[0] in ("", "Unnamed: 0"):
            index = True
            notes.append("the header's first cell is empty, so column 1 holds row labels (as "
                         "pandas' to_csv and R's write.csv write them)")
        elif all(_kind(c) == "text" for c in column1):
            index = True
            notes.append("column 1 holds text, so it holds row labels")
        elif (_counts_up(column1, 0) or _counts_up(column1, 1)) and _has_decimals(others):
            index = True
            notes.append("column 1 counts the rows in integers beside decimal data, so it is "
                         "an index (as pandas' to_csv writes it)")
        else:
            index = False
    elif index and width < 2:
        raise ValueError(f"{path}: index=True needs at least 2 columns, the file has {width}")
    elif not index and short_header:
        raise ValueError(
            f"{path}: the header (line {first_line}) has {len(names)} fields but the rows have "
            f"{width}; with index=False every column is a neuron, so they must match"
        )
    skip = 1 if index else 0
    if header:
        columns = tuple(names[1:] if index and not short_header else names)
    else:
        columns = None
    cells = [row[skip:] for _, row in data]
    try:  # fast path: every cell a number (row by row: no n x d array of strings)
        values = np.array([np.asarray(row, dtype=np.float64) for row in cells])
        ok = values.shape == (len(cells), width - skip) and bool(np.isfinite(values).all())
    except ValueError:
        ok = False
    if not ok:  # find the first bad cell, to name it
        for lineno, row in data:
            for col, cell in enumerate(row[skip:], start=skip + 1):
                kind = _kind(cell)
                where = f"{path}, line {lineno}, column {col}"
                if kind == "missing":
                    raise ValueError(
                        f"{where}: missing value {cell!r} (an empty or NA cell); every "
                        "stimulus needs every value: fill it or remove the row"
                    )
                if kind == "nonfinite":
                    raise ValueError(f"{where}: {cell!r} is not a finite number")
                if kind == "text":
                    raise ValueError(f"{where}: {cell!r} is not a number")
        values = np.array([[float(c) for c in row] for row in cells])  # pragma: no cover
    if encoding != "UTF-8":
        notes.append(f"the file is not UTF-8; read as {encoding}")
    extra = {
        "header": bool(header),
        "index": bool(index),
        "columns": columns,
        "row_labels": tuple(c.strip() for c in column1) if index else None,
        "delimiter": delimiter,
        "notes": tuple(notes),
    }
    return {"": values}, {"": extra}


_LOADERS = {".npy": _load_npy, ".npz": _load_npz, ".pt": _load_torch, ".pth": _load_torch,
            ".csv": _load_csv}


@dataclass(frozen=True)
class FileInfo:
    """What was read from a file, for one array (``return_info=True``).

    Attributes
    ----------
    path : str
    key : str
        The array's name in the file ("" for files holding one unnamed array).
    shape : tuple of int
        The shape read (rows = stimuli for a CSV file).
    dtype : str
    header : bool or None
        CSV only: whether line 1 was read as column names (None for other formats).
    index : bool or None
        CSV only: whether column 1 was read as row labels rather than as a neuron.
    columns : tuple of str or None
        CSV only: the header's names of the columns read as neurons.
    row_labels : tuple of str or None
        CSV only: the index column's cells.
    delimiter : str or None
        CSV only: "," tab or ";" (None: whitespace).
    notes : tuple of str
        Why the header / index was detected, a dequantized or densified tensor, ...
    """

    path: str
    key: str
    shape: tuple
    dtype: str
    header: object = None
    index: object = None
    columns: object = None
    row_labels: object = None
    delimiter: object = None
    notes: tuple = ()

    def summary(self):
        """One line: what was read, for a note on the command line."""
        where = f"{self.path}:{self.key}" if self.key else self.path
        shape = " x ".join(map(str, self.shape))
        if self.header is None:
            text = f"{where}: {shape} {self.dtype}"
        else:
            rows, cols = self.shape
            text = f"{where}: {rows} rows (stimuli) x {cols} columns (neurons); "
            if self.header:
                text += f"line 1 is a header ({_abbrev(self.columns)})"
            else:
                text += "no header (line 1 is a stimulus)"
            if self.index:
                text += f"; column 1 holds row labels ({_abbrev(self.row_labels)}), not a neuron"
            else:
                text += "; no index column"
        if self.notes:
            text += " [" + "; ".join(self.notes) + "]"
        return text


def _abbrev(names, most=4):
    names = list(names or ())
    if len(names) <= most:
        return ", ".join(names)
    return ", ".join(names[:most - 1]) + f", ..., {names[-1]}"


def _read(path, header=None, index=None):
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
    if suffix == ".csv":
        arrays, extras = _load_csv(path, header=header, index=index)
    else:
        _check_flag(header, "header"), _check_flag(index, "index")
        arrays, extras = _LOADERS[suffix](path)
    infos = {
        name: FileInfo(str(path), name, tuple(A.shape), str(A.dtype), **extras.get(name, {}))
        for name, A in arrays.items()
    }
    return arrays, infos


def load_arrays(path, return_info=False, header=None, index=None):
    """Every array stored in ``path``, by name, in the order stored.

    Parameters
    ----------
    path : str or path-like
        A .npy, .npz, .pt/.pth or .csv file (see :data:`SUFFIXES`). .pt files are read with
        ``torch.load(weights_only=True)``, which runs no code from the file; a list of tensors
        is read as names "0", "1", ...; quantized tensors are read as their dequantized values
        ``(q - zero_point) * scale`` (float32), sparse ones dense, bfloat16 / float8 as float32.
    return_info : bool, default False
        Also return, by name, a :class:`FileInfo` saying what was read (for a CSV file:
        rows, columns, whether line 1 was a header and column 1 an index, and why).
    header, index : bool or None, default None
        CSV files only: whether line 1 holds column names and whether column 1 holds row
        labels; None detects them by the rules below. Other formats have neither.

    Returns
    -------
    dict of str to numpy.ndarray
        Files that hold a single array (.npy, .csv, a lone tensor) give ``{"": array}``.
    dict of str to FileInfo
        Only with ``return_info=True``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Unknown suffix; the file cannot be read or holds no arrays; a CSV cell that is not a
        finite number; a CSV header that may be a stimulus (say which with ``header=``).

    Notes
    -----
    **CSV rules.** A CSV file is a table of numbers, one row per stimulus and one column per
    neuron, read with the csv module:

    1. Text is UTF-8, with or without a byte order mark (Latin-1 when not UTF-8). The
       delimiter is the first of "," tab ";" that the first line holds, else runs of
       whitespace. Blank lines before and after the table are ignored, one inside is an
       error.
    2. **Line 1 is a header** when one of its cells is text; or when it is the integers 0, 1,
       ..., k-1 (after an empty first cell or not), the names pandas writes for an unnamed
       frame, and it starts with the empty cell or the rows below are written with decimals.
       The same integers over rows of integers could be either: an error asks for
       ``header=``. A line 1 of numbers is otherwise a stimulus, also when quoted.
    3. **Column 1 is an index** (row labels, not a neuron) when the header is one field
       shorter than the rows (R's ``write.table``), when the header's first cell is empty or
       ``Unnamed: 0`` (pandas' ``to_csv()``, R's ``write.csv``), when all its cells below are
       text (row names), or when it counts the rows 0..n-1 or 1..n in integers beside decimal
       data (pandas' index without a header).
    4. Every other cell must be a finite number. An empty, NA, NaN, NULL... cell or an
       infinity is an error naming the file, the line and the column: nothing is dropped, and
       no NaN is read.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "layers.npz")
    >>> np.savez(path, conv1=np.ones((5, 3)), fc=np.zeros((5, 2)))
    >>> {name: a.shape for name, a in load_arrays(path).items()}
    {'conv1': (5, 3), 'fc': (5, 2)}
    >>> path = os.path.join(tempfile.mkdtemp(), "acts.csv")
    >>> with open(path, "w") as f:  # what pandas' DataFrame.to_csv() writes
    ...     _ = f.write(",0,1\\n0,0.5,1.5\\n1,2.0,-1.0\\n")
    >>> arrays, infos = load_arrays(path, return_info=True)
    >>> arrays[""]
    array([[ 0.5,  1.5],
           [ 2. , -1. ]])
    >>> infos[""].header, infos[""].index
    (True, True)
    """
    arrays, infos = _read(path, header=header, index=index)
    return (arrays, infos) if return_info else arrays


def load_representation(path, key=None, return_info=False, header=None, index=None):
    """One array from ``path``: the only one it holds, or the one named ``key``.

    Parameters
    ----------
    path : str or path-like
        See :func:`load_arrays` (its Notes give the rules for CSV files).
    key : str, optional
        Which array of a .npz file or of a saved dict / list of tensors. Needed when the file
        holds more than one; an error lists the names it holds.
    return_info : bool, default False
        Also return the :class:`FileInfo` of the array (what was read).
    header, index : bool or None, default None
        CSV files only; see :func:`load_arrays`.

    Returns
    -------
    numpy.ndarray
        As stored (any number of axes, any numeric dtype); the metrics validate it.
    FileInfo
        Only with ``return_info=True``.

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
    arrays, infos = _read(path, header=header, index=index)
    names = ", ".join(arrays)
    if key is None:
        if len(arrays) != 1:
            raise ValueError(
                f"{path} holds {len(arrays)} arrays ({names}); choose one with key= (--key on "
                "the command line)"
            )
        key = next(iter(arrays))
    elif list(arrays) == [""]:
        raise ValueError(f"{path} holds a single unnamed array, so key={key!r} names nothing")
    elif str(key) not in arrays:
        raise ValueError(f"{path} has no array named {key!r}; it holds: {names}")
    key = str(key)
    return (arrays[key], infos[key]) if return_info else arrays[key]

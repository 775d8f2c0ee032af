"""A content-addressed cache on disk for :func:`simmetrics.pairwise`: the per-representation
states a metric prepares and the finished pair values, so that an interrupted L x L job resumes
where it stopped and adding one representation to a finished matrix costs one row.

Keys are BLAKE2b digests (hex) of what the value depends on, never of names or positions:

- a metric's key: its class (module and qualified name), every parameter of ``get_params``
  written canonically (floats by ``repr``, arrays by their bytes, nested estimators by their own
  key, functions by their module, name, compiled code, closure and defaults) and a ``salt``
  (the package version, so a new release never reads an old release's numbers);
- a state's key: the metric's key and the validated representation's dtype, shape and bytes;
- a pair's key: the metric's key and the two state keys, in order (sorted for a symmetric
  metric, whose value does not depend on it).

Layout of the cache directory: ``states/<key>.pkl`` (pickled states) and ``pairs/<key>.f8``
(one little-endian float64). Every file is written to a temporary name in the same folder and
moved into place with ``os.replace``, which is atomic on POSIX and Windows: a reader (or a
restarted job) sees a whole file or none, and a killed writer leaves at most a ``.tmp-*`` file
that is ignored. States are pickles: point ``cache`` only at folders you trust.
"""

import hashlib
import marshal
import os
import pickle
import struct
import sys
import tempfile

import numpy as np

from .backend import to_numpy

__all__ = ["StateCache", "Held", "array_digest", "params_digest", "state_nbytes"]

_PAIR_SUFFIX = ".f8"
_STATE_SUFFIX = ".pkl"


def _canonical(value, h, seen=frozenset()):
    """Feed a canonical, process-independent spelling of ``value`` to the hash ``h``
    (``seen``: the functions being spelled, so a recursive closure ends)."""
    if isinstance(value, np.ndarray):
        h.update(b"ndarray:" + array_digest(value).encode())
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__}[{len(value)}](".encode())
        for item in value:
            _canonical(item, h, seen)
            h.update(b",")
        h.update(b")")
    elif isinstance(value, dict):
        h.update(f"dict[{len(value)}](".encode())
        for key in sorted(value, key=repr):
            h.update(repr(key).encode() + b":")
            _canonical(value[key], h, seen)
            h.update(b",")
        h.update(b")")
    elif hasattr(value, "get_params") and not isinstance(value, type):
        h.update(b"estimator:" + params_digest(value).encode())
    elif callable(value) and hasattr(value, "__code__") and id(value) in seen:
        h.update(b"function:itself")
    elif callable(value) and hasattr(value, "__code__"):
        # a Python function: its name and its compiled code, so an edited body is a new key,
        # and what it closes over and its defaults, so two closures of one function differ
        code = hashlib.blake2b(marshal.dumps(value.__code__), digest_size=16).hexdigest()
        h.update(f"function:{value.__module__}.{value.__qualname__}:{code}".encode())
        cells = tuple(_cell(c) for c in (value.__closure__ or ()))
        _canonical((cells, value.__defaults__ or (), value.__kwdefaults__ or {}), h,
                   seen | {id(value)})
    else:  # numbers, strings, None, bools, classes: repr is exact and stable for these
        h.update(f"{type(value).__name__}:{value!r}".encode())


def _cell(cell):
    """What a closure cell holds (a marker for a cell not yet assigned)."""
    try:
        return cell.cell_contents
    except ValueError:
        return "<empty cell>"


def params_digest(metric, salt=""):
    """The hex key of a metric: its class and every parameter (see the module docstring).

    Examples
    --------
    >>> from simmetrics import ShapeMetric
    >>> params_digest(ShapeMetric(alpha=0.5)) == params_digest(ShapeMetric(alpha=0.5))
    True
    >>> params_digest(ShapeMetric(alpha=0.5)) == params_digest(ShapeMetric(alpha=0.25))
    False
    """
    h = hashlib.blake2b(digest_size=20)
    cls = type(metric)
    h.update(f"{cls.__module__}.{cls.__qualname__}|{salt}|".encode())
    _canonical(metric.get_params(deep=False), h)
    return h.hexdigest()


def array_digest(A, salt=""):
    """The hex key of an array (numpy, or a tensor, read once on the host): its dtype, its shape
    and its bytes (C order).

    Examples
    --------
    >>> A = np.arange(6.0).reshape(2, 3)
    >>> array_digest(A) == array_digest(A.copy()), array_digest(A) == array_digest(A.T)
    (True, False)
    """
    A = np.ascontiguousarray(to_numpy(A) if not isinstance(A, np.ndarray) else A)
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{salt}|{A.dtype.str}|{A.shape}|".encode())
    h.update(A.data if A.size else b"")
    return h.hexdigest()


def state_nbytes(state):
    """The bytes of the arrays a prepared state holds (numpy arrays found in it, its tuples,
    lists, dicts and attributes), plus the objects' own sizes.

    Examples
    --------
    >>> state_nbytes((np.zeros((10, 10)), 1.0)) >= 800
    True
    """
    seen, total, stack = set(), 0, [state]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            total += obj.nbytes
        elif isinstance(obj, (tuple, list)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif hasattr(obj, "nbytes") and not isinstance(obj, type):  # a tensor's storage
            total += int(obj.nbytes)
        elif not isinstance(obj, (type, str, bytes, int, float, complex)) and obj is not None:
            stack.extend(getattr(obj, "__dict__", {}).values())
            for cls in type(obj).__mro__:  # and what __slots__ hold
                slots = getattr(cls, "__slots__", ())
                for slot in (slots,) if isinstance(slots, str) else slots:
                    if slot not in ("__dict__", "__weakref__") and hasattr(obj, slot):
                        stack.append(getattr(obj, slot))
            total += sys.getsizeof(obj)
        else:
            total += sys.getsizeof(obj)
    return total


class Held:
    """A prepared state in a box that reports the state's bytes to ``sys.getsizeof`` (which
    dask's ``sizeof`` falls back on): joblib's dask backend then scatters each state to the
    cluster once, instead of copying it into every task that uses it (a state object that
    does not say how large it is would count as a few dozen bytes).

    Examples
    --------
    >>> import sys
    >>> sys.getsizeof(Held(np.zeros(1000))) >= 8000
    True
    """

    __slots__ = ("state", "nbytes", "__weakref__")

    def __init__(self, state):
        self.state = state
        self.nbytes = state_nbytes(state)

    def __sizeof__(self):
        return object.__sizeof__(self) + self.nbytes

    def __reduce__(self):
        return Held, (self.state,)


def _atomic_write(path, data):
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:  # pragma: no cover - already gone
            pass
        raise


class StateCache:
    """The cache folder of one metric (its key fixed at construction).

    Parameters
    ----------
    path : str or os.PathLike
        The folder (created with its ``states`` and ``pairs`` subfolders if missing); several
        metrics may share it, their keys differ.
    metric : Metric
        Keys are computed from its class and parameters.
    symmetric : bool
        Whether a pair's key ignores the order of its two states.
    salt : str
        Mixed into every key (the package version).
    store_states : bool
        Write prepared states to disk (pair values are always written).

    Examples
    --------
    >>> import tempfile
    >>> from simmetrics import OrthogonalProcrustes
    >>> cache = StateCache(tempfile.mkdtemp(), OrthogonalProcrustes(), symmetric=True)
    >>> a, b = cache.state_key(np.eye(3)), cache.state_key(np.ones((3, 3)))
    >>> cache.pair_key(a, b) == cache.pair_key(b, a)
    True
    >>> cache.write_pair(cache.pair_key(a, b), 0.25)
    >>> cache.read_pairs([cache.pair_key(b, a), cache.pair_key(a, a)])
    [0.25, None]
    """

    def __init__(self, path, metric, symmetric=False, salt="", store_states=True):
        self.path = os.fspath(path)
        self.states_dir = os.path.join(self.path, "states")
        self.pairs_dir = os.path.join(self.path, "pairs")
        for folder in (self.states_dir, self.pairs_dir):
            os.makedirs(folder, exist_ok=True)
        self.salt = str(salt)
        self.metric_key = params_digest(metric, self.salt)
        self.symmetric = bool(symmetric)
        self.store_states = bool(store_states)

    def __repr__(self):
        return f"StateCache({self.path!r})"

    # -- keys -------------------------------------------------------------------------------
    def state_key(self, A):
        """The key of the state ``metric`` prepares from the validated representation ``A``."""
        return array_digest(A, self.metric_key)

    def pair_key(self, key_x, key_y):
        """The key of the value between two states (order ignored when symmetric)."""
        if self.symmetric and key_y < key_x:
            key_x, key_y = key_y, key_x
        h = hashlib.blake2b(digest_size=20)
        h.update(f"{self.metric_key}|{key_x}|{key_y}".encode())
        return h.hexdigest()

    # -- pair values ------------------------------------------------------------------------
    def _pair_path(self, key):
        return os.path.join(self.pairs_dir, key + _PAIR_SUFFIX)

    def finished_pairs(self):
        """The set of pair keys with a value on disk (one directory listing)."""
        with os.scandir(self.pairs_dir) as entries:
            return {e.name[:-len(_PAIR_SUFFIX)] for e in entries
                    if e.name.endswith(_PAIR_SUFFIX) and not e.name.startswith(".")}

    def read_pairs(self, keys):
        """The cached value of each key, None where there is none."""
        done = self.finished_pairs()
        out = []
        for key in keys:
            value = None
            if key in done:
                with open(self._pair_path(key), "rb") as f:
                    data = f.read()
                if len(data) == 8:  # a whole file (writes are atomic); anything else: recompute
                    value = struct.unpack("<d", data)[0]
            out.append(value)
        return out

    def write_pair(self, key, value):
        """Store one finished value (atomically)."""
        _atomic_write(self._pair_path(key), struct.pack("<d", float(value)))

    # -- states -----------------------------------------------------------------------------
    def _state_path(self, key):
        return os.path.join(self.states_dir, key + _STATE_SUFFIX)

    def read_state(self, key):
        """``(True, state)`` if the state is on disk, else ``(False, None)``."""
        try:
            with open(self._state_path(key), "rb") as f:
                return True, pickle.load(f)
        except FileNotFoundError:
            return False, None
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return False, None  # unreadable (another version's classes): prepare it again

    def write_state(self, key, state):
        """Store one prepared state (atomically), when states are stored."""
        if self.store_states:
            _atomic_write(self._state_path(key), pickle.dumps(state, protocol=5))

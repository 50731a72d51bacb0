"""Reading the pickles that few-shot datasets ship as, without ever running code from them.

``pickle.load`` calls whatever global a file names (``os.system`` included), so a dataset pickle
from the internet is a program. ``load`` uses an unpickler that resolves only the numpy and builtin
names these formats need (arrays, dtypes, scalars, dicts, lists, bytes) and refuses anything else
with ``DataError`` naming the file and the global, before anything is called. Python-2 pickles
(MetaOptNet, RFS, tieredImageNet) are read with ``encoding="latin1"``.
"""
from __future__ import annotations

import pickle
from pathlib import Path

from ..data import DataError

# (module, name) pairs a dataset pickle may name; numpy moved its internals to numpy._core in 2.0,
# and pickles written by either spelling are read by both.
_NUMPY = {("numpy", "ndarray"), ("numpy", "dtype")}
for _core in ("numpy.core", "numpy._core"):
    _NUMPY |= {(f"{_core}.multiarray", "_reconstruct"), (f"{_core}.multiarray", "scalar"),
               (f"{_core}.numeric", "_frombuffer")}
ALLOWED = _NUMPY | {
    ("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray", "str", "int",
                              "float", "complex", "bool", "slice")
} | {("__builtin__", n) for n in ("set", "frozenset", "slice")} | {
    ("collections", "OrderedDict"), ("_codecs", "encode"),
}

HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<!--", b"<?xml")


class _Restricted(pickle.Unpickler):
    def __init__(self, f, path: Path):
        super().__init__(f, encoding="latin1")
        self.path = path

    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise DataError(f"{self.path}: refused to unpickle: it asks for the global {module}.{name}, which is "
                            f"not a numpy or builtin data type (a pickle can run code; nothing was run)")
        if module == "__builtin__":
            module = "builtins"
        return super().find_class(module, name)


def sniff(path: Path) -> None:
    """``DataError`` for a file that is missing, empty or a saved web page instead of data."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise DataError(f"{path}: the file is empty")
    if head.lstrip().lower().startswith(HTML_STARTS):
        raise DataError(f"{path}: this looks like a web page, not the dataset (a download that saved the "
                        f"host's warning or login page); fetch the file again")


def load(path: str | Path):
    """The object a dataset pickle holds; ``DataError`` (one line) for anything else."""
    path = Path(path)
    sniff(path)
    try:
        with open(path, "rb") as f:
            return _Restricted(f, path).load()
    except DataError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError,
            MemoryError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable pickle ({type(e).__name__}: {str(e)[:120]}); "
                        f"is it truncated?") from None

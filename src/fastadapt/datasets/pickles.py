"""Reading the pickles that few-shot releases ship (CIFAR-100, miniImageNet, tieredImageNet) safely.

A pickle can run any code when loaded, and these files come from the internet. They only ever
hold dicts, lists, strings, numbers and numpy arrays, so the unpickler here admits exactly the
numpy functions that rebuild an array and refuses every other global, by name.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import IO, Any

import numpy as np

from fastadapt.errors import DataError

# What numpy's array pickles (NumPy 1 and 2, Python 2 and 3 writers) refer to, and nothing else.
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            if module == "numpy.core.multiarray":  # NumPy 2 moved it; both spellings load
                module = "numpy._core.multiarray" if hasattr(np, "_core") else module
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a data file holds only arrays, lists and dicts"
        )


def load_pickle(source: str | Path | bytes | IO[bytes], name: str | None = None) -> Any:
    """Unpickle a data file (a path, its bytes or an open file), admitting numpy arrays and plain data only.

    Python 2 pickles (CIFAR-100, tieredImageNet) load with their byte strings read as Latin-1, the
    encoding numpy documents for them. Anything else raises ``DataError`` naming the file.
    """
    label = name or (str(source) if isinstance(source, (str, Path)) else "pickle")
    try:
        if isinstance(source, (str, Path)):
            with open(source, "rb") as handle:
                return _ArrayUnpickler(handle, encoding="latin1").load()
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        return _ArrayUnpickler(stream, encoding="latin1").load()
    except pickle.UnpicklingError as error:
        raise DataError(f"{label} is not a plain data pickle ({error}); delete it and fetch it again") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError, OSError) as error:
        raise DataError(
            f"{label} is corrupt or truncated ({type(error).__name__}: {error}); delete it and fetch it again"
        ) from None

"""The libraries fastadapt is compared with (learn2learn, higher, torchopt), each optional.

learn2learn 0.2.0 imports torchvision, gym and qpth at import time although its MAML needs none
of them, and their PyPI wheels do not install beside a CPU torch; inside a benchmark process
they are replaced by empty stand-in modules before learn2learn is imported. Install the anchors
with ``benchmarks/install_anchors.sh``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

STUBBED = ("torchvision", "gym", "qpth")


class _Anything:
    """A stand-in that can be called, subclassed, indexed and asked for any attribute."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Anything:
        return _Anything()

    def __getattr__(self, name: str) -> _Anything:
        return _Anything()

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (object,)


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything()


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves stand-ins for the named top-level packages (those that are missing or do not import)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in self.names:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def load(name: str) -> types.ModuleType | None:
    """Import an anchor library (``learn2learn``, ``higher``, ``torchopt``), or ``None`` if absent."""
    if name == "learn2learn" and not any(isinstance(f, _StubFinder) for f in sys.meta_path):
        broken = []
        for stub in STUBBED:
            try:
                importlib.import_module(stub)
            except Exception:
                broken.append(stub)
                for loaded in [m for m in sys.modules if m.split(".")[0] == stub]:
                    del sys.modules[loaded]
        sys.meta_path.insert(0, _StubFinder(tuple(broken)))
    try:
        return importlib.import_module(name)
    except Exception:
        return None

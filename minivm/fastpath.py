"""Choose between the Cython fast path and its pure-Python twins.

minivm/_fastpath.pyx is compiled when minivm is installed.  If that failed
(no C compiler) or the user sets MINIVM_PURE=1, minivm uses the pure-Python
twins, which are the specification and can be stepped in pdb.
"""
import os

_UNSET = object()
_module = _UNSET


def fastpath():
    """The compiled module, or None when the pure-Python path is in use."""
    global _module
    if _module is _UNSET:
        _module = None
        if os.environ.get("MINIVM_PURE", "") in ("", "0"):
            try:
                from minivm import _fastpath as _module
            except ImportError:
                _module = None
    return _module


def describe():
    """One line for `minivm info` and `--stats`."""
    if fastpath() is not None:
        return "Cython fast path (minivm._fastpath)"
    if os.environ.get("MINIVM_PURE", "") not in ("", "0"):
        return "pure Python (MINIVM_PURE=1)"
    return "pure Python (the Cython extension is not built)"

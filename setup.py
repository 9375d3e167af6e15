"""Build the optional Cython fast path (minivm/_fastpath.pyx).

Everything else is declared in pyproject.toml.  If the extension cannot be
compiled (no C compiler on the machine), the install still succeeds and
minivm runs on its pure-Python twins; `minivm info` says which path is active.
"""
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as error:  # no compiler, no Python headers, ...
            self._warn(error)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as error:
            self._warn(error)

    @staticmethod
    def _warn(error):
        print(f"minivm: building the Cython fast path failed ({error}); "
              "minivm will use the pure-Python path", file=sys.stderr)


def fastpath_extensions():
    try:
        from Cython.Build import cythonize
    except ImportError:  # pip installs Cython for the build; a bare setup.py may not have it
        print("minivm: Cython not found; using the pure-Python path", file=sys.stderr)
        return []
    try:
        return cythonize([Extension("minivm._fastpath", ["minivm/_fastpath.pyx"])],
                         compiler_directives={"language_level": 3})
    except Exception as error:   # a Cython that cannot translate it: run pure Python
        print(f"minivm: translating the Cython fast path failed ({error}); "
              "minivm will use the pure-Python path", file=sys.stderr)
        return []


setup(
    ext_modules=fastpath_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
)

"""Where minivm's data folders are: firmware/ and labs/.

`pip install .` installs them as the package data minivm.firmware and
minivm.labs; a source tree that was never installed has them beside minivm/.
"""
import importlib.util
import os


def data_folders(folder):
    """The existing places of `folder` ("firmware", "labs"), installed one first."""
    try:
        spec = importlib.util.find_spec(f"minivm.{folder}")
    except ImportError:
        spec = None
    places = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
    places.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), folder))
    found = []
    for place in places:
        real = os.path.realpath(place)
        if real not in found and os.path.isdir(real):
            found.append(real)
    return found

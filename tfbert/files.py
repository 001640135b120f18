"""Files tfbert writes: the cache folder, and atomic writes (a reader, or a process killed mid-write,
sees the old file or the new one, never half)."""

import json
import os
import pathlib
import tempfile

from tfbert.errors import TfbertError


def cache_dir():
    """Where fetched checkpoints, extended vocabularies and character tables are kept:
    $TFBERT_CACHE, else $XDG_CACHE_HOME/tfbert, else ~/.cache/tfbert."""
    if os.environ.get("TFBERT_CACHE"):
        return pathlib.Path(os.environ["TFBERT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "tfbert"


def write_atomic(path, data, mode=0o644):
    """Writes `data` (bytes or str, UTF-8) to `path` through a temporary file in the same folder and a rename.

    The file gets `mode` (mkstemp's own is 0600, too narrow for caches and exports others read).
    """
    path = pathlib.Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    descriptor, temporary = tempfile.mkstemp(dir=os.fspath(path.parent), prefix=f".{path.name}-")
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_json(path, value):
    write_atomic(path, json.dumps(value, indent=1))


def read_json(path):
    """A JSON file's value; TfbertError naming the file if it is not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise TfbertError(f"{path} is not valid JSON ({e}).") from e

"""Atomic file writes: a reader, or a process killed mid-write, sees the old file or the new one, never half."""

import json
import os
import pathlib
import tempfile


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

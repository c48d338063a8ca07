"""Small file helpers shared by the package: atomic writes and the user cache folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` to a temporary file beside ``path`` and rename it into place, so a
    reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def cache_dir() -> Path:
    """A writable folder for generated kernels: ``$OVITO_ATOMCLASS_CACHE``, else
    ``$XDG_CACHE_HOME/ovito-atomclass`` (``~/.cache``), else one in the temp folder."""
    candidates = [os.environ.get("OVITO_ATOMCLASS_CACHE"),
                  os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ovito-atomclass"),
                  os.path.join(tempfile.gettempdir(), f"ovito-atomclass-{os.getuid()}")]
    for folder in filter(None, candidates):
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return Path(folder)
        except OSError:
            continue
    raise OSError(f"no writable cache folder among {candidates}")

"""Small file helpers shared by the package: atomic writes, writable output folders and the
user's private cache folder."""

from __future__ import annotations

import os
import stat
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


def writable_folder(folder: str | os.PathLike, what: str) -> Path:
    """Create ``folder`` if needed and check that a file can be written in it; raise OSError
    naming ``what`` the folder is for otherwise (before any long work begins)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OSError(f"cannot write the {what} into {folder}: {exc.strerror or exc}") from None
    return folder


def private_folder(folder: str | os.PathLike) -> Path:
    """``folder``, created if needed, after checking that only this user can write in it
    and in what it holds (one level, and its ``__pycache__``): everything owned by the user
    and not writable by group or others.  Group and other write permission of what the user
    owns is removed; a folder or file (or symbolic link) of another user raises
    PermissionError."""
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in (folder, folder / "__pycache__"):
        if not path.is_dir() and path != folder:
            continue
        for entry in (path, *path.iterdir()):
            try:
                owners = {os.lstat(entry).st_uid, (info := os.stat(entry)).st_uid}
            except FileNotFoundError:  # a dangling link, or a file just replaced
                continue
            if owners != {os.getuid()} or (entry == path and not stat.S_ISDIR(info.st_mode)):
                raise PermissionError(f"{entry} is not this user's (uid {os.getuid()}): refusing to load code from "
                                      f"{folder}")
            if info.st_mode & 0o022:
                os.chmod(entry, stat.S_IMODE(info.st_mode) & ~0o022)
    return folder


def cache_dir() -> Path:
    """A folder for generated kernels that only this user can write: ``$OVITO_ATOMCLASS_CACHE``
    (which must be one), else ``$XDG_CACHE_HOME/ovito-atomclass`` (``~/.cache``), else
    ``ovito-atomclass-<uid>`` in the temp folder, else a new private temporary folder for
    this process (its kernels are then compiled again by the next)."""
    chosen = os.environ.get("OVITO_ATOMCLASS_CACHE")
    if chosen:
        return private_folder(chosen)
    candidates = [os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ovito-atomclass"),
                  os.path.join(tempfile.gettempdir(), f"ovito-atomclass-{os.getuid()}")]
    for folder in candidates:
        try:
            return writable_folder(private_folder(folder), "generated kernels")
        except OSError:
            continue
    return _process_folder()


_PROCESS_FOLDER: list[Path] = []


def _process_folder() -> Path:
    """A private temporary folder (mode 0700) for the life of this process."""
    if not _PROCESS_FOLDER:
        import atexit
        import shutil

        folder = Path(tempfile.mkdtemp(prefix="ovito-atomclass-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _PROCESS_FOLDER.append(folder)
    return _PROCESS_FOLDER[0]

"""Atomic writes, output folders checked before the work, and a cache folder for generated
code that no other user can write."""

import importlib.util
import os
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from ovito_atomclass import files, steinhardt
from ovito_atomclass.files import writable_folder, write_atomically


def test_atomic_write_replaces_content_with_the_usual_file_mode(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    write_atomically(target, b"first")
    write_atomically(target, b"second")
    assert target.read_bytes() == b"second"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]  # no temporary file left


def test_writable_folder_is_created_or_refused_before_the_work(tmp_path):
    assert writable_folder(tmp_path / "a" / "b", "report") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()
    (tmp_path / "plain").write_text("a file")
    with pytest.raises(OSError, match=f"cannot write the report into {tmp_path / 'plain' / 'sub'}"):
        writable_folder(tmp_path / "plain" / "sub", "report")


def test_cache_folder_is_private_to_the_user(tmp_path, monkeypatch):
    monkeypatch.delenv("OVITO_ATOMCLASS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    shared = tmp_path / "xdg" / "ovito-atomclass"
    (shared / "__pycache__").mkdir(parents=True)
    (shared / "__pycache__" / "kernel.nbi").write_bytes(b"numba's cache index: a pickle")
    held = [shared, shared / "__pycache__", shared / "__pycache__" / "kernel.nbi"]
    for path in held:
        path.chmod(0o777)
    assert files.cache_dir() == shared  # this user's: the write permission of others is removed
    assert {stat.S_IMODE(p.stat().st_mode) & 0o022 for p in held} == {0}
    # a folder of another user is never used: not when named, not as the default
    monkeypatch.setattr(files.os, "getuid", lambda: os.stat(shared).st_uid + 1)
    monkeypatch.setattr(files.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    monkeypatch.setattr(files, "_PROCESS_FOLDER", [])
    (tmp_path / "tmp").mkdir()
    with monkeypatch.context() as named:
        named.setenv("OVITO_ATOMCLASS_CACHE", str(shared))
        with pytest.raises(PermissionError, match="is not this user's"):
            files.cache_dir()
    private = files.cache_dir()
    assert private not in (shared, tmp_path / "tmp" / f"ovito-atomclass-{os.getuid()}")
    assert stat.S_IMODE(private.stat().st_mode) == 0o700 and private.parent == Path(tempfile.gettempdir())


def test_generated_kernels_run_their_own_source_not_bytecode_found_beside_it(tmp_path, monkeypatch):
    monkeypatch.setenv("OVITO_ATOMCLASS_CACHE", str(tmp_path))
    name, source = "ovito_atomclass_test_planted", "VALUE = 'generated'\n"
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    # bytecode that claims to be compiled from that very file (same size and time)
    planted = compile("VALUE = 'planted'\n", str(path), "exec")
    pyc = Path(importlib.util.cache_from_source(str(path)))
    pyc.parent.mkdir()
    stat_ = path.stat()
    pyc.write_bytes(importlib._bootstrap_external._code_to_timestamp_pyc(planted, stat_.st_mtime, stat_.st_size))
    try:
        assert steinhardt._load_generated(name, source).VALUE == "generated"
    finally:
        sys.modules.pop(name, None)

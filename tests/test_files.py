"""Atomic writes."""

import os
import stat

from ovito_atomclass.files import write_atomically


def test_atomic_write_replaces_content_with_the_usual_file_mode(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    write_atomically(target, b"first")
    write_atomically(target, b"second")
    assert target.read_bytes() == b"second"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]  # no temporary file left

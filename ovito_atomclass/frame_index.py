"""Where the frames of a text trajectory begin, found without trusting a damaged frame.

OVITO's readers index a trajectory by following each frame's atom count to the next frame,
so a frame with a wrong count ends the index there and every later frame is lost.  This
module finds the frames of LAMMPS text dumps and XYZ files (plain or ``.gz``) on its own,
so that the frames after a damaged one can be cut out and read one by one.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterator
from typing import BinaryIO

# the OVITO readers whose frames this module can find
READERS = ("LAMMPSTextDumpImporter", "XYZImporter")
# a LAMMPS dump frame opens with these items (UNITS and TIME are optional, before TIMESTEP)
_DUMP_FRAME_ITEMS = (b"ITEM: UNITS", b"ITEM: TIME")
_COUNT_LINE = re.compile(rb"^\s*(\d+)\s*$")


def open_text(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened for reading bytes, decompressed if it is gzipped."""
    fh = open(path, "rb")
    if fh.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=fh)
    return fh


def frame_starts(path: str | os.PathLike, reader: str) -> list[int] | None:
    """Byte offsets (of the decompressed text) at which the frames of ``path`` begin, the
    damaged ones included, for a file of OVITO reader ``reader``; None for a reader not in
    :data:`READERS`."""
    if reader not in READERS:
        return None
    with open_text(path) as fh:
        return list(_dump_starts(fh) if reader == READERS[0] else _xyz_starts(fh))


def guess_reader(path: str | os.PathLike) -> str | None:
    """The reader of :data:`READERS` whose format ``path`` looks like from its first line
    (for a file whose first frame OVITO cannot read), or None."""
    with open_text(path) as fh:
        first = fh.readline()
    if first.startswith(b"ITEM:"):
        return READERS[0]
    return READERS[1] if _COUNT_LINE.match(first) else None


def read_span(path: str | os.PathLike, start: int, stop: int) -> bytes:
    """Bytes ``start`` to ``stop`` of the (decompressed) text of ``path``."""
    with open_text(path) as fh:
        fh.seek(start)
        return fh.read(stop - start)


def text_size(path: str | os.PathLike) -> int:
    """Length in bytes of the (decompressed) text of ``path``."""
    with open_text(path) as fh:
        return fh.seek(0, os.SEEK_END)


def _dump_starts(fh: BinaryIO) -> Iterator[int]:
    """A LAMMPS dump frame begins at its first ``ITEM: UNITS``, ``ITEM: TIME`` or
    ``ITEM: TIMESTEP`` line after the previous frame's ``ITEM: ATOMS``."""
    offset, in_header = 0, False
    for line in fh:
        if line.startswith(_DUMP_FRAME_ITEMS) and not in_header:
            yield offset
            in_header = True
        elif line.startswith(b"ITEM: ATOMS"):
            in_header = False
        offset += len(line)


def _xyz_starts(fh: BinaryIO) -> Iterator[int]:
    """An XYZ frame is a line holding the atom count N, a comment line and N atom lines; a
    frame counts as sound if the next one (or the end of the file) follows it.  After a
    frame that is not sound, the next sound frame is the first line holding a number that
    starts one."""
    start = 0
    while True:
        fh.seek(start)
        first = fh.readline()
        if not first:
            return
        yield start
        if _sound_end(fh, first) is not None:
            start = fh.tell()
            continue
        # damaged: look for the next count line that starts a sound frame
        fh.seek(start + len(first))
        while True:
            candidate = fh.tell()
            line = fh.readline()
            if not line:
                return
            if _COUNT_LINE.match(line) and _sound_end(fh, line) is not None:
                start = candidate
                break
            fh.seek(candidate + len(line))


def _sound_end(fh: BinaryIO, count_line: bytes) -> int | None:
    """With ``fh`` just after ``count_line``: skip the frame it opens and return the offset
    of its end if that is the end of the file or another count line; else None."""
    match = _COUNT_LINE.match(count_line)
    if not match:
        return None
    for _ in range(int(match.group(1)) + 1):
        if not fh.readline():
            return None
    end = fh.tell()
    following = fh.readline()
    fh.seek(end)
    return end if not following or _COUNT_LINE.match(following) else None

"""Zip archives from outside the project (a CI run's logs.zip): how much one may inflate to.

Deflate turns 1 MB of compressed bytes into up to about 1 GB (a 2 MB archive into 2 GB), while real
job logs deflate 4-6 to 1 (the shared corpus' logs at zlib's best). So a member yields at most
MAX_RATIO times the compressed bytes it is read from, and the whole archive at most MAX_RATIO times
its size on disk (each plus FLOOR). This is judged from the headers before a member is opened, and
enforced while it is read against the bytes actually read from the archive: the headers are the
sender's to write (a compressed size may claim more bytes than the member has, several members may
share one compressed stream), the archive's bytes are not.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

MAX_RATIO = 100
FLOOR = 256 * 1024     # a short log of one repeated line deflates past 100:1 and is no bomb
CHUNK = 1 << 20        # a read returns at most this much, and only once all of it is within the ratio
PIECE = 4096           # inflated this much at a time: zipfile then reads at most this far ahead in the archive


class ZipBomb(Exception):
    """A member (or the archive) inflates past MAX_RATIO: the message names the archive, the member and the figures."""


class _CountingFile:
    """The archive's file, counting the bytes zipfile reads from it."""

    def __init__(self, fh):
        self._fh, self.bytes_read = fh, 0

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.bytes_read += len(data)
        return data

    def __getattr__(self, name):          # seek, tell, seekable, close: the file's own
        return getattr(self._fh, name)


class BoundedZip:
    """A zip archive read within its inflation budget: refusal() by a member's headers, open() counted."""

    def __init__(self, path: Path | bytes, label: str):
        """`path`: the archive's file, or its bytes as a collector downloaded them."""
        self.label = label                            # the archive as named in reasons ("logs.zip")
        fh = io.BytesIO(path) if isinstance(path, bytes) else open(path, "rb")
        try:
            self.archive_bytes = len(path) if isinstance(path, bytes) else Path(path).stat().st_size
            self._file = _CountingFile(fh)
            self.zf = zipfile.ZipFile(self._file)     # BadZipFile; ValueError for a name flagged UTF-8 that is not
        except BaseException:
            fh.close()
            raise
        self.archive_limit = MAX_RATIO * self.archive_bytes + FLOOR
        self.declared = 0                             # the headers' sizes of the members accepted so far
        self.inflated = 0                             # what the members read so far actually yielded

    def infolist(self) -> list[zipfile.ZipInfo]:
        return self.zf.infolist()

    def refusal(self, info: zipfile.ZipInfo) -> str | None:
        """Why the member's headers alone refuse it, or None (it may be opened, and is then counted)."""
        where = f"{self.label}!{info.filename[:200]}"
        if info.file_size > MAX_RATIO * info.compress_size + FLOOR:
            ratio = f"{info.file_size / info.compress_size:,.0f}:1" if info.compress_size else "from nothing"
            return (f"{where}: its header says {info.compress_size:,} bytes inflate to {info.file_size:,} ({ratio}), "
                    f"over the {MAX_RATIO}:1 an archive may inflate: a zip bomb, not read")
        if self.declared + info.file_size > self.archive_limit:
            return (f"{where}: the headers say the members inflate to {self.declared + info.file_size:,} bytes, over "
                    f"{MAX_RATIO} times the archive's {self.archive_bytes:,}: a zip bomb, not read")
        self.declared += info.file_size
        return None

    def open(self, info: zipfile.ZipInfo) -> CountedMember:
        return CountedMember(self, info)


class CountedMember:
    """A member's inflated stream that raises ZipBomb before it hands out bytes past the ratio, counted
    against the archive bytes read for it and against the archive's total."""

    def __init__(self, archive: BoundedZip, info: zipfile.ZipInfo):
        self.archive, self.info = archive, info
        self.stream = archive.zf.open(info)
        self.start = archive._file.bytes_read       # after the member's local header
        self.yielded = 0

    def read(self, n: int = -1) -> bytes:
        want = CHUNK if n < 0 or n > CHUNK else n
        pieces, got = [], 0
        while got < want:
            piece = self.stream.read(min(PIECE, want - got))
            if not piece:
                break
            self._count(len(piece))
            pieces.append(piece)
            got += len(piece)
        return b"".join(pieces)

    def _count(self, n: int) -> None:
        a = self.archive
        self.yielded += n
        a.inflated += n
        read_for_it = a._file.bytes_read - self.start
        where = f"{a.label}!{self.info.filename[:200]}"
        claimed = f"its header claims {self.info.compress_size:,} bytes inflating to {self.info.file_size:,}"
        if self.yielded > MAX_RATIO * read_for_it + FLOOR:
            raise ZipBomb(f"{where}: inflated {self.yielded:,} bytes from {read_for_it:,} read, over {MAX_RATIO}:1 "
                          f"({claimed}): a zip bomb, reading stopped")
        if a.inflated > a.archive_limit:
            raise ZipBomb(f"{where}: the archive's members inflated {a.inflated:,} bytes, over {MAX_RATIO} times its "
                          f"{a.archive_bytes:,} ({claimed}): a zip bomb, reading stopped")

    def close(self) -> None:
        self.stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

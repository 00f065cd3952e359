"""Byte streams for importing: read an fd, hash while reading, detect compression.

Everything here reads forward only, in bounded chunks, so an archive arriving
through a pipe imports in constant memory. gzip, xz and bzip2 decompress in
process (zlib and friends release the GIL); zstd runs the ``zstd`` binary,
which keeps pyctrd free of a compiled dependency.
"""

import bz2
import contextlib
import gzip
import hashlib
import lzma
import os
import subprocess
import tempfile
import threading
import zlib
from typing import Protocol

from pyctrd.errors import InvalidArgument

CHUNK = 1 << 20
ZSTD_TIMEOUT = 60.0

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XZ_MAGIC = b"\xfd7zXZ\x00"
BZIP2_MAGIC = b"BZh"


class Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class FdReader:
    """A blocking reader over a file descriptor we do not own."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, True)  # called from a worker thread: blocking is fine there
        self._fd = fd

    def read(self, size: int = -1, /) -> bytes:
        try:
            return os.read(self._fd, CHUNK if size < 0 else size)
        except OSError as err:
            raise InvalidArgument(f"reading the archive failed: {err.strerror}") from err


class PrefixReader:
    """``prefix`` first, then the rest of ``inner``: undoes a peek."""

    def __init__(self, prefix: bytes, inner: Reader) -> None:
        self._prefix = prefix
        self._inner = inner

    def read(self, size: int = -1, /) -> bytes:
        if self._prefix:
            n = len(self._prefix) if size < 0 else size
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            return data
        return self._inner.read(size)


class HashingReader:
    """Counts and sha256-hashes everything read through it."""

    def __init__(self, inner: Reader) -> None:
        self._inner = inner
        self._sha = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self._sha.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


class RecordingReader:
    """Keeps a copy of what is read until ``stop`` (for a format sniff that may be undone)."""

    def __init__(self, inner: Reader, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self._recording: bytearray | None = bytearray()

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        if self._recording is not None:
            self._recording += data
            if len(self._recording) > self._limit:
                raise InvalidArgument("the archive's first entry has headers too large to "
                                      "tell its format")
        return data

    def stop(self) -> bytes:
        recorded, self._recording = bytes(self._recording or b""), None
        return recorded


def read_exactly(reader: Reader, size: int) -> bytes:
    """Up to ``size`` bytes: fewer only at the end of the stream."""
    parts = []
    while size > 0:
        data = reader.read(size)
        if not data:
            break
        parts.append(data)
        size -= len(data)
    return b"".join(parts)


def compression_of(head: bytes) -> str:
    for magic, name in ((GZIP_MAGIC, "gzip"), (ZSTD_MAGIC, "zstd"), (XZ_MAGIC, "xz"),
                        (BZIP2_MAGIC, "bzip2")):
        if head.startswith(magic):
            return name
    return ""


class Decompressed:
    """The decompressed form of a stream, detected from its first bytes.

    Use as a context manager: leaving it stops a zstd helper still running.
    Decompression errors surface from ``read`` as InvalidArgument.
    """

    def __init__(self, raw: Reader) -> None:
        head = read_exactly(raw, 8)
        source = PrefixReader(head, raw)
        self.compression = compression_of(head)
        self._zstd: _ZstdProcess | None = None
        self._inner: Reader
        if self.compression == "gzip":
            self._inner = gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[call-overload]
        elif self.compression == "xz":
            self._inner = lzma.LZMAFile(source)  # type: ignore[arg-type]  # noqa: SIM115
        elif self.compression == "bzip2":
            self._inner = bz2.BZ2File(source)  # type: ignore[call-overload]
        elif self.compression == "zstd":
            self._zstd = _ZstdProcess(source)
            self._inner = self._zstd
        else:
            self._inner = source

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self._inner.read(CHUNK if size < 0 else size)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as err:
            raise InvalidArgument(f"the {self.compression} data is corrupt: {err}") from err

    def __enter__(self) -> "Decompressed":
        return self

    def __exit__(self, *_: object) -> None:
        if self._zstd is not None:
            self._zstd.close()


class _ZstdProcess:
    """``zstd -d`` fed from a thread; its output read by the caller."""

    def __init__(self, source: Reader) -> None:
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(["zstd", "-d", "-q", "-c"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._errors)
        self._feed_error: BaseException | None = None
        self._feeder = threading.Thread(target=self._feed, args=(source,), daemon=True,
                                        name="zstd-feeder")
        self._feeder.start()

    def _feed(self, source: Reader) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            while data := source.read(CHUNK):
                stdin.write(data)
        except BrokenPipeError:
            pass  # zstd stopped: its exit status tells why
        except BaseException as err:  # handed to the reading thread
            self._feed_error = err
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def read(self, size: int = -1, /) -> bytes:
        assert self._proc.stdout is not None
        data = self._proc.stdout.read(size)
        if not data:
            self._finish()
        return data

    def _finish(self) -> None:
        self._feeder.join()
        if self._feed_error is not None:
            raise self._feed_error
        if self._proc.wait(ZSTD_TIMEOUT) != 0:
            self._errors.seek(0)
            lines = self._errors.read().decode(errors="replace").strip().splitlines()
            message = lines[-1] if lines else f"zstd exited with {self._proc.returncode}"
            raise InvalidArgument(f"the zstd data is corrupt: {message}")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        assert self._proc.stdout is not None
        self._proc.stdout.close()
        self._proc.wait(ZSTD_TIMEOUT)
        self._feeder.join()
        self._errors.close()

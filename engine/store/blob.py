"""Content-addressed blobs: files named by SHA-1, as Couchbase Lite stores attachments."""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from engine.errors import BlobError, DiskFullError, NotFoundError

CHUNK = 64 * 1024
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def digest_of(data: bytes) -> str:
    """The ``sha1-<base64>`` digest Couchbase Lite gives `data`."""
    return "sha1-" + base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()


def is_blob_dict(value: object) -> bool:
    """True for a ``{"@type": "blob", "digest": ...}`` metadata dict."""
    return isinstance(value, dict) and value.get("@type") == "blob" and "digest" in value


def _digest_hex(digest: str) -> str:
    if not isinstance(digest, str) or not digest.startswith("sha1-"):
        raise BlobError(f"unsupported blob digest {digest!r}", hint="expected sha1-<base64>")
    try:
        raw = base64.b64decode(digest[5:], validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 20:
        raise BlobError(f"malformed blob digest {digest!r}", hint="expected sha1-<base64>")
    return raw.hex()


def raise_if_disk_full(exc: OSError, what: str) -> None:
    """Re-raise a full-disk OSError as DiskFullError."""
    if exc.errno in _DISK_FULL:
        raise DiskFullError(f"disk full while writing {what}") from exc


class BlobWriter:
    """Writes one blob incrementally to a temporary file, then installs it by digest."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self.length = 0
        fd, name = tempfile.mkstemp(dir=store.directory, prefix=".incoming-", suffix=".tmp")
        self._path = Path(name)
        self._file: IO[bytes] | None = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "writer already finished"
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.abort()
            raise_if_disk_full(exc, "a blob")
            raise
        self._sha1.update(chunk)
        self.length += len(chunk)

    def finish(self, expected_digest: str | None = None) -> str:
        """Make the blob durable and return its digest; a mismatch discards it."""
        assert self._file is not None, "writer already finished"
        digest = "sha1-" + base64.b64encode(self._sha1.digest()).decode()
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            if expected_digest is not None and digest != expected_digest:
                raise BlobError(
                    f"blob content has digest {digest}, expected {expected_digest}",
                    hint="the peer sent corrupted data; sync again",
                )
            os.replace(self._path, self._store.path(digest))
        except OSError as exc:
            self.abort()
            raise_if_disk_full(exc, "a blob")
            raise
        except BlobError:
            self.abort()
            raise
        return digest

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


class BlobStore:
    """A folder of blob files, each named by the hex SHA-1 of its content."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.directory / f"{_digest_hex(digest)}.blob"

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def length(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} is not in this database") from None

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def write(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store a blob from chunks; returns (digest, length)."""
        writer = self.writer()
        try:
            for chunk in chunks:
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        length = writer.length
        return writer.finish(), length

    def open(self, digest: str) -> IO[bytes]:
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} is not in this database") from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def chunks(self, digest: str, size: int = CHUNK) -> Iterator[bytes]:
        with self.open(digest) as f:
            while chunk := f.read(size):
                yield chunk

    def digests(self) -> set[str]:
        out = set()
        for p in self.directory.glob("*.blob"):
            with contextlib.suppress(ValueError):
                out.add("sha1-" + base64.b64encode(bytes.fromhex(p.stem)).decode())
        return out

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()


class Blob:
    """Binary content attached to a document, like Couchbase Lite's Blob.

    Create one from bytes (`data`) or from a stream of chunks (`stream`: a binary file
    object or an iterable of bytes); it is written to the database when a document
    holding it is saved. Blobs read from documents stream from the database's files.
    """

    def __init__(
        self,
        content_type: str = "application/octet-stream",
        data: bytes | None = None,
        *,
        stream: IO[bytes] | Iterable[bytes] | None = None,
    ) -> None:
        if (data is None) == (stream is None):
            raise TypeError("Blob needs exactly one of data= or stream=")
        self.content_type = content_type
        self._data = data
        self._stream = stream
        self._store: BlobStore | None = None
        self.digest: str | None = digest_of(data) if data is not None else None
        self.length: int | None = len(data) if data is not None else None

    @classmethod
    def from_dict(cls, meta: dict[str, Any], store: BlobStore) -> Blob:
        blob = cls.__new__(cls)
        blob.content_type = str(meta.get("content_type", "application/octet-stream"))
        blob._data = None
        blob._stream = None
        blob._store = store
        blob.digest = str(meta["digest"])
        length = meta.get("length")
        blob.length = int(length) if isinstance(length, int) else None
        return blob

    @property
    def properties(self) -> dict[str, Any]:
        """The metadata dict stored in the document body."""
        if self.digest is None:
            raise BlobError("blob has not been saved yet", hint="save its document first")
        return {
            "@type": "blob",
            "content_type": self.content_type,
            "digest": self.digest,
            "length": self.length,
        }

    def install(self, store: BlobStore) -> None:
        """Write the content into `store` (once) and bind the blob to it."""
        if self._store is store:
            return
        if self._data is not None:
            if self.digest is None or not store.has(self.digest):
                self.digest, self.length = store.write([self._data])
        elif self._stream is not None:
            self.digest, self.length = store.write(_iter_stream(self._stream))
            self._stream = None
        elif self._store is not None and self.digest is not None and not store.has(self.digest):
            self.digest, self.length = store.write(self._store.chunks(self.digest))
        self._store = store

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """Stream the content in chunks without loading it whole."""
        if self._data is not None:
            for i in range(0, len(self._data), size):
                yield self._data[i : i + size]
        elif self._store is not None and self.digest is not None:
            yield from self._store.chunks(self.digest, size)
        else:
            raise BlobError("a stream-backed blob can be read only after it is saved")

    @property
    def content(self) -> bytes:
        """The whole content (prefer chunks() for large blobs)."""
        return b"".join(self.chunks())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Blob) and self.digest is not None and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"Blob({self.content_type!r}, digest={self.digest!r}, length={self.length})"


def _iter_stream(stream: IO[bytes] | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(stream, "read", None)
    if read is None:
        yield from stream
        return
    while chunk := read(CHUNK):
        yield chunk

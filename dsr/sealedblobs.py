"""Blobs encrypted at rest: exports and access packages never lie readable in the blob store.

:class:`SealedBlobStore` wraps any :class:`~dsr.blobstore.BlobStore` and encrypts what is
written with the newest payload key (AES-256-GCM), in frames so that a package of any size
streams through in constant memory. A sealed blob is::

    b"DSRSEAL1" | key-id length (1 byte) | key id | frame | frame | ...
    frame = last (1 byte) | ciphertext length (4 bytes, big-endian) | nonce (12 bytes) | ciphertext

Each frame's associated data binds the blob's key (its path), the frame's number and whether
it is the last, so frames cannot be reordered, dropped, cut off at the end or moved to another
blob without the read failing. A blob without the magic is not the product's (planted by
whoever could write to the store, or left from before sealing) and is never read: opening it
raises :class:`UnsealedBlobError`, so neither the package step nor the download server passes
its bytes on.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dsr.blobstore import BlobStore, LocalBlobStore, key_of, open_blob_store
from dsr.codec import NONCE_BYTES, DecryptionError
from dsr.keyring import Keyring, load_keyring
from dsr.settings import Settings

MAGIC = b"DSRSEAL1"
FRAME_BYTES = 64 * 1024
_FRAME_HEADER = struct.Struct(">?I")
_TAG_BYTES = 16


class UnsealedBlobError(DecryptionError):
    """A blob that does not carry the product's seal: refused, never read."""

    def __init__(self) -> None:
        super().__init__("blob is not sealed by the product")


class SealedBlobStore:
    """A blob store whose blobs are encrypted with the payload keys."""

    def __init__(self, inner: BlobStore, keyring: Keyring) -> None:
        self.inner = inner
        self.keyring = keyring

    def ref(self, key: str) -> str:
        return self.inner.ref(key)

    @contextmanager
    def open_writer(self, key: str) -> Iterator[BinaryIO]:
        key_id = self.keyring.newest_id
        cipher = AESGCM(self.keyring.key(key_id))
        with self.inner.open_writer(key) as sink:
            writer = _SealingWriter(sink, cipher, _binding(key), key_id)
            yield cast(BinaryIO, writer)
            writer.finish()

    def open_reader(self, ref: str) -> BinaryIO:
        source = self.inner.open_reader(ref)
        try:
            if source.read(len(MAGIC)) != MAGIC:  # buffered: short only at its end
                raise UnsealedBlobError()
            raw = _UnsealingReader(source, self.keyring, _binding(key_of(ref)))
        except BaseException:
            source.close()
            raise
        return cast(BinaryIO, io.BufferedReader(raw, buffer_size=FRAME_BYTES))

    def exists(self, ref: str) -> bool:
        return self.inner.exists(ref)

    def delete(self, ref: str) -> None:
        self.inner.delete(ref)


def _binding(key: str) -> bytes:
    return key.encode() + b"\x00"


def _associated(binding: bytes, number: int, last: bool) -> bytes:
    return binding + struct.pack(">Q?", number, last)


class _SealingWriter(io.RawIOBase):
    """Buffers plaintext into frames and writes each one sealed; ``finish`` writes the last.

    Not seekable: ``zipfile`` then writes a streamed archive (data descriptors), which every
    zip reader opens.
    """

    def __init__(self, sink: BinaryIO, cipher: AESGCM, binding: bytes, key_id: str) -> None:
        self._sink = sink
        self._cipher = cipher
        self._binding = binding
        self._buffer = bytearray()
        self._frames = 0
        encoded_id = key_id.encode()
        sink.write(MAGIC + bytes([len(encoded_id)]) + encoded_id)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._buffer += view
        while len(self._buffer) > FRAME_BYTES:
            self._frame(bytes(self._buffer[:FRAME_BYTES]), last=False)
            del self._buffer[:FRAME_BYTES]
        return len(view)

    def finish(self) -> None:
        self._frame(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _frame(self, plaintext: bytes, last: bool) -> None:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher.encrypt(
            nonce, plaintext, _associated(self._binding, self._frames, last)
        )
        self._sink.write(_FRAME_HEADER.pack(last, len(sealed)) + nonce + sealed)
        self._frames += 1


class _UnsealingReader(io.RawIOBase):
    """Reads a sealed blob frame by frame; any tampering fails with ``DecryptionError``."""

    def __init__(self, source: BinaryIO, keyring: Keyring, binding: bytes) -> None:
        self._source = source
        self._binding = binding
        key_id = _read_exactly(source, _read_exactly(source, 1)[0]).decode("ascii", "replace")
        self._cipher = AESGCM(keyring.key(key_id))  # UnknownKeyError names the key id
        self._plain = b""
        self._frames = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._plain and not self._ended:
            self._plain = self._next_frame()
        size = min(len(view), len(self._plain))
        view[:size] = self._plain[:size]
        self._plain = self._plain[size:]
        return size

    def _next_frame(self) -> bytes:
        header = _read_exactly(self._source, _FRAME_HEADER.size + NONCE_BYTES)
        last, length = _FRAME_HEADER.unpack(header[: _FRAME_HEADER.size])
        if length < _TAG_BYTES or length > FRAME_BYTES + _TAG_BYTES:
            raise DecryptionError("sealed blob has a malformed frame")
        sealed = _read_exactly(self._source, length)
        nonce = header[_FRAME_HEADER.size:]
        try:
            plain = self._cipher.decrypt(
                nonce, sealed, _associated(self._binding, self._frames, last)
            )
        except InvalidTag:
            raise DecryptionError(
                "sealed blob does not decrypt: altered, moved or corrupted"
            ) from None
        self._frames += 1
        self._ended = last
        return plain

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    """``size`` bytes, or ``DecryptionError``: a sealed blob never ends mid-frame."""
    data = source.read(size)
    while len(data) < size:
        more = source.read(size - len(data))
        if not more:
            raise DecryptionError("sealed blob is cut short: it ends before its last frame")
        data += more
    return data


def sealed_blob_store(settings: Settings) -> SealedBlobStore:
    """The blob store ``blob_url`` names, or the local folder ``data_dir/blobs``, with every
    blob encrypted at rest under the payload keys."""
    inner = (LocalBlobStore(settings.blob_dir) if settings.blob_url is None
             else open_blob_store(settings.blob_url))
    return SealedBlobStore(inner, load_keyring(settings))

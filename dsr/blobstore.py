"""A local blob store for exports and packages, passed around by reference (``blob:<key>``).

Blobs travel by reference because Temporal payloads must stay small. A write goes to a
temporary name and is renamed into place only when it succeeded, so a crashed write never
leaves a half blob behind. Keys are relative paths such as ``exports/<request_id>/sms.jsonl``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

REF_PREFIX = "blob:"


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def ref(self, key: str) -> str:
        _check_key(key)
        return REF_PREFIX + key

    def path(self, ref: str) -> Path:
        if not ref.startswith(REF_PREFIX):
            raise ValueError("not a blob reference: expected 'blob:<key>'")
        key = ref.removeprefix(REF_PREFIX)
        _check_key(key)
        path = self.root / key
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise ValueError("blob key escapes the blob store root")
        return path

    @contextmanager
    def open_writer(self, key: str) -> Iterator[BinaryIO]:
        """A binary file to stream into; the blob appears under ``key`` only on success."""
        final = self.path(self.ref(key))
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.partial")
        try:
            with temporary.open("wb") as file:
                yield file
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)

    def open_reader(self, ref: str) -> BinaryIO:
        return self.path(ref).open("rb")

    def exists(self, ref: str) -> bool:
        return self.path(ref).is_file()

    def delete(self, ref: str) -> None:
        self.path(ref).unlink(missing_ok=True)


def _check_key(key: str) -> None:
    segments = key.split("/")
    if not key or "\\" in key or "\x00" in key or key.startswith("/"):
        raise ValueError("blob key must be a non-empty relative path with '/' separators")
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError("blob key must not contain empty, '.' or '..' segments")

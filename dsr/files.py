"""Local files readable by their owner only: ``var/`` holds databases, keys, blobs, logs and the
mail folder (one-time codes and download links), none of which another local user may read.

Every entry point (the CLI, the worker, the servers, the embedded stack and what it starts)
calls :func:`private_umask` first, so whatever it creates is owner-only; the stack tightens
folders made before (:func:`private_folder`); a file the officer asks for (``--out``) is
written through :func:`open_private`, owner-only even when it existed already.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

OWNER_ONLY_UMASK = 0o077
PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_umask() -> int:
    """From now on this process (and what it starts) creates files and folders for its owner
    only; returns the umask before."""
    return os.umask(OWNER_ONLY_UMASK)


@contextlib.contextmanager
def owner_only() -> Iterator[None]:
    """Owner-only file creation for a while, then the umask as it was: for library code that
    creates files on the caller's behalf (the embedded stack started from a test)."""
    before = private_umask()
    try:
        yield
    finally:
        os.umask(before)


def private_folder(path: Path) -> Path:
    """``path`` as a folder only its owner can enter: created so, or tightened if it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER_MODE)
    if stat.S_IMODE(path.stat().st_mode) != PRIVATE_FOLDER_MODE:
        path.chmod(PRIVATE_FOLDER_MODE)
    return path


def open_private(path: Path) -> BinaryIO:
    """``path`` opened for writing from empty, readable by its owner only even if it existed
    before with a wider mode (tightened before anything is written into it)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    try:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.fchmod(descriptor, PRIVATE_FILE_MODE)
        return os.fdopen(descriptor, "wb")
    except BaseException:
        os.close(descriptor)
        raise


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (created private if absent) for as long as the block
    runs: processes making the same file at once take turns."""
    private_folder(folder)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def write_private_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (owner-only) by a rename: a reader sees the old file or
    the whole new one, never a part. Call under :func:`folder_lock` when others may write."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()

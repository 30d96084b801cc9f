"""Blob stores for exports and packages, passed around by reference (``blob:<key>``).

Blobs travel by reference because Temporal payloads must stay small. Keys are relative paths
such as ``exports/<request_id>/sms.jsonl``; a reference is ``blob:<key>`` whichever store holds
it, so histories and answers written against the local store keep working against S3.

Two stores implement :class:`BlobStore`:

* :class:`LocalBlobStore` — a folder. A write goes to a temporary name and is renamed into
  place only when it succeeded, so a crashed write never leaves a half blob behind.
* :class:`S3BlobStore` — an S3-compatible bucket (AWS, MinIO, Ceph …), for connectors that run
  in other infrastructure. A write is spooled (memory, then a temporary file on disk) and
  uploaded with a multipart upload when the writer closes successfully, so the object appears
  only complete and an aborted write leaves nothing; a reader streams the object body.

:func:`open_blob_store` builds either from a URL (``file:///abs/path``, a plain path, or
``s3://bucket/prefix?endpoint_url=…&region=…``). Credentials never go in the URL: S3 uses the
standard AWS environment variables, config files or instance roles.
"""

from __future__ import annotations

import io
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast
from urllib.parse import parse_qsl, unquote, urlsplit

REF_PREFIX = "blob:"

# A write is kept in memory up to this size, then spooled to a temporary file.
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
# Read size of the S3 body stream behind the line-buffered reader.
READ_BUFFER_BYTES = 1024 * 1024


class BlobStore(Protocol):
    """Where exports and packages live between activities."""

    def ref(self, key: str) -> str:
        """The reference (``blob:<key>``) of a key."""
        ...

    def open_writer(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A binary file to stream into; the blob appears under ``key`` only on success."""
        ...

    def open_reader(self, ref: str) -> BinaryIO:
        """A binary file to stream from, iterable by lines; close it (``with``) when done."""
        ...

    def exists(self, ref: str) -> bool: ...

    def delete(self, ref: str) -> None:
        """Remove a blob; removing a missing blob is not an error."""
        ...


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def ref(self, key: str) -> str:
        _check_key(key)
        return REF_PREFIX + key

    def path(self, ref: str) -> Path:
        key = key_of(ref)
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


class S3BlobStore:
    """Blobs as objects ``<prefix>/<key>`` in an S3-compatible bucket.

    ``client`` is a boto3 S3 client; it carries the endpoint, region and credentials.
    """

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        if not bucket:
            raise ValueError("S3 blob store needs a bucket name")
        prefix = prefix.strip("/")
        if prefix:
            _check_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.client = client

    def ref(self, key: str) -> str:
        _check_key(key)
        return REF_PREFIX + key

    def object_key(self, ref: str) -> str:
        key = key_of(ref)
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def open_writer(self, key: str) -> Iterator[BinaryIO]:
        """Spool the blob, then upload it (multipart above 8 MiB) only if the body succeeded.

        The spool is seekable, so ``zipfile`` writes the same archive as on a local file.
        """
        object_key = self.object_key(self.ref(key))
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES, mode="w+b") as spool:
            yield cast(BinaryIO, spool)
            spool.flush()
            spool.seek(0)
            # upload_fileobj switches to a multipart upload above its threshold and aborts the
            # upload if a part fails, so a failed upload leaves no object behind either.
            self.client.upload_fileobj(spool, self.bucket, object_key)

    def open_reader(self, ref: str) -> BinaryIO:
        response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(ref))
        return cast(BinaryIO, io.BufferedReader(_BodyStream(response["Body"]),
                                                buffer_size=READ_BUFFER_BYTES))

    def exists(self, ref: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(ref))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, ref: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(ref))


class _BodyStream(io.RawIOBase):
    """A botocore ``StreamingBody`` as a raw stream, so ``io.BufferedReader`` can serve lines
    (the body's own iteration yields fixed-size chunks, not lines)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


# --- stores from URLs ----------------------------------------------------------------------

S3_QUERY_PARAMETERS = ("endpoint_url", "region", "addressing_style")


@dataclass(frozen=True)
class BlobUrl:
    """A parsed blob store URL: a local folder, or an S3 bucket and prefix with options."""

    scheme: str  # "file" or "s3"
    path: Path | None = None
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: str | None = None


def parse_blob_url(url: str) -> BlobUrl:
    """Parse ``file:///abs/path``, a plain path, or ``s3://bucket/prefix?endpoint_url=…``.

    Raises ``ValueError`` naming the problem; the message never repeats the URL, which could
    carry a secret.
    """
    if not url or not url.strip():
        raise ValueError("blob store URL is empty")
    if "://" not in url:
        if ":" in url.split("/", 1)[0]:
            raise ValueError(
                "blob store URL has an unknown form: use file:///abs/path, s3://bucket/prefix "
                "or a plain path"
            )
        return BlobUrl(scheme="file", path=Path(url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.password is not None or parts.username is not None:
        raise ValueError(
            "blob store URL must not carry credentials: use the AWS environment variables "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), AWS config files or an instance role"
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError("file:// blob store URL must be local: file:///absolute/path")
        if parts.query or parts.fragment:
            raise ValueError("file:// blob store URL takes no query or fragment")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError("file:// blob store URL needs an absolute path: file:///abs/path")
        return BlobUrl(scheme="file", path=Path(path))
    if scheme == "s3":
        return _parse_s3(parts.netloc, unquote(parts.path), parts.query, parts.fragment)
    raise ValueError(f"blob store URL has an unknown scheme {scheme!r}: use file:// or s3://")


def _parse_s3(bucket: str, path: str, query: str, fragment: str) -> BlobUrl:
    if not bucket:
        raise ValueError("s3:// blob store URL is missing the bucket: s3://bucket/prefix")
    if fragment:
        raise ValueError("s3:// blob store URL takes no fragment")
    prefix = path.strip("/")
    if prefix:
        try:
            _check_key(prefix)
        except ValueError:
            raise ValueError(
                "s3:// blob store URL prefix must not contain empty, '.' or '..' segments"
            ) from None
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in S3_QUERY_PARAMETERS:
            raise ValueError(
                f"s3:// blob store URL has an unknown parameter {name!r}: "
                f"expected {', '.join(S3_QUERY_PARAMETERS)}"
            )
        if name in options:
            raise ValueError(f"s3:// blob store URL repeats the parameter {name!r}")
        if not value:
            raise ValueError(f"s3:// blob store URL parameter {name!r} is empty")
        options[name] = value
    endpoint = options.get("endpoint_url")
    if endpoint is not None:
        endpoint_parts = urlsplit(endpoint)
        if endpoint_parts.scheme not in ("http", "https") or not endpoint_parts.hostname:
            raise ValueError("s3:// blob store URL endpoint_url must be an http(s):// URL")
        if endpoint_parts.username is not None or endpoint_parts.password is not None:
            raise ValueError(
                "s3:// blob store URL endpoint_url must not carry credentials: use the AWS "
                "environment variables, AWS config files or an instance role"
            )
    style = options.get("addressing_style")
    if style is not None and style not in ("path", "virtual", "auto"):
        raise ValueError("s3:// blob store URL addressing_style must be path, virtual or auto")
    return BlobUrl(scheme="s3", bucket=bucket, prefix=prefix, endpoint_url=endpoint,
                   region=options.get("region"), addressing_style=style)


def open_blob_store(url: str) -> BlobStore:
    """The blob store a URL names: a local folder or an S3-compatible bucket.

    S3 credentials come from boto3's usual chain (environment, config files, roles). With an
    ``endpoint_url`` (MinIO, Ceph, a test server) path-style addressing is the default.
    """
    parsed = parse_blob_url(url)
    if parsed.scheme == "file":
        assert parsed.path is not None
        return LocalBlobStore(parsed.path)
    return S3BlobStore(parsed.bucket, parsed.prefix, s3_client(parsed))


def s3_client(parsed: BlobUrl) -> Any:
    """A boto3 S3 client for an ``s3://`` URL's endpoint and region (also the ledger's anchor
    store, ``dsr.anchors``); credentials from boto3's usual chain."""
    import boto3
    from botocore.config import Config

    style = parsed.addressing_style or ("path" if parsed.endpoint_url else "auto")
    return boto3.session.Session().client(
        "s3",
        endpoint_url=parsed.endpoint_url,
        region_name=parsed.region,
        config=Config(s3={"addressing_style": style}),
    )


# --- keys ----------------------------------------------------------------------------------


def key_of(ref: str) -> str:
    """The key a ``blob:<key>`` reference names, validated."""
    if not ref.startswith(REF_PREFIX):
        raise ValueError("not a blob reference: expected 'blob:<key>'")
    key = ref.removeprefix(REF_PREFIX)
    _check_key(key)
    return key


def _check_key(key: str) -> None:
    segments = key.split("/")
    if not key or "\\" in key or "\x00" in key or key.startswith("/"):
        raise ValueError("blob key must be a non-empty relative path with '/' separators")
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError("blob key must not contain empty, '.' or '..' segments")

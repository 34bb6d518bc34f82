"""The ``s3`` storage driver: each path an object of one bucket, through botocore.

Tested on Ceph radosgw (scripts/start-s3.sh) and written to S3's documented
semantics, so it suits AWS and other S3 stores too (docs/s3.md).  A path
``/a/b`` is the key ``<prefix>/a/b``; directories are the key prefixes, as
distribution's S3 driver has them.  Keys with a component starting with ``.``
are this driver's own (the state of open writers, shared-lock entries): paths
cannot name them, and ``list`` and ``walk`` skip them.

Writers are S3 multipart uploads.  Bytes are sent as parts of ``chunk_size``
(>= 5 MiB, S3's minimum for every part but the last) as soon as that much is
written; ``close`` saves the writer's state beside the path, in the hidden key
``<dir>/.<name>.writer``: the upload id, the parts sent (number, ETag, size), and
the tail shorter than a part that is not sent yet.  ``writer(path, append=True)``
in any process continues from it.  The tail is the only byte ever read back, and
only by a process other than the one that wrote it (each process keeps the
tails it saved, checked against the state's ETag).  ``commit`` sends the tail as
the last part and completes the upload; content that never reached a part is
written to its key by one PUT.  ``cancel`` and deleting a directory abort the
multipart uploads below it.

``move`` is one server-side CopyObject (no byte passes through us) then a
DELETE; ``touch`` copies an object onto itself with a new ``mtime`` in its
metadata (S3's Last-Modified has whole seconds in a HEAD).  An object over 5 GiB,
more than one CopyObject takes, is copied as a multipart upload of
UploadPartCopy ranges.  ``url_for`` presigns
a GET, to which the registry redirects blob GETs unless ``redirect`` is off.

``lock`` is a lease lock made of conditional PUTs (``If-None-Match: *`` and
``If-Match``): the exclusive holder owns the key at the lock's path, each shared
holder puts an entry of its own beside it, and an exclusive taker waits for the
entries to go.  A shared taker puts its entry, then looks for an exclusive
holder and backs off if there is one; an exclusive taker puts the key, then
looks for entries: with S3's read-after-write consistency one of the two sees
the other.  Holders renew their lease every ``LEASE / 3`` seconds from a thread;
a lease not renewed (its process was killed) expires after ``LEASE`` seconds
and is taken over or ignored.  Lease times are the hosts' clocks: keep them in
sync.  The driver is safe to share between threads: a botocore client is.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, cast

import boto3
import botocore.config
import botocore.exceptions

from registry.server.config import S3Config
from registry.server.storage.driver import (
    FileInfo,
    InvalidOffset,
    UnsupportedMethod,
    check_path,
    not_found,
)

LEASE = 15.0  # seconds a lock holder that stopped renewing keeps its lock
MIN_PART = 5 << 20  # S3's smallest part but the last
DEPTH = 4  # parts of one writer in flight while the next is read
_POLL = (0.005, 0.2)  # first and longest wait between lock attempts
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


def _code(err: botocore.exceptions.ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _missing(err: botocore.exceptions.ClientError) -> bool:
    return _code(err) in _MISSING


def _hidden(rel: str) -> bool:
    """A key below the prefix that is the driver's own (a component starting with ``.``)."""
    return any(part.startswith(".") for part in rel.split("/"))


class S3Driver:
    """:class:`~registry.server.storage.driver.StorageDriver` on an S3 bucket."""

    name = "s3"

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self.bucket = config.bucket
        self.part_size = config.chunk_size
        self._base = config.prefix.strip("/")
        endpoint = config.endpoint or None
        if endpoint and "://" not in endpoint:
            endpoint = ("https://" if config.secure else "http://") + endpoint
        session = boto3.session.Session(
            aws_access_key_id=config.access_key or None,
            aws_secret_access_key=config.secret_key or None,
            region_name=config.region,
        )
        client_config = botocore.config.Config(
            s3={"addressing_style": "path" if config.path_style else "virtual"},
            signature_version="s3v4",
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=64,
            tcp_keepalive=True,
            # radosgw answers If-Match only with a bare ETag; checksums it may not know are off
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # AWS_CA_BUNDLE (set on some hosts for https) must not stop a plain http endpoint
        verify: bool | None = None if (endpoint or "https:").startswith("https:") and config.secure else False
        self.client: Any = session.client("s3", endpoint_url=endpoint, config=client_config, verify=verify)
        self._pool: ThreadPoolExecutor | None = None  # sends parts while the next one is read
        self._pool_lock = threading.Lock()
        self._tails: OrderedDict[str, tuple[str, bytes]] = OrderedDict()  # writer state key: (ETag, tail)
        self._tails_lock = threading.Lock()
        self.copy_limit = 5 << 30  # the largest object one CopyObject takes (S3's limit)
        self._sizes: OrderedDict[str, int] = OrderedDict()  # key: size, from our commits and stats
        self._sizes_lock = threading.Lock()

    # ------------------------------------------------------------- keys ---

    def key(self, path: str, root_ok: bool = False) -> str:
        """The object key of a driver path (``/``, with ``root_ok``, is the prefix itself)."""
        check_path(path, root_ok=root_ok)
        if path == "/":
            return self._base
        return f"{self._base}{path}" if self._base else path[1:]

    def _dir_prefix(self, path: str) -> str:
        k = self.key(path, root_ok=True)
        return f"{k}/" if k else ""

    def _path_of(self, key: str) -> str:
        return "/" + key[len(self._base) + 1 :] if self._base else "/" + key

    @staticmethod
    def _side_key(key: str, kind: str) -> str:
        """A hidden sibling of ``key``: ``<dir>/.<name>.<kind>``."""
        head, _, name = key.rpartition("/")
        return f"{head}/.{name}.{kind}" if head else f".{name}.{kind}"

    # ------------------------------------------------------------ files ---

    def get_content(self, path: str) -> bytes:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self.key(path))["Body"].read()
        except botocore.exceptions.ClientError as err:
            if _missing(err):
                raise not_found(path) from None
            raise
        return body

    def put_content(self, path: str, content: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(path), Body=content, Metadata=_now_meta())

    def reader(self, path: str, offset: int = 0) -> BinaryIO:
        if offset < 0:
            raise InvalidOffset(f"read {path} at offset {offset}")
        kw: dict[str, Any] = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(path), **kw)["Body"]
        except botocore.exceptions.ClientError as err:
            if _missing(err):
                raise not_found(path) from None
            if _code(err) == "InvalidRange":  # at or past the end of an object that exists
                return io.BytesIO(b"")
            raise
        return cast(BinaryIO, body)

    def writer(self, path: str, append: bool = False) -> S3Writer:
        key = self.key(path)
        if not append:
            return S3Writer(self, path, key)
        state_key = self._side_key(key, "writer")
        with self._tails_lock:
            cached = self._tails.get(state_key)
        try:
            kw = {"IfNoneMatch": cached[0]} if cached else {}
            got = self.client.get_object(Bucket=self.bucket, Key=state_key, **kw)
            raw: bytes = got["Body"].read()
            etag = str(got["ETag"]).strip('"')
        except botocore.exceptions.ClientError as err:
            if _missing(err):
                raise not_found(path) from None
            if _code(err) not in ("304", "NotModified") or cached is None:
                raise
            etag, raw = cached  # our own save, unchanged since: the tail is not read back
        return S3Writer.resume(self, path, key, etag, raw)

    def exists(self, path: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(path))
            return True
        except botocore.exceptions.ClientError as err:
            if _missing(err):
                return False
            raise

    def stat(self, path: str) -> FileInfo:
        if path != "/":
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self.key(path))
                self._know_size(self.key(path), int(head["ContentLength"]))
                return FileInfo(path, int(head["ContentLength"]), _mtime(head), False)
            except botocore.exceptions.ClientError as err:
                if not _missing(err):
                    raise
        found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._dir_prefix(path), MaxKeys=1)
        if path != "/" and not found.get("KeyCount"):
            raise not_found(path)
        contents = found.get("Contents") or []
        mtime = contents[0]["LastModified"].timestamp() if contents else time.time()
        return FileInfo(path, 0, mtime, True)

    def list(self, path: str) -> builtins.list[str]:
        prefix = self._dir_prefix(path)
        names: set[str] = set()
        anything = False
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        ):
            for entry in page.get("CommonPrefixes") or ():
                anything = True
                names.add(entry["Prefix"][len(prefix) :].rstrip("/"))
            for entry in page.get("Contents") or ():
                anything = True
                names.add(entry["Key"][len(prefix) :])
        if not anything and path != "/":
            raise not_found(path)
        base = "" if path == "/" else path
        return [f"{base}/{n}" for n in sorted(names) if n and not n.startswith(".")]

    def move(self, source: str, dest: str) -> None:
        src = self.key(source)
        self._copy(source, src, self.key(dest))
        self.client.delete_object(Bucket=self.bucket, Key=src)

    def _copy(self, path: str, src: str, dst: str) -> None:
        """Copy ``src`` to ``dst`` inside the store with a new ``mtime``: one CopyObject,
        or, for an object over ``copy_limit`` (S3 copies 5 GiB at most in one
        request), a multipart upload of UploadPartCopy ranges.  The size is known
        from this process's commit or stat of the object, else learnt from S3's
        refusal of the single copy."""
        with self._sizes_lock:
            size = self._sizes.get(src)
        if size is None or size <= self.copy_limit:
            try:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=dst,
                    CopySource={"Bucket": self.bucket, "Key": src},
                    MetadataDirective="REPLACE",
                    Metadata=_now_meta(),
                )
                if size is not None:
                    self._know_size(dst, size)
                return
            except botocore.exceptions.ClientError as err:
                if _missing(err):
                    raise not_found(path) from None
                if _code(err) not in ("EntityTooLarge", "InvalidRequest"):
                    raise
                size = int(self.client.head_object(Bucket=self.bucket, Key=src)["ContentLength"])
                if size <= self.copy_limit:
                    raise
        self._copy_parts(src, dst, size)

    def _copy_parts(self, src: str, dst: str, size: int) -> None:
        part = max(MIN_PART, min(self.copy_limit, 1 << 30), -(-size // 10000))
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=dst, Metadata=_now_meta())[
            "UploadId"
        ]

        def copy(number: int) -> dict[str, Any]:
            first = (number - 1) * part
            got = self.client.upload_part_copy(
                Bucket=self.bucket,
                Key=dst,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": src},
                CopySourceRange=f"bytes={first}-{min(size, first + part) - 1}",
            )
            return {"PartNumber": number, "ETag": got["CopyPartResult"]["ETag"]}

        try:
            with ThreadPoolExecutor(4, thread_name_prefix="s3-copy") as copying:
                parts = list(copying.map(copy, range(1, -(-size // part) + 1)))
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=dst, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(botocore.exceptions.ClientError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=dst, UploadId=upload_id)
            raise

    def _know_size(self, key: str, size: int) -> None:
        with self._sizes_lock:
            self._sizes[key] = size
            self._sizes.move_to_end(key)
            while len(self._sizes) > 1024:
                self._sizes.popitem(last=False)

    def delete(self, path: str) -> None:
        """One listing tells a file from a directory; a directory's keys are deleted
        while its multipart uploads are looked for and aborted."""
        key = self.key(path)
        prefix = self._dir_prefix(path)
        keys = [
            entry["Key"]
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=key)
            for entry in page.get("Contents") or ()
            if entry["Key"] == key or entry["Key"].startswith(prefix)
        ]
        if keys == [key]:
            self.client.delete_object(Bucket=self.bucket, Key=key)
            return
        keys = [k for k in keys if k != key]
        if not keys:
            raise not_found(path)
        aborting = self.pool().submit(self.abort_uploads, prefix)
        try:
            self.delete_keys(keys)
        finally:
            aborting.result()

    def delete_many(self, paths: builtins.list[str]) -> None:
        self.delete_keys([self.key(p) for p in paths])

    def delete_keys(self, keys: builtins.list[str]) -> None:
        """Delete objects by key (missing ones are no error): up to 1,000 a request
        (S3's limit), requests of 100 or more sent four at a time."""
        step = min(1000, max(100, -(-len(keys) // 4)))
        batches = [[{"Key": k} for k in keys[i : i + step]] for i in range(0, len(keys), step)]

        def send(batch: builtins.list[dict[str, str]]) -> None:
            got = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if errors := got.get("Errors"):
                first = errors[0]
                raise RuntimeError(
                    f"s3 delete of {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )

        if len(batches) < 2:
            for batch in batches:
                send(batch)
            return
        with ThreadPoolExecutor(4, thread_name_prefix="s3-delete") as deleting:
            list(deleting.map(send, batches))

    def abort_uploads(self, prefix: str) -> int:
        """Abort every multipart upload whose key starts with ``prefix``; return how many."""
        n = 0
        for page in self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for up in page.get("Uploads") or ():
                with contextlib.suppress(botocore.exceptions.ClientError):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"]
                    )
                    n += 1
        return n

    def touch(self, path: str) -> None:
        key = self.key(path)
        self._copy(path, key, key)

    def url_for(self, path: str, method: str = "GET", expires: float = 1200.0) -> str:
        if not self.config.redirect or method not in ("GET", "HEAD"):
            raise UnsupportedMethod("the s3 driver serves no URLs with redirect off: the registry proxies")
        op = "get_object" if method == "GET" else "head_object"
        url: str = self.client.generate_presigned_url(
            op, Params={"Bucket": self.bucket, "Key": self.key(path)}, ExpiresIn=int(expires)
        )
        return url

    def walk(self, path: str) -> Iterator[FileInfo]:
        prefix = self._dir_prefix(path)
        anything = False
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for entry in page.get("Contents") or ():
                anything = True
                rel = entry["Key"][len(prefix) :]
                if rel and not _hidden(rel):
                    p = self._path_of(entry["Key"])
                    yield FileInfo(p, int(entry["Size"]), entry["LastModified"].timestamp(), False)
        if not anything and path != "/":
            raise not_found(path)

    # ------------------------------------------------------------ locks ---

    @contextlib.contextmanager
    def lock(self, path: str, exclusive: bool) -> Iterator[None]:
        head = path.rsplit("/", 1)[0]
        lease = _Lease(self, self.key(path), exclusive, self._dir_prefix(head) if head else "")
        lease.acquire()  # PathNotFound for a missing directory, as the contract asks
        try:
            yield
        finally:
            lease.release()

    @contextlib.contextmanager
    def mutex(self, path: str) -> Iterator[None]:
        """The exclusive key alone: with no shared taker to look for and the
        directory's existence left to the caller, one PUT to take it."""
        lease = _Lease(self, self.key(path), True, "", alone=True)
        lease.acquire()
        try:
            yield
        finally:
            lease.release()

    def pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(32, thread_name_prefix="s3-part")
            return self._pool

    def _remember_tail(self, state_key: str, etag: str, tail: bytes) -> None:
        with self._tails_lock:
            self._tails[state_key] = (etag, tail)
            self._tails.move_to_end(state_key)
            while len(self._tails) > 64:
                self._tails.popitem(last=False)

    def _forget_tail(self, state_key: str) -> None:
        with self._tails_lock:
            self._tails.pop(state_key, None)


class S3Writer:
    """A multipart upload to one key (a :class:`~registry.server.storage.driver.FileWriter`)."""

    def __init__(self, driver: S3Driver, path: str, key: str) -> None:
        self.d = driver
        self.path = path
        self.key = key
        self.state_key = S3Driver._side_key(key, "writer")
        self.upload_id = ""
        self.parts: list[tuple[int, str, int]] = []  # (number, ETag, size) sent
        self._sending: list[tuple[int, Future[str], int]] = []  # (number, ETag to be, size), in order
        self.buffer = _Pending()  # written, not sent yet
        self._opened: tuple[list[tuple[int, str, int]], bytes] = ([], b"")  # the resume point
        self._state_etag = ""
        self._done = False  # committed or cancelled: close has nothing to keep

    @classmethod
    def resume(cls, driver: S3Driver, path: str, key: str, etag: str, raw: bytes) -> S3Writer:
        header, _, tail = raw.partition(b"\n")
        doc = json.loads(header)
        w = cls(driver, path, key)
        w.upload_id = str(doc["upload_id"])
        w.parts = [(int(n), str(e), int(s)) for n, e, s in doc["parts"]]
        w.buffer = _Pending(tail)
        w._opened = (list(w.parts), bytes(tail))
        w._state_etag = etag
        return w

    def _sent(self) -> int:
        return sum(size for _, _, size in self.parts) + sum(size for _, _, size in self._sending)

    def write(self, data: bytes) -> int:
        self.buffer.add(data)
        while len(self.buffer) >= self.d.part_size:
            self._send(self.buffer.take(self.d.part_size))
        return len(data)

    def _send(self, data: bytes) -> None:
        """Send a part from a pool thread while the caller reads the next one (at
        most DEPTH - 1 in flight: the memory of a writer stays under DEPTH parts)."""
        c = self.d.client
        if not self.upload_id:
            self.upload_id = c.create_multipart_upload(
                Bucket=self.d.bucket, Key=self.key, Metadata=_now_meta()
            )["UploadId"]
        numbers = [n for n, _, _ in self.parts] + [n for n, _, _ in self._sending]
        number = max(numbers, default=0) + 1
        future = self.d.pool().submit(self._upload_part, self.upload_id, number, data)
        self._sending.append((number, future, len(data)))
        while len(self._sending) >= DEPTH:
            self._settle_one()

    def _upload_part(self, upload_id: str, number: int, data: bytes) -> str:
        got = self.d.client.upload_part(
            Bucket=self.d.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=data
        )
        return str(got["ETag"])

    def _settle_one(self) -> None:
        number, future, size = self._sending.pop(0)
        self.parts.append((number, future.result(), size))

    def _settle(self) -> None:
        """Wait for every part in flight (raising the first failure)."""
        try:
            while self._sending:
                self._settle_one()
        finally:
            for _, future, _ in self._sending:  # after a failure: let the others finish, unused
                future.exception()
            self._sending.clear()

    def size(self) -> int:
        return self._sent() + len(self.buffer)

    def truncate(self, size: int) -> None:
        self._settle()
        if size < self._sent():  # back to where this writer was opened (a part resent replaces its number)
            opened_parts, opened_tail = self._opened
            self.parts, self.buffer = list(opened_parts), _Pending(opened_tail)
        cut = size - self._sent()
        if cut < 0 or cut > len(self.buffer):
            raise ValueError(f"{self.path}: {size} is not a resume point of this writer")
        self.buffer.cut(cut)

    def commit(self) -> None:
        c = self.d.client
        size = self.size()
        if not self.upload_id:  # less than a part: one PUT of the whole content
            c.put_object(Bucket=self.d.bucket, Key=self.key, Body=self.buffer.take(), Metadata=_now_meta())
        else:
            if self.buffer or not (self.parts or self._sending):
                self._send(self.buffer.take())
            self._settle()
            c.complete_multipart_upload(
                Bucket=self.d.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e, _ in self.parts]},
            )
        self._done = True
        self.d._know_size(self.key, size)
        self._drop_state(wait=False)

    def cancel(self) -> None:
        with contextlib.suppress(botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            self._settle()
        if self.upload_id:
            with contextlib.suppress(botocore.exceptions.ClientError):
                self.d.client.abort_multipart_upload(
                    Bucket=self.d.bucket, Key=self.key, UploadId=self.upload_id
                )
        with contextlib.suppress(botocore.exceptions.ClientError):
            self.d.client.delete_object(Bucket=self.d.bucket, Key=self.key)
        self._done = True
        self._drop_state()

    def close(self) -> None:
        if self._done:
            return
        if len(self.buffer) >= MIN_PART:  # a tail S3 takes as a part: sent once, not saved
            self._send(self.buffer.take())
        self._settle()
        header = json.dumps({"upload_id": self.upload_id, "parts": self.parts}).encode()
        tail = self.buffer.peek()
        etag = self.d.client.put_object(Bucket=self.d.bucket, Key=self.state_key, Body=header + b"\n" + tail)[
            "ETag"
        ]
        self._state_etag = str(etag).strip('"')
        self.d._remember_tail(self.state_key, self._state_etag, header + b"\n" + tail)

    def _drop_state(self, wait: bool = True) -> None:
        """Delete the saved state, if there is one; after a commit without waiting
        (no request needs it gone: the upload's directory is deleted next)."""
        self.d._forget_tail(self.state_key)
        if not self._state_etag:
            return
        if not wait:
            self.d.pool().submit(self.d.client.delete_object, Bucket=self.d.bucket, Key=self.state_key)
            return
        with contextlib.suppress(botocore.exceptions.ClientError):
            self.d.client.delete_object(Bucket=self.d.bucket, Key=self.state_key)


class _Pending:
    """Bytes written and not sent yet: the pieces as written, joined once when a
    part is taken (one copy, however many small writes made it)."""

    def __init__(self, data: bytes = b"") -> None:
        self._pieces: list[bytes] = [data] if data else []
        self._size = len(data)

    def __len__(self) -> int:
        return self._size

    def add(self, data: bytes) -> None:
        if data:
            self._pieces.append(bytes(data))
            self._size += len(data)

    def peek(self) -> bytes:
        joined = b"".join(self._pieces)
        self._pieces = [joined] if joined else []
        return joined

    def take(self, n: int | None = None) -> bytes:
        """The first ``n`` bytes (all by default), removed."""
        if n is None or n >= self._size:
            joined = b"".join(self._pieces)
            self._pieces, self._size = [], 0
            return joined
        got: builtins.list[Any] = []
        have = 0
        while have < n:
            piece = self._pieces.pop(0)
            if have + len(piece) > n:  # split: the rest stays first
                got.append(memoryview(piece)[: n - have])
                self._pieces.insert(0, piece[n - have :])
                have = n
            else:
                got.append(piece)
                have += len(piece)
        self._size -= n
        return b"".join(got)

    def cut(self, n: int) -> None:
        """Keep the first ``n`` bytes."""
        kept = self.peek()[:n]
        self._pieces = [kept] if kept else []
        self._size = len(kept)


class _Lease:
    """One holder of a lock (see the module docstring), renewed from a thread while held."""

    def __init__(
        self, driver: S3Driver, key: str, exclusive: bool, directory: str, alone: bool = False
    ) -> None:
        self.d = driver
        self.exclusive = exclusive
        self.owner = uuid.uuid4().hex
        self.lock_key = key
        self.shared_prefix = S3Driver._side_key(key, "shared.")
        self.key = key if exclusive else self.shared_prefix + self.owner
        self.directory = directory  # the key prefix of the lock's directory ("" at the top)
        self.alone = alone  # a mutex: never taken shared, so no entries to look for
        self.etag = ""
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires": time.time() + LEASE}).encode()

    def _put(self, **cond: str) -> bool:
        try:
            self.etag = str(
                self.d.client.put_object(Bucket=self.d.bucket, Key=self.key, Body=self._body(), **cond)[
                    "ETag"
                ]
            ).strip('"')
            return True
        except botocore.exceptions.ClientError as err:
            if _code(err) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise

    def _exclusive_holder(self) -> tuple[str, bool] | None:
        """(ETag, expired) of the exclusive key, or None when nobody holds it."""
        try:
            got = self.d.client.get_object(Bucket=self.d.bucket, Key=self.lock_key)
            doc = json.loads(got["Body"].read() or b"{}")
        except botocore.exceptions.ClientError as err:
            if _missing(err):
                return None
            raise
        except ValueError:
            doc = {}
        return str(got["ETag"]).strip('"'), float(doc.get("expires", 0)) < time.time()

    def acquire(self) -> None:
        """Take the lock; PathNotFound (nothing left behind) when its directory is missing.

        An exclusive taker's one listing of the directory, right after its PUT, both
        finds the shared entries and proves the directory exists: two round trips
        for an uncontended lock."""
        wait = _POLL[0]
        if self.exclusive:
            while not self._put(IfNoneMatch="*"):
                holder = self._exclusive_holder()
                if holder is not None and holder[1] and self._put(IfMatch=holder[0]):
                    break  # a dead holder's lease, taken over
                time.sleep(wait)
                wait = min(wait * 2, _POLL[1])
            if self.alone:
                self._start_renewer()
                return
            try:
                entries = self._entries()
                self._start_renewer()
                wait = _POLL[0]
                while self._shared_holders(entries):
                    time.sleep(wait)
                    wait = min(wait * 2, _POLL[1])
                    entries = self._entries()
            except BaseException:
                self.release()
                raise
            return
        while True:
            self._put()
            holder = self._exclusive_holder()
            if holder is None or holder[1]:
                break
            self.d.client.delete_object(Bucket=self.d.bucket, Key=self.key)
            while (holder := self._exclusive_holder()) is not None and not holder[1]:
                time.sleep(wait)
                wait = min(wait * 2, _POLL[1])
        if self.directory:
            try:
                self._entries()
            except BaseException:
                self.release()
                raise
        self._start_renewer()

    def _entries(self) -> builtins.list[str]:
        """The keys of the shared entries; PathNotFound when the lock's directory holds
        nothing but this lock's own keys."""
        if not self.directory:
            found = self.d.client.list_objects_v2(Bucket=self.d.bucket, Prefix=self.shared_prefix)
            return [e["Key"] for e in found.get("Contents") or ()]
        found = self.d.client.list_objects_v2(Bucket=self.d.bucket, Prefix=self.directory)
        keys = [e["Key"] for e in found.get("Contents") or ()]
        if found.get("IsTruncated"):  # a big directory: it exists; its entries by their own prefix
            found = self.d.client.list_objects_v2(Bucket=self.d.bucket, Prefix=self.shared_prefix)
            return [e["Key"] for e in found.get("Contents") or ()]
        shared = [k for k in keys if k.startswith(self.shared_prefix)]
        if not any(k != self.lock_key and k not in shared for k in keys):
            raise not_found(self.d._path_of(self.directory.rstrip("/")))
        return shared

    def _shared_holders(self, keys: builtins.list[str]) -> int:
        """The live shared entries among ``keys`` (expired ones, of killed holders, are deleted)."""
        live = 0
        for key in keys:
            if key == self.key:
                continue
            try:
                doc = json.loads(self.d.client.get_object(Bucket=self.d.bucket, Key=key)["Body"].read())
            except botocore.exceptions.ClientError as err:
                if _missing(err):
                    continue
                raise
            except ValueError:
                doc = {}
            if float(doc.get("expires", 0)) < time.time():
                self.d.client.delete_object(Bucket=self.d.bucket, Key=key)
            else:
                live += 1
        return live

    def _start_renewer(self) -> None:
        self._renewer = threading.Thread(target=self._renew, name="s3-lease", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(LEASE / 3):
            with contextlib.suppress(botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                self._put(**({"IfMatch": self.etag} if self.exclusive else {}))

    def release(self) -> None:
        """Delete this holder's key: at once for an exclusive lock (its next taker is
        likely the same client's next request), from the pool for a shared entry,
        which only a garbage collector waits for."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self.exclusive:
            self.d.client.delete_object(Bucket=self.d.bucket, Key=self.key)
        else:
            self.d.pool().submit(self.d.client.delete_object, Bucket=self.d.bucket, Key=self.key)


def _now_meta() -> dict[str, str]:
    return {"mtime": repr(time.time())}


def _mtime(head: dict[str, Any]) -> float:
    meta = head.get("Metadata") or {}
    with contextlib.suppress(KeyError, ValueError):
        return float(meta["mtime"])
    return float(head["LastModified"].timestamp())

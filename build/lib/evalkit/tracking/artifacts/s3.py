"""Artifacts in Amazon S3 or any S3-compatible service (``s3://bucket/prefix``), through boto3.

Credentials, region and endpoint come from boto3's usual sources: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT_URL_S3``, ``AWS_PROFILE`` and ``~/.aws``. evalkit never logs them, and error
messages name the bucket and key only. Files above ``MULTIPART_THRESHOLD`` are uploaded in parts,
streamed from disk; downloads stream to disk too.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from evalkit.entities import FileInfo
from evalkit.errors import InvalidArgument, NotFound, StoreUnavailable
from evalkit.redaction import RedactingFilter, redact
from evalkit.tracking.artifacts.base import ArtifactRepository, safe_relative_path

try:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
except ImportError:  # the s3 extra is not installed
    boto3 = None  # type: ignore[assignment]

MB = 1024 * 1024
MULTIPART_THRESHOLD = 8 * MB
MULTIPART_CHUNKSIZE = 8 * MB
PRESIGNED_METHODS = {"GET": "get_object", "PUT": "put_object"}
MAX_PRESIGNED_SECONDS = 7 * 24 * 3600  # S3's own limit for SigV4 URLs
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
_DENIED_CODES = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                 "InvalidToken", "AllAccessDisabled"}

# The loggers of boto3's stack that quote requests (botocore.auth logs the canonical request).
AWS_LOGGERS = ("botocore.auth", "botocore.endpoint", "botocore.awsrequest", "botocore.parsers",
               "botocore.hooks", "botocore.retryhandler", "s3transfer", "urllib3.connectionpool")
_LOG_FILTER = RedactingFilter(())

_clients: dict[tuple[tuple[str, str], ...], Any] = {}
_clients_lock = threading.Lock()


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://bucket/prefix`` (the prefix without surrounding slashes)."""
    if not uri.startswith("s3://"):
        raise InvalidArgument(f"not an S3 URI: {uri!r}; use s3://bucket/prefix")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket or any(ch in bucket for ch in " \\?#"):
        raise InvalidArgument(f"S3 URI {uri!r} names no valid bucket: use s3://bucket/prefix")
    return bucket, prefix.strip("/")


def s3_client() -> Any:
    """A boto3 S3 client for the current AWS environment, shared while that environment is unchanged
    (clients are thread-safe and slow to create)."""
    if boto3 is None:
        raise InvalidArgument("artifacts on S3 need boto3: pip install 'evalkit[s3]'")
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                # Retries are left to boto3's own settings (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS, ~/.aws/config);
                # more pooled connections than the default 10 let parallel part uploads proceed;
                # SigV4 presigned URLs work in every region (SigV2 only in the oldest ones).
                config = Config(max_pool_connections=32, signature_version="s3v4")
                try:
                    session = boto3.session.Session()
                    _hide_in_logs(session.get_credentials())
                    client = _clients[key] = session.client("s3", config=config)
                except BotoCoreError as exc:  # a missing profile, a malformed config file, a bad endpoint URL
                    raise StoreUnavailable(redact(f"cannot set up S3 access: {exc}", secrets=_LOG_FILTER.secrets)) from None
    return client


def _hide_in_logs(credentials: Any) -> None:
    """Mask the secret key and session token in botocore's DEBUG logs (it quotes the signed headers)."""
    if credentials is None:
        return
    frozen = credentials.get_frozen_credentials()
    known = {s for s in (frozen.secret_key, frozen.token) if s}
    _LOG_FILTER.secrets = tuple(set(_LOG_FILTER.secrets) | known)
    for name in AWS_LOGGERS:
        logging.getLogger(name).addFilter(_LOG_FILTER)  # a no-op when already there


class S3ArtifactRepository(ArtifactRepository):
    """Reads and writes the artifacts of one run under an S3 prefix."""

    transfer_config: Any = None  # built on first use, so that importing this module stays cheap
    page_size = 1000  # keys per listing request (S3's maximum)
    transfer_workers = 8  # files moved at once by log_artifacts and folder downloads: each costs a round trip

    def __init__(self, artifact_uri: str) -> None:
        super().__init__(artifact_uri)
        self.bucket, self.prefix = parse_s3_uri(artifact_uri)
        self._client = s3_client()
        if S3ArtifactRepository.transfer_config is None:
            S3ArtifactRepository.transfer_config = TransferConfig(
                multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNKSIZE
            )

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix and relative else (self.prefix or relative)

    def _folder_prefix(self, path: str | None) -> str:
        relative = safe_relative_path(path)
        key = self._key(relative)
        return f"{key}/" if key else ""

    def _relative(self, key: str) -> str:
        return key[len(self.prefix) + 1:] if self.prefix else key

    def _location(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self._key(relative)}"

    def _fail(self, exc: BaseException, action: str, relative: str) -> NoReturn:
        """Raise the evalkit error for a boto3 failure; the message never carries a credential."""
        where = self._location(relative)
        client_error = _find_client_error(exc)
        if client_error is not None:
            error = client_error.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _NOT_FOUND_CODES:
                raise NotFound(f"no artifact {relative!r} in {self.artifact_uri}") from None
            if code == "NoSuchBucket":
                raise NotFound(f"S3 bucket {self.bucket!r} does not exist (while trying to {action} {where})") from None
            if code in _DENIED_CODES:
                raise StoreUnavailable(
                    f"S3 refused to {action} {where} ({code}): check the AWS credentials "
                    "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws) and the bucket's policy"
                ) from None
            detail = f"{code}: {error.get('Message', '')}"
        elif boto3 is not None and isinstance(exc, NoCredentialsError):
            raise StoreUnavailable(
                f"cannot {action} {where}: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            ) from None
        else:
            detail = f"{type(exc).__name__}: {exc}"
        known = [os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_SESSION_TOKEN"), *_LOG_FILTER.secrets]
        raise StoreUnavailable(redact(f"cannot {action} {where}: {detail}", secrets=known)) from None

    # ---- the interface -----------------------------------------------------------------------

    def write_bytes(self, artifact_file: str, data: bytes) -> None:
        relative = safe_relative_path(artifact_file, file=True)
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(relative), Body=data,
                                    ContentType=_content_type(relative))
        except _ERRORS as exc:
            self._fail(exc, "write", relative)

    def upload_file(self, local_file: str | os.PathLike[str], artifact_file: str) -> None:
        relative = safe_relative_path(artifact_file, file=True)
        key, content_type = self._key(relative), _content_type(relative)
        try:
            if os.path.getsize(local_file) < MULTIPART_THRESHOLD:
                # One PUT streamed from the file: the transfer manager's threads cost more than they save here.
                with open(local_file, "rb") as body:
                    self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
            else:
                self._client.upload_file(os.fspath(local_file), self.bucket, key,
                                         ExtraArgs={"ContentType": content_type}, Config=self.transfer_config)
        except _ERRORS as exc:
            self._fail(exc, "upload", relative)

    def read_bytes(self, artifact_file: str) -> bytes:
        relative = safe_relative_path(artifact_file, file=True)
        try:
            return self._client.get_object(Bucket=self.bucket, Key=self._key(relative))["Body"].read()
        except _ERRORS as exc:
            self._fail(exc, "read", relative)

    def download_file(self, artifact_file: str, local_file: str | os.PathLike[str]) -> None:
        relative = safe_relative_path(artifact_file, file=True)
        target = Path(local_file)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(relative))
            if response["ContentLength"] >= MULTIPART_THRESHOLD:
                # Large: ranged GETs in parallel (boto3 writes a temporary file and renames it too).
                response["Body"].close()
                self._client.download_file(self.bucket, self._key(relative), str(target), Config=self.transfer_config)
                return
            body = response["Body"]
            try:
                with open(temporary, "wb") as handle:
                    for chunk in body.iter_chunks(1 << 20):
                        handle.write(chunk)
            finally:
                body.close()
            os.replace(temporary, target)
        except _ERRORS as exc:
            temporary.unlink(missing_ok=True)
            self._fail(exc, "download", relative)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def _pages(self, prefix: str, delimiter: bool) -> Iterator[dict[str, Any]]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "PaginationConfig": {"PageSize": self.page_size}}
        if delimiter:
            args["Delimiter"] = "/"
        try:
            yield from self._client.get_paginator("list_objects_v2").paginate(**args)
        except _ERRORS as exc:
            self._fail(exc, "list", self._relative(prefix.rstrip("/")) if prefix else "")

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        prefix = self._folder_prefix(path)
        infos = []
        for page in self._pages(prefix, delimiter=True):
            for common in page.get("CommonPrefixes", []):
                infos.append(FileInfo(self._relative(common["Prefix"].rstrip("/")), True, None))
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):  # folder markers made by other tools
                    infos.append(FileInfo(self._relative(item["Key"]), False, item["Size"]))
        return sorted(infos, key=lambda info: info.path)

    def walk_files(self, path: str | None = None) -> Iterator[FileInfo]:
        for page in self._pages(self._folder_prefix(path), delimiter=False):
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):
                    yield FileInfo(self._relative(item["Key"]), False, item["Size"])

    def is_file(self, path: str) -> bool:
        relative = safe_relative_path(path)
        if not relative:
            return False
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(relative))
        except _ERRORS as exc:
            client_error = _find_client_error(exc)
            if client_error is not None and str(client_error.response.get("Error", {}).get("Code")) in _NOT_FOUND_CODES:
                return False
            self._fail(exc, "read", relative)
        return True

    def exists(self, path: str | None = None) -> bool:
        relative = safe_relative_path(path)
        if relative and self.is_file(relative):
            return True
        try:
            page = self._client.list_objects_v2(Bucket=self.bucket, Prefix=self._folder_prefix(relative), MaxKeys=1)
        except _ERRORS as exc:
            self._fail(exc, "list", relative)
        return page.get("KeyCount", 0) > 0

    def delete(self, path: str | None = None) -> None:
        relative = safe_relative_path(path)
        deleted = 0
        if relative and self.is_file(relative):
            try:
                self._client.delete_object(Bucket=self.bucket, Key=self._key(relative))
            except _ERRORS as exc:
                self._fail(exc, "delete", relative)
            deleted += 1
        for page in self._pages(self._folder_prefix(relative), delimiter=False):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if not keys:
                continue
            try:  # a page holds at most 1,000 keys: exactly what one delete_objects call takes
                response = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
            except _ERRORS as exc:
                self._fail(exc, "delete", relative)
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StoreUnavailable(
                    f"cannot delete {len(response['Errors'])} object(s) under {self._location(relative)}: "
                    f"{first.get('Code')} on {first.get('Key')}"
                )
            deleted += len(keys)
        if relative and not deleted:
            raise NotFound(f"no artifact {relative!r} in {self.artifact_uri}")

    def presigned_url(self, path: str, method: str = "GET", expires_in: int = 3600) -> str:
        relative = safe_relative_path(path, file=True)
        operation = PRESIGNED_METHODS.get(str(method).upper())
        if operation is None:
            raise InvalidArgument(f"presigned URL method must be GET or PUT, not {method!r}")
        if not isinstance(expires_in, int) or not 0 < expires_in <= MAX_PRESIGNED_SECONDS:
            raise InvalidArgument(f"expires_in must be 1 to {MAX_PRESIGNED_SECONDS} seconds, got {expires_in!r}")
        try:
            return self._client.generate_presigned_url(
                operation, Params={"Bucket": self.bucket, "Key": self._key(relative)}, ExpiresIn=expires_in
            )
        except _ERRORS as exc:
            self._fail(exc, "sign", relative)


_ERRORS: tuple[type[BaseException], ...] = (
    (BotoCoreError, ClientError, boto3.exceptions.Boto3Error) if boto3 is not None else ()
)


def _find_client_error(exc: BaseException | None) -> Any:
    """The ClientError behind ``exc`` (boto3's transfer layer wraps it), or None."""
    seen = 0
    while exc is not None and seen < 5:
        if boto3 is not None and isinstance(exc, ClientError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _content_type(relative: str) -> str:
    return mimetypes.guess_type(relative)[0] or "application/octet-stream"

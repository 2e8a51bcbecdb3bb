"""An S3-compatible bucket as an adapter store (boto3, the `s3` extra): objects `<prefix>/<sha256>` under
`CDA_ADAPTER_S3_URL` (`s3://bucket[/prefix]`), at AWS or at any S3-compatible endpoint (`CDA_ADAPTER_S3_ENDPOINT`).

The key names the archive's hash, so a download is checked the same way as the HTTP registry's: an object whose
bytes hash to another name is `hash_mismatch`, never a load. Credentials come from the settings when given, else
from boto3's own chain (environment, profile, instance role); they never travel in an event.
"""

from __future__ import annotations

from typing import Any

from core.adapter_archive import SHA256, digest
from core.settings import Settings
from inference.errors import AdapterInvalid, InferenceUnavailable

SCHEME = "s3://"
_MISSING = {"NoSuchKey", "404", "NotFound"}


def split_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` as (bucket, prefix without slashes at its ends)."""
    if not url.startswith(SCHEME) or not url[len(SCHEME):].split("/", 1)[0]:
        raise ValueError(f"expected s3://bucket[/prefix], got {url!r}")
    bucket, _, prefix = url[len(SCHEME):].partition("/")
    return bucket, prefix.strip("/")


class S3AdapterStore:
    """`put` and `get` of archives in one bucket under one prefix; `client` is a boto3 S3 client."""

    def __init__(self, url: str, client: Any, max_bytes: int = 1 << 30) -> None:
        self.bucket, self.prefix = split_url(url)
        self.base_url = f"{SCHEME}{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._client = client
        self._max_bytes = max_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> S3AdapterStore:
        if not settings.adapter_s3_url:
            raise InferenceUnavailable("no S3 adapter store is configured (CDA_ADAPTER_S3_URL)")
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise InferenceUnavailable("CDA_ADAPTER_S3_URL needs boto3: pip install 'cda[s3]'") from None
        secret = settings.adapter_s3_secret_access_key
        client = boto3.client(
            "s3", endpoint_url=settings.adapter_s3_endpoint, region_name=settings.adapter_s3_region,
            aws_access_key_id=settings.adapter_s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            # S3-compatible servers differ in the newer checksum headers; the key's sha256 is checked here anyway
            config=Config(connect_timeout=settings.adapter_registry_timeout_s,
                          read_timeout=settings.adapter_registry_timeout_s, retries={"max_attempts": 3},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))
        return cls(settings.adapter_s3_url, client)

    def key_of(self, sha: str) -> str:
        return f"{self.prefix}/{sha}" if self.prefix else sha

    def uri_of(self, sha: str) -> str:
        return f"{self.base_url}/{sha}"

    def names(self, uri: str) -> str | None:
        """The sha256 `uri` names when it is an object of this bucket and prefix, else None."""
        if not uri.startswith(self.base_url + "/"):
            return None
        sha = uri[len(self.base_url) + 1:]
        return sha if SHA256.match(sha) else None

    def put(self, data: bytes) -> str:
        sha = digest(data)
        try:
            self._client.put_object(Bucket=self.bucket, Key=self.key_of(sha), Body=data,
                                    ContentType="application/octet-stream")
        except Exception as exc:  # botocore's errors: no endpoint, refused credentials, no bucket
            raise InferenceUnavailable(f"the S3 store {self.base_url} did not take {sha}: {exc}") from exc
        return self.uri_of(sha)

    def get(self, uri: str) -> bytes:
        sha = self.names(uri)
        if sha is None:
            raise AdapterInvalid("foreign_uri", f"{uri!r} is not an adapter of the S3 store {self.base_url}")
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self.key_of(sha))
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise AdapterInvalid("missing", f"the S3 store {self.base_url} has no adapter {sha}") from None
            raise InferenceUnavailable(f"the S3 store {self.base_url} is unreachable: {exc}") from exc
        if int(answer.get("ContentLength") or 0) > self._max_bytes:
            answer["Body"].close()
            raise AdapterInvalid("too_large", f"adapter {sha} is larger than {self._max_bytes} bytes")
        data = answer["Body"].read(self._max_bytes + 1)
        if len(data) > self._max_bytes:
            raise AdapterInvalid("too_large", f"adapter {sha} is larger than {self._max_bytes} bytes")
        if digest(data) != sha:
            raise AdapterInvalid("hash_mismatch", f"the object stored as {sha} hashes to {digest(data)}")
        return data

"""S3: where SES's receipt rule stored the raw inbound mail (one object per SES message id)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from emailflow.adapters.clients import s3_client
from emailflow.ports import RelayFault

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3MailStore:
    """``MailStore`` on the inbound bucket: object key = prefix + SES ``mail.messageId``."""

    def __init__(self, bucket: str, prefix: str, client: S3Client | None = None) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._injected = client

    @property
    def _client(self) -> S3Client:
        return self._injected or s3_client()

    def object_key(self, message_id: str) -> str:
        return f"{self._prefix}{message_id}"

    def put_copy(self, name: str, raw: bytes) -> str:
        """Keep a copy under ``<prefix>copies/`` (the raw-mail lifecycle rule expires it with the rest)."""
        key = f"{self._prefix}copies/{name}"
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=raw, ContentType="message/rfc822")
        except (ClientError, BotoCoreError) as exc:
            raise RelayFault("could not store the copy in S3") from exc
        return key

    def download_url(self, key: str, seconds: int) -> str:
        """A presigned GET. Signed with the function's role, so it stops working when the role's session does,
        even before ``seconds`` (docs/outcomes.md, oversize)."""
        return self._client.generate_presigned_url("get_object", Params={"Bucket": self._bucket, "Key": key},
                                                   ExpiresIn=seconds)

    def get_raw(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self.object_key(key))
            return response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise RelayFault("could not read the inbound message from S3") from exc

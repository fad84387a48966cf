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

    def get_raw(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self.object_key(key))
            return response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise RelayFault("could not read the inbound message from S3") from exc

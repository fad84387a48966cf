"""S3: where SES's receipt rule stored the raw inbound mail (one object per SES message id)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from emailflow.adapters.clients import s3_client
from emailflow.ports import RelayFault

if TYPE_CHECKING:
    from datetime import datetime

    from mypy_boto3_s3 import S3Client

    from emailflow.stored import StoredMail


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

    def copy_key(self, name: str) -> str:
        """Where ``put_copy`` keeps the copy called ``name``: under ``<prefix>copies/``."""
        return f"{self._prefix}copies/{name}"

    def put_copy(self, name: str, raw: bytes) -> str:
        """Keep a copy under ``<prefix>copies/`` (the raw-mail lifecycle rule expires it with the rest)."""
        key = self.copy_key(name)
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=raw, ContentType="message/rfc822")
        except (ClientError, BotoCoreError) as exc:
            raise RelayFault("could not store the copy in S3") from exc
        return key

    def download_url(self, key: str, seconds: int) -> str:
        """A presigned GET that makes the browser save the copy as ``message.eml``. Signed with this process's
        credentials: with a role's, it stops working when the role's session does, whatever ``seconds`` says, so
        mails link to the downloads API (``emailflow.downloads``), which calls this per click for a few minutes."""
        try:
            return self._client.generate_presigned_url(
                "get_object", ExpiresIn=seconds,
                Params={"Bucket": self._bucket, "Key": key, "ResponseContentType": "message/rfc822",
                        "ResponseContentDisposition": 'attachment; filename="message.eml"'})
        except BotoCoreError as exc:
            raise RelayFault("could not sign the download link") from exc

    def get_raw(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self.object_key(key))
            return response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise RelayFault("could not read the inbound message from S3") from exc

    def list_stored(self, since: datetime | None = None, until: datetime | None = None) -> list[StoredMail]:
        """Raw messages stored in ``[since, until)``, oldest first (kept copies under ``copies/`` left out).

        S3 lists by key, not by time: this pages through the prefix and filters on ``LastModified``. An operator's
        command (redrive, replay), never on the mail path: ``StoredMail`` is imported here, not by the handlers.
        """
        from emailflow.stored import StoredMail  # noqa: PLC0415 - an operator's command only (see the docstring)

        found: list[StoredMail] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket,
                                                                                 Prefix=self._prefix):
                for item in page.get("Contents", []):
                    name = item["Key"].removeprefix(self._prefix)
                    stored_at = item["LastModified"]
                    if not name or name.startswith("copies/") or "/" in name:
                        continue
                    if (since is None or stored_at >= since) and (until is None or stored_at < until):
                        found.append(StoredMail(name, stored_at, item.get("Size", 0)))
        except (ClientError, BotoCoreError) as exc:
            raise RelayFault("could not list the inbound bucket") from exc
        return sorted(found, key=lambda mail: (mail.stored_at, mail.message_id))

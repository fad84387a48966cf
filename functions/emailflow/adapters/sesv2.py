"""SES v2: sends the rewritten mail raw, under the configuration set whose event destination reports bounces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from emailflow.adapters.clients import sesv2_client
from emailflow.ports import SendFailed, SendRejected

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client

_REJECTED = frozenset({"MessageRejected", "BadRequestException", "MailFromDomainNotVerifiedException"})
"""Errors about this very message: sending it again cannot succeed."""


class SesMailer:
    """``Mailer`` on SESv2 ``SendEmail`` with ``Content.Raw``."""

    def __init__(self, configuration_set: str, client: SESV2Client | None = None) -> None:
        self._configuration_set = configuration_set
        self._injected = client

    @property
    def _client(self) -> SESV2Client:
        return self._injected or sesv2_client()

    def send_raw(self, raw: bytes, *, from_address: str, to_address: str, tags: Mapping[str, str]) -> str:
        """Send ``raw`` to ``to_address`` only (the envelope is explicit: never taken from the To/Cc headers)."""
        try:
            response = self._client.send_email(
                FromEmailAddress=from_address,
                Destination={"ToAddresses": [to_address]},
                Content={"Raw": {"Data": raw}},
                ConfigurationSetName=self._configuration_set,
                EmailTags=[{"Name": name, "Value": value} for name, value in tags.items()],
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _REJECTED:
                raise SendRejected(code) from exc
            raise SendFailed(f"SES answered {code or 'an error'}") from exc
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise SendFailed("SES could not be reached") from exc
        return response["MessageId"]

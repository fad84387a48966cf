"""SES v2: sends the rewritten mail raw, under the configuration set whose event destination reports bounces.

Retries are this adapter's, not botocore's (the client is created with none, ``clients.sesv2_client``): a send may
be repeated only when SES answered that it did not take the mail (throttling, a 5xx) or when no connection was made.
A read time-out or a dropped connection after the request left is ``SendOutcomeUnknown`` and never repeated:
botocore's standard retries would send the mail again (a second copy for every lost answer).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

from emailflow.adapters.clients import sesv2_client
from emailflow.observability import logger
from emailflow.ports import SendFailed, SendOutcomeUnknown, SendRejected

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client

_REJECTED = frozenset({"MessageRejected", "BadRequestException", "MailFromDomainNotVerifiedException"})
"""Errors about this very message: sending it again cannot succeed."""
_THROTTLED = frozenset({"TooManyRequestsException", "ThrottlingException", "Throttling"})
"""Over the account's sending rate (https://docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas-errors.html):
nothing was sent, and the same send a moment later usually goes through. A spent daily quota
(``LimitExceededException``) or paused sending (``SendingPausedException``) is not retried here: it lasts hours, so
the claim is released and the event goes back to Lambda (retries, then the DLQ for a redrive)."""
MAX_ATTEMPTS = 4
BACKOFF_SECONDS = 0.25
"""First back-off ceiling; it doubles per attempt (full jitter), up to ``MAX_BACKOFF_SECONDS``."""
MAX_BACKOFF_SECONDS = 4.0


class SesMailer:
    """``Mailer`` on SESv2 ``SendEmail`` with ``Content.Raw``."""

    def __init__(self, configuration_set: str, client: SESV2Client | None = None, *,
                 max_attempts: int = MAX_ATTEMPTS, sleep: Callable[[float], None] = time.sleep) -> None:
        self._configuration_set = configuration_set
        self._injected = client
        self._max_attempts = max_attempts
        self._sleep = sleep

    @property
    def _client(self) -> SESV2Client:
        return self._injected or sesv2_client()

    def send_raw(self, raw: bytes, *, from_address: str, to_address: str, tags: Mapping[str, str]) -> str:
        """Send ``raw`` to ``to_address`` only (the envelope is explicit: never taken from the To/Cc headers)."""
        attempt = 1
        while True:
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
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if attempt >= self._max_attempts or not (code in _THROTTLED or status >= 500):
                    raise SendFailed(f"SES answered {code or 'an error'}") from exc
            except (EndpointConnectionError, ConnectTimeoutError) as exc:  # no connection: nothing reached SES
                if attempt >= self._max_attempts:
                    raise SendFailed("SES could not be reached") from exc
            except BotoCoreError as exc:
                raise SendOutcomeUnknown("no answer from SES after the request was sent") from exc
            else:
                return response["MessageId"]
            delay = random.uniform(0, min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2 ** (attempt - 1)))  # noqa: S311
            logger.warning("SES send backing off", attempt=attempt, delay=round(delay, 3))
            self._sleep(delay)
            attempt += 1

"""What moto (5.2) does not emulate of the SES v2 reads ``emailflow doctor`` makes, filled in for the tests.

Checked in moto's source (``moto/sesv2/responses.py``, ``moto/ses/models.py``) and by calling it:

- ``GetAccount``, ``CreateConfigurationSetEventDestination`` and ``GetConfigurationSetEventDestinations`` are not
  implemented (``NotImplementedError`` in-process). Here they answer from state this object holds, in the shapes of
  the SES v2 API reference: the account is what the test says it is; event destinations are stored per
  configuration set (which must exist in moto).
- ``GetEmailIdentity`` always says ``VerifiedForSendingStatus: false`` and, for Easy DKIM, ``NOT_STARTED`` with no
  tokens and no ``MailFromAttributes``: SES verifies a domain by finding its DNS records, which moto cannot do.
  ``pending`` and ``verify`` play SES's part: the answer then carries what SES reports for a new Easy DKIM identity
  (``PENDING``, with its tokens) or for one whose records it found (``SUCCESS``).
- ``GetConfigurationSet`` answers ``SendingOptions.SendingEnabled: false`` whatever was created (moto nests the
  request's ``SendingOptions`` dict inside itself). Here it is the stored flag, ``true`` by default as on SES.

``install`` adds these handlers to moto's SES v2 response class through ``monkeypatch`` (undone after the test);
everything else is moto's own. In-process moto only (``mock_aws``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from moto.sesv2.responses import SESV2Response


@dataclass
class SesGaps:
    production_access: bool = True
    sending_enabled: bool = True
    enforcement_status: str = "HEALTHY"
    review_status: str = ""
    identities: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Identity -> the verification attributes SES reports for it (``pending``, ``verify``)."""
    event_destinations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def verify(self, identity: str, dkim_tokens: list[str], mail_from_domain: str) -> None:
        """What SES reports after finding the DKIM CNAMEs and the MAIL FROM MX record."""
        self._report(identity, dkim_tokens, mail_from_domain, found=True)

    def pending(self, identity: str, dkim_tokens: list[str], mail_from_domain: str) -> None:
        """What SES reports for a new Easy DKIM identity whose records it has not found yet."""
        self._report(identity, dkim_tokens, mail_from_domain, found=False)

    def _report(self, identity: str, dkim_tokens: list[str], mail_from_domain: str, *, found: bool) -> None:
        status = "SUCCESS" if found else "PENDING"
        self.identities[identity] = {
            "VerifiedForSendingStatus": found,
            "VerificationStatus": status,
            "DkimAttributes": {"SigningEnabled": True, "Status": status, "Tokens": dkim_tokens,
                               "SigningAttributesOrigin": "AWS_SES", "NextSigningKeyLength": "RSA_2048_BIT",
                               "CurrentSigningKeyLength": "RSA_2048_BIT"},
            "MailFromAttributes": {"MailFromDomain": mail_from_domain, "MailFromDomainStatus": status,
                                   "BehaviorOnMxFailure": "USE_DEFAULT_VALUE"},
        }

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        gaps = self
        original_identity = SESV2Response.get_email_identity
        original_configuration_set = SESV2Response.get_configuration_set

        def _configuration_set_name(response: SESV2Response) -> str:
            # /v2/email/configuration-sets/<name>/event-destinations[/<destination>]
            parts = response.path.split("?")[0].split("/")
            name = parts[parts.index("configuration-sets") + 1]
            response.sesv2_backend.get_configuration_set(name)  # moto's NotFoundException for an unknown set
            return name

        def get_account(self: SESV2Response) -> str:
            account: dict[str, Any] = {
                "ProductionAccessEnabled": gaps.production_access, "SendingEnabled": gaps.sending_enabled,
                "EnforcementStatus": gaps.enforcement_status, "DedicatedIpAutoWarmupEnabled": False,
                "SendQuota": {"Max24HourSend": 50000.0 if gaps.production_access else 200.0,
                              "MaxSendRate": 14.0 if gaps.production_access else 1.0, "SentLast24Hours": 0.0}}
            if gaps.review_status:
                account["Details"] = {"MailType": "TRANSACTIONAL", "WebsiteURL": "https://www.example.com",
                                      "ReviewDetails": {"Status": gaps.review_status, "CaseId": "12345"}}
            return json.dumps(account)

        def create_configuration_set_event_destination(self: SESV2Response) -> str:
            name = _configuration_set_name(self)
            body = json.loads(self.body)
            gaps.event_destinations.setdefault(name, []).append(
                {"Name": body["EventDestinationName"], **body["EventDestination"]})
            return "{}"

        def get_configuration_set_event_destinations(self: SESV2Response) -> str:
            return json.dumps({"EventDestinations": gaps.event_destinations.get(_configuration_set_name(self), [])})

        def get_email_identity(self: SESV2Response) -> str:
            answer = json.loads(original_identity(self))
            answer.update(gaps.identities.get(self._get_param("EmailIdentity"), {}))
            return json.dumps(answer)

        def get_configuration_set(self: SESV2Response) -> str:
            answer = json.loads(original_configuration_set(self))
            stored = self.sesv2_backend.get_configuration_set(self._get_param("ConfigurationSetName")).enabled
            answer["SendingOptions"] = {"SendingEnabled": bool(stored.get("SendingEnabled", True))
                                        if isinstance(stored, dict) else bool(stored)}
            return json.dumps(answer)

        handlers = {"get_account": get_account,
                    "create_configuration_set_event_destination": create_configuration_set_event_destination,
                    "get_configuration_set_event_destinations": get_configuration_set_event_destinations,
                    "get_email_identity": get_email_identity, "get_configuration_set": get_configuration_set}
        for name, handler in handlers.items():
            monkeypatch.setattr(SESV2Response, name, handler, raising=False)

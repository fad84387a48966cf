"""The AWS reads of ``emailflow doctor`` (``emailflow.doctor.DeploymentProbe``): SES receiving (v1: receipt rules
exist only there), SES v2 (identity, account, configuration set), Lambda and SQS. Read-only; operator use only,
never on a Lambda code path.

Each answer becomes the doctor's plain data; "does not exist" is ``None``, and any other SDK error a ``ProbeError``
that names the error code, so the report says "AccessDenied" rather than crashing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

# ``_client`` is the one per-process client cache (``reset_clients`` clears it). SES v1 and Lambda get no getter of
# their own in ``clients``: that module is shared with the Lambda code path, and nothing there needs them (SQS has one
# for `emailflow redrive`).
from emailflow.adapters.clients import _client, sesv2_client, sqs_client
from emailflow.doctor import (
    ConfigurationSet,
    EmailIdentity,
    EventDestination,
    LambdaFunction,
    ProbeError,
    QueueDepth,
    ReceiptRule,
    RuleAction,
    RuleSet,
    SesAccount,
)

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_ses import SESClient
    from mypy_boto3_ses.type_defs import ReceiptRuleOutputTypeDef
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sqs import SQSClient

_NOT_FOUND = frozenset({"RuleSetDoesNotExist", "RuleSetDoesNotExistException", "ResourceNotFoundException",
                        "NotFoundException", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_T = TypeVar("_T")


def _found(read: Callable[[], _T]) -> _T | None:
    """``read()``; None when AWS says the thing does not exist; ``ProbeError`` for any other failure."""
    try:
        return read()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _NOT_FOUND:
            return None
        raise ProbeError(f"{code or 'error'}: {error.get('Message', '') or exc}") from exc
    except BotoCoreError as exc:
        raise ProbeError(str(exc)) from exc


def _rule(rule: ReceiptRuleOutputTypeDef) -> ReceiptRule:
    actions = []
    for action in rule.get("Actions", []):
        for kind, spec in action.items():
            values: Mapping[str, Any] = spec if isinstance(spec, Mapping) else {}
            actions.append(RuleAction(kind=kind, bucket=str(values.get("BucketName", "")),
                                      prefix=str(values.get("ObjectKeyPrefix", "")),
                                      function_arn=str(values.get("FunctionArn", "")),
                                      invocation_type=str(values.get("InvocationType", ""))))
    return ReceiptRule(name=rule["Name"], enabled=bool(rule.get("Enabled", False)),
                       recipients=tuple(rule.get("Recipients", [])), actions=tuple(actions),
                       scan_enabled=bool(rule.get("ScanEnabled", False)), tls_policy=rule.get("TlsPolicy", "Optional"))


class AwsDeploymentProbe:
    """``DeploymentProbe`` on boto3; each client may be injected (tests), else created on first use."""

    def __init__(self, *, ses: SESClient | None = None, sesv2: SESV2Client | None = None,
                 lambda_client: LambdaClient | None = None, sqs: SQSClient | None = None) -> None:
        self._ses = ses
        self._sesv2 = sesv2
        self._lambda = lambda_client
        self._sqs = sqs

    @property
    def ses(self) -> SESClient:
        client: SESClient = self._ses or _client("ses")
        return client

    @property
    def sesv2(self) -> SESV2Client:
        return self._sesv2 or sesv2_client()

    @property
    def lambda_client(self) -> LambdaClient:
        client: LambdaClient = self._lambda or _client("lambda")
        return client

    @property
    def sqs(self) -> SQSClient:
        return self._sqs or sqs_client()

    @property
    def region(self) -> str:
        """The region every read goes to (the environment's or the AWS config's, as for any AWS CLI command)."""
        return self.sesv2.meta.region_name

    def active_rule_set(self) -> RuleSet | None:
        response = _found(self.ses.describe_active_receipt_rule_set)
        if response is None or "Metadata" not in response:  # no set active: an empty answer
            return None
        return RuleSet(name=response["Metadata"].get("Name", ""),
                       rules=tuple(_rule(rule) for rule in response.get("Rules", [])))

    def rule_set(self, name: str) -> RuleSet | None:
        response = _found(lambda: self.ses.describe_receipt_rule_set(RuleSetName=name))
        if response is None:
            return None
        return RuleSet(name=name, rules=tuple(_rule(rule) for rule in response.get("Rules", [])))

    def function(self, arn: str) -> LambdaFunction | None:
        response = _found(lambda: self.lambda_client.get_function_configuration(FunctionName=arn))
        if response is None:
            return None
        return LambdaFunction(arn=response.get("FunctionArn", arn), state=response.get("State", ""),
                              environment=dict(response.get("Environment", {}).get("Variables", {})))

    def email_identity(self, name: str) -> EmailIdentity | None:
        response = _found(lambda: self.sesv2.get_email_identity(EmailIdentity=name))
        if response is None:
            return None
        dkim = response.get("DkimAttributes", {})
        mail_from = response.get("MailFromAttributes", {})
        return EmailIdentity(name=name, verified_for_sending=bool(response.get("VerifiedForSendingStatus", False)),
                             dkim_signing_enabled=bool(dkim.get("SigningEnabled", False)),
                             dkim_status=str(dkim.get("Status", "")), dkim_tokens=tuple(dkim.get("Tokens", [])),
                             mail_from_domain=str(mail_from.get("MailFromDomain", "")),
                             mail_from_status=str(mail_from.get("MailFromDomainStatus", "")))

    def account(self) -> SesAccount:
        response = _found(self.sesv2.get_account)
        if response is None:
            raise ProbeError("GetAccount answered not found")
        review = response.get("Details", {}).get("ReviewDetails", {})
        return SesAccount(production_access=bool(response.get("ProductionAccessEnabled", False)),
                          sending_enabled=bool(response.get("SendingEnabled", False)),
                          enforcement_status=str(response.get("EnforcementStatus", "")),
                          review_status=str(review.get("Status", "")))

    def configuration_set(self, name: str) -> ConfigurationSet | None:
        response = _found(lambda: self.sesv2.get_configuration_set(ConfigurationSetName=name))
        if response is None:
            return None
        answer = _found(lambda: self.sesv2.get_configuration_set_event_destinations(ConfigurationSetName=name))
        destinations = answer.get("EventDestinations", []) if answer is not None else []
        return ConfigurationSet(
            name=name,
            # SES's default for a set created without SendingOptions is enabled.
            sending_enabled=bool(response.get("SendingOptions", {}).get("SendingEnabled", True)),
            event_destinations=tuple(
                EventDestination(name=item["Name"], enabled=bool(item.get("Enabled", False)),
                                 event_types=frozenset(item.get("MatchingEventTypes", [])),
                                 sns_topic_arn=item.get("SnsDestination", {}).get("TopicArn", ""))
                for item in destinations))

    def queue_depth(self, url: str) -> QueueDepth | None:
        response = _found(lambda: self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]))
        if response is None:
            return None
        attributes = response.get("Attributes", {})
        return QueueDepth(visible=int(attributes.get("ApproximateNumberOfMessages", "0")),
                          in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")))

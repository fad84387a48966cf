"""Settings are read once from the environment and fail loudly at cold start when wiring is missing."""

from __future__ import annotations

import pytest

from emailflow.config import ConfigurationError, settings_from_environment

BASE = {
    "EMAILFLOW_DOMAIN": "Relay.Example.",
    "EMAILFLOW_TABLE": "table",
    "EMAILFLOW_INBOUND_BUCKET": "bucket",
    "EMAILFLOW_CONFIGURATION_SET": "configset",
    "EMAILFLOW_CODE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:code",
}


def test_settings_normalise_domain_and_default_optional_values() -> None:
    # Given only the required variables, When read
    settings = settings_from_environment(BASE)

    # Then the domain is normalised and optional settings take documented defaults
    assert settings.domain == "relay.example"
    assert (settings.service_prefix, settings.user_prefix) == ("service", "user")
    assert settings.brand == "relay.example"
    assert settings.inbound_prefix == "inbound/"


@pytest.mark.parametrize("missing", sorted(BASE))
def test_settings_missing_required_variable_names_it(missing: str) -> None:
    # Given an environment without one required variable
    environ = {name: value for name, value in BASE.items() if name != missing}

    # When read, Then the error names the variable
    with pytest.raises(ConfigurationError, match=missing):
        settings_from_environment(environ)


@pytest.mark.parametrize(("name", "value"), [
    ("EMAILFLOW_DOMAIN", "not a domain"),
    ("EMAILFLOW_SERVICE_PREFIX", "Service-"),
    ("EMAILFLOW_USER_PREFIX", "service"),
    ("EMAILFLOW_SENT_RECORD_DAYS", "ninety"),
    ("EMAILFLOW_DELIVERY_RECORD_DAYS", "0"),
])
def test_settings_malformed_value_is_rejected(name: str, value: str) -> None:
    # Given a malformed value, When read, Then configuration fails
    with pytest.raises(ConfigurationError):
        settings_from_environment({**BASE, name: value})


def test_settings_ses_message_id_domain_follows_region() -> None:
    # Given two regions, Then SES's Message-ID domain follows the documented pattern
    assert settings_from_environment({**BASE, "AWS_REGION": "us-east-1"}).ses_message_id_domain == \
        "email.amazonses.com"
    assert settings_from_environment({**BASE, "AWS_REGION": "eu-west-1"}).ses_message_id_domain == \
        "eu-west-1.amazonses.com"

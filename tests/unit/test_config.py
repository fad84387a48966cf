"""Settings are read once from the environment and fail loudly at cold start when wiring is missing."""

from __future__ import annotations

import os

import pytest

from emailflow.config import (
    ConfigurationError,
    local_endpoint,
    set_process_environment,
    settings_from_environment,
    settings_from_stack_outputs,
    use_local_emulator_defaults,
)

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


OUTPUTS = {
    "DomainName": "relay.example",
    "BrandName": "Holiday Flats",
    "TableName": "table",
    "InboundBucketName": "bucket",
    "InboundPrefix": "inbound/",
    "ConfigurationSetName": "configset",
    "CodeSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:code",
    "MXRecord": "relay.example MX 10 inbound-smtp.us-east-1.amazonaws.com",
}


def test_settings_from_stack_outputs_match_the_environment_the_function_gets() -> None:
    # Given a stack's outputs and the environment the template gives the function for the same deployment
    environ = {"EMAILFLOW_DOMAIN": "relay.example", "EMAILFLOW_BRAND": "Holiday Flats", "EMAILFLOW_TABLE": "table",
               "EMAILFLOW_INBOUND_BUCKET": "bucket", "EMAILFLOW_INBOUND_PREFIX": "inbound/",
               "EMAILFLOW_CONFIGURATION_SET": "configset", "EMAILFLOW_CODE_SECRET_ARN": OUTPUTS["CodeSecretArn"],
               "AWS_REGION": "eu-west-1"}

    # When settings are built from the outputs, Then they are the function's settings
    assert settings_from_stack_outputs(OUTPUTS, "eu-west-1") == settings_from_environment(environ)


@pytest.mark.parametrize("missing", ["DomainName", "TableName", "CodeSecretArn"])
def test_settings_from_stack_outputs_name_a_missing_output(missing: str) -> None:
    # Given outputs without one the settings need
    outputs = {key: value for key, value in OUTPUTS.items() if key != missing}

    # When settings are built, Then the error names the output (not an environment variable)
    with pytest.raises(ConfigurationError, match=missing):
        settings_from_stack_outputs(outputs)


def test_set_process_environment_restores_exactly_what_was_there(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an environment with one variable to replace, one to keep, one to remove and one absent
    monkeypatch.setenv("EMAILFLOW_TEST_REPLACED", "before")
    monkeypatch.setenv("EMAILFLOW_TEST_KEPT", "developer's")
    monkeypatch.setenv("EMAILFLOW_TEST_REMOVED", "profile")
    monkeypatch.delenv("EMAILFLOW_TEST_ADDED", raising=False)

    # When values are set, keeping one existing value and removing another
    restore = set_process_environment(
        {"EMAILFLOW_TEST_REPLACED": "after", "EMAILFLOW_TEST_KEPT": "template's", "EMAILFLOW_TEST_ADDED": "new"},
        keep_existing=["EMAILFLOW_TEST_KEPT"], remove=["EMAILFLOW_TEST_REMOVED"])

    # Then the environment has them, and restoring puts back the state before
    assert (os.environ["EMAILFLOW_TEST_REPLACED"], os.environ["EMAILFLOW_TEST_KEPT"],
            os.environ["EMAILFLOW_TEST_ADDED"]) == ("after", "developer's", "new")
    assert "EMAILFLOW_TEST_REMOVED" not in os.environ
    restore()
    assert (os.environ["EMAILFLOW_TEST_REPLACED"], os.environ["EMAILFLOW_TEST_KEPT"],
            os.environ["EMAILFLOW_TEST_REMOVED"]) == ("before", "developer's", "profile")
    assert "EMAILFLOW_TEST_ADDED" not in os.environ


@pytest.mark.parametrize(("url", "local"), [
    ("http://127.0.0.1:4566", True), ("http://localhost:5000", True), ("http://[::1]:5000", True),
    ("https://dynamodb.eu-west-1.amazonaws.com", False), ("", False),
])
def test_local_endpoint_recognises_an_emulator_on_this_machine(monkeypatch: pytest.MonkeyPatch, url: str,
                                                               local: bool) -> None:
    # Given AWS_ENDPOINT_URL, When checked, Then only a loopback endpoint counts as local mode
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    assert (local_endpoint() == url) is local


def test_use_local_emulator_defaults_fills_only_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a local endpoint, a region of the developer's, and no credentials in the environment
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    # When the defaults are applied
    use_local_emulator_defaults()

    # Then dummy credentials are set and the region is left alone
    assert (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_DEFAULT_REGION"]) == ("local", "eu-west-1")

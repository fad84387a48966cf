"""The SESv2 request body built in place (``emailflow.adapters.sesv2``): the same JSON botocore would send, with the
raw message base64-encoded from its pieces."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emailflow.adapters import sesv2
from emailflow.adapters.sesv2 import request_body

SERIALISED = json.dumps({"FromEmailAddress": "user-abc@relay.example", "Destination": {"ToAddresses": ["o@x.example"]},
                         "Content": {"Raw": {"Data": ""}}, "ConfigurationSetName": "set",
                         "EmailTags": [{"Name": "direction", "Value": "to_service"}]}).encode()


def _decoded(body: bytearray) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(body)
    return document


def test_request_body_carries_every_field_and_the_message_base64_encoded() -> None:
    # Given botocore's serialised request with the empty placeholder, and a message
    raw = b"From: a@b.example\r\n\r\nbody\r\n"

    # When the body is built
    body = request_body(SERIALISED, raw)

    # Then it is the same document with the message as Data
    document = _decoded(body)
    assert base64.b64decode(document.pop("Content")["Raw"]["Data"]) == raw
    expected = json.loads(SERIALISED)
    del expected["Content"]
    assert document == expected


@pytest.mark.parametrize("header_length", [0, 1, 2, 3, 4, 5])
def test_request_body_encodes_pieces_across_every_3_byte_boundary(header_length: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Given pieces whose lengths leave every remainder modulo 3, and chunks of 6 bytes
    monkeypatch.setattr(sesv2, "_CHUNK", 6)
    pieces = (b"H" * header_length, memoryview(bytes(range(256)) * 3)[7:], b"", b"x", b"yz")

    # When the body is built
    document = _decoded(request_body(SERIALISED, pieces))

    # Then the decoded message is the pieces back to back
    assert base64.b64decode(document["Content"]["Raw"]["Data"]) == b"".join(pieces)


@given(st.lists(st.binary(max_size=40), max_size=6), st.integers(min_value=1, max_value=5))
def test_request_body_base64_equals_the_standard_encoding_of_the_joined_pieces(pieces: list[bytes],
                                                                             chunks_of: int) -> None:
    # Given any pieces and any chunk size that is a multiple of 3
    original = sesv2._CHUNK
    sesv2._CHUNK = 3 * chunks_of
    try:
        # When the body is built
        document = _decoded(request_body(SERIALISED, tuple(pieces)))
    finally:
        sesv2._CHUNK = original

    # Then Data is exactly the standard base64 of the joined pieces
    assert document["Content"]["Raw"]["Data"] == base64.b64encode(b"".join(pieces)).decode("ascii")


def test_request_body_refuses_a_request_without_the_empty_placeholder() -> None:
    # Given a serialised request that already carries data
    serialised = json.dumps({"Content": {"Raw": {"Data": "AAAA"}}}).encode()

    # When / Then the body is not built over it
    with pytest.raises(ValueError, match="placeholder"):
        request_body(serialised, b"x")


@dataclass
class _Request:
    data: bytes | bytearray
    context: dict[str, Any] = field(default_factory=dict)


def test_insert_raw_message_reuses_the_body_on_a_retry() -> None:
    # Given a send in progress and botocore's request for it
    token = sesv2._raw_message.set((b"From: a@b.example\r\n\r\n", memoryview(b"body")))
    try:
        first = _Request(SERIALISED)
        sesv2._insert_raw_message(first)

        # When botocore signs a retry: a new request from the same serialised body and the same context
        retry = _Request(SERIALISED, first.context)
        sesv2._insert_raw_message(retry)
    finally:
        sesv2._raw_message.reset(token)

    # Then the retry carries the very same body object (built once)
    assert retry.data is first.data
    data = _decoded(bytearray(retry.data))["Content"]["Raw"]["Data"]
    assert base64.b64decode(data) == b"From: a@b.example\r\n\r\nbody"


def test_insert_raw_message_leaves_other_sends_alone() -> None:
    # Given no send_raw call in progress
    request = _Request(SERIALISED)

    # When botocore signs a SendEmail made some other way
    sesv2._insert_raw_message(request)

    # Then its body is botocore's
    assert request.data == SERIALISED

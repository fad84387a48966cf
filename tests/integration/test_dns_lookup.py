"""The dnspython resolver against a DNS server on 127.0.0.1: real queries and answers, never a real name server."""

from __future__ import annotations

import pytest

from emailflow.adapters.dns_lookup import DnsPythonResolver
from emailflow.doctor import DnsLookupError
from tests.support.dns import Zone, loopback_dns

DOMAIN = "relay.example.com"
LONG_TXT = "v=spf1 " + " ".join(f"ip4:192.0.2.{number}" for number in range(40)) + " include:amazonses.com ~all"
ZONE: Zone = {
    (DOMAIN, "MX"): ["10 inbound-smtp.eu-west-1.amazonaws.com", "20 backup.example.net"],
    (f"tok1._domainkey.{DOMAIN}", "CNAME"): ["tok1.dkim.amazonses.com"],
    (f"bounce.{DOMAIN}", "TXT"): [LONG_TXT, "google-site-verification=abc"],
}


def test_dns_lookup_reads_mx_cname_and_txt_as_the_port_documents() -> None:
    # Given a server holding an MX pair, a CNAME and a TXT value longer than one character-string
    with loopback_dns(ZONE) as server:
        resolver = DnsPythonResolver([server.address], timeout=2)

        # When each is looked up (names in any case, with or without the final dot)
        mx = resolver.lookup(DOMAIN.upper(), "MX")
        cname = resolver.lookup(f"tok1._domainkey.{DOMAIN}.", "CNAME")
        txt = resolver.lookup(f"bounce.{DOMAIN}", "TXT")

    # Then the data comes back as "preference host", "host" and the joined text, final dots dropped
    assert len(LONG_TXT) > 255
    assert sorted(mx) == ["10 inbound-smtp.eu-west-1.amazonaws.com", "20 backup.example.net"]
    assert cname == ["tok1.dkim.amazonses.com"]
    assert sorted(txt) == sorted([LONG_TXT, "google-site-verification=abc"])


def test_dns_lookup_missing_name_or_type_is_an_empty_answer() -> None:
    # Given a server that knows the domain (MX only), When asked for an unknown name and for a missing type
    with loopback_dns(ZONE) as server:
        resolver = DnsPythonResolver([server.address], timeout=2)
        nxdomain = resolver.lookup(f"nothing-here.{DOMAIN}", "TXT")
        nodata = resolver.lookup(DOMAIN, "TXT")

    # Then both are answers, empty; the server saw the absolute names, no search-list suffix
    assert (nxdomain, nodata) == ([], [])
    assert server.queries == [(f"nothing-here.{DOMAIN}", "TXT"), (DOMAIN, "TXT")]


def test_dns_lookup_server_that_never_answers_raises_lookup_error() -> None:
    # Given a server that drops every query, When looked up with a short lifetime
    with loopback_dns(ZONE, mute=True) as server:
        resolver = DnsPythonResolver([server.address], timeout=0.5)
        with pytest.raises(DnsLookupError) as raised:
            resolver.lookup(DOMAIN, "MX")

    # Then it gives up on the lifetime it was given (dnspython's reason says so), after asking the server; how fast
    # is not a test's business (no wall-clock assertion: machines are noisy)
    assert "lifetime expired" in str(raised.value) or "timed out" in str(raised.value)
    assert (DOMAIN, "MX") in server.queries

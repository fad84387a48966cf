"""DNS for the doctor's tests, which must never reach a real name server (this machine has none it may use).

A ``Zone`` holds records in the form ``emailflow.doctor.Resolver`` returns them (MX ``"10 host"``, CNAME ``"host"``,
TXT unquoted). ``FakeResolver`` answers from one in memory (unit tests); ``LoopbackDnsServer`` serves one over UDP on
127.0.0.1, so that the real dnspython resolver and the CLI's ``--nameserver`` are tested end to end.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from emailflow.doctor import DnsLookupError

Zone = dict[tuple[str, str], list[str]]
"""``(name, type) -> record data``; names lower case, without the final dot."""


def good_zone(domain: str, region: str, dkim_tokens: Sequence[str], mail_from: str = "bounce") -> Zone:
    """Every record the stack's outputs ask for, as they should be, and a DMARC record."""
    zone: Zone = {
        (domain, "MX"): [f"10 inbound-smtp.{region}.amazonaws.com"],
        (f"{mail_from}.{domain}", "MX"): [f"10 feedback-smtp.{region}.amazonses.com"],
        (f"{mail_from}.{domain}", "TXT"): ["v=spf1 include:amazonses.com ~all"],
        (f"_dmarc.{domain}", "TXT"): ["v=DMARC1; p=none; rua=mailto:dmarc@example.com"],
    }
    for token in dkim_tokens:
        zone[(f"{token}._domainkey.{domain}", "CNAME")] = [f"{token}.dkim.amazonses.com"]
    return zone


@dataclass
class FakeResolver:
    """``Resolver`` in memory; ``failing`` names (any type) raise ``DnsLookupError`` as a time-out would."""

    zone: Zone
    failing: set[str] = field(default_factory=set)
    asked: list[tuple[str, str]] = field(default_factory=list)

    def lookup(self, name: str, rtype: str) -> list[str]:
        self.asked.append((name, rtype))
        if name in self.failing:
            raise DnsLookupError("The DNS operation timed out.")
        return list(self.zone.get((name.lower().rstrip("."), rtype), []))


def _presentation(rtype: str, value: str) -> str:
    if rtype == "MX":
        preference, host = value.split()
        return f"{preference} {host}."
    if rtype == "CNAME":
        return f"{value}."
    if rtype == "TXT":
        # Over 255 bytes a TXT value is several character-strings; the resolver joins them again.
        chunks = [value[index:index + 255] for index in range(0, len(value), 255)] or [""]
        return " ".join('"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in chunks)
    return value


class LoopbackDnsServer:
    """An authoritative-only DNS server on 127.0.0.1 (UDP) for ``zone``: NXDOMAIN for unknown names, an empty
    answer for a known name without the asked type. ``mute`` drops every query (a server that never answers)."""

    def __init__(self, zone: Mapping[tuple[str, str], Sequence[str]], *, mute: bool = False) -> None:
        self.zone = zone
        self.mute = mute
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="loopback-dns", daemon=True)
        self.queries: list[tuple[str, str]] = []

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, client = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            rtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rtype))
            if self.mute:
                continue
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            if not any(known == name for known, _ in self.zone):
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif values := self.zone.get((name, rtype)):
                response.answer.append(dns.rrset.from_text_list(
                    question.name, 300, "IN", rtype, [_presentation(rtype, value) for value in values]))
            self._socket.sendto(response.to_wire(), client)

    def __enter__(self) -> LoopbackDnsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


@contextmanager
def loopback_dns(zone: Mapping[tuple[str, str], Sequence[str]], *, mute: bool = False) -> Iterator[LoopbackDnsServer]:
    with LoopbackDnsServer(zone, mute=mute) as server:
        yield server

"""DNS lookups for ``emailflow doctor`` (the ``emailflow.doctor.Resolver`` port), on dnspython.

Why dnspython and not the standard library: the stdlib resolves host addresses only (``socket.getaddrinfo``, A and
AAAA through the system resolver). MX, TXT and CNAME need a DNS client: the wire format with name compression,
a TCP retry when a UDP answer is truncated (long TXT records), reading ``/etc/resolv.conf``, time-outs across
several servers. dnspython is the usual one: pure Python, typed, no dependencies of its own. The operator CLI alone
uses it (the ``cli`` extra): it is not in the Lambda artefact (``requirements/runtime.txt``).

``nameservers`` sends every query to the given servers instead of the system's: an operator can ask the domain's
authoritative server (what SES will see once caches expire) or a public resolver, and tests a server on loopback.
"""

from __future__ import annotations

from collections.abc import Sequence

import dns.exception
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.TXT
import dns.resolver

from emailflow.doctor import DnsLookupError

DEFAULT_TIMEOUT_SECONDS = 5.0


def _text(rdata: dns.rdata.Rdata) -> str:
    """Record data as ``emailflow.doctor.Resolver`` documents it. Host names in lower case: DNS names are
    case-insensitive, and name compression may even copy the question's case into an answer's host."""
    if isinstance(rdata, dns.rdtypes.ANY.MX.MX):
        return f"{rdata.preference} {rdata.exchange.to_text(omit_final_dot=True).lower()}"
    if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT):  # one value, split into character-strings of <= 255 bytes
        return b"".join(rdata.strings).decode("utf-8", "replace")
    if isinstance(rdata, dns.rdtypes.ANY.CNAME.CNAME):
        return rdata.target.to_text(omit_final_dot=True).lower()
    return rdata.to_text()


class DnsPythonResolver:
    """``Resolver`` on dnspython: the system's name servers, or ``nameservers`` (``(address, port)`` pairs)."""

    def __init__(self, nameservers: Sequence[tuple[str, int]] = (),
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._nameservers = tuple(nameservers)
        self._timeout = timeout
        self._resolver: dns.resolver.Resolver | None = None

    def _get(self) -> dns.resolver.Resolver:
        if self._resolver is None:
            if self._nameservers:
                resolver = dns.resolver.Resolver(configure=False)
                resolver.nameservers = [dns.nameserver.Do53Nameserver(address, port)
                                        for address, port in self._nameservers]
            else:
                try:
                    resolver = dns.resolver.Resolver()
                except (dns.exception.DNSException, OSError) as exc:
                    raise DnsLookupError(f"no name server configured on this machine ({exc})") from exc
            resolver.lifetime = self._timeout
            self._resolver = resolver
        return self._resolver

    def lookup(self, name: str, rtype: str) -> list[str]:
        resolver = self._get()
        try:
            # Absolute name and no search list: "relay.example.com" must never become "relay.example.com.corp".
            answer = resolver.resolve(dns.name.from_text(name), rtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        except dns.exception.DNSException as exc:  # time-out, SERVFAIL or REFUSED from every server, a bad name
            raise DnsLookupError(str(exc) or type(exc).__name__) from exc
        if answer.rrset is None:  # the name exists, without records of this type
            return []
        return [_text(rdata) for rdata in answer.rrset]

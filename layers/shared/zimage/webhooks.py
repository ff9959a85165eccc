"""Webhooks: which URLs may receive them, and delivering one, signed as Standard Webhooks says.

A URL is checked twice: at submit, and again at delivery after resolving its host, and the
request then goes to the very address that was checked. A host that resolved to a public address
at submit and to 169.254.169.254 at delivery (DNS rebinding) is refused, not called.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import urlsplit

import urllib3

from zimage.errors import InvalidRequest
from zimage.tracing import tracer

Resolver = Callable[[str, int], list[str]]
MAX_ANSWER_BYTES = 64 * 1024


class RefusedWebhookUrl(ValueError):
    """The URL is not one the service will call: the message says why."""


class HostDoesNotResolve(RefusedWebhookUrl):
    """No address for the host right now: refused at submit, retried at delivery."""


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable


class WebhookTarget(NamedTuple):
    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent on the request line


def resolve_host(host: str, port: int) -> list[str]:
    """The host's addresses, IPv4 first: a Lambda outside a VPC has no IPv6 route."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ordered = sorted(infos, key=lambda info: info[0] != socket.AF_INET)
    return list(dict.fromkeys(info[4][0] for info in ordered))


def parse_target(url: str, *, allow_loopback: bool) -> WebhookTarget:
    """Check the URL's shape: https (or http to loopback where allowed), a host, no credentials."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedWebhookUrl(f"webhook_url is not a valid URL: {exc}") from None
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise RefusedWebhookUrl("webhook_url needs a host")
    if parts.username or parts.password:
        raise RefusedWebhookUrl("webhook_url must not carry credentials")
    loopback_http = allow_loopback and parts.scheme == "http" and _names_loopback(host)
    if parts.scheme != "https" and not loopback_http:
        raise RefusedWebhookUrl("webhook_url must be an https URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookTarget(
        url=url, scheme=parts.scheme, host=host, port=port or (443 if parts.scheme == "https" else 80), path=path
    )


def refusal_reason(address: str, *, allow_loopback: bool) -> str | None:
    """Why an address must not be called, or None if it is a public one."""
    ip = _ipv4_inside(ipaddress.ip_address(address.split("%")[0]))
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip in _CGNAT:
        return "a carrier-grade NAT address"
    if ip in _LOCAL_NAT64:
        return "a local-use NAT64 address"
    if ip in _PROTOCOL_ASSIGNMENTS:
        return "a special-purpose address (some clouds serve metadata there)"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "an address that is not public"
    return None


_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# 192.0.0.0/24 as a whole: Python's own tables differ between versions here, and 192.0.0.192 is
# a cloud metadata address.
_PROTOCOL_ASSIGNMENTS = ipaddress.ip_network("192.0.0.0/24")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the IPv4 address is the last 32 bits
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # a network's own translator: never public


def _ipv4_inside(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo's client, NAT64), which is
    where a packet to it ends up; the address itself otherwise."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def checked_addresses(target: WebhookTarget, *, allow_loopback: bool, resolve: Resolver = resolve_host) -> list[str]:
    """The host's addresses, all of them public (or loopback where allowed); refuses otherwise."""
    try:
        addresses = resolve(target.host, target.port)
    except OSError:
        raise HostDoesNotResolve(f"webhook_url host {target.host!r} does not resolve") from None
    if not addresses:
        raise HostDoesNotResolve(f"webhook_url host {target.host!r} does not resolve")
    for address in addresses:
        reason = refusal_reason(address, allow_loopback=allow_loopback)
        if reason:
            raise RefusedWebhookUrl(f"webhook_url host {target.host!r} resolves to {reason}")
    return addresses


def check_webhook_url(url: str, *, allow_loopback: bool, resolve: Resolver = resolve_host) -> str:
    """At submit: the caller's URL, or a 400 that says what is wrong with it."""
    try:
        checked_addresses(
            parse_target(url, allow_loopback=allow_loopback), allow_loopback=allow_loopback, resolve=resolve
        )
    except RefusedWebhookUrl as exc:
        raise InvalidRequest(str(exc), field="webhook_url") from None
    return url


def message_id(job_id: str) -> str:
    """One message per job (it ends once), so retries of it keep the same webhook-id."""
    return f"msg_{job_id}"


@tracer.capture_method(capture_response=False)
def deliver(
    url: str,
    *,
    msg_id: str,
    payload: dict,
    signer: object,
    allow_loopback: bool,
    timeout_seconds: float,
    resolve: Resolver = resolve_host,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """POST one signed delivery; returns the receiver's 2xx status or raises DeliveryFailed."""
    try:
        target = parse_target(url, allow_loopback=allow_loopback)
        addresses = checked_addresses(target, allow_loopback=allow_loopback, resolve=resolve)
    except HostDoesNotResolve as exc:  # DNS may come back: a retry will tell
        raise DeliveryFailed(str(exc)) from None
    except RefusedWebhookUrl as exc:
        raise DeliveryFailed(str(exc), retryable=False) from None
    body = json.dumps(payload, separators=(",", ":"))
    timestamp = now()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "zimage-webhooks/1",
        "Host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signer.sign(msg_id, timestamp, body),
    }
    answer = None
    for address in addresses:  # each one checked above; the next is tried if one cannot connect
        pool = _pool_for(target, address, timeout_seconds)
        try:
            answer = pool.urlopen(
                "POST",
                target.path,
                body=body.encode(),
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
            break
        except urllib3.exceptions.NewConnectionError:
            continue
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryFailed(f"the receiver did not answer: {type(exc).__name__}") from None
        finally:
            pool.close()
    if answer is None:
        raise DeliveryFailed("the receiver could not be reached at any of its addresses")
    try:
        answer.read(MAX_ANSWER_BYTES)  # a receiver's answer is not read further than this
    except urllib3.exceptions.HTTPError:
        pass
    finally:
        answer.release_conn()
    if 200 <= answer.status < 300:
        return answer.status
    # 410 Gone: the receiver asks us to stop; anything else may heal.
    raise DeliveryFailed(
        f"the receiver answered HTTP {answer.status}", status=answer.status, retryable=answer.status != 410
    )


def _pool_for(target: WebhookTarget, address: str, timeout_seconds: float) -> urllib3.HTTPConnectionPool:
    """A pool that connects to the checked address, while TLS still verifies the host name."""
    timeout = urllib3.Timeout(connect=min(3.0, timeout_seconds), read=timeout_seconds)
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            maxsize=1,
        )
    return urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, maxsize=1)


def _names_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


MAX_RETRY_DELAY_SECONDS = 900  # SQS allows up to 12 h of invisibility; 15 min keeps receivers current


def retry_delay_seconds(attempt: int, base_seconds: int) -> int:
    """Exponential back-off after the given failed attempt (1, 2, ...): base, 2*base, 4*base..."""
    return min(MAX_RETRY_DELAY_SECONDS, base_seconds * 2 ** max(0, attempt - 1))

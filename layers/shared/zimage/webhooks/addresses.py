"""Webhooks: which URLs may receive them, and delivering one, signed as Standard Webhooks says.

A URL is checked twice: at submit, and again at delivery after resolving its host, and the
request then goes to the very address that was checked. A host that resolved to a public address
at submit and to 169.254.169.254 at delivery (DNS rebinding) is refused, not called."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import urlsplit

from zimage.errors import InvalidRequest

Resolver = Callable[[str, int], list[str]]


class RefusedWebhookUrl(ValueError):
    """The URL is not one the service will call: the message says why."""


class HostDoesNotResolve(RefusedWebhookUrl):
    """No address for the host right now: refused at submit, retried at delivery."""


class WebhookTarget(NamedTuple):
    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent on the request line


def resolve_host(host: str, port: int) -> list[str]:
    """The host's addresses, IPv4 first: a Lambda outside a VPC has no IPv6 route. An address
    written as one is its own answer; any other spelling goes through the resolver, which
    normalises forms such as 2130706433 to the address they mean."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
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


def _names_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

"""Which webhook URLs the service calls, checked with a scripted resolver (no DNS, no sockets)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from local.template import load_template
from zimage.errors import InvalidRequest
from zimage.settings import Settings
from zimage.webhooks.addresses import check_webhook_url, parse_target, refusal_reason
from zimage.webhooks.delivery import DeliveryFailed, deliver, message_id, retry_delay_seconds


def resolving_to(*addresses: str):
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.10", "private"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "private"),
        ("100.64.0.1", "carrier-grade"),
        ("100.127.255.254", "carrier-grade"),
        ("0.0.0.0", "private"),
        ("224.0.0.1", "not public"),
        ("240.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("192.0.2.10", "private"),
        ("192.0.0.192", "special-purpose"),
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 around 169.254.169.254
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 around it
        ("64:ff9b:1:a9fe:a9:fe00:808:808", "NAT64"),  # local-use NAT64: the IPv4 part is not at the end
        ("2001:0:4136:e378:8000:63bf:5601:fefe", "link-local"),  # Teredo, client 169.254.1.1
        ("::ffff:169.254.169.254", "link-local"),
    ],
)
def test_every_non_public_address_class_is_refused(address, reason):
    assert reason in refusal_reason(address, allow_loopback=False)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert refusal_reason(address, allow_loopback=False) is None


def test_the_local_setting_allows_loopback_and_nothing_else():
    assert refusal_reason("127.0.0.1", allow_loopback=True) is None
    assert refusal_reason("::1", allow_loopback=True) is None
    assert refusal_reason("10.0.0.1", allow_loopback=True) == "a private address"


def test_a_host_with_one_private_address_among_public_ones_is_refused():
    with pytest.raises(InvalidRequest, match="private"):
        check_webhook_url(
            "https://mixed.example/hook", allow_loopback=False, resolve=resolving_to("8.8.8.8", "10.0.0.1")
        )


def test_http_is_only_for_loopback_and_only_when_allowed():
    with pytest.raises(InvalidRequest, match="https"):
        check_webhook_url("http://127.0.0.1:8080/hook", allow_loopback=False, resolve=resolving_to("127.0.0.1"))
    with pytest.raises(InvalidRequest, match="https"):
        check_webhook_url("http://example.com/hook", allow_loopback=True, resolve=resolving_to("8.8.8.8"))
    assert check_webhook_url("http://localhost:8080/h", allow_loopback=True, resolve=resolving_to("127.0.0.1"))


def test_the_request_target_keeps_path_and_query():
    target = parse_target("https://Example.COM./hooks/a?b=1", allow_loopback=False)

    assert (target.host, target.port, target.path) == ("example.com", 443, "/hooks/a?b=1")


class Signer:
    def sign(self, msg_id: str, timestamp: datetime, data: str) -> str:
        return Webhook("c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw==").sign(msg_id, timestamp, data)


def test_dns_rebinding_is_refused_at_delivery_without_a_retry():
    # GIVEN a host that was public at submit and now resolves to the metadata service
    check_webhook_url("https://rebind.example/hook", allow_loopback=False, resolve=resolving_to("8.8.8.8"))

    with pytest.raises(DeliveryFailed) as caught:
        deliver(
            "https://rebind.example/hook",
            msg_id=message_id("img_1"),
            payload={},
            signer=Signer(),
            allow_loopback=False,
            timeout_seconds=1,
            resolve=resolving_to("169.254.169.254"),
            now=lambda: datetime.now(UTC),
        )

    assert not caught.value.retryable
    assert "link-local" in caught.value.message


def test_retries_back_off_exponentially_to_fifteen_minutes():
    delays = [retry_delay_seconds(attempt, 30) for attempt in range(1, 10)]

    assert delays == [30, 60, 120, 240, 480, 900, 900, 900, 900]
    assert sum(delays[:8]) >= 3600  # nine attempts span more than an hour


def test_a_host_that_does_not_resolve_at_delivery_is_retried_later():
    def no_answer(host: str, port: int) -> list[str]:
        raise OSError("temporary failure in name resolution")

    with pytest.raises(DeliveryFailed) as caught:
        deliver(
            "https://flaky-dns.example/hook",
            msg_id="msg_1",
            payload={},
            signer=Signer(),
            allow_loopback=False,
            timeout_seconds=1,
            resolve=no_answer,
        )

    assert caught.value.retryable


def test_ipv4_addresses_come_first(monkeypatch):
    import socket

    from zimage.webhooks import addresses as webhooks

    answers = [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2600:1f18::1", 443, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("52.1.2.3", 443)),
    ]
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", lambda *args, **kwargs: answers)

    assert webhooks.resolve_host("dual.example", 443) == ["52.1.2.3", "2600:1f18::1"]


@pytest.mark.parametrize(("on_lambda", "allowed"), [(False, True), (True, False)])
def test_loopback_receivers_are_allowed_off_lambda_only(monkeypatch, on_lambda, allowed):
    # There 127.0.0.1 is the function's own runtime API; no setting may open it.
    monkeypatch.setenv("ALLOW_LOOPBACK_WEBHOOKS", "true")
    if on_lambda:
        monkeypatch.setenv("AWS_EXECUTION_ENV", "AWS_Lambda_python3.13")
    else:
        monkeypatch.delenv("AWS_EXECUTION_ENV", raising=False)

    assert Settings.from_env().allow_loopback_webhooks is allowed


def test_no_deployment_can_allow_loopback_receivers():
    template = load_template()
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    assert "ALLOW_LOOPBACK_WEBHOOKS" not in variables
    assert not [name for name in template["Parameters"] if "loopback" in name.lower()]

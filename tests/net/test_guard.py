"""The SSRF guard refuses URLs that lead to the service's own network, naming host and reason."""

from __future__ import annotations

import pytest

from loraforge.errors import UnsafeURLError
from loraforge.net.guard import check_url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fd00:ec2::254]/latest/", "cloud metadata"),
        ("http://127.0.0.1/data.zip", "loopback"),
        ("http://[::1]:8000/data.zip", "loopback"),
        ("http://localhost:8000/data.zip", "localhost (resolves to"),
        ("http://10.0.0.7/data.zip", "private-network"),
        ("http://192.168.1.1/data.zip", "private-network"),
        ("http://100.64.3.4/data.zip", "carrier-grade NAT"),
        ("http://169.254.10.1/data.zip", "link-local"),
        ("http://0.0.0.0/data.zip", "unspecified"),
        ("http://224.0.0.1/data.zip", "multicast"),
        ("http://[::ffff:127.0.0.1]/data.zip", "IPv6 form of 127.0.0.1"),
        ("http://2130706433/data.zip", "loopback"),  # 127.0.0.1 written as one number
    ],
)
def test_guard_refuses_internal_addresses(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError, match="refusing to fetch") as caught:
        check_url(url, allow_private=False)
    assert reason in caught.value.message


def test_guard_allows_public_addresses() -> None:
    check_url("https://93.184.216.34/data.zip", allow_private=False)
    check_url("http://[2606:4700:4700::1111]/x", allow_private=False)


def test_allow_private_lifts_the_address_check_but_not_the_scheme_rule() -> None:
    check_url("http://127.0.0.1:9/data.zip", allow_private=True)
    with pytest.raises(UnsafeURLError, match="http:// or https://"):
        check_url("file:///etc/passwd", allow_private=True)


@pytest.mark.parametrize(
    "url", ["ftp://93.184.216.34/x", "gopher://93.184.216.34/", "http:///nohost", "http://[::1/"]
)
def test_guard_refuses_malformed_or_non_http_urls(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        check_url(url, allow_private=False)


def test_unresolvable_hosts_get_a_clear_message() -> None:
    # A 64-character label is refused by the IDNA codec before any lookup, so no DNS query leaves
    # this machine (a name under .invalid would still be sent to the system's resolver).
    with pytest.raises(UnsafeURLError, match="cannot be resolved"):
        check_url(f"http://{'a' * 64}.invalid/data.zip", allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.170.2/v2/credentials",  # ECS task credentials
        "http://192.0.0.192/opc/v2/instance/",  # Oracle Cloud
        "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./computeMetadata/v1/",
    ],
)
def test_cloud_metadata_endpoints_are_refused_even_when_private_urls_are_allowed(url: str) -> None:
    def resolver(host: str, port: int) -> list:
        raise AssertionError("a metadata host name must be refused before any lookup")

    with pytest.raises(UnsafeURLError, match="cloud metadata"):
        check_url(url, allow_private=True, resolver=resolver)


def test_the_ipv4_compatible_form_is_judged_by_its_ipv4_address() -> None:
    # Just under the line: loopback in that form passes with private URLs allowed (no request is sent).
    check_url("http://[::7f00:1]:9/d.zip", allow_private=True)
    with pytest.raises(UnsafeURLError, match="an IPv6 form of 127.0.0.1, a loopback address"):
        check_url("http://[::7f00:1]:9/d.zip", allow_private=False)
    # Over it: the metadata address in that form, refused even with private URLs allowed.
    with pytest.raises(UnsafeURLError, match="an IPv6 form of 169.254.169.254, a cloud metadata address"):
        check_url("http://[::a9fe:a9fe]/latest", allow_private=True)
    with pytest.raises(UnsafeURLError, match="a reserved address"):  # a public IPv4 inside: still not public
        check_url("http://[::808:808]/d.zip", allow_private=False)

"""smtp_sasl_password_maps lookup order (Postfix smtp_sasl_passwd_lookup): sender (when
sender-dependent, SMTP only), then the server host name, then the next-hop destination."""

from __future__ import annotations

from mailcarrier.sasl.mechanism import Credentials
from mailcarrier.sasl.passwords import (
    PasswordMatch,
    lookup_credentials,
    parse_credentials,
    reuse_identity,
)
from mailcarrier.tables.maps import open_maps

MAPS = open_maps(
    [
        "inline:{ alice@example.org=alice:a-pw, @example.com=dom:d-pw }",
        "inline:{ mx1.example.net=hostuser:h-pw, [relay.example]:587=relayuser:r-pw }",
        "inline:{ example.net=nexthop:n-pw, MX2.Example.Net=upper:u-pw }",
    ]
)


def _find(**kw: object) -> PasswordMatch | None:
    defaults: dict[str, object] = {"host": "", "destination": ""}
    defaults.update(kw)
    return lookup_credentials(MAPS, **defaults)  # type: ignore[arg-type]


def test_host_before_destination() -> None:
    found = _find(host="mx1.example.net", destination="example.net")
    assert found is not None
    assert (found.kind, found.credentials.username) == ("host", "hostuser")


def test_destination_when_host_misses() -> None:
    found = _find(host="mx9.example.net", destination="example.net")
    assert found is not None
    assert (found.kind, found.key, found.credentials) == (
        "destination",
        "example.net",
        Credentials("nexthop", "n-pw"),
    )


def test_bracketed_port_destination_form() -> None:
    found = _find(host="relay.example", destination="[relay.example]:587")
    assert found is not None
    assert found.credentials.username == "relayuser"
    assert _find(host="relay.example", destination="[relay.example]") is None


def test_case_folded() -> None:
    found = _find(host="mx2.example.net")
    assert found is not None and found.credentials.username == "upper"


def test_sender_first_only_when_sender_dependent() -> None:
    kw = {"host": "mx1.example.net", "destination": "example.net", "sender": "alice@example.org"}
    found = _find(**kw)
    assert found is not None and found.credentials.username == "hostuser"
    found = _find(sender_dependent=True, **kw)
    assert found is not None and (found.kind, found.credentials.username) == ("sender", "alice")
    # @domain form of mail_addr_find.
    found = _find(sender_dependent=True, host="x", sender="bob@example.com")
    assert found is not None and found.credentials.username == "dom"
    # Not for LMTP, not for the null sender.
    found = _find(sender_dependent=True, lmtp=True, **kw)
    assert found is not None and found.kind == "host"
    assert _find(sender_dependent=True, host="x", sender="") is None


def test_none_found() -> None:
    assert _find(host="other", destination="other.example") is None


def test_split_at_first_colon() -> None:
    assert parse_credentials("user:pa:ss") == Credentials("user", "pa:ss")
    assert parse_credentials("user") == Credentials("user", "")
    assert parse_credentials("user:pw", send_authzid=True) == Credentials("user", "pw", "user")


def test_reuse_identity() -> None:
    a = reuse_identity(Credentials("u", "secret-one"))
    b = reuse_identity(Credentials("u", "secret-two"))
    assert a != b and "secret" not in a and a.startswith("sasl=u:")
    assert reuse_identity(None) == "sasl=none"
    one = reuse_identity(None, sender="a@x", sender_dependent=True)
    two = reuse_identity(None, sender="b@x", sender_dependent=True)
    assert one != two and reuse_identity(None, sender="", sender_dependent=True).startswith(
        "sender=<>"
    )
    assert reuse_identity(Credentials("a;b", "p")).startswith("sasl=a%3Bb:")

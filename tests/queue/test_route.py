"""Routing recipients to (transport, next hop)."""

from __future__ import annotations

from pathlib import Path

from mailcarrier.queue.route import Route, Router
from tests.support.settings import queue_settings


def test_relayhost_and_domain(tmp_path: Path) -> None:
    assert Router(queue_settings(tmp_path)).route("a@example.net") == Route(
        "smtp", "[127.0.0.1]:2525"
    )
    assert Router(queue_settings(tmp_path, relayhost="")).route("a@example.net") == Route(
        "smtp", "example.net"
    )


def test_relayhost_list_goes_whole_to_the_agent(tmp_path: Path) -> None:
    """Postfix 3.5+: relayhost may list several destinations, tried in order; the agent
    splits the list itself, so the route keeps all of them."""
    r = Router(queue_settings(tmp_path, relayhost="[127.0.0.1]:2525, [127.0.0.1]:2526"))
    assert r.route("a@example.net") == Route("smtp", "[127.0.0.1]:2525, [127.0.0.1]:2526")


def test_default_transport_nexthop_beats_relayhost(tmp_path: Path) -> None:
    r = Router(queue_settings(tmp_path, default_transport="lmtp:unix:/tmp/l"))
    assert r.route("a@example.net") == Route("lmtp", "unix:/tmp/l")


def test_transport_maps_table(tmp_path: Path) -> None:
    table = {
        "special@example.net": "lmtp:unix:/s",
        "example.com": "smtp:[10.0.0.1]:26",
        ".sub.example.org": "smtp:",
        "bounce.example": "error:5.1.1 go away",
        "later.example": "retry:try later",
        "odd.example": "pipe:",
    }
    r = Router(queue_settings(tmp_path), lookup=table.get)
    assert r.route("special@example.net") == Route("lmtp", "unix:/s")
    assert r.route("x@example.com") == Route("smtp", "[10.0.0.1]:26")
    assert r.route("x@a.sub.example.org") == Route("smtp", "[127.0.0.1]:2525")
    assert r.route("x@bounce.example") == Route("error", "5.1.1 go away")
    assert r.route("x@later.example") == Route("retry", "try later")
    assert r.route("x@odd.example").transport == "unavailable"
    assert r.route("x@other.example") == Route("smtp", "[127.0.0.1]:2525")


def test_transport_maps_from_configuration(tmp_path: Path) -> None:
    cfg = queue_settings(tmp_path, transport_maps="inline:{example.com=lmtp:unix:/x}")
    assert Router(cfg).route("a@example.com") == Route("lmtp", "unix:/x")

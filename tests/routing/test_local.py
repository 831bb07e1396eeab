"""routing/local.py: which domains are this machine's own (generic(5) user keys)."""

from __future__ import annotations

from pathlib import Path

from mailcarrier.config.settings import Settings
from mailcarrier.routing.local import is_local_domain


def test_is_local_domain(tmp_path: Path) -> None:
    (tmp_path / "local").write_text("Virtual.Example x\n")
    (tmp_path / "main.cf").write_text(
        "myhostname = mx.example.org\nmyorigin = example.org\n"
        "mydestination = $myhostname, localhost, texthash:local\n"
        "inet_interfaces = 192.0.2.1, 2001:db8::1\nproxy_interfaces = 198.51.100.1\n"
    )
    settings = Settings.load(tmp_path)
    for local in ("example.org", "MX.example.org.", "localhost", "virtual.example"):
        assert is_local_domain(settings, local), local
    for literal in ("[192.0.2.1]", "[ipv6:2001:db8::1]", "[198.51.100.1]"):
        assert is_local_domain(settings, literal), literal
    for remote in ("example.com", "[192.0.2.2]", "sub.example.org"):
        assert not is_local_domain(settings, remote), remote

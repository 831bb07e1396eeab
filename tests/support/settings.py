"""Settings for tests: the one place that turns parameters into a `Settings`.

`make_settings(*layers, **params)` is `Settings.defaults()` with the parameters of each layer
(a mapping of Postfix parameter names to values) applied in order, then `params`: a later
value wins, so a test can override any value a layer sets. The layers here are the groups of
parameters that several test packages need alike: the client's HELO/LHLO name (`CLIENT`), a
private queue (`queue_layer`) and the loopback DNS server (`loopback_dns`).

It does not test `Settings` itself (tests/config does that through the real API), and it
starts no server: the peers and the scripted server are in tests/support/peers and
tests/support/scripted.py; one delivery with these settings is tests/support/deliver.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from mailcarrier.config.settings import Settings

HELO_NAME: Final = "client.example"
# The name the client gives in EHLO/HELO and in LHLO (scripted servers expect it byte for byte).
CLIENT: Final[Mapping[str, str]] = {"smtp_helo_name": HELO_NAME, "lmtp_lhlo_name": HELO_NAME}


def make_settings(*layers: Mapping[str, str], **params: str) -> Settings:
    """`Settings.defaults()` with each layer's parameters, then `params`, applied in order."""
    values: dict[str, str] = {}
    for layer in layers:
        values.update(layer)
    values.update(params)
    return Settings.defaults().with_overrides(values)


def client_settings(**params: str) -> Settings:
    """The defaults with the client's names of `CLIENT` (what scripted servers expect)."""
    return make_settings(CLIENT, **params)


def queue_layer(queue_dir: Path) -> dict[str, str]:
    """A private queue in `queue_dir` with fixed host names and a loopback relay host."""
    return {
        "queue_directory": str(queue_dir),
        "myhostname": "mc.example",
        "myorigin": "example.org",
        "relayhost": "[127.0.0.1]:2525",
    }


def queue_settings(queue_dir: Path, **params: str) -> Settings:
    """The defaults with `queue_layer(queue_dir)`, then `params`."""
    return make_settings(queue_layer(queue_dir), **params)


def loopback_dns(port: int) -> dict[str, str]:
    """Lookups through the loopback DNS test server on `port` only, IPv4, 2 s per query."""
    return {
        "dns_nameservers": f"127.0.0.1:{port}",
        "dns_timeout": "2s",
        "inet_protocols": "ipv4",
    }

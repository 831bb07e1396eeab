"""The redis client of a node, made from `shared_state_server` and its credentials.

One server (``redis://host:port/db``, ``rediss://`` for TLS, ``unix:/path``) is a
`redis.asyncio.Redis`; several are the start nodes of a Redis Cluster
(`redis.asyncio.cluster.RedisCluster`, which finds the others). The password comes from
`shared_state_password_file`: an absolute file holding ``PASSWORD`` or ``USER:PASSWORD``
(its first line), or a type:name table looked up with the server as written: never from
main.cf or the command line (fleetsyntax.py refuses that). Nothing connects here: the
client connects on its first command (engine.py). Neighbours: engine.py uses the client,
gate.py decides what its trouble means.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailcarrier.config.fleetsyntax import parse_server
from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError
from mailcarrier.tables import TableError, open_maps

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["make_client", "servers", "single_client"]


def servers(settings: Settings) -> list[str]:
    """The `shared_state_server` items, as written (empty: single-node mode)."""
    return settings.params.shared_state_server.replace(",", " ").split()


def _credentials(settings: Settings, server: str) -> tuple[str | None, str | None]:
    source = settings.params.shared_state_password_file
    if not source:
        return None, None
    name = "shared_state_password_file"
    if source.startswith("/"):
        try:
            lines = Path(source).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{name}: cannot read {source}: {exc}", parameter=name) from None
        text = lines[0].strip() if lines else ""
    else:
        try:
            found = open_maps([source], settings.config_dir, name).find(server)
        except TableError as exc:
            raise ConfigError(f"{name}: {exc}", parameter=name) from None
        text = found.value.strip() if found is not None else ""
    if not text:
        raise ConfigError(f"{name}: no password for {server} in {source}", parameter=name)
    user, colon, password = text.partition(":")
    return (user or None, password) if colon else (None, text)


def make_client(settings: Settings, timeout: float) -> Any:
    """The client for `shared_state_server` (which must not be empty)."""
    # redis loads only in fleet mode (tests/test_startup.py keeps it out of a plain start).
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    items = servers(settings)
    urls = [parse_server(item) for item in items]
    username, password = _credentials(settings, items[0])
    common: dict[str, Any] = {
        "username": username,
        "password": password,
        "socket_timeout": timeout or None,
        "socket_connect_timeout": timeout or None,
        # One immediate retry (a pooled connection Redis closed when it restarted), no
        # back-off: the gate decides what trouble means, within fleet_timeout.
        "retry": Retry(NoBackoff(), 1),
    }
    if len(urls) == 1:
        return single_client(urls[0], **common)
    nodes = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "unix":
            raise ConfigError(
                "shared_state_server: a Redis Cluster is reached over TCP, not unix:",
                parameter="shared_state_server",
            )
        nodes.append(ClusterNode(parts.hostname or "", parts.port or 6379))
    tls = urllib.parse.urlsplit(urls[0]).scheme == "rediss"
    return RedisCluster(startup_nodes=nodes, ssl=tls, **common)


def single_client(url: str, **options: Any) -> redis.asyncio.Redis:
    """A client of one server, without the client's own retries and back-off."""
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    options.setdefault("retry", Retry(NoBackoff(), 1))
    return redis.asyncio.Redis.from_url(url, **options)

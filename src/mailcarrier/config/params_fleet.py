"""Parameter declarations of fleet mode (issue 19): many nodes, one Redis, shared limits.

With `shared_state_server` empty (the default) nothing here has any effect: one node, today's
behaviour. Otherwise the node takes a lease from Redis before it opens a connection to a
destination (`fleet_destination_concurrency_limit`, per destination in `fleet_limit_maps`),
spends a token of a fleet-wide rate before each message (`fleet_destination_rate_limit`), and
shares what it learns (`fleet_dead_host_time`, `fleet_shared_caches`). The grammar of the
values is fleetsyntax.py's; the engine is fleet/. Other declarations: params_system.py,
params_smtp.py, params_tls.py.
"""

from __future__ import annotations

from typing import Final

from mailcarrier.config.paramtype import STR, B, L, M, N, Param, T, declare

_EXT: Final = "mailcarrier extension (fleet mode): "

FLEET: Final[list[list[Param]]] = [
    declare(
        "shared_state_server",
        STR,
        "",
        check="shared_state_server",
        note=_EXT + "empty: a single node; a redis:// or rediss:// URL or a unix:/path "
        "socket of the Redis server the fleet shares; several (comma or space separated): "
        "the start nodes of a Redis Cluster",
    ),
    declare(
        "shared_state_password_file",
        STR,
        "",
        check="password_source",
        note=_EXT + "an absolute file holding PASSWORD or USER:PASSWORD for "
        "shared_state_server, or a type:name table looked up with the server as written; "
        "never the password itself",
    ),
    declare(
        "node_id",
        STR,
        "",
        check="node_id",
        note=_EXT + "this node's name in the fleet; empty: generated once and kept in "
        "$data_directory/fleet_node_id",
    ),
    declare(
        "fleet_destination_concurrency_limit",
        N,
        "0",
        minimum=0,
        note=_EXT + "connections open to one destination by the whole fleet; 0: no limit",
    ),
    declare(
        "fleet_destination_rate_limit",
        STR,
        "",
        check="rate",
        note=_EXT + "messages to one destination by the whole fleet, COUNT/PERIOD "
        "(600/1h); empty: no limit",
    ),
    declare(
        "fleet_destination_rate_burst",
        N,
        "1",
        minimum=1,
        note=_EXT + "messages of fleet_destination_rate_limit that may go at once",
    ),
    declare(
        "fleet_limit_maps",
        M,
        "",
        note=_EXT + "per destination (transport:nexthop, then nexthop, as the scheduler "
        "keys it): connections=N rate=COUNT/PERIOD burst=N",
    ),
    declare(
        "fleet_lease_time",
        T,
        "30s",
        minimum=2,
        note=_EXT + "a connection lease not renewed for this long expires (a node died)",
    ),
    declare(
        "fleet_busy_retry_time",
        T,
        "1s",
        minimum=0,
        note=_EXT + "how soon a destination at its fleet limit is tried again",
    ),
    declare("fleet_timeout", T, "2s", minimum=0, note=_EXT + "time limit of one Redis call"),
    declare(
        "fleet_warning_interval",
        T,
        "60s",
        minimum=1,
        note=_EXT + "at most one warning per interval while Redis cannot be reached",
    ),
    declare(
        "fleet_concurrency_fail_open",
        B,
        "no",
        note=_EXT + "yes: without Redis, connect anyway (no: mail waits in the queue)",
    ),
    declare(
        "fleet_rate_fail_open",
        B,
        "no",
        note=_EXT + "yes: without Redis, send anyway (no: mail waits in the queue)",
    ),
    declare(
        "fleet_dead_host_time",
        T,
        "60s",
        minimum=0,
        note=_EXT + "a destination a node found not responding is left alone by the whole "
        "fleet for this long (0: each node finds out by itself)",
    ),
    declare(
        "fleet_shared_caches",
        L,
        "sasl-auth-failures, mta-sts",
        choices=("sasl-auth-failures", "mta-sts"),
        note=_EXT + "the node caches whose entries the fleet shares: the SASL "
        "authentication-failure cache (smtp_sasl_auth_cache_name), the MTA-STS policies "
        "(empty: none; dead destinations: fleet_dead_host_time)",
    ),
]

"""Parameter declarations of the metrics and status listener (issue 20, observe/).

With `http_listen` empty (the default) no listener runs and nothing here has any effect.
Otherwise ``mailcarrier run`` serves Prometheus metrics at /metrics, a status page at / and
its JSON at /api/queue and /api/status on that address; a non-loopback address needs
`http_listen_allow_remote`, and `http_listen_token_file` names a file holding a token that
every request must carry. The address grammar is listen.py's. `metrics_directory` is where
Postfix-native agents keep their counts (postfix/main.py) and ``observe --postfix`` reads
them. Other declarations:
params_system.py, params_smtp.py, params_tls.py, params_fleet.py.
"""

from __future__ import annotations

from typing import Final

from mailcarrier.config.paramtype import STR, B, N, Param, declare

_EXT: Final = "mailcarrier extension (monitoring): "

OBSERVE: Final[list[list[Param]]] = [
    declare(
        "http_listen",
        STR,
        "",
        check="http_listen",
        note=_EXT + "empty: no listener; ADDRESS:PORT, [IPV6]:PORT or localhost:PORT where "
        "`run` serves /metrics (Prometheus), the status page / and /api/queue, /api/status",
    ),
    declare(
        "http_listen_allow_remote",
        B,
        "no",
        note=_EXT + "yes: http_listen may be a non-loopback address",
    ),
    declare(
        "http_listen_token_file",
        STR,
        "",
        check="absolute_or_empty",
        note=_EXT + "empty: no token; an absolute file holding the token every request to "
        "http_listen must carry (Authorization: Bearer TOKEN, or Basic with the token as "
        "password); never the token itself",
    ),
    declare(
        "metrics_destination_limit",
        N,
        "0",
        minimum=0,
        maximum=1000,
        note=_EXT + "0: no per-destination metric; N: deliveries of the N busiest next hops "
        "as mailcarrier_destination_deliveries_total{destination=...}",
    ),
    declare(
        "metrics_directory",
        STR,
        "",
        check="absolute_or_empty",
        note=_EXT + "Postfix-native mode: empty: the agents count nothing; an absolute "
        "directory where each mailcarrier-smtp/-lmtp process keeps its counts "
        "(prometheus-client's multiprocess files) for `mailcarrier observe --postfix`",
    ),
]

"""One next hop of one request: `Hop` (Postfix's SMTP_ITERATOR), what the agent knows while
it tries the servers of one destination.

A hop names the destination being tried (an entry of the next-hop list or a fallback relay),
the connection-cache key of that destination ("" when sessions to it are not cached), and the
destination's TLS state (`TlsJob`, tls_job.py: policy, DANE, contexts), made only when a
session needs it: a plaintext session taken from the cache never does. When nothing but the
settings decides the policy of the destination's servers (no table, no MTA-STS, no RFC 8689
flag: sts_step.settled_policy), the hop carries that policy (`settled`), and the reuse keys
read it without the TLS state. When a policy table decides but nothing else does
(`by_table`: sts_step.plain_policy), the table's answers for the servers are kept here
(`resolved`, by sts_step.table_policy before the TLS state exists) and handed to the TLS
state when it is made, so the table is asked once per server and request either way. The
server being tried (a `Peer`) is passed alongside.
Neighbours: state.py (per request), agent.py (the loop).
"""

from __future__ import annotations

from collections.abc import Callable

from mailcarrier.delivery.tls_job import TlsJob
from mailcarrier.tls.policy import TlsPolicy

__all__ = ["Hop"]


class Hop:
    """The destination being tried, its cache key, (lazily) its TLS state, and the TLS
    policy of all its servers when that is settled without the state."""

    __slots__ = (
        "_tls",
        "_tls_maker",
        "by_table",
        "dest_key",
        "destination",
        "resolved",
        "settled",
        "sts_plugin",
    )

    def __init__(
        self,
        destination: str,
        dest_key: str,
        tls_maker: Callable[[], TlsJob] | None,
        settled: TlsPolicy | None = None,
        *,
        by_table: bool = False,
        sts_plugin: bool = False,
    ) -> None:
        self.destination = destination
        self.dest_key = dest_key
        self._tls_maker = tls_maker
        self._tls: TlsJob | None = None
        # What `tls.resolve(peer)` gives every server (sts_step.settled_policy), or None.
        self.settled = settled if tls_maker is not None else None
        # The policy is a table's answer alone: `resolved` holds them by server host name.
        self.by_table = by_table and tls_maker is not None and settled is None
        self.resolved: dict[str, TlsPolicy] = {}
        # The agent has MTA-STS policies: a Postfix STS plugin's table answer is matched.
        self.sts_plugin = sts_plugin

    @property
    def tls(self) -> TlsJob | None:
        """TLS policy state of the destination; None without any. Made on first use."""
        tls = self._tls
        if tls is None and self._tls_maker is not None:
            tls = self._tls = self._tls_maker()
            self._tls_maker = None
            if self.resolved:
                tls.policies.update(self.resolved)
        return tls

    @property
    def tls_made(self) -> bool:
        return self._tls is not None

    def known_policy(self, host: str) -> TlsPolicy | None:
        """The policy of the server named `host` known without the TLS state: the settled
        one, or the table's answer resolved for it; None: ask the TLS state."""
        if self.settled is not None:
            return self.settled
        if self.by_table and self._tls is None:
            return self.resolved.get(host.lower())
        return None

    @property
    def has_tls(self) -> bool:
        """Whether the destination has TLS state (`tls is not None`, without making it)."""
        return self._tls is not None or self._tls_maker is not None

"""One next hop of one request: `Hop` (Postfix's SMTP_ITERATOR), what the agent knows while
it tries the servers of one destination.

A hop names the destination being tried (an entry of the next-hop list or a fallback relay),
the connection-cache key of that destination ("" when sessions to it are not cached), and the
destination's TLS state (`TlsJob`, tls_job.py: policy, DANE, contexts), made only when a
session needs it: a plaintext session taken from the cache never does. When nothing but the
settings decides the policy of the destination's servers (no table, no MTA-STS, no RFC 8689
flag: sts_step.settled_policy), the hop carries that policy (`settled`), and the reuse keys
read it without the TLS state. The server being tried (a `Peer`) is passed alongside.
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

    __slots__ = ("_tls", "_tls_maker", "dest_key", "destination", "settled")

    def __init__(
        self,
        destination: str,
        dest_key: str,
        tls_maker: Callable[[], TlsJob] | None,
        settled: TlsPolicy | None = None,
    ) -> None:
        self.destination = destination
        self.dest_key = dest_key
        self._tls_maker = tls_maker
        self._tls: TlsJob | None = None
        # What `tls.resolve(peer)` gives every server (sts_step.settled_policy), or None.
        self.settled = settled if tls_maker is not None else None

    @property
    def tls(self) -> TlsJob | None:
        """TLS policy state of the destination; None without any. Made on first use."""
        tls = self._tls
        if tls is None and self._tls_maker is not None:
            tls = self._tls = self._tls_maker()
            self._tls_maker = None
        return tls

    @property
    def has_tls(self) -> bool:
        """Whether the destination has TLS state (`tls is not None`, without making it)."""
        return self._tls is not None or self._tls_maker is not None

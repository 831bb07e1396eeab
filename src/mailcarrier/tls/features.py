"""The ``tls=`` field of Postfix 3.11 delivery status logging (smtp_log_tls_feature_status).

Postfix 3.11 adds a per-feature TLS policy summary to each delivery line, between
``delays=`` and ``dsn=``::

    ... delays=0.06/0.05/0.07/0.12, tls=may, dsn=2.0.0, status=sent (250 2.0.0 Ok)

Each active feature (the TLS security level, and ``requiretls`` for a message that asked
for REQUIRETLS: delivery/requiretls_step.py) has a target name (the level the policy asked
for), a final name (the level actually achieved) and a decision. The rendering follows Postfix's
global/log_adhoc.c and tls_stats.c and the examples on postfix-users (Wietse Venema,
2025-08-24; Viktor Dukhovni, 2026-02-02):

* ``may``           decided, policy met as asked;
* ``may:none``      decided, but at a lower level than asked (target:final, e.g. STARTTLS
                    was not offered at ``may``);
* ``!encrypt``      decided: the policy was violated (e.g. "TLS is required, but was not
                    offered", "Server certificate not verified");
* ``may?``          undecided: the session ended before the TLS decision (lost connection,
                    greeting refused, TLS handshake failure);
* ``(requiretls)``  relaxed enforcement without a name change (parenthesised);
* features are joined with ``/``.

Pure: no I/O. delivery/tls_step.py decides the values, log.py prints the text.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["FeatureState", "TlsFeature", "feature_field"]


class FeatureState(enum.Enum):
    """Postfix's TLS_STAT_UNDECIDED / TLS_STAT_VIOLATION / TLS_STAT_COMPLIANT."""

    UNDECIDED = "undecided"
    VIOLATION = "violation"
    COMPLIANT = "compliant"


@dataclass(frozen=True, slots=True)
class TlsFeature:
    """One TLS feature of one session: `target` as asked, `final` as achieved."""

    target: str
    final: str = ""
    state: FeatureState = FeatureState.UNDECIDED
    relaxed: bool = False

    def decide(self, state: FeatureState, final: str = "", *, relaxed: bool = False) -> TlsFeature:
        """The decided feature; `final` defaults to the target (full enforcement)."""
        return TlsFeature(self.target, final or self.target, state, relaxed)

    @property
    def text(self) -> str:
        final = self.final or self.target
        if final != self.target:
            # A name change already says that enforcement was relaxed.
            name = f"{self.target}:{final}"
        elif self.relaxed:
            name = f"({self.target})"
        else:
            name = self.target
        if self.state is FeatureState.VIOLATION:
            return "!" + name
        if self.state is FeatureState.UNDECIDED:
            return name + "?"
        return name


def feature_field(features: Iterable[TlsFeature]) -> str:
    """The value of ``tls=`` (empty when no feature is active: no field is logged)."""
    return "/".join(f.text for f in features)

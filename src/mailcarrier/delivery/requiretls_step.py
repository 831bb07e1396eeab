"""REQUIRETLS (RFC 8689) in a delivery: the checks of a message that asked for it.

The action for the destination comes from tls/requiretls.py (smtp_requiretls_policy). These
functions apply it at the three moments Postfix's smtp_connect.c and smtp_proto.c do, and
word the failures as Postfix 3.11 does:

* before connecting (`check_before_connect`, from tls_step.prepare_tls): ``enforce`` needs a
  TLS level that matches the certificate (verify, secure, fingerprint, dane, dane-only) and,
  as RFC 8689 4.2.1 (1) asks, a server whose name came from a DNSSEC-validated MX RRset or
  from MTA-STS (`mx_authenticated`); ``opportunistic+starttls`` needs a level other than
  ``none``;
* in the TLS step (tls_step.py, with `tls_failure`): STARTTLS not offered or refused, and
  at ``enforce`` a certificate that did not verify or match;
* before MAIL FROM (`check_before_mail`, from transaction.py, for fresh and cached sessions
  alike): REQUIRETLS announced in the EHLO reply after STARTTLS. Then MAIL FROM carries
  ``REQUIRETLS``; at the opportunistic actions a server without it gets the message as if
  REQUIRETLS had not been asked, with RET=HDRS (Postfix: "limit content exposure in bounce").

Every failure is a 5.7.30 bounce that still lets the next server try (Postfix's
SMTP_MISC_FAIL_SOFT_NON_FINAL): the recipients bounce only when no server was suitable. The
``requiretls`` feature of the ``tls=`` log field (tls/features.py) says what happened:
``requiretls``, ``requiretls:nocertmatch``, ``requiretls:none``, ``!requiretls:nostarttls``,
``!requiretls:noencryption``, ``!requiretls:nocertmatch`` (also for a name found insecurely:
it cannot be matched securely), ``!requiretls:none``.
"""

from __future__ import annotations

from mailcarrier.delivery.tls_job import TlsJob, TlsOutcome, TlsResult
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.log import LogSink
from mailcarrier.protocol.ehlo import Capabilities
from mailcarrier.status import DeliveryStatus
from mailcarrier.tls.features import FeatureState, TlsFeature
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.policy import TlsPolicy
from mailcarrier.tls.requiretls import RequireTlsAction, mx_authenticated
from mailcarrier.transport.connection import Peer
from mailcarrier.transport.session import Session

__all__ = [
    "REQUIRETLS_DSN",
    "check_before_connect",
    "check_before_mail",
    "requiretls_feature",
    "tls_failure",
]

# RFC 8689 6.2: "REQUIRETLS support required".
REQUIRETLS_DSN = "5.7.30"
_NAME = "requiretls"


def requiretls_feature(state: FeatureState, final: str = "") -> TlsFeature:
    return TlsFeature(_NAME).decide(state, final)


def tls_failure(
    level: SecurityLevel, text: str, feature: TlsFeature | None, final: str
) -> TlsOutcome:
    """A server that cannot take a REQUIRETLS message: 5.7.30, the next server tried."""
    text = "Sender requested REQUIRETLS, " + text
    verdict = Verdict(DeliveryStatus.BOUNCED, REQUIRETLS_DSN, text)
    return TlsOutcome(
        TlsResult.FAIL,
        level,
        verdict,
        feature=feature,
        next_server=True,
        requiretls_feature=requiretls_feature(FeatureState.VIOLATION, final),
    )


async def check_before_connect(job: TlsJob, policy: TlsPolicy, peer: Peer) -> TlsOutcome | None:
    """The REQUIRETLS checks that need no connection (see the module docstring)."""
    decision = await job.decide_requiretls()
    level = policy.level
    undecided = TlsFeature(level.value)
    if decision.error:
        text = f"{decision.error}. The last attempted server was {peer.hostname}"
        verdict = Verdict(DeliveryStatus.DEFERRED, "4.7.10", text)
        return TlsOutcome(TlsResult.FAIL, level, verdict, feature=undecided)
    action = decision.action
    if action is RequireTlsAction.ENFORCE:
        if not level.must_match:
            return tls_failure(
                level,
                f"but my configured TLS security level '{level.value}' disables certificate "
                f"matching. The last attempted server was {peer.hostname}",
                undecided,
                "nocertmatch",
            )
        if not mx_authenticated(policy, peer.mx_dnssec_valid):
            return tls_failure(
                level,
                f"but the MX host name {peer.hostname} was not found securely (no "
                "DNSSEC-validated MX record and no MTA-STS policy). The last attempted "
                f"server was {peer.hostname}",
                undecided,
                "nocertmatch",
            )
    elif action is RequireTlsAction.OPPORTUNISTIC_STARTTLS and level is SecurityLevel.NONE:
        return tls_failure(
            level,
            "but my configured TLS security level 'none' disables encryption. The last "
            f"attempted server was {peer.hostname}",
            undecided,
            "noencryption",
        )
    return None


def check_before_mail(
    session: Session, caps: Capabilities, peer: Peer, queue_id: str, process: str, log: LogSink
) -> tuple[Verdict | None, bool, TlsFeature | None]:
    """Before MAIL FROM: (a failure, whether MAIL FROM carries REQUIRETLS, the requiretls
    feature of the tls= field). Only an EHLO reply after STARTTLS counts (Postfix)."""
    action = session.requiretls
    if action == RequireTlsAction.DISABLE:
        return None, False, None
    if session.conn.tls and caps.has("REQUIRETLS"):
        final = "" if session.tls_matched else "nocertmatch"
        return None, True, requiretls_feature(FeatureState.COMPLIANT, final)
    if action == RequireTlsAction.ENFORCE:
        verdict = Verdict(
            DeliveryStatus.BOUNCED,
            REQUIRETLS_DSN,
            "Sender requested REQUIRETLS, but no server was found that supports REQUIRETLS. "
            f"The last attempted server was {peer.namaddr}",
        )
        return verdict, False, requiretls_feature(FeatureState.VIOLATION, "none")
    if session.conn.tls:
        log.info(
            process,
            f"{queue_id}: Sender requested REQUIRETLS, but REQUIRETLS support was not "
            f"offered by host {peer.namaddr}",
        )
    return None, False, requiretls_feature(FeatureState.COMPLIANT, "none")

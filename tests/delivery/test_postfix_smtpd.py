"""Interoperability with a real Postfix smtpd (Debian postfix 3.7): a private instance on
127.0.0.1 (tests/support/peers/postfix_smtpd.py) with a trustme certificate
(``smtpd_tls_security_level = may``) and SASL through a private Dovecot auth socket
(tests/support/peers/dovecot_auth.py), started once for the module; accepted mail goes to
Postfix's discard transport. Each test checks what mailcarrier reports and logs and what
Postfix's own maillog says about the same session.

Two smtpd services: ``nexthop`` offers STARTTLS and AUTH only after it
(``smtpd_tls_auth_only = yes``); ``plain_nexthop`` has no TLS and offers AUTH in the clear.
CHUNKING: Postfix always announces it; mailcarrier uses BDAT only with smtp_use_chunking.
body_checks WARN rules make cleanup(8) log what the body really held (dot lines, the end of
a big message), and one recipient is refused by smtpd. Dovecot's auth penalty slows the
attempts that follow a failed one by a few seconds (server side, harmless).
Root only (Postfix and Dovecot refuse to run otherwise): skipped cleanly elsewhere.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import trustme

from mailcarrier import DeliveryStatus
from mailcarrier.config.settings import Settings
from mailcarrier.status import RecipientStatus
from tests.support.deliver import deliver_request, request_to
from tests.support.peers import dovecot_auth, postfix_smtpd
from tests.support.peers.dovecot_auth import DovecotAuth
from tests.support.peers.postfix_smtpd import PostfixSmtpd
from tests.support.settings import HELO_NAME, make_settings
from tests.support.tls import Pki

_why_not = postfix_smtpd.unavailable() or (
    "" if dovecot_auth.available() else "Dovecot (dovecot-core) missing or not root"
)
pytestmark = pytest.mark.skipif(bool(_why_not), reason=_why_not or "n/a")

SENT, DEFERRED, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED
USER, PASSWORD = "alice", "s3cret-Pa55"
SERVER_NAME = "mx.postfix.test"  # the certificate's DNS name and Postfix's myhostname
REJECTED = "rejected@example.net"  # smtpd refuses this recipient
# cleanup(8) logs what the body really holds once it reached Postfix (dot-stuffing undone).
BODY_CHECKS = """\
/^\\.dotline$/ WARN single-dot-seen
/^\\.\\.dotline$/ WARN double-dot-seen
/^BIG-END$/ WARN big-end-seen
"""
_serial = itertools.count(1)


@dataclass
class Peer:
    postfix: PostfixSmtpd
    dovecot: DovecotAuth
    cafile: str
    tmp: Path


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    tmp = tmp_path_factory.mktemp("postfix-client")
    dovecot_root = postfix_smtpd.private_dir("mailcarrier-dovecot-")
    postfix_root = postfix_smtpd.private_dir("mailcarrier-postfix-")
    dovecot = DovecotAuth(dovecot_root, {USER: PASSWORD})
    postfix: PostfixSmtpd | None = None
    try:
        dovecot.start()
        pki = Pki(trustme.CA(), tmp)
        leaf = pki.leaf(SERVER_NAME)
        cert, key = postfix_root / "cert.pem", postfix_root / "key.pem"
        cert.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)
        checks = postfix_root / "body_checks"
        checks.write_text(BODY_CHECKS)
        postfix = PostfixSmtpd(
            postfix_root,
            extra=(
                f"body_checks = regexp:{checks}",
                "body_checks_size_limit = 4000000",
                "smtpd_recipient_restrictions = check_recipient_access"
                f" inline:{{{REJECTED}=REJECT}}",
            ),
            cert_file=str(cert),
            key_file=str(key),
            sasl_path=str(dovecot.socket_path),
            myhostname=SERVER_NAME,
        )
        postfix.start()
        yield Peer(postfix, dovecot, pki.cafile(), tmp)
    finally:
        if postfix is not None:
            postfix.stop()
        dovecot.stop()
        postfix_smtpd.remove(postfix_root)
        postfix_smtpd.remove(dovecot_root)


@dataclass
class Outcome:
    status: RecipientStatus
    lines: list[str]
    message_id: str
    mark: int  # where the Postfix log stood before this delivery
    all: tuple[RecipientStatus, ...]  # every recipient's result, in request order

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.lines)


# The client of these tests: IPv4 (the instance listens on 127.0.0.1 only), deadlines for a
# real Postfix under load, and the TLS log lines.
POSTFIX_CLIENT = {
    "smtp_helo_name": HELO_NAME,
    "inet_protocols": "ipv4",
    "smtp_connect_timeout": "10s",
    "smtp_starttls_timeout": "30s",
    "smtp_tls_loglevel": "1",
}


def _sasl(peer: Peer, nexthop: str, password: str = PASSWORD, **params: str) -> dict[str, str]:
    path = peer.tmp / f"sasl_passwd.{next(_serial)}"
    path.write_text(f"{nexthop} {USER}:{password}\n")
    return {
        "smtp_sasl_auth_enable": "yes",
        "smtp_sasl_password_maps": f"texthash:{path}",
        **params,
    }


async def _deliver(
    peer: Peer,
    nexthop: str,
    settings: Settings,
    body: bytes = b"body\r\n",
    recipients: tuple[str, ...] = ("b@example.net",),
) -> Outcome:
    message_id = f"<interop.{next(_serial)}.{id(settings)}@client.example>"
    request = request_to(
        nexthop,
        f"Message-ID: {message_id}\r\nSubject: interop\r\n\r\n".encode() + body,
        recipients=recipients,
        queue_id="4QPFIX",
    )
    _wait_sessions_closed(peer)  # so that what follows the mark is this delivery's session
    mark = peer.postfix.log_mark()
    result, log = await deliver_request(request, config=settings)
    return Outcome(result.recipients[0], log.lines, message_id, mark, result.recipients)


def _wait_sessions_closed(peer: Peer, timeout: float = 30) -> None:
    """Until every smtpd session in the log has its 'disconnect from' line."""
    deadline = time.monotonic() + timeout
    while True:
        text = peer.postfix.log
        opened = len(re.findall(r"smtpd\[\d+\]: connect from ", text))
        if opened == len(re.findall(r"smtpd\[\d+\]: disconnect from ", text)):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"an smtpd session did not end:\n{text[-3000:]}")
        time.sleep(0.05)


def _accepted(peer: Peer, outcome: Outcome) -> str:
    """Postfix's queue id for the message, once its discard agent logged status=sent."""
    found = peer.postfix.wait_log(
        rf"\]: ([0-9A-F]+): message-id={re.escape(outcome.message_id)}", outcome.mark
    )
    queue_id = found.group(1)
    peer.postfix.wait_log(rf"discard\[\d+\]: {queue_id}: to=<b@example\.net>.*status=sent", 0)
    return queue_id


def _session_end(peer: Peer, outcome: Outcome) -> str:
    """The smtpd's 'disconnect from ...' line with the command counts for this delivery."""
    return peer.postfix.wait_log(r"disconnect from localhost\[127\.0\.0\.1\][^\n]*", outcome.mark)[
        0
    ]


# --- STARTTLS (issue 5) ------------------------------------------------------------------------


async def test_tls_verify(peer: Peer) -> None:
    nexthop = peer.postfix.nexthop
    settings = make_settings(
        POSTFIX_CLIENT,
        smtp_tls_security_level="verify",
        smtp_tls_CAfile=peer.cafile,
        smtp_tls_verify_cert_match=SERVER_NAME,
    )
    outcome = await _deliver(peer, nexthop, settings)
    assert outcome.status.status is SENT, outcome.status.diagnostic
    port = peer.postfix.port
    assert outcome.logged(f"Verified TLS connection established to 127.0.0.1[127.0.0.1]:{port}")
    assert outcome.logged("status=sent (250 2.0.0 Ok: queued as ")
    queue_id = _accepted(peer, outcome)
    assert outcome.status.diagnostic.endswith(f"queued as {queue_id}")
    peer.postfix.wait_log(
        r"Anonymous TLS connection established from localhost\[127\.0\.0\.1\]: TLSv1\.[23]",
        outcome.mark,
    )
    assert "starttls=1" in _session_end(peer, outcome)


async def test_tls_encrypt(peer: Peer) -> None:
    settings = make_settings(POSTFIX_CLIENT, smtp_tls_security_level="encrypt")
    outcome = await _deliver(peer, peer.postfix.nexthop, settings)
    assert outcome.status.status is SENT, outcome.status.diagnostic
    # No CAfile: the certificate cannot be trusted, encryption is all that is asked.
    assert outcome.logged("Untrusted TLS connection established to 127.0.0.1[127.0.0.1]")
    _accepted(peer, outcome)
    peer.postfix.wait_log(r"Anonymous TLS connection established from localhost", outcome.mark)
    assert "starttls=1" in _session_end(peer, outcome)


async def test_tls_may(peer: Peer) -> None:
    settings = make_settings(
        POSTFIX_CLIENT, smtp_tls_security_level="may", smtp_tls_CAfile=peer.cafile
    )
    outcome = await _deliver(peer, peer.postfix.nexthop, settings)
    assert outcome.status.status is SENT, outcome.status.diagnostic
    # Opportunistic TLS with the right CA: Postfix logs such a peer as "Trusted".
    assert outcome.logged("Trusted TLS connection established to 127.0.0.1[127.0.0.1]")
    _accepted(peer, outcome)
    peer.postfix.wait_log(r"Anonymous TLS connection established from localhost", outcome.mark)


async def test_tls_may_without_starttls_sends_in_clear(peer: Peer) -> None:
    settings = make_settings(POSTFIX_CLIENT, smtp_tls_security_level="may")
    outcome = await _deliver(peer, peer.postfix.plain_nexthop, settings)
    assert outcome.status.status is SENT, outcome.status.diagnostic
    assert not outcome.logged("TLS connection established")
    _accepted(peer, outcome)
    assert "starttls" not in _session_end(peer, outcome)


async def test_tls_verify_name_mismatch_defers(peer: Peer) -> None:
    settings = make_settings(
        POSTFIX_CLIENT,
        smtp_tls_security_level="verify",
        smtp_tls_CAfile=peer.cafile,
        smtp_tls_verify_cert_match="other.postfix.test",
    )
    outcome = await _deliver(peer, peer.postfix.nexthop, settings)
    assert outcome.status.status is DEFERRED
    assert outcome.status.diagnostic.startswith("Server certificate not verified"), (
        outcome.status.diagnostic
    )
    # The handshake happened, the mail was not given to Postfix.
    end = _session_end(peer, outcome)
    assert "starttls=1" in end and "data" not in end and "mail" not in end


async def test_tls_encrypt_not_offered_defers(peer: Peer) -> None:
    settings = make_settings(POSTFIX_CLIENT, smtp_tls_security_level="encrypt")
    outcome = await _deliver(peer, peer.postfix.plain_nexthop, settings)
    assert outcome.status.status is DEFERRED
    assert outcome.status.diagnostic == (
        "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"
    )
    assert "mail" not in _session_end(peer, outcome)


# --- SASL through Dovecot (issue 6) -------------------------------------------------------------


def test_dovecot_offers_the_mechanisms(peer: Peer) -> None:
    assert {"PLAIN", "LOGIN", "SCRAM-SHA-256"} <= peer.dovecot.offered()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_sasl_plaintext_mechanisms_over_tls(peer: Peer, mechanism: str) -> None:
    nexthop = peer.postfix.nexthop
    settings = make_settings(
        POSTFIX_CLIENT,
        smtp_tls_security_level="encrypt",
        **_sasl(
            peer,
            nexthop,
            smtp_sasl_mechanism_filter=mechanism.lower(),
            smtp_sasl_tls_security_options="noanonymous",
        ),
    )
    outcome = await _deliver(peer, nexthop, settings)
    assert outcome.status.status is SENT, outcome.status.diagnostic
    queue_id = _accepted(peer, outcome)
    peer.postfix.wait_log(
        rf"{queue_id}: client=localhost\[127\.0\.0\.1\], sasl_method={mechanism}, "
        rf"sasl_username={USER}\n",
        outcome.mark,
    )
    end = _session_end(peer, outcome)
    assert "starttls=1" in end and "auth=1" in end


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
async def test_sasl_scram_in_clear(peer: Peer, mechanism: str) -> None:
    # Default security options (noplaintext, noanonymous): SCRAM qualifies without TLS.
    nexthop = peer.postfix.plain_nexthop
    settings = make_settings(
        POSTFIX_CLIENT, **_sasl(peer, nexthop, smtp_sasl_mechanism_filter=mechanism)
    )
    outcome = await _deliver(peer, nexthop, settings)
    assert outcome.status.status is SENT, outcome.status.diagnostic
    queue_id = _accepted(peer, outcome)
    peer.postfix.wait_log(
        rf"{queue_id}: client=localhost\[127\.0\.0\.1\], sasl_method={mechanism}, "
        rf"sasl_username={USER}\n",
        outcome.mark,
    )


async def test_sasl_default_choice_in_clear(peer: Peer) -> None:
    # Postfix offers PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-256; plaintext is refused by default.
    nexthop = peer.postfix.plain_nexthop
    outcome = await _deliver(peer, nexthop, make_settings(POSTFIX_CLIENT, **_sasl(peer, nexthop)))
    assert outcome.status.status is SENT, outcome.status.diagnostic
    queue_id = _accepted(peer, outcome)
    found = peer.postfix.wait_log(
        rf"{queue_id}: client=localhost\[127\.0\.0\.1\], sasl_method=([A-Z0-9-]+)", outcome.mark
    )
    assert found.group(1).startswith("SCRAM-SHA-")


async def test_sasl_plaintext_refused_in_clear(peer: Peer) -> None:
    # Only PLAIN allowed by the filter, no TLS, default options forbid plaintext: Postfix's
    # smtp(8) says "no mechanism available" and defers; the password never crosses the wire.
    nexthop = peer.postfix.plain_nexthop
    settings = make_settings(
        POSTFIX_CLIENT, **_sasl(peer, nexthop, smtp_sasl_mechanism_filter="plain")
    )
    outcome = await _deliver(peer, nexthop, settings)
    assert outcome.status.status is DEFERRED, outcome.status.diagnostic
    assert "SASL authentication failed" in outcome.status.diagnostic
    assert "no mechanism available" in outcome.status.diagnostic
    assert "auth=" not in _session_end(peer, outcome)


async def test_sasl_plaintext_over_tls_refused_by_default(peer: Peer) -> None:
    # smtp_sasl_tls_security_options defaults to $smtp_sasl_security_options (noplaintext):
    # like Postfix, PLAIN is not used over TLS either unless the TLS options allow it.
    nexthop = peer.postfix.nexthop
    settings = make_settings(
        POSTFIX_CLIENT,
        smtp_tls_security_level="encrypt",
        **_sasl(peer, nexthop, smtp_sasl_mechanism_filter="plain"),
    )
    outcome = await _deliver(peer, nexthop, settings)
    assert outcome.status.status is DEFERRED and outcome.status.dsn == "4.7.0"
    assert outcome.status.diagnostic == (
        "SASL authentication failed; cannot authenticate to server 127.0.0.1[127.0.0.1]: "
        "no mechanism available"
    )
    end = _session_end(peer, outcome)
    assert "starttls=1" in end and "auth" not in end


async def test_sasl_wrong_password_defers(peer: Peer) -> None:
    nexthop = peer.postfix.nexthop
    settings = make_settings(
        POSTFIX_CLIENT,
        smtp_tls_security_level="encrypt",
        **_sasl(
            peer,
            nexthop,
            password="wrong",
            smtp_sasl_mechanism_filter="plain",
            smtp_sasl_tls_security_options="noanonymous",
        ),
    )
    outcome = await _deliver(peer, nexthop, settings)
    status = outcome.status
    assert status.status is DEFERRED and status.dsn == "4.7.8", status.diagnostic
    assert status.diagnostic.startswith(
        "SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535 5.7.8 "
    ), status.diagnostic
    assert outcome.logged("status=deferred (SASL authentication failed; server 127.0.0.1")
    peer.postfix.wait_log(
        r"warning: localhost\[127\.0\.0\.1\]: SASL PLAIN authentication failed", outcome.mark
    )
    assert "auth=0/1" in _session_end(peer, outcome)
    peer.dovecot.wait_log(rf"passwd-file\({USER}[^)]*\): Password mismatch")


async def test_sasl_wrong_password_bounces_without_soft_bounce(peer: Peer) -> None:
    nexthop = peer.postfix.plain_nexthop
    settings = make_settings(
        POSTFIX_CLIENT,
        **_sasl(
            peer,
            nexthop,
            password="wrong",
            smtp_sasl_mechanism_filter="scram-sha-256",
            smtp_sasl_auth_soft_bounce="no",
        ),
    )
    outcome = await _deliver(peer, nexthop, settings)
    assert outcome.status.status is BOUNCED and outcome.status.dsn == "5.7.8"
    assert "535 5.7.8" in outcome.status.diagnostic


async def test_sasl_not_offered_before_starttls(peer: Peer) -> None:
    # smtpd_tls_auth_only: no AUTH without TLS; mynetworks lets the mail through anyway.
    nexthop = peer.postfix.nexthop
    settings = make_settings(POSTFIX_CLIENT, smtp_tls_security_level="none", **_sasl(peer, nexthop))
    outcome = await _deliver(peer, nexthop, settings)
    assert outcome.status.status is SENT, outcome.status.diagnostic
    queue_id = _accepted(peer, outcome)
    line = peer.postfix.wait_log(rf"{queue_id}: client=[^\n]*", outcome.mark)[0]
    assert "sasl_method" not in line
    end = _session_end(peer, outcome)
    assert "auth" not in end and "starttls" not in end


# --- CHUNKING (RFC 3030; Postfix smtpd offers it since 3.4) ---------------------------------------


async def test_bdat_small_message(peer: Peer) -> None:
    settings = make_settings(POSTFIX_CLIENT, smtp_use_chunking="yes")
    outcome = await _deliver(peer, peer.postfix.plain_nexthop, settings, b".leading dot\r\n")
    assert outcome.status.status is SENT, outcome.status.diagnostic
    _accepted(peer, outcome)
    end = _session_end(peer, outcome)
    assert " bdat=1 " in end and " data=" not in end


async def test_bdat_pipelined_chunks(peer: Peer) -> None:
    settings = make_settings(POSTFIX_CLIENT, smtp_use_chunking="yes")
    body = (b"." + b"x" * 97 + b"\r\n") * 7000  # 700000 octets: three chunks
    outcome = await _deliver(peer, peer.postfix.plain_nexthop, settings, body)
    assert outcome.status.status is SENT, outcome.status.diagnostic
    _accepted(peer, outcome)
    assert " bdat=3 " in _session_end(peer, outcome)


DOT_BODY = b"first\r\n.dotline\r\nlast\r\n"


def _body_warnings(peer: Peer, queue_id: str) -> set[str]:
    found = re.findall(rf"{queue_id}: warning: body [^\n]*: (\S+-seen)\n", peer.postfix.log)
    return set(found)


@pytest.mark.parametrize(("chunking", "command"), [("no", "data=1"), ("yes", "bdat=1")])
async def test_chunking_parameter_and_dot_lines(peer: Peer, chunking: str, command: str) -> None:
    # Postfix announces CHUNKING; BDAT only with smtp_use_chunking = yes (default no).
    nexthop = peer.postfix.plain_nexthop
    settings = make_settings(POSTFIX_CLIENT, smtp_use_chunking=chunking)
    outcome = await _deliver(peer, nexthop, settings, body=DOT_BODY)
    assert outcome.status.status is SENT, outcome.status.diagnostic
    queue_id = _accepted(peer, outcome)
    end = _session_end(peer, outcome)
    assert command in end
    assert ("bdat" in end) is (chunking == "yes") and ("data" in end) is (chunking == "no")
    # ".dotline" arrives intact both ways: stuffed then unstuffed with DATA, as it is with BDAT.
    peer.postfix.wait_log(rf"{queue_id}: warning: body \.dotline ", outcome.mark)
    assert _body_warnings(peer, queue_id) == {"single-dot-seen"}


async def test_chunking_big_message_over_tls_with_sasl(peer: Peer) -> None:
    nexthop = peer.postfix.nexthop
    body = DOT_BODY + (b"x" * 76 + b"\r\n") * 20_000 + b"BIG-END\r\n"  # about 1.5 MB
    settings = make_settings(
        POSTFIX_CLIENT,
        smtp_use_chunking="yes",
        smtp_tls_security_level="verify",
        smtp_tls_CAfile=peer.cafile,
        smtp_tls_verify_cert_match=SERVER_NAME,
        **_sasl(peer, nexthop, smtp_sasl_mechanism_filter="scram-sha-256"),
    )
    outcome = await _deliver(peer, nexthop, settings, body=body)
    assert outcome.status.status is SENT, outcome.status.diagnostic
    queue_id = _accepted(peer, outcome)
    peer.postfix.wait_log(rf"{queue_id}: warning: body BIG-END ", outcome.mark)
    assert _body_warnings(peer, queue_id) == {"single-dot-seen", "big-end-seen"}
    size = int(peer.postfix.wait_log(rf"{queue_id}: from=<a@example\.org>, size=(\d+)", 0)[1])
    assert size > len(body)
    end = _session_end(peer, outcome)
    assert re.search(r"bdat=[1-9]", end) and "data" not in end
    assert "starttls=1" in end and "auth=1" in end
    peer.postfix.wait_log(rf"{queue_id}: client=[^\n]*sasl_method=SCRAM-SHA-256", outcome.mark)


@pytest.mark.parametrize("chunking", ["no", "yes"])
async def test_chunking_one_recipient_rejected(peer: Peer, chunking: str) -> None:
    nexthop = peer.postfix.plain_nexthop
    settings = make_settings(POSTFIX_CLIENT, smtp_use_chunking=chunking)
    outcome = await _deliver(
        peer, nexthop, settings, body=DOT_BODY, recipients=("b@example.net", REJECTED)
    )
    good, bad = outcome.all
    assert good.status is SENT, good.diagnostic
    assert bad.status is BOUNCED and bad.dsn.startswith("5."), bad.diagnostic
    assert f"554 5.7.1 <{REJECTED}>: Recipient address rejected" in bad.diagnostic
    queue_id = _accepted(peer, outcome)
    peer.postfix.wait_log(rf"{queue_id}: warning: body \.dotline ", outcome.mark)
    assert _body_warnings(peer, queue_id) == {"single-dot-seen"}
    end = _session_end(peer, outcome)
    assert "rcpt=1/2" in end and ("bdat=1" if chunking == "yes" else "data=1") in end


async def test_chunking_all_recipients_rejected_sends_no_content(peer: Peer) -> None:
    nexthop = peer.postfix.plain_nexthop
    settings = make_settings(POSTFIX_CLIENT, smtp_use_chunking="yes")
    outcome = await _deliver(peer, nexthop, settings, recipients=(REJECTED,))
    assert outcome.status.status is BOUNCED, outcome.status.diagnostic
    end = _session_end(peer, outcome)
    assert "rcpt=0/1" in end and "bdat" not in end and "data" not in end


# --- address probes (DeliveryRequest.probe) -----------------------------------------------------


async def test_probe_is_mail_rcpt_rset_and_no_message(peer: Peer) -> None:
    """smtpd counts the probe's commands: MAIL, the RCPTs, RSET and QUIT, no DATA; the RCPT
    replies are the verdicts and nothing reaches Postfix's queue."""
    settings = make_settings(POSTFIX_CLIENT)
    request = replace(
        request_to(peer.postfix.plain_nexthop, recipients=("b@example.net", REJECTED)),
        queue_id="4QPROBE",
        probe=True,
    )
    _wait_sessions_closed(peer)
    mark = peer.postfix.log_mark()
    result, log = await deliver_request(request, config=settings)
    good, bad = result.recipients
    assert (good.status, good.dsn, good.diagnostic) == (SENT, "2.1.5", "250 2.1.5 Ok")
    assert bad.status is BOUNCED
    assert bad.diagnostic == (
        "host 127.0.0.1[127.0.0.1] said: 554 5.7.1 <rejected@example.net>: Recipient address "
        "rejected: Access denied (in reply to RCPT TO command)"
    )
    assert [line.split(", status=")[1].split(" ")[0] for line in log.lines] == [
        "deliverable",
        "undeliverable",
    ]
    end = peer.postfix.wait_log(r"disconnect from localhost\[127\.0\.0\.1\][^\n]*", mark)[0]
    assert end.endswith(" ehlo=1 mail=1 rcpt=1/2 rset=1 quit=1 commands=5/6")
    assert "cleanup" not in peer.postfix.log[mark:]

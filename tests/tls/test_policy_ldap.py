"""End to end: ``smtp_tls_policy_maps = ldap:/path.cf``. A message queued with ``sendmail``
and delivered by ``run --once`` to an aiosmtpd that insists on STARTTLS gets the policy the
directory holds for its next hop (``secure match=...``: TLS, the certificate verified
against the match name), or is refused TLS where the policy's name does not match; with the
directory down the delivery is deferred, as smtp(8) does when its policy table cannot
answer, and the message stays in the queue."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier.cli import run
from tests.support import ldapdata
from tests.support.peers import slapd
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler, free_port
from tests.support.tls import Pki

MESSAGE = b"Subject: tls policy from ldap\n\nbody\n"


@pytest.fixture
def directory(request: pytest.FixtureRequest) -> Iterator[slapd.Slapd]:
    """The test directory, with the policy for [127.0.0.1] the test's marker names."""
    if not slapd.available():
        pytest.skip("slapd is not installed (Debian slapd)")
    marker = request.node.get_closest_marker("policy")
    policy = marker.args[0] if marker else "secure match=mx.tls.test"
    with slapd.running_slapd(
        ldapdata.LDIF + "\n" + ldapdata.policy_entry("[127.0.0.1]", policy)
    ) as srv:
        yield srv


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[AiosmtpdServer]:
    server = AiosmtpdServer(
        RecordingHandler(extra_keywords=("PIPELINING",)),
        tls_context=pki.server_context(pki.leaf("mx.tls.test")),
        require_starttls=True,
    ).start()
    try:
        yield server
    finally:
        server.stop()


def policy_table(tmp_path: Path, url: str) -> str:
    cf = tmp_path / "tls-policy.cf"
    params = ldapdata.base_params(
        url,
        search_base=ldapdata.POLICIES,
        query_filter="(mcDomain=%s)",
        result_attribute="mcTlsPolicy",
    )
    cf.write_text(ldapdata.cf_text(**params))
    return f"ldap:{cf}"


def cli(args: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(args, stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def options(tmp_path: Path, pki: Pki, nexthop: str, table: str) -> list[str]:
    params = {
        "queue_directory": str(tmp_path / "queue"),
        "relayhost": nexthop,
        "myorigin": "example.org",
        "smtp_tls_policy_maps": table,
        "smtp_tls_CAfile": pki.cafile(),
        "smtp_tls_loglevel": "1",
        "smtp_connect_timeout": "5s",
    }
    return [word for name, value in params.items() for word in ("-o", f"{name}={value}")]


def queued(tmp_path: Path) -> list[str]:
    queue = tmp_path / "queue"
    return [n for q in ("incoming", "active", "deferred") for n in os.listdir(queue / q)]


def test_the_directory_selects_a_verified_tls_policy(
    tmp_path: Path, pki: Pki, directory: slapd.Slapd, tls_server: AiosmtpdServer
) -> None:
    opts = options(tmp_path, pki, tls_server.nexthop, policy_table(tmp_path, directory.url))
    assert cli([*opts, "sendmail", "-f", "s@example.org", "r@example.net"], MESSAGE)[0] == 0
    code, _, err = cli([*opts, "run", "--once"])
    assert code == 0
    assert f"Verified TLS connection established to 127.0.0.1[127.0.0.1]:{tls_server.port}" in err
    assert "status=sent" in err
    assert [m.rcpt_tos for m in tls_server.messages] == [["r@example.net"]]
    assert queued(tmp_path) == []
    assert "(mcDomain=[127.0.0.1]:" in " ".join(directory.filters())  # next hop with port first


@pytest.mark.policy("secure match=other.tls.test")
def test_a_policy_whose_name_does_not_match_defers(
    tmp_path: Path, pki: Pki, directory: slapd.Slapd, tls_server: AiosmtpdServer
) -> None:
    opts = options(tmp_path, pki, tls_server.nexthop, policy_table(tmp_path, directory.url))
    cli([*opts, "sendmail", "-f", "s@example.org", "r@example.net"], MESSAGE)
    code, _, err = cli([*opts, "run", "--once"])
    assert code == 0
    assert "status=deferred" in err and "Server certificate not verified" in err
    assert tls_server.messages == []
    assert len(queued(tmp_path)) == 1


def test_directory_down_defers_and_keeps_the_message(
    tmp_path: Path, pki: Pki, tls_server: AiosmtpdServer
) -> None:
    down = f"ldap://127.0.0.1:{free_port()}"
    opts = options(tmp_path, pki, tls_server.nexthop, policy_table(tmp_path, down))
    cli([*opts, "sendmail", "-f", "s@example.org", "r@example.net"], MESSAGE)
    code, _, err = cli([*opts, "run", "--once"])
    assert code == 0
    assert tls_server.messages == []
    assert len(queued(tmp_path)) == 1  # the message is kept
    assert "Unable to bind to server" in err and "Can't contact LDAP server" in err
    assert (
        f'smtp_tls_policy_maps, next-hop destination "{tls_server.nexthop}": '
        "policy table lookup error" in err
    )
    assert "dsn=4.7.5, status=deferred (client TLS configuration problem)" in err
    listing = cli([*opts, "queue", "list"])[1]
    assert "client TLS configuration problem" in listing and "r@example.net" in listing

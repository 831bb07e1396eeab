"""Tests of mailcarrier.content.checks and content.pipeline: every restricted action of the
SMTP client's header/body checks, the table each header class uses, Postfix's log lines, and
the choice between the plain path and the MIME path.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mailcarrier.content.checks import ContentChecks, LookupTable
from mailcarrier.content.encoder import DataEncoder
from mailcarrier.content.mime import MimeProcessor
from mailcarrier.content.pipeline import ContentPlan, needs_downgrade, transform_chunks
from mailcarrier.tables.maps import Maps, open_maps

MESSAGE = (
    b"From: a@example.org\n"
    b"Subject: hello world\n"
    b"X-Spam: yes\n"
    b"Content-Type: multipart/mixed; boundary=b\n"
    b"\n"
    b"--b\n"
    b"Content-Type: text/plain\n"
    b"X-Part: inner\n"
    b"\n"
    b"secret body line\n"
    b"plain line\n"
    b"--b\n"
    b"Content-Type: message/rfc822\n"
    b"\n"
    b"Subject: nested one\n"
    b"\n"
    b"nested body\n"
    b"--b--\n"
)


def _maps(tmp_path: Path, name: str, rules: str) -> Maps:
    path = tmp_path / name
    path.write_text(rules)
    return open_maps(f"regexp:{path}")


class _Log:
    def __init__(self) -> None:
        self.info: list[str] = []
        self.warning: list[str] = []


def _run(checks: ContentChecks, raw: bytes = MESSAGE) -> bytes:
    proc = MimeProcessor(downgrade=False, header_out=checks.header, body_out=checks.body, mime=True)
    encoder = DataEncoder(line_length_limit=0, dot_stuff=False)
    return b"".join(transform_chunks([raw], proc, encoder)).replace(b"\r\n", b"\n")


def _checks(
    log: _Log,
    *,
    header: LookupTable | None = None,
    mime_header: LookupTable | None = None,
    nested_header: LookupTable | None = None,
    body: LookupTable | None = None,
) -> ContentChecks:
    return ContentChecks(
        queue_id="ABC123",
        info=log.info.append,
        warning=log.warning.append,
        header=header,
        mime_header=mime_header,
        nested_header=nested_header,
        body=body,
    )


@pytest.mark.parametrize(
    ("rule", "expect_out", "expect_log"),
    [
        ("WARN spam header", b"X-Spam: yes\n", "ABC123: warning: header X-Spam: yes: spam header"),
        ("INFO noted", b"X-Spam: yes\n", "ABC123: info: header X-Spam: yes: noted"),
        ("REPLACE X-Spam: no", b"X-Spam: no\n", "ABC123: replace: header X-Spam: yes: X-Spam: no"),
        (
            "PREPEND X-Checked: 1",
            b"X-Checked: 1\nX-Spam: yes\n",
            "ABC123: prepend: header X-Spam: yes: X-Checked: 1",
        ),
        ("IGNORE", b"", None),
        ("DUNNO", b"X-Spam: yes\n", None),
        ("OK", b"X-Spam: yes\n", None),
    ],
)
def test_header_actions(
    tmp_path: Path, rule: str, expect_out: bytes, expect_log: str | None
) -> None:
    log = _Log()
    checks = _checks(log, header=_maps(tmp_path, "h", f"/^X-Spam:/ {rule}\n"))
    out = _run(checks)
    head = out.split(b"\n\n", 1)[0] + b"\n"
    assert head == b"From: a@example.org\nSubject: hello world\n" + expect_out + (
        b"Content-Type: multipart/mixed; boundary=b\n"
    )
    assert log.info == ([expect_log] if expect_log else [])


@pytest.mark.parametrize(
    ("rule", "expect", "expect_log"),
    [
        ("WARN found", b"secret body line\n", "ABC123: warning: body secret body line: found"),
        ("REPLACE [removed]", b"[removed]\n", "ABC123: replace: body secret body line: [removed]"),
        (
            "PREPEND before",
            b"before\nsecret body line\n",
            "ABC123: prepend: body secret body line: before",
        ),
        ("IGNORE", b"", None),
        ("INFO seen", b"secret body line\n", "ABC123: info: body secret body line: seen"),
        ("DUNNO", b"secret body line\n", None),
    ],
)
def test_body_actions(tmp_path: Path, rule: str, expect: bytes, expect_log: str | None) -> None:
    log = _Log()
    checks = _checks(log, body=_maps(tmp_path, "b", f"/^secret/ {rule}\n"))
    out = _run(checks)
    assert b"X-Part: inner\n\n" + expect + b"plain line\n" in out
    assert log.info == ([expect_log] if expect_log else [])


def test_each_header_class_uses_its_table(tmp_path: Path) -> None:
    log = _Log()
    checks = _checks(
        log,
        header=_maps(tmp_path, "h", "/^Subject:/ WARN primary\n/^X-Part:/ WARN wrong\n"),
        mime_header=_maps(tmp_path, "m", "/^X-Part:/ WARN mime\n/^Content-Type: m/ WARN ct\n"),
        nested_header=_maps(tmp_path, "n", "/^Subject:/ WARN nested\n"),
    )
    _run(checks)
    assert log.info == [
        "ABC123: warning: header Subject: hello world: primary",
        "ABC123: warning: header Content-Type: multipart/mixed; boundary=b: ct",
        "ABC123: warning: header X-Part: inner: mime",
        "ABC123: warning: header Content-Type: message/rfc822: ct",
        "ABC123: warning: header Subject: nested one: nested",
    ]


def test_unsupported_and_bad_actions_are_warned_and_ignored(tmp_path: Path) -> None:
    log = _Log()
    rules = "/^X-Spam:/ REJECT no\n/^Subject:/ REPLACE not a header\n/^From:/ PREPEND\n"
    checks = _checks(log, header=_maps(tmp_path, "h", rules))
    assert _run(checks) == MESSAGE
    assert log.warning == [
        "PREPEND action without text in smtp_header_checks map",
        'bad REPLACE header text "not a header" in smtp_header_checks map -- '
        'need "headername: headervalue"',
        "unsupported command in smtp_header_checks map: REJECT no",
    ]


def test_folded_header_is_one_lookup(tmp_path: Path) -> None:
    log = _Log()
    checks = _checks(log, header=_maps(tmp_path, "h", "/^Subject: a\\n b/ REPLACE Subject: c\n"))
    assert _run(checks, b"Subject: a\n b\n\nbody\n") == b"Subject: c\n\nbody\n"


def test_needs_downgrade_follows_postfix() -> None:
    assert needs_downgrade("8bit", False, disabled=False)
    assert not needs_downgrade("7bit", False, disabled=False)
    assert not needs_downgrade("8bit", True, disabled=False)
    assert not needs_downgrade("8bit", False, disabled=True)


def test_plan_plain_path_is_the_plain_encoder() -> None:
    raw = b"Subject: x\n\n.dot\n" + "ä".encode() + b"\n"
    plan = ContentPlan(io.BytesIO(raw), encoding="8bit")
    assert b"".join(plan.chunks(downgrade=False)) == b"Subject: x\r\n\r\n..dot\r\n\xc3\xa4\r\n"
    converted = b"".join(plan.chunks(downgrade=True))
    assert converted == b"Subject: x\r\n\r\n..dot\r\n\xc3\xa4\r\n"  # no CTE header: 7bit
    plan8 = ContentPlan(io.BytesIO(b"Content-Transfer-Encoding: 8bit\n\n.\xc3\xa4\n"))
    assert b"".join(plan8.chunks(downgrade=True)) == (
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n..=C3=A4\r\n"
    )


def test_unreadable_table_is_a_4_3_0_content_error() -> None:
    from mailcarrier.content.checks import UnavailableTable
    from mailcarrier.content.mime import ContentError
    from mailcarrier.tables.base import TableError

    log = _Log()
    checks = _checks(log, body=UnavailableTable(TableError("open database x.db: gone")))
    assert checks.has_body_checks
    with pytest.raises(ContentError) as info:
        _run(checks)
    assert info.value.dsn == "4.3.0"
    assert "open database x.db: gone" in info.value.text
    assert log.warning == ["ABC123: smtp body checks lookup error"]

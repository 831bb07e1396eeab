"""smtp_generic_maps (generic(5)): envelope and header address rewriting in the client.

Unit tests drive `GenericMapper` with real tables (texthash files, inline) through the
settings; the end-to-end tests deliver to aiosmtpd and check MAIL FROM, RCPT TO and the
received headers, and that results and log lines still name the original recipient. A table
that cannot be read defers with 4.3.0 (before MAIL FROM, or mid-DATA for a header).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

import mailcarrier
from mailcarrier import DeliveryStatus
from mailcarrier.config.settings import Settings
from mailcarrier.content.mime import ContentError, HeaderClass
from mailcarrier.delivery.generic import GENERIC_HEADERS, GenericLookupError, GenericMapper
from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.log import MemoryLog
from mailcarrier.protocol.commands import RcptTo
from mailcarrier.tables.maps import Maps
from mailcarrier.transport.records import Envelope
from tests.support.peers.aiosmtpd_server import AiosmtpdServer
from tests.support.settings import make_settings

SENT, DEFERRED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED

TABLE = """\
joe@local.example           joe@public.example
joe+special@local.example   special@public.example
mary                        mary.smith@public.example
@local.example              @public.example
"j..doe"@local.example      john.doe@public.example
list@local.example          first@public.example, second@public.example
ghost@local.example         (nobody)
Case@Local.Example          case@public.example
"""

BASE = {
    "myorigin": "local.example",
    "mydestination": "local.example",
    "smtp_helo_name": "client.example",
}


def _settings(tmp_path: Path, **extra: str) -> Settings:
    (tmp_path / "generic").write_text(TABLE)
    values = {**BASE, "smtp_generic_maps": f"texthash:{tmp_path / 'generic'}", **extra}
    return make_settings(values)


def _mapper(tmp_path: Path, **extra: str) -> tuple[GenericMapper, list[str]]:
    warnings: list[str] = []
    settings = _settings(tmp_path, **extra)
    return GenericMapper(settings.for_transport("smtp"), warning=warnings.append), warnings


# --- lookups ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("joe@local.example", "joe@public.example"),  # user@domain
        ("JOE@LOCAL.EXAMPLE", "joe@public.example"),  # keys are case-insensitive
        ("case@local.example", "case@public.example"),
        ("mary@local.example", "mary.smith@public.example"),  # user: the domain is local
        ("anyone@local.example", "anyone@public.example"),  # @domain keeps the user
        ("someone@elsewhere.example", None),
        ("mary@elsewhere.example", None),  # user only for a local domain
        ('"j..doe"@local.example', "john.doe@public.example"),  # external (quoted) keys
        ("", None),
    ],
)
def test_search_order(tmp_path: Path, address: str, expected: str | None) -> None:
    mapper, warnings = _mapper(tmp_path)
    assert mapper.map_external(address) == expected
    assert warnings == []


def test_full_key_wins_over_user_at_domain_and_catchall(tmp_path: Path) -> None:
    mapper, _ = _mapper(tmp_path, recipient_delimiter="+")
    assert mapper.map_external("joe+special@local.example") == "special@public.example"


@pytest.mark.parametrize(
    ("propagate", "expected"),
    [
        ("canonical, virtual", "joe@public.example"),  # Postfix's default: generic not listed
        ("canonical, virtual, generic", "joe+news@public.example"),
        ("generic", "joe+news@public.example"),
    ],
)
def test_unmatched_extension_propagation(tmp_path: Path, propagate: str, expected: str) -> None:
    mapper, _ = _mapper(tmp_path, recipient_delimiter="+", propagate_unmatched_extensions=propagate)
    assert mapper.map_external("joe+news@local.example") == expected


def test_extension_on_a_local_user_key(tmp_path: Path) -> None:
    mapper, _ = _mapper(
        tmp_path, recipient_delimiter="+-", propagate_unmatched_extensions="generic"
    )
    # "mary-x@local.example": no full key, no mary@local.example, then the local keys
    # "mary-x" and "mary": the extension keeps its own delimiter.
    assert mapper.map_external("mary-x@local.example") == "mary.smith-x@public.example"


def test_catchall_keeps_the_whole_local_part(tmp_path: Path) -> None:
    mapper, _ = _mapper(tmp_path, recipient_delimiter="+")
    assert mapper.map_external("bob+tag@local.example") == "bob+tag@public.example"


def test_without_delimiter_an_extension_is_part_of_the_name(tmp_path: Path) -> None:
    mapper, _ = _mapper(tmp_path)
    assert mapper.map_external("joe+news@local.example") == "joe+news@public.example"


def test_multi_valued_result_uses_the_first_with_a_warning(tmp_path: Path) -> None:
    mapper, warnings = _mapper(tmp_path)
    assert mapper.map_external("list@local.example") == "first@public.example"
    assert warnings == ["multi-valued smtp_generic_maps result for list@local.example"]


def test_non_address_result_is_a_lookup_problem(tmp_path: Path) -> None:
    mapper, warnings = _mapper(tmp_path)
    with pytest.raises(GenericLookupError):
        mapper.map_external("ghost@local.example")
    assert warnings == [
        'smtp_generic_maps lookup of ghost@local.example returns non-address result "(nobody)"'
    ]


def test_internal_form_is_quoted_for_the_lookup(tmp_path: Path) -> None:
    mapper, _ = _mapper(tmp_path)
    assert mapper.map_internal("j..doe@local.example") == "john.doe@public.example"
    assert mapper.map_internal("") == ""  # the null sender stays null
    assert mapper.map_internal("x@elsewhere.example") == "x@elsewhere.example"


def test_lmtp_reads_lmtp_generic_maps(tmp_path: Path) -> None:
    (tmp_path / "g").write_text("a@x.example b@y.example\n")
    settings = make_settings(lmtp_generic_maps=f"texthash:{tmp_path / 'g'}")
    smtp = GenericMapper(settings.for_transport("smtp"), warning=print)
    lmtp = GenericMapper(settings.for_transport("lmtp"), warning=print)
    assert not smtp.enabled
    assert lmtp.enabled and lmtp.name == "lmtp_generic_maps"
    assert lmtp.map_external("a@x.example") == "b@y.example"


# --- envelope -----------------------------------------------------------------------------


def _envelope() -> Envelope:
    return Envelope(
        sender="joe@local.example",
        recipients=(RcptTo("mary@local.example", index=0), RcptTo("x@elsewhere.example", index=1)),
    )


def test_envelope_is_mapped_and_keeps_indexes(tmp_path: Path) -> None:
    mapper, _ = _mapper(tmp_path)
    mapped = mapper.envelope(_envelope(), "mx[192.0.2.1]")
    assert isinstance(mapped, Envelope)
    assert mapped.sender == "joe@public.example"
    assert [(r.address, r.index) for r in mapped.recipients] == [
        ("mary.smith@public.example", 0),
        ("x@elsewhere.example", 1),
    ]


def test_unreadable_table_is_a_4_3_0_verdict(tmp_path: Path) -> None:
    pytest.importorskip("berkeleydb", reason="hash: tables need berkeleydb (make extras)")
    settings = make_settings(smtp_generic_maps=f"hash:{tmp_path / 'missing'}")
    warnings: list[str] = []
    mapper = GenericMapper(settings.for_transport("smtp"), warning=warnings.append)
    verdict = mapper.envelope(_envelope(), "mx[192.0.2.1]", "4ABC")
    assert verdict == Verdict(DEFERRED, "4.3.0", "local data error while talking to mx[192.0.2.1]")
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "4ABC: smtp_generic_maps map lookup problem for joe@local.example: open database"
    )


@pytest.mark.parametrize(
    "result", ["evil@example.com> NOTIFY=NEVER", "evil@exa mple.com", "x@[1.2.3.4] SIZE=1"]
)
def test_result_that_is_not_an_address_defers(tmp_path: Path, result: str) -> None:
    """A table entry cannot add parameters to MAIL or RCPT: its result must be an address."""
    (tmp_path / "generic").write_text(f"joe@local.example {result}\n")
    settings = make_settings(BASE, smtp_generic_maps=f"texthash:{tmp_path / 'generic'}")
    warnings: list[str] = []
    mapper = GenericMapper(settings.for_transport("smtp"), warning=warnings.append)
    verdict = mapper.envelope(_envelope(), "mx[192.0.2.1]", "4ABC")
    assert verdict == Verdict(DEFERRED, "4.3.0", "local data error while talking to mx[192.0.2.1]")
    assert any("joe@local.example" in w for w in warnings)


# --- headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GENERIC_HEADERS))
def test_each_address_header_is_rewritten(tmp_path: Path, name: str) -> None:
    mapper, _ = _mapper(tmp_path)
    label = "-".join(word.capitalize() for word in name.split("-"))
    header = f"{label}: Joe <joe@local.example>, other@elsewhere.example".encode()
    lines = mapper.rewrite_header(header)
    # Folded at 70 columns (a long header name gets a second line).
    assert b" ".join(line.removeprefix(b"\t") for line in lines) == (
        f"{label}: Joe <joe@public.example>, other@elsewhere.example".encode()
    )
    assert len(lines) == (1 if len(label) < 25 else 2)


@pytest.mark.parametrize(
    "header",
    [
        b"Subject: joe@local.example",
        b"Message-Id: <joe@local.example>",
        b"X-Original-To: joe@local.example",
        b"Delivered-To: joe@local.example",
        b"In-Reply-To: <joe@local.example>",
        b"To:   nobody@elsewhere.example  (kept  as  is)",
        b"To: undisclosed-recipients:;",
        b"not a header line",
    ],
)
def test_other_headers_and_unmatched_addresses_pass_byte_for_byte(
    tmp_path: Path, header: bytes
) -> None:
    mapper, _ = _mapper(tmp_path)
    assert mapper.rewrite_header(header) == [header]


def test_rewritten_header_is_refolded_as_postfix_does(tmp_path: Path) -> None:
    mapper, _ = _mapper(tmp_path)
    header = (
        b'To: Joe <joe@local.example>,\n "Mary" <mary@local.example>,\n'
        b"\tthird.person.with.a.long.name@elsewhere.example, group: a@local.example;"
    )
    assert mapper.rewrite_header(header) == [
        b'To: Joe <joe@public.example>, "Mary" <mary.smith@public.example>,',
        b"\tthird.person.with.a.long.name@elsewhere.example,",
        b"\tgroup: a@public.example;",
    ]


def test_header_name_keeps_its_case_and_loses_space_before_colon(tmp_path: Path) -> None:
    mapper, _ = _mapper(tmp_path)
    assert mapper.rewrite_header(b"FROM : joe@local.example (Joe)") == [
        b"FROM: joe@public.example (Joe)"
    ]


def test_hook_leaves_mime_and_nested_headers_alone(tmp_path: Path) -> None:
    mapper, _ = _mapper(tmp_path)
    hook = mapper.header_rewriter("4ABC")
    header = b"From: joe@local.example"
    assert list(hook(HeaderClass.NESTED, header)) == [header]
    assert list(hook(HeaderClass.MULTIPART, header)) == [header]
    assert list(hook(HeaderClass.PRIMARY, header)) == [b"From: joe@public.example"]


class _FailingMaps(Maps):
    def find(self, key: str, *, partial: bool = False) -> Any:
        raise OSError("I/O error")


def test_header_lookup_error_abandons_the_content_with_4_3_0(tmp_path: Path) -> None:
    warnings: list[str] = []
    settings = make_settings(BASE)
    mapper = GenericMapper(
        settings.for_transport("smtp"), warning=warnings.append, maps=_FailingMaps([])
    )
    hook = mapper.header_rewriter("4ABC")
    assert list(hook(HeaderClass.PRIMARY, b"Subject: x")) == [b"Subject: x"]
    with pytest.raises(ContentError) as info:
        hook(HeaderClass.PRIMARY, b"From: joe@local.example")
    assert info.value.dsn == "4.3.0"
    assert warnings == [
        "4ABC: smtp_generic_maps map lookup problem for joe@local.example: I/O error"
    ]


# --- end to end ---------------------------------------------------------------------------

MESSAGE = b"""\
From: Joe <joe@local.example>
To: mary@local.example, Outsider <x@elsewhere.example>
Cc: "j..doe"@local.example
Subject: joe@local.example stays
Message-Id: <1@local.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain

body mentions joe@local.example
--b
Content-Type: message/rfc822

From: joe@local.example
Subject: forwarded

inner
--b--
"""


def _request(server: AiosmtpdServer, content: bytes = MESSAGE) -> DeliveryRequest:
    return DeliveryRequest(
        queue_id="4GENERIC1",
        nexthop=server.nexthop,
        sender="joe@local.example",
        recipients=(Recipient("mary@local.example"), Recipient("x@elsewhere.example")),
        content=io.BytesIO(content),
    )


async def test_envelope_and_headers_rewritten_results_name_the_original(
    smtp_server: AiosmtpdServer, tmp_path: Path
) -> None:
    log = MemoryLog()
    result = await mailcarrier.deliver(_request(smtp_server), config=_settings(tmp_path), log=log)
    assert [(r.address, r.status) for r in result.recipients] == [
        ("mary@local.example", SENT),
        ("x@elsewhere.example", SENT),
    ]
    (received,) = smtp_server.messages
    assert received.mail_from == "joe@public.example"
    assert received.rcpt_tos == ["mary.smith@public.example", "x@elsewhere.example"]
    head, _, body = received.content.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"From: Joe <joe@public.example>",
        b"To: mary.smith@public.example, Outsider <x@elsewhere.example>",
        b"Cc: john.doe@public.example",
        b"Subject: joe@local.example stays",
        b"Message-Id: <1@local.example>",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="b"',
    ]
    # Only primary headers: the body and the attached message are untouched.
    assert b"body mentions joe@local.example" in body
    assert b"From: joe@local.example\r\nSubject: forwarded" in body
    lines = [line for line in log.lines if "to=<" in line]
    assert any(line.startswith("4GENERIC1: to=<mary@local.example>,") for line in lines)
    assert not any("public.example" in line for line in lines)


async def test_unreadable_generic_maps_defer_4_3_0_without_a_transaction(
    smtp_server: AiosmtpdServer, tmp_path: Path
) -> None:
    log = MemoryLog()
    config = make_settings(BASE, smtp_generic_maps=f"hash:{tmp_path / 'missing'}")
    result = await mailcarrier.deliver(_request(smtp_server), config=config, log=log)
    for status in result.recipients:
        assert (status.status, status.dsn) == (DEFERRED, "4.3.0")
        assert status.diagnostic.startswith("local data error while talking to ")
    assert smtp_server.messages == []
    assert any("smtp_generic_maps map lookup problem" in line for line in log.lines)


async def test_header_lookup_error_mid_data_defers(
    smtp_server: AiosmtpdServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _settings(tmp_path)
    calls = 0
    original = GenericMapper.map_external

    def flaky(self: GenericMapper, address: str) -> str | None:
        nonlocal calls
        calls += 1
        if calls > 3:  # the envelope (3 addresses) maps; the first header fails
            raise GenericLookupError(self.name, address, "table went away")
        return original(self, address)

    monkeypatch.setattr(GenericMapper, "map_external", flaky)
    result = await mailcarrier.deliver(_request(smtp_server), config=config, log=MemoryLog())
    for status in result.recipients:
        assert (status.status, status.dsn) == (DEFERRED, "4.3.0")
        assert "local data error" in status.diagnostic
    assert smtp_server.messages == []  # the final dot was never sent


async def test_generic_maps_alone_do_not_convert_8bit(tmp_path: Path) -> None:
    from tests.delivery.test_content_delivery import _No8BitHandler

    server = AiosmtpdServer(_No8BitHandler()).start()
    try:
        raw = "From: joe@local.example\nContent-Transfer-Encoding: 8bit\n\nGrüße\n".encode()
        request = DeliveryRequest(
            queue_id="4GENERIC2",
            nexthop=server.nexthop,
            sender="joe@local.example",
            recipients=(Recipient("a@elsewhere.example"),),
            content=io.BytesIO(raw),
            encoding="8bit",
        )
        config = _settings(tmp_path, disable_mime_output_conversion="yes")
        # Conversion disabled and no 8BITMIME: 5.6.3 as without generic maps.
        result = await mailcarrier.deliver(request, config=config, log=MemoryLog())
        assert result.recipients[0].dsn == "5.6.3"
    finally:
        server.stop()

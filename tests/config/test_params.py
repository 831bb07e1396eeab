"""Tests for the parameter table: every seed parameter known, with its documented default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailcarrier.config import PARAMS, ParamType, Settings
from mailcarrier.config.paramtype import declare

DATA = Path(__file__).parent / "data" / "seed_params.tsv"
SEED = Path(__file__).resolve().parents[2] / "../shared/reference/smtp8-seed.txt"
# Seed defaults that are not values: the current default is whatever Postfix computes.
UNSPECIFIED = {"see 'postconf -d' output", "version dependent", "read-only"}


def _seed_rows() -> list[tuple[str, str]]:
    rows = []
    for line in DATA.read_text().splitlines():
        if line and not line.startswith("#"):
            name, default = line.split("\t")
            rows.append((name, default))
    return rows


def _norm(text: str) -> str:
    return re.sub(r"\s*,\s*", ", ", text.strip())


def test_data_file_matches_the_seed_when_present() -> None:
    if not SEED.exists():
        pytest.skip("../shared/reference/smtp8-seed.txt is not beside the repository")
    found = re.findall(r'\.IP "\\fB([A-Za-z0-9_]+) \((.*)\)\\fR"', SEED.read_text())
    assert found == _seed_rows()


@pytest.mark.parametrize(("name", "documented"), _seed_rows())
def test_seed_parameter_is_known_with_its_default(name: str, documented: str) -> None:
    param = PARAMS[name]
    if documented in UNSPECIFIED:
        assert param.note, f"{name}: say in the note where the default comes from"
        return
    expected = "" if documented == "empty" else documented
    if _norm(param.default) != _norm(expected):
        # A deliberate move to Postfix's current default must be documented with the seed's.
        assert "seed:" in param.note and _norm(expected) in _norm(param.note), name


def test_defaults_all_convert() -> None:
    settings = Settings.defaults()
    for name, param in PARAMS.items():
        value = settings.value(name)
        kind = {ParamType.BOOL: bool, ParamType.TIME: float, ParamType.STRING: str}
        assert isinstance(value, kind.get(param.type, (int, tuple))), name


def test_every_smtp_parameter_has_an_lmtp_twin() -> None:
    exempt = {"smtp_skip_4xx_greeting"}
    for name, param in PARAMS.items():
        if name.startswith("smtp_") and name not in exempt:
            assert param.lmtp_name in PARAMS, name
            twin = PARAMS[param.lmtp_name]
            assert (twin.type, twin.choices) == (param.type, param.choices), name


@pytest.mark.parametrize(
    ("smtp", "lmtp"),
    [
        ("smtp_helo_timeout", "lmtp_lhlo_timeout"),
        ("smtp_helo_name", "lmtp_lhlo_name"),
        ("smtp_discard_ehlo_keywords", "lmtp_discard_lhlo_keywords"),
        ("smtp_discard_ehlo_keyword_address_maps", "lmtp_discard_lhlo_keyword_address_maps"),
        ("smtp_connect_timeout", "lmtp_connect_timeout"),
    ],
)
def test_special_lmtp_names(smtp: str, lmtp: str) -> None:
    assert PARAMS[smtp].lmtp_name == lmtp


def test_lmtp_defaults_that_differ_and_refer_to_lmtp() -> None:
    assert PARAMS["lmtp_connect_timeout"].default == "0s"
    assert PARAMS["lmtp_tls_key_file"].default == "$lmtp_tls_cert_file"
    assert PARAMS["lmtp_sasl_tls_security_options"].default == "$lmtp_sasl_security_options"
    assert PARAMS["lmtp_fallback_relay"].default == "$fallback_relay"


def test_parameters_later_issues_need() -> None:
    needed = [
        "relayhost",
        "transport_maps",
        "default_transport",
        "queue_directory",
        "maximal_queue_lifetime",
        "bounce_queue_lifetime",
        "minimal_backoff_time",
        "maximal_backoff_time",
        "queue_run_delay",
        "delay_warning_time",
        "default_destination_concurrency_limit",
        "initial_destination_concurrency",
        "default_destination_recipient_limit",
        "smtp_tls_chain_files",
        "smtp_tls_servername",
        "smtp_tls_wrappermode",
        "smtp_tls_trust_anchor_file",
        "smtp_dns_support_level",
        "smtp_address_preference",
        "smtp_balance_inet_protocols",
        "use_srv_lookup",
        "smtp_connection_reuse_count_limit",
        "smtp_reply_filter",
        "smtp_delivery_status_filter",
        "smtp_send_dummy_mail_auth",
        "notify_classes",
        "bounce_notice_recipient",
        "error_notice_recipient",
        "double_bounce_sender",
        "mydestination",
        "myorigin",
        "mydomain",
        "inet_interfaces",
        "proxy_interfaces",
        "inet_protocols",
        "message_size_limit",
        "recipient_delimiter",
    ]
    assert [n for n in needed if n not in PARAMS] == []


def test_declaration_helper() -> None:
    first, twin = declare("smtp_x_y", ParamType.STRING, "${smtp_z}", mirror=True)
    assert (first.lmtp_name, twin.name, twin.default) == ("lmtp_x_y", "lmtp_x_y", "${lmtp_z}")
    assert declare("plain", ParamType.INT, "1") == [declare("plain", ParamType.INT, "1")[0]]

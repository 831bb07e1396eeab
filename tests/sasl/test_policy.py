"""Mechanism choice: the filter as a Postfix string list, Cyrus-style security options,
opt-in mechanisms, channel binding and the gs2 "y"/"n" decision."""

from __future__ import annotations

import pytest

from mailcarrier.errors import ConfigError
from mailcarrier.sasl.mechanism import ChannelBinding, Credentials
from mailcarrier.sasl.policy import (
    Choice,
    MechanismFilter,
    NoMechanism,
    SecurityOptions,
    choose_mechanism,
    make_mechanism,
    options_parameter,
)

DEFAULT = SecurityOptions.parse(["noplaintext", "noanonymous"])
NONE = SecurityOptions.parse(["noanonymous"])
ALL = MechanismFilter(())
CB = ChannelBinding("tls-unique", b"0123456789ab")


def choose(
    offered: str, options: SecurityOptions = NONE, filt: MechanismFilter = ALL, **kw: object
) -> Choice | NoMechanism:
    return choose_mechanism(offered.split(), mechanism_filter=filt, options=options, **kw)  # type: ignore[arg-type]


def test_noplaintext_refuses_plain_and_login() -> None:
    assert choose("PLAIN LOGIN", DEFAULT) == NoMechanism(True, "no mechanism available")
    assert choose("PLAIN LOGIN CRAM-MD5", DEFAULT) == Choice("CRAM-MD5", None)


def test_plaintext_allowed_without_noplaintext() -> None:
    assert choose("LOGIN PLAIN", NONE) == Choice("PLAIN", None)


def test_strongest_wins() -> None:
    assert choose("PLAIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256") == Choice("SCRAM-SHA-256", None)


def test_noactive_and_nodictionary_and_mutual() -> None:
    noactive = SecurityOptions.parse(["noactive"])
    assert choose("PLAIN CRAM-MD5", noactive) == NoMechanism(True, "no mechanism available")
    assert choose("CRAM-MD5 SCRAM-SHA-1", noactive) == Choice("SCRAM-SHA-1", None)
    nodict = SecurityOptions.parse(["nodictionary"])
    assert isinstance(choose("PLAIN CRAM-MD5 SCRAM-SHA-256", nodict), NoMechanism)
    mutual = SecurityOptions.parse(["mutual_auth"])
    assert choose("CRAM-MD5 PLAIN", mutual) == NoMechanism(True, "no mechanism available")
    assert choose("CRAM-MD5 SCRAM-SHA-1", mutual) == Choice("SCRAM-SHA-1", None)


def test_unknown_option_names_parameter() -> None:
    with pytest.raises(ConfigError, match="smtp_sasl_security_options"):
        SecurityOptions.parse(["noplaintext", "bogus"], "smtp_sasl_security_options")


def test_options_parameter_by_tls_state() -> None:
    assert options_parameter(False, False) == "sasl_security_options"
    assert options_parameter(True, False) == "sasl_tls_security_options"
    assert options_parameter(True, True) == "sasl_tls_verified_security_options"


def test_filter_string_list_semantics() -> None:
    filt = MechanismFilter(["!cram-md5", "static:all"])
    assert filt.apply(["PLAIN", "CRAM-MD5", "LOGIN"]) == ("PLAIN", "LOGIN")
    only = MechanismFilter(["plain", "login"])
    assert only.apply(["CRAM-MD5", "PLAIN"]) == ("PLAIN",)
    assert choose("CRAM-MD5", NONE, only) == NoMechanism(False, "CRAM-MD5")


def test_filter_refuses_tables() -> None:
    with pytest.raises(ConfigError, match="smtp_sasl_mechanism_filter"):
        MechanismFilter(["hash:/etc/postfix/mechs"])


def test_unknown_server_mechanisms_are_incompatible() -> None:
    assert choose("GSSAPI NTLM") == NoMechanism(False, "GSSAPI NTLM")


def test_oauth_and_external_are_opt_in() -> None:
    assert choose("XOAUTH2 OAUTHBEARER PLAIN") == Choice("PLAIN", None)
    xo = MechanismFilter(["xoauth2"])
    assert choose("XOAUTH2 PLAIN", NONE, xo) == Choice("XOAUTH2", None)
    # Bearer tokens travel as is: noplaintext refuses them too.
    assert isinstance(choose("XOAUTH2", DEFAULT, xo), NoMechanism)
    ext = MechanismFilter(["external", "plain"])
    assert choose("EXTERNAL PLAIN", NONE, ext) == Choice("PLAIN", None)
    assert choose("EXTERNAL PLAIN", DEFAULT, ext, client_certificate=True) == Choice(
        "EXTERNAL", None
    )


def test_plus_needs_binding() -> None:
    offered = "SCRAM-SHA-256 SCRAM-SHA-256-PLUS"
    assert choose(offered) == Choice("SCRAM-SHA-256", None)  # no binding: flag "n"
    assert choose(offered, bindings=[CB]) == Choice("SCRAM-SHA-256-PLUS", CB)


def test_y_flag_only_when_server_offered_no_plus() -> None:
    assert choose("SCRAM-SHA-256", bindings=[CB]) == Choice("SCRAM-SHA-256", CB)
    # -PLUS offered but filtered out: "y" would fail the exchange, so no binding ("n").
    filt = MechanismFilter(["scram-sha-256"])
    assert choose("SCRAM-SHA-256 SCRAM-SHA-256-PLUS", NONE, filt, bindings=[CB]) == Choice(
        "SCRAM-SHA-256", None
    )


def test_binding_preference_tls_unique_first() -> None:
    end_point = ChannelBinding("tls-server-end-point", b"e" * 32)
    exporter = ChannelBinding("tls-exporter", b"x" * 32)
    got = choose("SCRAM-SHA-1-PLUS", bindings=[exporter, end_point, CB])
    assert got == Choice("SCRAM-SHA-1-PLUS", CB)
    got = choose("SCRAM-SHA-1-PLUS", bindings=[exporter, end_point])
    assert got == Choice("SCRAM-SHA-1-PLUS", end_point)
    assert choose("SCRAM-SHA-1-PLUS", bindings=[exporter]) == NoMechanism(
        True, "no mechanism available"
    )


def test_make_mechanism_names() -> None:
    creds = Credentials("u", "p")
    for name in ("PLAIN", "LOGIN", "CRAM-MD5", "EXTERNAL", "XOAUTH2", "OAUTHBEARER", "SCRAM-SHA-1"):
        assert make_mechanism(Choice(name, None), creds).name == name
    assert make_mechanism(Choice("SCRAM-SHA-256-PLUS", CB), creds).name == "SCRAM-SHA-256-PLUS"

"""master.cf parsing: logical lines, the eight columns, braces, -o forms, errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.config.mastercf import parse_master_cf, read_master_cf
from mailcarrier.config.parser import RawSetting
from mailcarrier.errors import ConfigError

# Debian's master.cf, in part: services that are not delivery transports are kept, unused.
POSTFIX_LIKE = """\
# ==========================================================================
# service type  private unpriv  chroot  wakeup  maxproc command + args
# ==========================================================================
smtp      inet  n       -       y       -       -       smtpd
pickup    unix  n       -       y       60      1       pickup
smtp      unix  -       -       y       -       -       smtp
relay     unix  -       -       y       -       -       smtp
        -o syslog_name=postfix/$service_name
#       -o smtp_helo_timeout=5 -o smtp_connect_timeout=5
        -o smtp_helo_timeout=5
lmtp      unix  -       -       y       -       -       lmtp
maildrop  unix  -       n       n       -       -       pipe
  flags=DRhu user=vmail argv=/usr/bin/maildrop -d ${recipient}
"""


def test_services_and_transports() -> None:
    master = parse_master_cf(POSTFIX_LIKE, "/etc/mc/master.cf")
    names = [(s.name, s.type, s.command) for s in master.services]
    assert names == [
        ("smtp", "inet", "smtpd"),
        ("pickup", "unix", "pickup"),
        ("smtp", "unix", "smtp"),
        ("relay", "unix", "smtp"),
        ("lmtp", "unix", "lmtp"),
        ("maildrop", "unix", "pipe"),
    ]
    transports = master.transports
    assert list(transports) == ["smtp", "relay", "lmtp"]
    assert transports["lmtp"].kind == "lmtp"
    # A comment line between continuation lines does not end the logical line (readllines).
    assert transports["relay"].overrides == (
        RawSetting("syslog_name", "postfix/$service_name", "/etc/mc/master.cf", 7),
        RawSetting("smtp_helo_timeout", "5", "/etc/mc/master.cf", 7),
    )
    assert master.services[-1].args == (
        "flags=DRhu",
        "user=vmail",
        "argv=/usr/bin/maildrop",
        "-d",
        "${recipient}",
    )


def test_option_forms() -> None:
    text = (
        "a unix - - n - - smtp -o smtp_helo_name=x.example -osmtp_bind_address=127.0.0.1\n"
        "   -o { smtp_tls_loglevel = 1 } -o {smtp_helo_timeout=9s} -v\n"
        "   -o { smtp_tls_mandatory_ciphers = high medium }\n"
        "b unix - - n - - /usr/lib/postfix/sbin/mailcarrier-lmtp -i 30 -m 5 -o x=1 arg -o y=2\n"
    )
    a, b = parse_master_cf(text).services
    assert [(o.name, o.value) for o in a.overrides] == [
        ("smtp_helo_name", "x.example"),
        ("smtp_bind_address", "127.0.0.1"),
        ("smtp_tls_loglevel", "1"),
        ("smtp_helo_timeout", "9s"),
        ("smtp_tls_mandatory_ciphers", "high medium"),
    ]
    # -i and -m are max_idle and max_use; options end at the first other argument.
    assert b.kind == "lmtp"
    assert [(o.name, o.value) for o in b.overrides] == [
        ("max_idle", "30"),
        ("max_use", "5"),
        ("x", "1"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a unix - - n - -\n", 'missing "command" field'),
        ("a\n", 'missing "transport type" field'),
        ("a tcp - - n - - smtp\n", "bad transport type: tcp"),
        ("a unix x - n - - smtp\n", 'field "private": bad value: "x"'),
        ("a unix - - maybe - - smtp\n", 'field "chroot": bad value: "maybe"'),
        ("a unix - - n soon - smtp\n", 'field "wakeup_time": bad value: "soon"'),
        ("a unix - - n - many smtp\n", 'field "max_proc": bad value: "many"'),
        ("a unix - - n - - smtp -o { x = 1\n", "missing '}' in \"{ x = 1\""),
        ("a unix - - n - - smtp -o {x=1}y\n", "syntax error after '}' in \"{x=1}y\""),
        ("a unix - - n - - smtp -o =1\n", 'invalid "-o =1" option value: missing attribute name'),
        ("a unix - - n - - smtp -o x\n", "invalid \"-o x\" option value: missing '=' after"),
        ("a unix - - n - - smtp -o a-b=1\n", '-o a-b=1: bad parameter name "a-b"'),
        ("a unix - - n - - smtp -Q\n", "invalid option: -Q"),
        ("a unix - - n - - smtp -o\n", "option -o requires an argument"),
        ("  -o x=1\n", "continuation line without a preceding service"),
    ],
)
def test_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_master_cf("# first\n\n" + text, "/etc/mc/master.cf")
    assert str(info.value).startswith(f"/etc/mc/master.cf:3: {message}")


def test_a_service_defined_twice() -> None:
    text = "a unix - - n - - smtp\n\nb unix - - n - - smtp\na unix - - n - - lmtp\n"
    with pytest.raises(ConfigError) as info:
        parse_master_cf(text, "m.cf")
    assert str(info.value) == "m.cf:4: service a/unix is defined again (first at line 1)"


def test_other_services_are_not_read_for_options() -> None:
    """A pipe service's flags and an inet smtp service's options are not delivery agent
    options: nothing there is checked or used."""
    text = "p unix - n n - - pipe -Q flags=x\nsmtp inet n - n - - smtp -Q\n"
    master = parse_master_cf(text)
    assert master.transports == {}


def test_read_master_cf(tmp_path: Path) -> None:
    assert read_master_cf(tmp_path / "master.cf") is None
    (tmp_path / "master.cf").write_text("x unix - - n - - smtp -o smtp_helo_name=h\n")
    master = read_master_cf(tmp_path / "master.cf")
    assert master is not None and master.filename == str(tmp_path / "master.cf")
    assert master.transports["x"].where == f"{tmp_path / 'master.cf'}:1"


_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
# Values without braces, "#" or line breaks, trimmed as split_nameval trims them.
_VALUES = st.text(
    alphabet=st.characters(codec="ascii", categories=("L", "N", "P", "S", "Zs")).filter(
        lambda c: c not in "{}#"
    ),
    max_size=30,
).map(str.strip)


@given(st.lists(st.tuples(_NAMES, _VALUES), min_size=1, max_size=5), st.booleans())
def test_braced_options_round_trip(pairs: list[tuple[str, str]], folded: bool) -> None:
    """Any name and value written as ``-o { name = value }`` (on continuation lines or not)
    comes back as it was written."""
    joiner = "\n    " if folded else " "
    args = joiner.join(f"-o {{ {name} = {value} }}" for name, value in pairs)
    (service,) = parse_master_cf(f"t unix - - n - - smtp {args}\n").services
    assert [(o.name, o.value) for o in service.overrides] == pairs

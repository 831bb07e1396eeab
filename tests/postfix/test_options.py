"""postfix/options.py: the command line master(8) gives a child, main.cf with its overrides,
and the privileges a child gives up.

The two argvs are those a Postfix 3.7.11 master gave a test agent (the specification's
child-start-smtp.json and child-start-relay.json); the grammar is single_server_main's
getopt, and ``-o`` values are split as util/split_nameval.c splits them (also with random
blanks, hypothesis).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.errors import ConfigError
from mailcarrier.postfix import options
from mailcarrier.postfix.options import (
    MasterError,
    MasterOptions,
    drop_privileges,
    load_settings,
    parse_argv,
    parse_generation,
    split_nameval,
)

AGENT = "/usr/lib/postfix/sbin/../../../../opt/mc/bin/smtp"
POSTCONF = "/usr/sbin/postconf"
CAPTURED_SMTP = [
    AGENT,
    *("-t", "unix", "-u"),
    *("-o", "smtp_helo_name=stub.test.local", "-o", "smtp_bind_address = 127.0.0.1"),
]
CAPTURED_RELAY = [
    AGENT,
    "-n",
    "relay",
    "-t",
    "unix",
    "-u",
    "-o",
    "syslog_name=postfix/$service_name",
]


def test_the_captured_smtp_argv() -> None:
    assert parse_argv(CAPTURED_SMTP) == MasterOptions(
        program="smtp",
        service_name="smtp",
        personality="smtp",
        transport="unix",
        unprivileged=True,
        overrides=(("smtp_helo_name", "stub.test.local"), ("smtp_bind_address", "127.0.0.1")),
    )


def test_the_captured_relay_argv() -> None:
    parsed = parse_argv(CAPTURED_RELAY)
    assert (parsed.program, parsed.service_name, parsed.personality) == ("smtp", "relay", "smtp")
    assert parsed.overrides == (("syslog_name", "postfix/$service_name"),)
    assert parsed.unprivileged and not parsed.chroot


def test_every_option() -> None:
    argv = ["mailcarrier-lmtp", "-z", "-l", "-n", "lmtp-local", "-t", "INET", "-u", "-c"]
    argv += ["-s", "2", "-v", "-v", "-V", "-d", "-D", "-r", "30"]
    argv += ["-m", "5", "-i", "7", "-o", "max_idle=9", "service", "args"]
    assert parse_argv(argv) == MasterOptions(
        program="mailcarrier-lmtp",
        service_name="lmtp-local",
        personality="lmtp",
        transport="inet",
        socket_count=2,
        max_use="5",
        max_idle="7",
        unprivileged=True,
        chroot=True,
        verbosity=2,
        log_stderr=True,
        solitary=True,
        zero_limit=True,
        daemon_mode=False,
        debug=True,
        retire=30,
        overrides=(("max_use", "5"), ("max_idle", "7"), ("max_idle", "9")),
        args=("service", "args"),
    )


@pytest.mark.parametrize(
    ("tail", "args", "verbosity"),
    [
        (["extra", "-v"], ("extra", "-v"), 0),  # the first non-option ends the options
        (["--", "-v"], ("-v",), 0),
        (["-uv", "-ofoo=bar"], (), 1),  # grouped flags, an argument in the same word
    ],
)
def test_options_stop_at_the_first_non_option(
    tail: list[str], args: tuple[str, ...], verbosity: int
) -> None:
    parsed = parse_argv(["smtp", "-t", "unix", *tail])
    assert parsed.args == args
    assert parsed.verbosity == verbosity


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["smtp", "-t", "unix", "-x"], "invalid option: x"),
        (["smtp", "-t"], "option -t requires an argument"),
        (["smtp", "-u"], "no transport type specified"),
        (["smtp", "-t", "pass"], "unsupported transport type: pass"),
        (["smtp", "-t", "unix", "-s", "0"], "invalid socket_count: 0"),
        (["smtp", "-t", "unix", "-r", "soon"], "invalid retirement time: soon"),
        (["smtp", "-t", "unix", "-S"], "option -S (a client on standard input) is not supported"),
        (
            ["smtp", "-t", "unix", "-o", " = x"],
            'invalid "-o  = x" option value: missing attribute name',
        ),
        (
            ["smtp", "-t", "unix", "-o", "a b=c"],
            "invalid \"-o a b=c\" option value: missing '=' after attribute name",
        ),
        (
            ["qmgr", "-l", "-t", "unix", "-u"],
            'unexpected process name "qmgr" (service "qmgr") - specify "smtp", "lmtp", '
            '"mailcarrier-smtp" or "mailcarrier-lmtp"',
        ),
        ([], "empty command line"),
    ],
)
def test_bad_command_lines_are_one_line(argv: list[str], message: str) -> None:
    with pytest.raises(MasterError) as info:
        parse_argv(argv)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("argv", "personality"),
    [
        (["/x/mailcarrier-smtp", "-t", "unix"], "smtp"),
        (["/x/lmtp", "-n", "relay", "-t", "unix"], "lmtp"),  # the program name wins
        (["/x/agent", "-n", "lmtp", "-t", "unix"], "lmtp"),  # else the service name tells
        (["/x/agent", "-n", "smtp", "-t", "unix"], "smtp"),
    ],
)
def test_the_personality(argv: list[str], personality: str) -> None:
    assert parse_argv(argv).personality == personality


def test_a_program_name_that_does_not_tell_is_fatal() -> None:
    with pytest.raises(MasterError, match=r'unexpected process name "agent" \(service "relay"\)'):
        parse_argv(["/x/agent", "-n", "relay", "-t", "unix"])


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("a=b", ("a", "b")),
        ("  smtp_bind_address = 127.0.0.1  ", ("smtp_bind_address", "127.0.0.1")),
        ("a==b", ("a", "=b")),
        ("a = b c\t", ("a", "b c")),
        ("a=", ("a", "")),
        ("a\t=\t", ("a", "")),
    ],
)
def test_split_nameval(text: str, pair: tuple[str, str]) -> None:
    assert split_nameval(text) == pair


_BLANK = st.text(alphabet=" \t", max_size=3)
_NAME = st.from_regex(r"[A-Za-z0-9_]{1,20}", fullmatch=True)
_VALUE = st.from_regex(r"([!-~]([ !-~]*[!-~])?)?", fullmatch=True)


@given(_BLANK, _NAME, _BLANK, _BLANK, _VALUE, _BLANK)
def test_split_nameval_trims_every_blank_around(
    b1: str, name: str, b2: str, b3: str, value: str, b4: str
) -> None:
    assert split_nameval(f"{b1}{name}{b2}={b3}{value}{b4}") == (name, value)


@given(st.lists(st.tuples(_NAME, _VALUE), max_size=6), st.integers(0, 3))
def test_overrides_keep_their_order(pairs: list[tuple[str, str]], verbosity: int) -> None:
    argv = ["smtp"] + ["-v"] * verbosity + ["-t", "unix"]
    for name, value in pairs:
        argv += ["-o", f"{name} = {value}"]
    parsed = parse_argv(argv)
    assert parsed.overrides == tuple(pairs)
    assert parsed.verbosity == verbosity


@pytest.mark.parametrize(
    ("value", "generation"),
    [("15", 0o15), ("135", 0o135), ("24", 20), ("0", 0), ("19", 1), ("37777777777", 2**32 - 1)],
)
def test_the_generation_is_octal(value: str, generation: int) -> None:
    assert parse_generation({"GENERATION": value}) == generation


def test_no_generation_is_zero_and_a_bad_one_is_fatal() -> None:
    assert parse_generation({}) == 0
    for bad in ("", "1a", "-1", "\u0661"):  # the last: ARABIC-INDIC DIGIT ONE
        with pytest.raises(MasterError, match="bad generation"):
            parse_generation({"GENERATION": bad})


# --- main.cf and the overrides --------------------------------------------------------------
def _config(tmp_path: Path, *lines: str) -> dict[str, str]:
    (tmp_path / "main.cf").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"MAIL_CONFIG": str(tmp_path)}


def test_service_name_expands_in_overrides_and_main_cf(tmp_path: Path) -> None:
    env = _config(
        tmp_path, "myhostname = mta.test.local", "smtp_helo_name = ${service_name}.example"
    )
    settings = load_settings(parse_argv(CAPTURED_RELAY), env, cwd="/q")
    assert settings.params.syslog_name == "postfix/relay"
    assert settings.params.service_name == "relay"
    assert settings.params.smtp_helo_name == "relay.example"
    plain = load_settings(parse_argv(CAPTURED_SMTP), env, cwd="/q")
    assert plain.params.syslog_name == "postfix"
    assert plain.params.smtp_helo_name == "stub.test.local"  # -o wins over main.cf
    assert plain.params.smtp_bind_address == "127.0.0.1"


def test_postfix_master_cf_is_not_read_again(tmp_path: Path) -> None:
    """Inside Postfix, master(8) read master.cf and passed the service's -o settings on
    the command line: the agent takes those alone. Postfix's master.cf (its -o settings,
    its other services, lines only Postfix reads) is never read, so nothing is applied twice
    and nothing there can stop the agent."""
    env = _config(tmp_path, "myhostname = mta.test.local", "default_transport = uucp")
    (tmp_path / "master.cf").write_text(
        "relay unix - - n - - mailcarrier-smtp -o syslog_name=postfix/$service_name\n"
        "  -o smtp_helo_name=from-master-cf.example -o smtp_connect_timeout=bad\n"
        "uucp unix - n n - - pipe flags=Fqhu user=uucp argv=uux -r -n -z -a$sender\n"
        "weird fifo - - n - -\n"
    )
    settings = load_settings(parse_argv(CAPTURED_RELAY), env, cwd="/q")
    assert settings.master is None and settings.services == {}
    assert settings.params.smtp_helo_name == "mta.test.local"  # not master.cf's -o
    assert settings.params.syslog_name == "postfix/relay"  # the command line's, once
    assert settings.for_transport("smtp").label == "smtp"


def test_a_postfix_main_cf_with_parameters_we_do_not_know(tmp_path: Path) -> None:
    env = _config(
        tmp_path,
        "smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)",
        "biff = no",
        "alias_maps = hash:/etc/aliases",
        "mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128",
        "smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache",
        "smtp_sasl_password_maps = texthash:$config_directory/sasl_passwd",
        "myhostname = mta.test.local",
    )
    settings = load_settings(parse_argv(["smtp", "-t", "unix"]), env, cwd="/var/spool/postfix")
    assert settings.params.myhostname == "mta.test.local"
    assert settings.params.queue_directory == "/var/spool/postfix"  # where master started us
    assert settings.params.config_directory == str(tmp_path)
    assert settings.params.smtp_sasl_password_maps == (f"texthash:{tmp_path}/sasl_passwd",)
    assert settings.params.smtp_tls_session_cache_database == ("btree:/var/lib/postfix/smtp_scache")
    assert settings.is_set("biff")


def test_names_only_postfix_accepts_are_left_out(tmp_path: Path) -> None:
    env = _config(tmp_path, "my-relay_destination_concurrency_limit = 5", "myhostname = m.test")
    settings = load_settings(parse_argv(["smtp", "-t", "unix"]), env)
    assert settings.params.myhostname == "m.test"
    assert not settings.is_set("my-relay_destination_concurrency_limit")
    (tmp_path / "main.cf").write_text("no equals sign here\n")
    with pytest.raises(ConfigError, match="missing"):
        load_settings(parse_argv(["smtp", "-t", "unix"]), env)


@pytest.mark.skipif(not os.path.exists(POSTCONF), reason="Postfix's postconf not installed")
def test_every_default_of_postfix_is_accepted(tmp_path: Path) -> None:
    """main.cf with every parameter Postfix knows, at Postfix's default value."""
    defaults = subprocess.run(
        [POSTCONF, "-d"], capture_output=True, check=True, timeout=60, env={"LANG": "C"}
    ).stdout
    (tmp_path / "main.cf").write_bytes(defaults)
    env = {"MAIL_CONFIG": str(tmp_path)}
    settings = load_settings(parse_argv(CAPTURED_RELAY), env, cwd="/var/spool/postfix")
    assert settings.params.syslog_name == "postfix/relay"
    assert settings.params.mail_owner == "postfix"


def test_main_cf_and_the_options_order_max_idle_and_max_use(tmp_path: Path) -> None:
    env = _config(tmp_path, "queue_directory = /srv/q", "max_idle = 50s", "max_use = 10")
    first = load_settings(parse_argv(["smtp", "-t", "unix", "-i", "7", "-o", "max_idle=9"]), env)
    assert first.params.max_idle == 9.0
    assert first.params.max_use == 10
    second = load_settings(parse_argv(["smtp", "-t", "unix", "-o", "max_idle=9", "-i", "7"]), env)
    assert second.params.max_idle == 7.0
    assert load_settings(parse_argv(["smtp", "-t", "unix", "-m", "3"]), env).params.max_use == 3
    assert first.params.queue_directory == "/srv/q"


def test_a_bad_override_names_the_parameter(tmp_path: Path) -> None:
    env = _config(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings(parse_argv(["smtp", "-t", "unix", "-m", "many"]), env)
    assert info.value.parameter == "max_use"
    assert "-o" in str(info.value)


def test_main_cf_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = parse_argv(["smtp", "-t", "unix"])
    with pytest.raises(ConfigError, match=f"open {tmp_path}/main.cf: No such file or directory"):
        load_settings(argv, {"MAIL_CONFIG": str(tmp_path)})
    monkeypatch.setattr(options, "DEFAULT_CONFIG_DIRECTORY", str(tmp_path / "etc"))
    with pytest.raises(ConfigError, match=f"open {tmp_path}/etc/main.cf"):
        load_settings(argv, {})


# --- privileges -----------------------------------------------------------------------------
def test_chroot_is_refused_in_one_line(tmp_path: Path) -> None:
    parsed = parse_argv(["smtp", "-n", "relay", "-t", "unix", "-u", "-c"])
    settings = load_settings(parsed, _config(tmp_path))
    with pytest.raises(ConfigError) as info:
        drop_privileges(parsed, settings)
    assert str(info.value) == (
        'service relay: chroot is not supported: set the chroot column of service "relay" '
        "in master.cf to n"
    )


def test_without_u_nothing_changes(tmp_path: Path) -> None:
    parsed = parse_argv(["smtp", "-t", "unix"])
    before = (os.getuid(), os.getgid(), os.getgroups())
    drop_privileges(parsed, load_settings(parsed, _config(tmp_path)))
    assert (os.getuid(), os.getgid(), os.getgroups()) == before


@pytest.mark.parametrize(
    ("owner", "message"),
    [
        ("no-such-user-here", "parameter mail_owner: unknown user name value: no-such-user-here"),
        ("root", "parameter mail_owner: user root has privileged user ID"),
    ],
)
def test_a_bad_mail_owner(tmp_path: Path, owner: str, message: str) -> None:
    parsed = parse_argv(["smtp", "-t", "unix", "-u", "-o", f"mail_owner={owner}"])
    with pytest.raises(ConfigError, match=message):
        drop_privileges(parsed, load_settings(parsed, _config(tmp_path)))


_DROP = """
import json, os, sys
from mailcarrier.postfix.options import drop_privileges, load_settings, parse_argv
parsed = parse_argv(["smtp", "-t", "unix", "-u", "-o", "mail_owner=nobody"])
drop_privileges(parsed, load_settings(parsed))
print(json.dumps([os.getuid(), os.geteuid(), os.getgid(), os.getegid(), sorted(os.getgroups())]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can drop privileges")
def test_u_becomes_mail_owner_with_its_groups(tmp_path: Path) -> None:
    env = {**os.environ, **_config(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", _DROP], env=env, capture_output=True, check=True, timeout=60
    )
    nobody = pwd.getpwnam("nobody")
    groups = sorted({nobody.pw_gid, *(g.gr_gid for g in grp.getgrall() if "nobody" in g.gr_mem)})
    uid, gid = nobody.pw_uid, nobody.pw_gid
    assert json.loads(out.stdout) == [uid, uid, gid, gid, groups]

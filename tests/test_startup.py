"""Start-up cost: importing the command line or the API loads none of the heavy libraries.

dnspython, scramp (with asn1crypto), cryptography and idna take tens of milliseconds to
import; routing/, sasl/, tls/ and idn.py import them on first use (a DNS lookup, a
SCRAM exchange, a certificate check, a non-ASCII domain name), progress.py imports tqdm only
to draw a progress line on a terminal. Each check runs a fresh
interpreter, since this one has them loaded already, and looks at sys.modules, not at the
clock: the result does not depend on the machine's speed.
"""

from __future__ import annotations

import functools
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import mailcarrier

SRC = Path(mailcarrier.__file__).resolve().parent
# tqdm: the progress line (progress.py) imports it when standard error is a terminal only.
HEAVY = ("dns", "scramp", "cryptography", "asn1crypto", "idna", "redis", "tqdm")
LAZY_PACKAGES = ("routing", "sasl", "tls", "protocol")


def _heavy_after(*modules: str, package_init: bool = True) -> set[str]:
    """The top-level names of HEAVY that importing `modules` in a new interpreter loads.

    With `package_init` false, mailcarrier/__init__.py does not run (it imports the API and
    so everything): what is left is what `modules` themselves pull in.
    """
    code = "import importlib, json, sys, types\n"
    if not package_init:
        code += (
            "package = types.ModuleType('mailcarrier')\n"
            f"package.__path__ = [{str(SRC)!r}]\n"
            "sys.modules['mailcarrier'] = package\n"
        )
    code += (
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SRC.parent), env.get("PYTHONPATH", "")) if p
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


@functools.cache
def _heavy_after_cli_and_api() -> frozenset[str]:
    return frozenset(_heavy_after("mailcarrier.cli", "mailcarrier.api"))


@pytest.mark.parametrize("library", HEAVY)
def test_cli_and_api_do_not_import(library: str) -> None:
    assert library not in _heavy_after_cli_and_api()


def _lazy_modules() -> list[str]:
    names = []
    for package in LAZY_PACKAGES:
        for info in pkgutil.iter_modules([str(SRC / package)]):
            names.append(f"mailcarrier.{package}.{info.name}")
    return sorted([*names, "mailcarrier.idn"])


def test_routing_sasl_tls_and_protocol_import_none_of_them() -> None:
    modules = _lazy_modules()
    assert "mailcarrier.routing.resolver" in modules
    assert "mailcarrier.sasl.scram" in modules
    assert "mailcarrier.tls.verify" in modules
    assert "mailcarrier.idn" in modules
    assert _heavy_after(*modules, package_init=False) == set()


def test_the_check_sees_an_import() -> None:
    assert _heavy_after("dns.name") == {"dns", "idna"}  # dnspython's IDNA 2008 codec
    assert _heavy_after("mailcarrier.idn", "idna", package_init=False) == {"idna"}
    assert _heavy_after("mailcarrier.routing.resolver", "scramp", package_init=False) == {
        "scramp",
        "asn1crypto",
    }


def _loaded_after(module: str, prefixes: tuple[str, ...]) -> set[str]:
    """The modules starting with one of `prefixes` that importing `module` (with the
    package's __init__) loads in a new interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def test_the_native_agent_does_not_load_the_api_or_the_queue() -> None:
    # mailcarrier/__init__.py loads its public names on first use (PEP 562): the agent
    # under Postfix never calls the API, and its queue, spool and notices cost start-up
    # time and memory in every agent process.
    loaded = _loaded_after("mailcarrier.postfix.main", ("mailcarrier.api", "mailcarrier.queue"))
    assert loaded == set()
    # Only lazy.py, which makes the names load on first use.
    assert _loaded_after("mailcarrier", ("mailcarrier.",)) == {"mailcarrier.lazy"}


def test_every_public_name_of_the_package_is_there() -> None:
    from mailcarrier import api, errors, notify, sending, status
    from mailcarrier.delivery import request

    homes = (api, errors, status, request, notify, sending)
    for name in mailcarrier.__all__:
        assert any(getattr(mailcarrier, name) is getattr(m, name, None) for m in homes), name
    assert "deliver_sync" in dir(mailcarrier)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = mailcarrier.nothing


# What only other commands need: `sendmail` (submission) must start without them.
_NOT_FOR_SENDMAIL = (
    "mailcarrier.api",
    "mailcarrier.cli_queue",
    "mailcarrier.cli_fleet",
    "mailcarrier.delivery.request",
    "mailcarrier.delivery.smtputf8",
    "mailcarrier.delivery.outcome",
    "mailcarrier.protocol.commands",
    "mailcarrier.transport",
    "mailcarrier.content.pipeline",
    "mailcarrier.queue.smtpd",
    "mailcarrier.queue.select",
    "mailcarrier.eventlog",
    "mailcarrier.loghandlers",
    "mailcarrier.fleet",
    "mailcarrier.config.mastercf",  # read only when there is a master.cf
    "mailcarrier.delivery.agent",
    "mailcarrier.queue.scheduler",
    "mailcarrier.queue.daemon",
    "mailcarrier.queue.workers",
    "mailcarrier.fleet.engine",
    "mailcarrier.postfix.install",
    "mailcarrier.config.postconf",
    "mailcarrier.tables.command",
    "mailcarrier.tables.pgsql",
    "mailcarrier.tables.mysql",
    "mailcarrier.tables.ldap",
    "mailcarrier.tables.sqlite",
    "mailcarrier.tables.memcache",
    "mailcarrier.tables.proxy",
)


# Nor what a submission never uses of the standard library: the event loop (with ssl),
# logging's handlers (no maillog_file), OpenSSL's hashes (secrets), tempfile.
_STDLIB_NOT_FOR_SENDMAIL = (
    "asyncio",
    "ssl",
    "concurrent",
    "logging.handlers",
    "secrets",
    "hashlib",
    "tempfile",
    "sqlite3",
    "email.message",
)


def test_the_command_line_loads_no_command_body() -> None:
    assert _loaded_after("mailcarrier.cli", _NOT_FOR_SENDMAIL) == set()
    assert _loaded_after("mailcarrier.cli", _STDLIB_NOT_FOR_SENDMAIL) == set()


_NOT_LOADED = _NOT_FOR_SENDMAIL + _STDLIB_NOT_FOR_SENDMAIL


def test_sendmail_submits_without_loading_the_delivery_engine(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path / 'queue'}\n")
    code = (
        "import io, json, sys\n"
        "from mailcarrier.cli import run\n"
        "message = io.BytesIO(b'Subject: hello\\n\\nbody\\n')\n"
        f"status = run(['-c', {str(tmp_path)!r}, 'sendmail', 'a@example.org'], stdin=message)\n"
        f"loaded = sorted(m for m in sys.modules if m.startswith({_NOT_LOADED!r}))\n"
        "print(json.dumps([status, loaded]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [0, []]
    assert len(list((tmp_path / "queue" / "incoming").iterdir())) == 1


def test_the_package_loads_neither_logging_nor_typing() -> None:
    # The lean sendmail path (entry.py, lean/; tests/test_entry.py) starts with the package's
    # __init__: logging and typing cost more than the rest of a submission.
    assert _loaded_after("mailcarrier", ("logging", "typing")) == set()
    assert _loaded_after("mailcarrier.log", ("logging",)) == {"logging"}
    import logging

    import mailcarrier.log  # noqa: F401 - the NullHandler is set by log.py

    handlers = logging.getLogger("mailcarrier").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)

"""lean/paramtable.py is what lean/genparams.py renders from the parameter table, and
lean/mainconf.py `valid` takes only what config/settings.py takes: a setting that it calls
valid loads (with every parameter whose default is its value: paramtable.py REFERENCED)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.config.params import PARAMS
from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError
from mailcarrier.lean import genparams, paramtable
from mailcarrier.lean.mainconf import KNOWN, valid

SRC = Path(genparams.__file__).parent


def test_the_table_is_current() -> None:
    """Regenerate with `python -m mailcarrier.lean.genparams` when this fails."""
    assert (SRC / "paramtable.py").read_text(encoding="utf-8") == genparams.render()


def test_the_table_has_every_parameter() -> None:
    assert set(paramtable.TABLE) == set(PARAMS)


VALUES = ["", "yes", "No", "0", "1", "2", "-1", "+5", "100", "99999999", "30s", "5m", "1.5h",
          "2d", "1w", "10x", "s", ".5s", "none", "may", "encrypt", "dane", "verify", "secure",
          "/abs/path", "relative", "[192.0.2.1]", "a, b", "a\tb", "x{y}", "hash:/etc/x",
          "127.0.0.1", "::1", "dot.example", "ipv4", "all", "sendmail, verify", "1/2", "0.5",
          "1/concurrency", "\u0661"]  # fmt: skip
NAMES = [*sorted(set(PARAMS) - KNOWN), "unknown_name", "relay_destination_concurrency_limit"]


@settings(max_examples=600, deadline=None)
@given(name=st.sampled_from(NAMES), value=st.sampled_from(VALUES))
def test_valid_settings_load(name: str, value: str) -> None:
    if not valid(name, value):
        return
    try:
        Settings.defaults().with_overrides({name: value})
    except ConfigError as exc:
        raise AssertionError(f"{name} = {value}: the lean path took what fails: {exc}") from None

"""The typed views of the parameter table (config/views.py): generated, current, complete, and
the only way src/ reads a parameter by a name known when the code is written."""

from __future__ import annotations

import ast
import copy
import dataclasses
import pickle
from pathlib import Path

import pytest

from mailcarrier.config import genviews
from mailcarrier.config.params import PARAMS, ParamType
from mailcarrier.config.settings import Settings
from mailcarrier.config.viewbase import frozen_view, view_fields
from mailcarrier.config.views import RENAMED, ClientParams, MainParams

SRC = Path(__file__).resolve().parents[2] / "src" / "mailcarrier"
_TYPES = {
    ParamType.BOOL: bool,
    ParamType.INT: int,
    ParamType.SIZE: int,
    ParamType.TIME: float,
    ParamType.STRING: str,
    ParamType.LIST: tuple,
    ParamType.MAPS: tuple,
}


def test_views_module_is_current() -> None:
    """Regenerate with `python -m mailcarrier.config.genviews` when this fails."""
    assert (SRC / "config" / "views.py").read_text(encoding="utf-8") == genviews.render()


def test_every_parameter_is_a_field_with_its_type() -> None:
    settings = Settings.defaults()
    fields = set(view_fields(MainParams))
    assert fields == {RENAMED.get(n, n) for n in PARAMS}
    for name, param in PARAMS.items():
        value = getattr(settings.params, RENAMED.get(name, name))
        assert isinstance(value, _TYPES[param.type]), name
        assert value == settings.value(name), name


@pytest.mark.parametrize("transport", ["smtp", "lmtp"])
def test_client_params_follow_the_lmtp_twins(transport: str) -> None:
    settings = Settings.defaults().with_overrides(
        {
            "smtp_helo_name": "s.example",
            "lmtp_lhlo_name": "l.example",
            "smtp_skip_4xx_greeting": "no",
        }
    )
    client = settings.for_transport(transport).params
    assert isinstance(client, ClientParams)
    assert client.helo_name == ("l.example" if transport == "lmtp" else "s.example")
    # smtp_skip_4xx_greeting has no lmtp_ twin: both transports read it.
    assert client.skip_4xx_greeting is False
    for field in view_fields(ClientParams):
        name = settings.for_transport(transport).name(field)
        assert getattr(client, field) == settings.value(name), name


_NAME_READS = {"get_bool", "get_int", "get_str", "get_list", "get_time", "get_size"}
_AGENT_READS = {"bool", "int", "str", "list", "time"}


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_src_reads_parameters_through_the_views(path: Path) -> None:
    """`settings.get_bool("soft_bounce")` and `agent.int("mx_session_limit")` with a literal
    name would bring back the runtime KeyError the views remove: use `.params.NAME`."""
    if path.parent.name == "config" and path.name in ("settings.py", "genviews.py"):
        return
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        literal = bool(node.args) and isinstance(node.args[0], ast.Constant)
        attr = node.func.attr
        assert not (literal and attr in _NAME_READS), (
            f"{path.relative_to(SRC)}:{node.lineno}: read {ast.unparse(node)} as "
            "settings.params.<name>"
        )
        owner = ast.unparse(node.func.value)
        assert not (literal and attr in _AGENT_READS and owner.endswith("agent")), (
            f"{path.relative_to(SRC)}:{node.lineno}: read {ast.unparse(node)} as "
            "agent.params.<name>"
        )


@frozen_view
class _Pair:
    """Two fields, as the generated views have four hundred."""

    first: int
    second: str


def test_a_view_behaves_as_a_frozen_dataclass() -> None:
    pair = _Pair(first=1, second="b")
    assert (pair.first, pair.second) == (1, "b")
    assert view_fields(_Pair) == ("first", "second")
    assert pair == _Pair(first=1, second="b")
    assert pair != _Pair(first=2, second="b")
    other: object = (1, "b")
    assert pair != other
    assert hash(pair) == hash(_Pair(first=1, second="b"))
    assert repr(pair) == "_Pair(first=1, second='b')"
    assert pickle.loads(pickle.dumps(pair)) == pair
    assert copy.copy(pair) == pair
    assert copy.deepcopy(pair) == pair
    with pytest.raises(dataclasses.FrozenInstanceError):
        pair.first = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del pair.second
    with pytest.raises(AttributeError):
        pair.third = 3  # type: ignore[attr-defined]


def test_a_view_wants_every_field_and_no_other() -> None:
    with pytest.raises(TypeError, match=r"missing fields \['second'\]"):
        _Pair(first=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"unknown fields \['third'\]"):
        _Pair(first=1, second="b", third=3)  # type: ignore[call-arg]


def test_settings_params_pickle() -> None:
    params = Settings.defaults().params
    assert pickle.loads(pickle.dumps(params)) == params

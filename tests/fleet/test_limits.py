"""limits.py: defaults, per-destination overrides keyed as the scheduler keys them, and a
malformed entry named by file and line; node.py: the node's name kept in data_directory."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mailcarrier.config.fleetsyntax import Rate
from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError
from mailcarrier.fleet.limits import FleetLimits, Limits
from mailcarrier.fleet.node import node_id


def settings(tmp_path: Path, **params: str) -> Settings:
    return Settings.defaults().with_overrides(params)


def test_defaults_and_overrides(tmp_path: Path) -> None:
    table = tmp_path / "limits"
    table.write_text(
        "# per destination\n"
        "smtp:example.com connections=2 rate=100/1h burst=10\n"
        "example.net   rate=5/1m\n"
        "smtp:[127.0.0.1]:2525 connections=1\n"
        "smtp:unlimited.example connections=0 rate=0\n"
    )
    s = settings(
        tmp_path,
        fleet_destination_concurrency_limit="20",
        fleet_destination_rate_limit="600/1h",
        fleet_destination_rate_burst="3",
        fleet_limit_maps=f"texthash:{table}",
    )
    limits = FleetLimits.load(s)
    default = Limits(20, Rate(600, 3600.0, 3))
    assert limits.for_destination("smtp", "example.com") == (Limits(2, Rate(100, 3600.0, 10)), "")
    assert limits.for_destination("smtp", "example.net") == (Limits(20, Rate(5, 60.0)), "")
    assert limits.for_destination("lmtp", "example.net") == (Limits(20, Rate(5, 60.0)), "")
    assert limits.for_destination("smtp", "[127.0.0.1]:2525") == (Limits(1, default.rate), "")
    assert limits.for_destination("smtp", "unlimited.example") == (Limits(0, None), "")
    assert limits.for_destination("smtp", "other.example") == (default, "")
    assert not Limits(0, None).any and default.any


def test_malformed_entry_names_file_and_line(tmp_path: Path) -> None:
    table = tmp_path / "limits"
    table.write_text("smtp:a.example connections=2\n\n# note\nsmtp:b.example conections=3\n")
    s = settings(tmp_path, fleet_limit_maps=f"texthash:{table}")
    with pytest.raises(ConfigError) as raised:
        FleetLimits.load(s)
    assert str(raised.value) == (
        f"{table}:4: fleet_limit_maps: smtp:b.example: "
        '"conections=3" is not connections=N, rate=N/PERIOD or burst=N'
    )


def test_malformed_value_elsewhere_is_a_warning(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        fleet_destination_concurrency_limit="4",
        fleet_limit_maps="inline:{ smtp:a.example=connections=x }",
    )
    limits = FleetLimits.load(s)
    found, warning = limits.for_destination("smtp", "a.example")
    assert found == Limits(4, None)
    assert warning == (
        "fleet_limit_maps: inline:{ smtp:a.example=connections=x }: smtp:a.example: "
        'connections="x" is not a number of at least 0'
    )


def test_network_tables_refused(tmp_path: Path) -> None:
    cf = tmp_path / "pg.cf"
    cf.write_text("hosts = 127.0.0.1\ndbname = x\nquery = SELECT 1\n")
    s = settings(tmp_path, fleet_limit_maps=f"pgsql:{cf}")
    with pytest.raises(ConfigError, match="a table that asks a server cannot be used here"):
        FleetLimits.load(s)


def test_node_id_generated_once_and_kept(tmp_path: Path) -> None:
    s = settings(tmp_path, data_directory=str(tmp_path / "data"))
    first = node_id(s)
    assert first == (tmp_path / "data" / "fleet_node_id").read_text().strip()
    assert node_id(s) == first
    assert node_id(s.with_overrides({"node_id": "mx-7"})) == "mx-7"
    (tmp_path / "data" / "fleet_node_id").write_text("bad name\n")
    with pytest.raises(ConfigError, match="is not a node name"):
        node_id(s)


def test_node_id_agrees_among_processes_starting_together(tmp_path: Path) -> None:
    s = settings(tmp_path, data_directory=str(tmp_path / "data"))
    start = threading.Barrier(8)

    def one() -> str:
        start.wait()
        return node_id(s)

    with ThreadPoolExecutor(8) as pool:
        names = set(pool.map(lambda _: one(), range(8)))
    assert names == {(tmp_path / "data" / "fleet_node_id").read_text().strip()}


def test_an_empty_node_id_file_is_replaced(tmp_path: Path) -> None:
    s = settings(tmp_path, data_directory=str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "fleet_node_id").write_text("")
    made = node_id(s)
    assert made and node_id(s) == made

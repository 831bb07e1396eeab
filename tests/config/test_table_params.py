"""Settings and network tables: main.cf-style table parameters (pgsql:pgsource reads
pgsource_hosts, ...) are known, expanded, and handed to the tables; others stay unused."""

from __future__ import annotations

from mailcarrier.config.parser import RawSetting
from mailcarrier.config.settings import Settings


def _settings(**values: str) -> Settings:
    return Settings(
        {n: RawSetting(n, v, "main.cf", i + 1) for i, (n, v) in enumerate(values.items())}
    )


def test_prefix_parameters_are_used_and_expanded() -> None:
    settings = _settings(
        smtp_sasl_password_maps="proxy:pgsql:pgsource, sqlite:/etc/x.cf",
        db_host="127.0.0.1",
        pgsource_hosts="$db_host",
        mysource_hosts="not named by any table",
    )
    assert settings.warnings == (
        "main.cf:4: unused parameter: mysource_hosts=not named by any table",
    )
    assert settings.table_parameter("pgsource_hosts") == "127.0.0.1"
    assert settings.table_parameter("pgsource_user") is None

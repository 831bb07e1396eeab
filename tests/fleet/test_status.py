"""``mailcarrier fleet status`` (fleet/status.py through cli.py) against a real private
redis-server: nodes, leases and rates as a table and as JSON; and the one-line errors (no
fleet configured, Redis unreachable, a bad server URL, a bad fleet_limit_maps entry)."""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path

from mailcarrier.cli import run
from mailcarrier.config.settings import Settings
from mailcarrier.fleet.gate import RedisGate, make_gate
from tests.support.peers.aiosmtpd_server import free_port


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(args), stdin=io.BytesIO(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


async def test_status_table_and_json(redis_url: str, tmp_path: Path) -> None:
    table = tmp_path / "limits"
    table.write_text("smtp:a.example connections=2 rate=100/1h burst=10\n")
    options = {
        "shared_state_server": redis_url,
        "data_directory": str(tmp_path),
        "fleet_limit_maps": f"texthash:{table}",
    }
    gates = []
    for name in ("mx1", "mx2"):
        gate = make_gate(Settings.defaults().with_overrides({**options, "node_id": name}))
        assert isinstance(gate, RedisGate)
        gates.append(gate)
    await gates[0].lease("smtp", "a.example")
    await gates[1].lease("smtp", "a.example")
    await gates[1].admit("smtp", "a.example")
    for gate in gates:
        await gate.renew_now()
    words = [w for k, v in options.items() for w in ("-o", f"{k}={v}")]
    # The CLI runs its own event loop: in a thread, as a user would from a shell.
    code, out, err = await asyncio.to_thread(cli, *words, "fleet", "status")
    assert (code, err) == (0, "")
    shown = re.sub(r"\d+s ago", "Ns ago", out)
    shown = re.sub(r" \d+\.\ds\n", " X.Xs\n", shown)
    assert shown == (
        f"shared_state_server: {redis_url}\n\n"
        f"{'NODE':<32} LAST SEEN\n"
        f"{'mx1':<32} Ns ago\n"
        f"{'mx2':<32} Ns ago\n\n"
        f"{'DESTINATION':<40} {'LEASES':>6} {'LIMIT':>6}  {'RATE':<24} AHEAD\n"
        f"{'smtp:a.example':<40} {2:>6} {2:>6}  {'100/3600s burst 10':<24} X.Xs\n"
    )
    code, out, err = await asyncio.to_thread(cli, *words, "fleet", "status", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert [n["node_id"] for n in data["nodes"]] == ["mx1", "mx2"]
    (row,) = data["destinations"]
    assert row["destination"] == "smtp:a.example"
    assert (row["leases"], row["connection_limit"], row["burst"]) == (2, 2, 10)
    assert row["rate"] == {"count": 100, "period": 3600.0}
    assert 35 < row["rate_ahead"] <= 36  # one message of 100/h spent: 36 s ahead
    for gate in gates:
        await gate.close()


def test_errors_are_one_line(tmp_path: Path) -> None:
    assert cli("-o", f"queue_directory={tmp_path}", "fleet", "status") == (
        78,
        "",
        "mailcarrier: fatal: fleet status: shared_state_server is empty "
        "(a single node, no fleet)\n",
    )
    port = free_port()
    code, out, err = cli("-o", f"shared_state_server=redis://127.0.0.1:{port}", "fleet", "status")
    assert (code, out) == (75, "")
    assert err == (
        f"mailcarrier: fatal: shared_state_server redis://127.0.0.1:{port}: "
        f"connect to 127.0.0.1:{port}: Connection refused\n"
    )
    code, out, err = cli("-o", "shared_state_server=http://127.0.0.1", "fleet", "status")
    assert (code, out) == (78, "")
    assert err == (
        "mailcarrier: fatal: -o: parameter shared_state_server: "
        '"http://127.0.0.1": want a redis:// or rediss:// URL, or unix:/path\n'
    )
    table = tmp_path / "limits"
    table.write_text("smtp:a.example connections=2\nsmtp:b.example rate=lots\n")
    code, out, err = cli(
        "-o",
        f"queue_directory={tmp_path}/q",
        "-o",
        "shared_state_server=redis://127.0.0.1:6379",
        "-o",
        f"fleet_limit_maps=texthash:{table}",
        "run",
        "--once",
    )
    assert (code, out) == (78, "")
    assert err == (
        f"mailcarrier: fatal: {table}:2: fleet_limit_maps: smtp:b.example: "
        '"lots" is not a rate (want COUNT/PERIOD, e.g. 600/1h)\n'
    )

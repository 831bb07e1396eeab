"""Write bench/RESULTS.md and bench/throughput.png from the figures in bench/results/*.json.

Run as ``python -m bench.report`` (`make bench` runs it last). Each throughput benchmark
stores its medians there (bench/common.py `save`), and bench_tables.py its lookup figures;
this module only formats them: the machine and versions, one table per benchmark with
ratios against the targets of issues 9, 16, 19 and 22 (benchmarks without figures here keep their
section of the previous RESULTS.md: bench/previous.py), and a chart of messages per second
against concurrency for mailcarrier and Postfix (fast sink and 1 s slow sink). The chart
needs matplotlib (the `test` extra); without it only the text is written. Set BENCH_NOTE to
add a remark (e.g. "taken on a busy machine") under the heading.
"""

from __future__ import annotations

import os
from typing import Any

from bench.common import BENCH_DIR, load, verdict
from bench.previous import RAN_ON, previous_loads, previous_machines, previous_sections

RESULTS_MD = BENCH_DIR / "RESULTS.md"
CHART = BENCH_DIR / "throughput.png"


def _machine(
    results: list[dict[str, Any]], loads_by_name: dict[str, str], kept: list[str], before: str
) -> list[str]:
    """The machine of the figures at hand; where the kept sections were measured, when that
    was described differently."""
    info = results[0]["machine"]
    loads = ", ".join(f"{name} {load}" for name, load in loads_by_name.items())
    lines = [
        f"- CPUs (nproc): {info['nproc']}; memory: {info['memory']}; CPU: {info['cpu']}",
        f"- Linux {info['kernel']}; Python {info['python']}; Postfix {info['postfix']}; "
        f"aiosmtplib {info['aiosmtplib']}; uvloop {info['uvloop']}",
    ]
    here, earlier = "; ".join(line[2:] for line in lines), previous_machines(before)
    elsewhere: dict[str, list[str]] = {}
    for name in kept:
        if earlier.get(name, here) != here:
            elsewhere.setdefault(earlier[name], []).append(name)
    lines += [f"- {', '.join(names)} {RAN_ON} {text}" for text, names in elsewhere.items()]
    return [
        "## Machine",
        "",
        *lines,
        f"- load average (1/5/15 min) as each benchmark finished: {loads}",
        "",
    ]


def _engine(data: dict[str, Any]) -> list[str]:
    figures, ratios, loop = data["figures"], data["ratios"], data["loop"]
    lines = [
        "## Engine: 20 sessions to smtp-sink, no queue",
        "",
        f"{data['messages']:,} x {data['size']} B one-recipient messages over "
        f"{data['concurrency']} concurrent sessions to smtp-sink on 127.0.0.1; median of "
        f"{data['runs']} runs (each client in a fresh process, interleaved).",
        "",
        "| client | messages/s (median) | runs |",
        "|---|---:|---|",
    ]
    for key, value in figures.items():
        if key.endswith("peak_mb"):
            continue
        runs = ", ".join(f"{v:,.0f}" for v in value["runs"])
        lines.append(f"| {key} | {value['median']:,.0f} | {runs} |")
    a, s = ratios["mailcarrier/aiosmtplib"], ratios["mailcarrier/smtp-source"]
    lines += [
        "",
        f"- mailcarrier ({loop}) / aiosmtplib ({loop}) = **{a:.2f}x** "
        f"(target >= 2: {verdict(a, 2)})",
        f"- mailcarrier ({loop}) / smtp-source = **{s:.2f}x** (target >= 0.5: {verdict(s, 0.5)})",
    ]
    for key, value in ratios.items():
        if "(asyncio)" in key:
            lines.append(f"- {key.replace(' (asyncio)', '')}, plain asyncio: {value:.2f}x")
    peak = figures.get(f"mailcarrier/{loop}/peak_mb")
    if peak:
        lines.append(f"- mailcarrier process peak RSS: {peak['median']:.0f} MB")
    if data.get("sweep"):
        lines += [
            "",
            f"Concurrency sweep ({data['sweep_messages']:,} messages per point, messages/s):",
            "",
            "| sessions | mailcarrier | aiosmtplib | smtp-source | mailcarrier/smtp-source |",
            "|---:|---:|---:|---:|---:|",
        ]
        for level, point in data["sweep"].items():
            ours = point[f"mailcarrier/{loop}"]
            lines.append(
                f"| {level} | {ours:,.0f} | {point[f'aiosmtplib/{loop}']:,.0f} | "
                f"{point['smtp-source']:,.0f} | {ours / point['smtp-source']:.2f} |"
            )
    return [*lines, ""]


def _scale(data: dict[str, Any]) -> list[str]:
    limits = ""
    if "open_files" in data:
        limits = f" Open files {data['open_files']:,}; listen backlog cap {data['backlog_cap']:,}."
    lines = [
        "## Scale: slow receiver (1 s per reply to the final dot)",
        "",
        f"smtp-sink ``-W {','.join(data['delayed'])}:1``; {data['per_session']} messages per "
        f"session; median of {data['runs']} runs; ideal rate = sessions per second; rate = "
        f"messages / time from the first connection to the last QUIT.{limits} "
        "Sink busy: the sink's CPU time over the run's (100%: the sink is the limit).",
        "",
        "| sessions | mailcarrier msg/s | x ideal | smtp-source msg/s | x ideal | ideal | "
        "sink busy (mc / src) | mailcarrier peak RSS | growth | CPU per message |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level, p in data["points"].items():
        ideal = p["ideal"]
        busy = f"{p['sink_busy_mc']:.0%} / {p['sink_busy_src']:.0%}" if "sink_busy_mc" in p else "-"
        cpu = f"{p['cpu_us']:,.0f} us" if "cpu_us" in p else "-"
        lines.append(
            f"| {level} | {p['mailcarrier']:,.0f} | {p['mailcarrier'] / ideal:.2f} | "
            f"{p['smtp-source']:,.0f} | {p['smtp-source'] / ideal:.2f} | {ideal:,.0f} | {busy} | "
            f"{p['peak_mb']:.0f} MB | +{p['growth_mb']:.0f} MB | {cpu} |"
        )
    top_level = str(max(int(k) for k in data["points"]))
    top = data["points"][top_level]
    target = data["memory_target_mb"]
    lines += [
        "",
        f"- peak RSS at {top_level} sessions: **{top['peak_mb']:.0f} MB** "
        f"(target < {target:.0f} MB: {verdict(top['peak_mb'], target, at_most=True)})",
    ]
    if "rate_target" in data:
        share = top["mailcarrier"] / top["ideal"]
        lines.append(
            f"- rate at {top_level} sessions: **{share:.2f}x ideal** "
            f"(target >= {data['rate_target']}: {verdict(share, data['rate_target'])}); "
            f"smtp-source {top['smtp-source'] / top['ideal']:.2f}x"
        )
    return [*lines, ""]


def _size(data: dict[str, Any]) -> list[str]:
    f = data["figures"]
    target = data["growth_target_mb"]
    return [
        f"## Size: one {data['megabytes']} MB message",
        "",
        f"Median of {data['runs']} runs.",
        "",
        "| client | seconds | MB/s | memory growth |",
        "|---|---:|---:|---:|",
        f"| mailcarrier | {f['mailcarrier_seconds']:.2f} | "
        f"{data['megabytes'] / f['mailcarrier_seconds']:.0f} | "
        f"+{f['mailcarrier_growth_mb']:.1f} MB (peak {f['mailcarrier_peak_mb']:.0f} MB) |",
        f"| smtp-source | {f['smtp-source_seconds']:.2f} | "
        f"{data['megabytes'] / f['smtp-source_seconds']:.0f} | - |",
        "",
        f"- memory growth **{f['mailcarrier_growth_mb']:.1f} MB** (target <= {target:.0f} MB: "
        f"{verdict(f['mailcarrier_growth_mb'], target, at_most=True)}); speed "
        f"{data['speed_ratio']:.2f}x smtp-source",
        "",
    ]


def _drain(data: dict[str, Any]) -> list[str]:
    lines = [
        "## Queue drain: 10,000 queued messages to smtp-sink",
        "",
        f"{data['messages']:,} x {data['size']} B one-recipient messages queued first, then "
        f"delivered to smtp-sink (relayhost, concurrency 20, connection cache on); median of "
        f"{data['runs']} runs.",
        "",
        "| system | messages/s (median) | runs |",
        "|---|---:|---|",
        f"| Postfix (private instance) | {data['postfix_rate']:,.0f} | "
        f"{', '.join(f'{v:,.0f}' for v in data['postfix_runs'])} |",
    ]
    if "configs" in data:
        for c in data["configs"]:
            lines.append(
                f"| mailcarrier run --once, delivery_agent_processes={c['processes']} | "
                f"{c['rate']:,.0f} | {', '.join(f'{v:,.0f}' for v in c['runs'])} |"
            )
        lines.append("")
        for c in data["configs"]:
            lines.append(
                f"- delivery_agent_processes={c['processes']}: mailcarrier / Postfix = "
                f"**{c['ratio']:.2f}x** (target >= {data['target']}: "
                f"{verdict(c['ratio'], data['target'])}); without interpreter start-up "
                f"({c['startup']:.2f} s): {c['net_ratio']:.2f}x"
            )
    elif "mailcarrier_rate" in data:
        lines += [
            f"| mailcarrier run --once | {data['mailcarrier_rate']:,.0f} | "
            f"{', '.join(f'{v:,.0f}' for v in data['mailcarrier_runs'])} |",
            "",
            f"- mailcarrier / Postfix = **{data['ratio']:.2f}x** (target >= {data['target']}: "
            f"{verdict(data['ratio'], data['target'])}); without interpreter start-up "
            f"({data['mailcarrier_startup']:.2f} s): {data['net_ratio']:.2f}x",
        ]
    else:
        lines += ["", f"- mailcarrier: not measured ({data.get('mailcarrier', '')})"]
    return [*lines, ""]


def _agents(data: dict[str, Any]) -> list[str]:
    """bench_agents.py: `run --once` with delivery_agent_processes = 1 and 2, by placement."""
    lines = [
        "## Multi-core drain: delivery_agent_processes = 1 and 2",
        "",
        f"{data['messages']:,} x {data['size']} B one-recipient messages drained by "
        f"`mailcarrier run --once` to smtp-sink (relayhost, concurrency 20, connection cache on); "
        f"median of {data['runs']} interleaved rounds. CPU per message (user + system, start-up "
        "left out): the scheduler process, the agent processes together (each in brackets), "
        "smtp-sink.",
        "",
        "| placement | processes | messages/s (median) | runs | scheduler | agents | sink |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for p in data["placements"]:
        for c in p["configs"]:
            each = ", ".join(f"{a:,.0f}" for a in c["each_agent_us"])
            agents = f"{c['agents_us']:,.0f} us ({each})" if each else "- (in the scheduler)"
            lines.append(
                f"| {p['pinning']} | {c['processes']} | {c['rate']:,.0f} | "
                f"{', '.join(f'{v:,.0f}' for v in c['runs'])} | {c['parent_us']:,.0f} us | "
                f"{agents} | {c['sink_us']:,.0f} us |"
            )
    lines.append("")
    for p in data["placements"]:
        bound = p.get("cpu_bound_speedup")
        lines.append(
            f"- {p['pinning']}: 2 processes / 1 = **{p['speedup']:.2f}x** (without start-up "
            f"{p['net_speedup']:.2f}x; target > 1: {verdict(p['speedup'], 1.0 + 1e-9)})"
            + (f"; as the CPU time per message allows: {bound:.2f}x" if bound else "")
        )
    lines += ["", "Where the time goes, per message: bench/PROFILE.md (issue 22, part 5)."]
    return [*lines, ""]


def _tables_sql(data: dict[str, Any]) -> list[str]:
    """bench_tables_sql.py: SQL lookups, and the engine with two pgsql: lookups per delivery."""
    lines = [
        "## SQL lookup tables (sqlite:, pgsql:)",
        "",
        f"{data['count']:,} lookups per table and mode: sync (`Table.lookup`, one after the "
        "other), async (`Table.lookup_async` from 20 tasks, each asking other keys: every "
        "lookup a query) and async_same_keys (20 tasks asking the same 4 keys: a key asked "
        "while it is being asked waits for that answer); PostgreSQL on loopback.",
        "",
        "| table | mode | lookups/s | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|",
    ]
    for kind, modes in data["lookups"].items():
        for mode, f in modes.items():
            lines.append(
                f"| {kind} | {mode} | {f['lookups_per_s']:,.0f} | {f['p50_ms']:.3f} | "
                f"{f['p99_ms']:.3f} |"
            )
    e = data["engine"]
    pairs = e.get("pair_ratios", [])
    runs = ", ".join(f"{v:.2f}" for v in pairs)
    pinned = ""
    if e.get("pinned"):
        pinned = " (the worker on one CPU, smtp-sink and PostgreSQL on the others)"
    lines += [
        "",
        f"Engine ({e['messages']:,} messages, 20 sessions, {e['loop']}, {e['runs']} runs of each "
        f"side, alternating{pinned}): median {e['without']:,.0f}/s without tables, "
        f"{e['with_pgsql']:,.0f}/s with smtp_sasl_password_maps and smtp_tls_policy_maps in "
        "pgsql: (the TLS policy looked up for every delivery, as smtp(8)'s policy cache lives "
        "for one request; the password when a session is set up). Ratio, the median of the "
        f"neighbouring runs' ratios ({runs}): "
        f"**{e['ratio']:.2f}x** (target >= 0.9: {verdict(e['ratio'], 0.9)})",
    ]
    return [*lines, ""]


def _native(data: dict[str, Any]) -> list[str]:
    pf, sides = data["postfix"], data["mailcarrier"]
    speed_target, memory_target = data["speed_target"], data["memory_target"]

    def row(name: str, f: dict[str, Any]) -> str:
        runs = ", ".join(f"{v:,.0f}" for v in f["runs"])
        return (
            f"| {name} | {f['rate']:,.0f} | {runs} | {f['rss_mb']:.0f} MB | {f['pss_mb']:.0f} MB | "
            f"{f['processes']:.0f} | {f['cpu_us']:,.0f} us |"
        )

    lines = [
        "## Inside Postfix: queued messages through smtp(8) and through mailcarrier-smtp",
        "",
        f"One private Postfix instance drains {data['messages']:,} x {data['size']} B "
        f"one-recipient messages to smtp-sink (relayhost, destination concurrency "
        f"{data['concurrency']}, smtp service maxproc 20, the same main.cf) through its own "
        f"smtp(8), and through mailcarrier-smtp as master.cf's smtp command (postfix reload "
        f"between them); the agents are sampled every 0.1 s while the queue drains (peak of the "
        f"summed RSS and PSS, most processes at once, their CPU time per message; PSS counts a "
        f"page shared by n processes 1/n in each); median of {data['runs']} runs, interleaved.",
        "",
        "| agent | messages/s (median) | runs | agents' peak total RSS | PSS | processes | CPU "
        "per message |",
        "|---|---:|---|---:|---:|---:|---:|",
        row("Postfix smtp(8)", pf),
        *(row(side["label"], side) for side in sides),
        "",
    ]
    for n, side in enumerate(sides):
        speed, memory = side["speed_ratio"], side["memory_ratio"]
        against = "target" if n == 0 else "for comparison; target"
        lines.append(
            f"- {side['label']} / smtp(8): throughput **{speed:.2f}x** ({against} >= "
            f"{speed_target}: {verdict(speed, speed_target)}), agents' total RSS "
            f"**{memory:.2f}** (target <= {memory_target}: "
            f"{verdict(memory, memory_target, at_most=True)}), PSS {side['pss_ratio']:.2f}"
        )
    return [*lines, ""]


def _fleet(data: dict[str, Any]) -> list[str]:
    """bench_fleet.py: three nodes with and without a shared Redis."""
    sides = data["sides"]
    pinned = ""
    if data.get("pinned"):
        pinned = " The nodes ran on one CPU, smtp-sink and redis-server on the other."
    lines = [
        f"## Fleet mode: {data['nodes']} nodes draining {data['messages']:,} messages, with "
        "Redis and without",
        "",
        f"{data['messages']:,} x {data['size']} B one-recipient messages queued on "
        f"{data['nodes']} nodes (a third each, each its own queue), then drained by their "
        "`mailcarrier run --once` started at once, to smtp-sink on 127.0.0.1 (relayhost, "
        "concurrency 20 per node, connection cache on), timed until the last node exits. "
        "Without Redis, with a shared private redis-server and "
        "fleet_destination_concurrency_limit = 1000 (leases), and with that plus "
        "fleet_destination_rate_limit = 1000000/1s, burst 100000 (leases+rate): limits "
        f"that never bind. Median of {data['runs']} runs, interleaved; the ratio is the "
        f"median of each run's ratio.{pinned} CPU: the three nodes' user + system time per "
        "message, and without Redis / with (the median of each run's ratio; on a shared "
        "machine far steadier than the wall clock). Redis round trips: every command a client "
        "sent, in one more run of each Redis side (redis-cli MONITOR; the commands a Lua "
        "script runs inside Redis are not round trips).",
        "",
        "| side | messages/s (median) | runs | / without Redis | CPU per message | CPU ratio "
        "| Redis round trips per message | commands sent |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for name, side in sides.items():
        runs = ", ".join(f"{v:,.0f}" for v in side["runs"])
        commands = ", ".join(f"{k} {v:,}" for k, v in side["commands"].items()) or "-"
        trips = f"{side['trips_per_message']:.4f}" if name != "without" else "-"
        lines.append(
            f"| {name} | {side['rate']:,.0f} | {runs} | {side['ratio']:.2f}x | "
            f"{side['cpu_us']:,.0f} us | {side['cpu_ratio']:.2f}x | {trips} | {commands} |"
        )
    lease = sides["leases"]
    speed, trips = data["speed_target"], data["trips_target"]
    lines += [
        "",
        f"- leases / without Redis = **{lease['ratio']:.2f}x** (target >= {speed}: "
        f"{verdict(lease['ratio'], speed)}; the runs' ratios "
        f"{', '.join(f'{r:.2f}' for r in lease['ratios'])}, CPU "
        f"{', '.join(f'{r:.2f}' for r in lease.get('cpu_ratios', []))}); in CPU time "
        f"{lease['cpu_ratio']:.2f}x; without "
        f"start-up and shutdown {lease.get('net_ratio', 0):.2f}x (the three nodes' start-up "
        f"and shutdown: {lease.get('startup', 0):.2f} s, CPU {lease.get('startup_cpu', 0):.2f} "
        f"s, against {sides['without'].get('startup', 0):.2f} s, CPU "
        f"{sides['without'].get('startup_cpu', 0):.2f} s without Redis)",
        f"- Redis round trips per message with leases: **{lease['trips_per_message']:.4f}** "
        f"(target <= {trips:g}: {verdict(lease['trips_per_message'], trips, at_most=True)})",
    ]
    if "leases+rate" in sides:
        rate = sides["leases+rate"]
        lines.append(
            f"- with a rate limit as well (GCRA tokens, up to 32 a call): {rate['ratio']:.2f}x "
            f"(CPU {rate['cpu_ratio']:.2f}x), {rate['trips_per_message']:.4f} round trips per "
            "message"
        )
    return [*lines, ""]


def _tables(data: dict[str, Any]) -> list[str]:
    lines = [
        f"## Tables: lookups in a {data['entries']:,}-key table",
        "",
        f"{data['lookups']:,} lookups of keys that are in the table (hits) and as many of keys "
        "that are not (misses), one `Table.lookup` at a time, each timed; indexed files are "
        "made by `mailcarrier map` in Postfix's formats; texthash: (in memory) for reference.",
        "",
        "| table | hits/s | hit p50 | hit p99 | misses/s | miss p99 | build | open |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in data["rows"]:
        if "unavailable" in row:
            lines.append(f"| {row['label']} | not available: {row['unavailable']} |||||||")
            continue
        hits, misses = row["hits"], row["misses"]
        lines.append(
            f"| {row['label']} | {hits['rate']:,.0f} | {hits['p50_us']:.1f} us | "
            f"{hits['p99_us']:.1f} us | {misses['rate']:,.0f} | {misses['p99_us']:.1f} us | "
            f"{row['build_s']:.2f} s | {row['open_s']:.3f} s |"
        )
    return [*lines, ""]


def _submit(data: dict[str, Any]) -> list[str]:
    """bench_submit.py: one small message through sendmail -t, start to exit."""
    figures, target = data["figures"], data["target_ms"]
    lines = [
        "## Submission latency: one small message through `sendmail -t`",
        "",
        f"Wall time from start to exit of one {data['message_bytes']}-byte message on standard "
        "input, durable in the queue before exit (written, fsynced, renamed, directory "
        "fsynced); Postfix's sendmail hands the same message to postdrop, into a private "
        f"instance's maildrop. Median of {data['runs']} runs of each side, interleaved; CPU is "
        "the child's user + system time. Load average "
        f"{data['load_before']} before, {data['load_after']} after.",
        "",
        "| command | wall ms (median) | CPU ms (median) | wall min..max |",
        "|---|---:|---:|---|",
    ]
    for f in figures.values():
        runs = f["wall_runs"]
        lines.append(
            f"| `{f['command']}` | {f['wall_ms']:.1f} | {f['cpu_ms']:.1f} | "
            f"{min(runs):.0f}..{max(runs):.0f} |"
        )
    ours = figures["mailcarrier sendmail"]["wall_ms"]
    lines += [
        "",
        f"- mailcarrier sendmail: **{ours:.1f} ms** (target <= {target:.0f} ms: "
        f"{verdict(ours, target, at_most=True)}); {data['above_floor_ms']:.1f} ms above "
        "`python -c pass`",
    ]
    if "postfix_ratio" in data:
        ratio = data["postfix_ratio"]
        lines.append(f"- mailcarrier / Postfix sendmail: {ratio:.2f}x the wall time")
    else:
        lines.append(f"- Postfix sendmail: not measured ({data['postfix']})")
    return [*lines, ""]


def _draw_engine(ax: Any, engine: dict[str, Any], drain: dict[str, Any] | None) -> None:
    loop = engine["loop"]
    levels = [int(k) for k in engine["sweep"]]
    pts = list(engine["sweep"].values())
    ax.plot(levels, [p[f"mailcarrier/{loop}"] for p in pts], "o-", label="mailcarrier")
    ax.plot(levels, [p["smtp-source"] for p in pts], "s-", label="Postfix smtp-source (C)")
    ax.plot(levels, [p[f"aiosmtplib/{loop}"] for p in pts], "^--", label="aiosmtplib")
    if drain:
        ax.plot([20], [drain["postfix_rate"]], "D", label="Postfix queue drain")
        if "mailcarrier_rate" in drain:
            ax.plot([20], [drain["mailcarrier_rate"]], "*", ms=12, label="mailcarrier drain")
    ax.set_xscale("log")
    ax.set_xlabel("concurrent sessions")
    ax.set_ylabel("messages per second")
    ax.set_title("4 KB messages to smtp-sink (fast)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def _draw_scale(rates: Any, shares: Any, scale: dict[str, Any]) -> None:
    """The slow sink: messages per second against the ideal (log-log), and the same as a
    fraction of the ideal with mailcarrier's peak RSS on a second axis."""
    levels = [int(k) for k in scale["points"]]
    pts = list(scale["points"].values())
    rates.plot(levels, [p["mailcarrier"] for p in pts], "o-", label="mailcarrier")
    rates.plot(levels, [p["smtp-source"] for p in pts], "s-", label="Postfix smtp-source (C)")
    rates.plot(levels, [p["ideal"] for p in pts], ":", color="grey", label="ideal (1 msg/s each)")
    rates.set_xscale("log")
    rates.set_yscale("log")
    rates.set_xlabel("concurrent sessions")
    rates.set_ylabel("messages per second")
    rates.set_title("sink answers each message after 1 s")
    rates.grid(True, alpha=0.3)
    rates.legend(fontsize=8)
    shares.plot(levels, [p["mailcarrier"] / p["ideal"] for p in pts], "o-", label="mailcarrier")
    shares.plot(levels, [p["smtp-source"] / p["ideal"] for p in pts], "s-", label="smtp-source")
    target = scale.get("rate_target", 0.9)
    shares.axhline(target, ls=":", color="grey", label=f"target {target}x")
    shares.set_xscale("log")
    shares.set_ylim(0, 1.1)
    shares.set_xlabel("concurrent sessions")
    shares.set_ylabel("fraction of the ideal rate")
    shares.set_title("slow sink: rate / ideal, and memory")
    shares.grid(True, alpha=0.3)
    memory = shares.twinx()
    memory.plot(levels, [p["peak_mb"] for p in pts], "d--", color="tab:red", label="mc peak RSS")
    memory.axhline(scale["memory_target_mb"], ls="--", color="tab:red", alpha=0.4)
    memory.set_ylabel("mailcarrier peak RSS (MB)", color="tab:red")
    memory.set_ylim(0, max(scale["memory_target_mb"], *(p["peak_mb"] for p in pts)) * 1.1)
    lines, labels = shares.get_legend_handles_labels()
    more, more_labels = memory.get_legend_handles_labels()
    shares.legend(lines + more, labels + more_labels, fontsize=8, loc="lower left")


def chart() -> str:
    """Draw the PNG; returns a note on what happened."""
    engine, scale, drain = load("engine"), load("scale"), load("drain")
    if not (engine and engine.get("sweep")) and not scale:
        return "no chart: no sweep or scale figures yet"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no chart: matplotlib not installed (pip install -e '.[test]')"
    fig, axes = plt.subplots(1, 3, figsize=(18, 4.8))
    if engine and engine.get("sweep"):
        _draw_engine(axes[0], engine, drain)
    if scale:
        _draw_scale(axes[1], axes[2], scale)
    fig.tight_layout()
    fig.savefig(CHART, dpi=100)
    plt.close(fig)
    return f"chart: {CHART.name}"


def main() -> None:
    parts = {
        "engine": _engine,
        "scale": _scale,
        "size": _size,
        "drain": _drain,
        "agents": _agents,
        "native": _native,
        "tables": _tables,
        "tables_sql": _tables_sql,
        "fleet": _fleet,
        "submit": _submit,
    }
    found = {name: r for name in parts if (r := load(name)) is not None}
    if not found:
        print("no results yet: nothing written")
        return
    before = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else ""
    kept, kept_loads = previous_sections(before), previous_loads(before)
    loads = {}
    for name in parts:
        if name in found:
            loads[name] = found[name]["machine"]["load"]
        elif name in kept and name in kept_loads:
            loads[name] = kept_loads[name]
    note = chart()
    lines = [
        "# Benchmark results (issues 9, 16, 19 and 22)",
        "",
        "Written by `make bench` (bench/report.py) from bench/results/*.json. Each comparison "
        "ran side by side in the same run on the same machine; figures are medians. A "
        "benchmark whose figures are not in bench/results/ (not kept in git) keeps its section "
        "from the previous RESULTS.md.",
        "",
    ]
    if os.environ.get("BENCH_NOTE"):
        lines += [f"**Note:** {os.environ['BENCH_NOTE']}", ""]
    kept_names = [name for name in parts if name not in found and name in kept]
    lines += _machine(list(found.values()), loads, kept_names, before)
    for name, format_section in parts.items():
        if name in found:
            r = found[name]
            lines += [*format_section(r), f"_{name}: measured {r['when']}_", ""]
        elif name in kept:
            lines += [*kept[name], ""]
    if CHART.exists():
        lines += [f"![messages per second against concurrency]({CHART.name})", ""]
    lines += ["See bench/PROFILE.md for where the engine's time goes.", ""]
    RESULTS_MD.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {RESULTS_MD.name}; {note}")


if __name__ == "__main__":
    main()

"""The status page at / of the http_listen listener: one server-rendered HTML document.

`render_page(queue, status)` turns monitor.py's `queue_json()` and `status_json()` into a
page with no script, no build step and no external asset: inline CSS, the last hour's
deliveries as an inline SVG bar chart, tables of the queues, of the destinations with the
most deferred recipients (with their last reason) and of the TLS outcomes. It refreshes
itself (a meta refresh) and is read-only. Everything that comes from the queue or a peer
(domains, reasons, TLS levels) is hostile text: made printable (printable.py) and escaped.
http.py serves it with a Content-Security-Policy that allows exactly this.
"""

from __future__ import annotations

import html
import time
from typing import Any, Final

from mailcarrier.printable import printable

__all__ = ["REFRESH_SECONDS", "render_page"]

REFRESH_SECONDS: Final = 30
_CHART_W: Final = 720
_CHART_H: Final = 160
_COLOURS: Final = (("sent", "#2e7d32"), ("deferred", "#f9a825"), ("bounced", "#c62828"))

_STYLE: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
.meta{color:#666}table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #ddd;padding:.3em .7em;text-align:left;vertical-align:top}
th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.reason{max-width:40em;word-break:break-word;font-family:ui-monospace,monospace;font-size:.9em}
.legend span{display:inline-block;margin-right:1em}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:middle}
svg{background:#fff;border:1px solid #ddd}.empty{color:#888;font-style:italic}
"""


def _e(value: object) -> str:
    """Hostile text, shown: printable, then HTML-escaped (quotes too)."""
    return html.escape(printable(str(value)), quote=True)


def age_text(seconds: float) -> str:
    """3d 4h, 5h 2m, 7m 12s, 42s: the two largest units."""
    s = int(seconds)
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    parts: list[str] = []
    for name, size in units:
        if s >= size or (name == "s" and not parts):
            parts.append(f"{s // size}{name}")
            s %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def _queues(queue: dict[str, Any]) -> str:
    rows = []
    for name, q in queue["queues"].items():
        rows.append(
            f'<tr><td>{_e(name)}</td><td class="num" id="q-{_e(name)}-messages">'
            f'{int(q["messages"])}</td><td class="num" id="q-{_e(name)}-age">'
            f"{_e(age_text(q['oldest_age'])) if q['messages'] else '-'}</td></tr>"
        )
    return (
        "<table><tr><th>queue</th><th>messages</th><th>oldest</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _deferred(queue: dict[str, Any]) -> str:
    found = queue["deferred_destinations"]
    if not found:
        return '<p class="empty">No deferred mail.</p>'
    rows = [
        f'<tr><td>{_e(d["domain"])}</td><td class="num">{int(d["messages"])}</td>'
        f'<td class="num">{int(d["recipients"])}</td>'
        f'<td class="reason">{_e(d["last_reason"])}</td></tr>'
        for d in found
    ]
    head = "<tr><th>domain</th><th>messages</th><th>recipients</th><th>last reason</th></tr>"
    return f'<table id="deferred">{head}{"".join(rows)}</table>'


def _chart(minutes: list[dict[str, int]]) -> str:
    """Stacked bars, one a minute, the current minute on the right."""
    peak = max([m["sent"] + m["deferred"] + m["bounced"] for m in minutes] + [1])
    bar = _CHART_W / max(len(minutes), 1)
    plot = _CHART_H - 20
    shapes = []
    for i, m in enumerate(minutes):
        y = float(plot)
        for key, colour in _COLOURS:
            height = plot * m[key] / peak
            if height > 0:
                y -= height
                shapes.append(
                    f'<rect x="{i * bar + 1:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" '
                    f'height="{height:.1f}" fill="{colour}"><title>{m[key]} {key}</title></rect>'
                )
    label = f'<text x="4" y="{_CHART_H - 5}" font-size="11" fill="#666">-60 min</text>'
    now = f'<text x="{_CHART_W - 30}" y="{_CHART_H - 5}" font-size="11" fill="#666">now</text>'
    top = f'<text x="4" y="12" font-size="11" fill="#666">{peak}/min</text>'
    axis = f'<line x1="0" y1="{plot}" x2="{_CHART_W}" y2="{plot}" stroke="#999"/>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_CHART_W}" height="{_CHART_H}" '
        f'viewBox="0 0 {_CHART_W} {_CHART_H}" role="img" aria-label="deliveries per minute">'
        f"{axis}{''.join(shapes)}{top}{label}{now}</svg>"
    )


def _tls(status: dict[str, Any]) -> str:
    found = status["tls"]
    if not found:
        return '<p class="empty">No TLS policy applied yet.</p>'
    rows = [
        f"<tr><td>{_e(t['level'])}</td><td>{_e(t['result'])}</td>"
        f'<td class="num">{int(t["sessions"])}</td></tr>'
        for t in found
    ]
    head = "<tr><th>level</th><th>result</th><th>sessions</th></tr>"
    return f'<table id="tls">{head}{"".join(rows)}</table>'


def render_page(queue: dict[str, Any], status: dict[str, Any]) -> bytes:
    """The whole page, UTF-8."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(status["time"]))
    totals = status["deliveries"]
    hour = {k: sum(m[k] for m in status["last_hour"]) for k, _ in _COLOURS}
    legend = "".join(
        f'<span><i class="swatch" style="background:{c}"></i>{k}: '
        f'<b id="hour-{k}">{hour[k]}</b></span>'
        for k, c in _COLOURS
    )
    node = f" on {_e(status['node'])}" if status["node"] else ""
    body = (
        f"<h1>mailcarrier{node}</h1>"
        f'<p class="meta">{_e(stamp)} &middot; up {_e(age_text(status["uptime"]))} &middot; '
        f"{int(status['active_deliveries'])} deliveries running &middot; since the start: "
        f'<span id="total-sent">{int(totals["sent"])}</span> sent, '
        f'<span id="total-deferred">{int(totals["deferred"])}</span> deferred, '
        f'<span id="total-bounced">{int(totals["bounced"])}</span> bounced &middot; '
        f"refreshes every {REFRESH_SECONDS}s</p>"
        f"<h2>Queues</h2>{_queues(queue)}"
        f"<h2>Deliveries in the last hour</h2>"
        f'<p class="legend">{legend}</p>{_chart(status["last_hour"])}'
        f"<h2>Most deferred destinations</h2>{_deferred(queue)}"
        f"<h2>TLS since the start</h2>{_tls(status)}"
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>mailcarrier status</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return page.encode("utf-8")

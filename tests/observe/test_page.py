"""observe/page.py: the status page, rendered from known data (escaping, the chart), and
loaded in a real headless Chromium from a running ``mailcarrier run`` with a known queue:
no console error, the queue's numbers shown, a screenshot kept in the test's tmp dir (with
MAILCARRIER_REGEN_SCREENSHOT=1 also copied to docs/status-page.png, the README's)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mailcarrier import api
from mailcarrier.config.settings import Settings
from mailcarrier.observe.page import age_text, render_page
from mailcarrier.queue.admin import QueueAdmin
from mailcarrier.queue.spool import open_spool
from tests.observe.browser import Browser, find_chromium
from tests.observe.daemon import Daemon, settled, wait_for
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler

HOSTILE = '<script>alert("x")</script> & "quoted" \x1b[31m'
README_SHOT = Path(__file__).resolve().parents[2] / "docs" / "status-page.png"


def _data(reason: str = HOSTILE) -> tuple[dict[str, object], dict[str, object]]:
    queue = {
        "time": 1_700_000_000,
        "queues": {
            "incoming": {"messages": 0, "oldest_age": 0},
            "active": {"messages": 2, "oldest_age": 5.5},
            "deferred": {"messages": 7, "oldest_age": 93784},
            "hold": {"messages": 1, "oldest_age": 60},
        },
        "deferred_destinations": [
            {"domain": "<b>evil</b>.example", "messages": 3, "recipients": 4, "last_reason": reason}
        ],
    }
    hour = [
        {"start": 1_700_000_000 - 60 * (59 - i), "sent": i % 5, "deferred": 1, "bounced": 0}
        for i in range(60)
    ]
    status = {
        "time": 1_700_000_000,
        "node": "mc.example",
        "started": 1_699_990_000,
        "uptime": 10000.0,
        "active_deliveries": 2,
        "deliveries": {"sent": 120, "deferred": 60, "bounced": 3},
        "last_hour": hour,
        "tls": [{"level": "may", "result": "verified", "sessions": 9}],
    }
    return queue, status


def test_hostile_text_is_escaped_and_made_printable() -> None:
    page = render_page(*_data()).decode()
    assert "<script" not in page and "<b>evil" not in page
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quoted&quot; ?[31m" in page
    )
    assert "&lt;b&gt;evil&lt;/b&gt;.example" in page
    assert '<td class="num" id="q-deferred-messages">7</td>' in page
    assert '<td class="num" id="q-deferred-age">1d 2h</td>' in page
    assert '<td class="num" id="q-incoming-age">-</td>' in page
    assert page.count("<rect ") == 60 + 48  # a deferred bar every minute, sent in 48 of them
    assert '<meta http-equiv="refresh" content="30">' in page


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42.9, "42s"), (432, "7m 12s"), (18120, "5h 2m"), (273600, "3d 4h")],
)
def test_ages(seconds: float, text: str) -> None:
    assert age_text(seconds) == text


@pytest.fixture
def chromium() -> str:
    found = find_chromium()
    if found is None:
        pytest.skip("chromium is not installed (scripts/install-peers.sh installs it)")
    return found


def _known_queue(tmp_path: Path) -> None:
    """One message the run will send one recipient of and defer two (one reason hostile),
    and one on hold."""
    cfg = Settings.defaults().with_overrides(
        {"queue_directory": str(tmp_path / "queue"), "myhostname": "mc.example"}
    )
    rcpts = ["ok@example.net", "later@example.net", "evil@example.net"]
    api.submit_sync(b"Subject: page\n\nbody\n", sender="", recipients=rcpts, config=cfg)
    held = api.submit_sync(
        b"Subject: held\n\nbody\n", sender="", recipients=["h@example.com"], config=cfg
    )
    assert QueueAdmin(open_spool(cfg)).hold([held]) == 1


def test_status_page_in_a_headless_browser(tmp_path: Path, chromium: str) -> None:
    reject = {
        "later": "450 4.2.0 mailbox busy",
        "evil": '450 4.2.0 <script>alert("x")</script> busy',
    }
    srv = AiosmtpdServer(
        RecordingHandler(extra_keywords=("ENHANCEDSTATUSCODES",), reject=reject)
    ).start()
    try:
        _known_queue(tmp_path)
        params = {"relayhost": srv.nexthop, "http_listen": "127.0.0.1:0"}
        with Daemon(tmp_path, params) as daemon:
            assert wait_for(
                lambda: (
                    daemon.json("/api/status")["deliveries"]
                    == {"sent": 1, "deferred": 2, "bounced": 0}
                )
            )
            assert wait_for(lambda: settled(daemon))
            with Browser(chromium, tmp_path / "profile") as browser:
                browser.load(daemon.base + "/", height=800)
                shown = browser.evaluate(
                    "JSON.stringify(['incoming','active','deferred','hold'].map("
                    "q => document.getElementById('q-' + q + '-messages').textContent)"
                    ".concat(['total-sent','total-deferred','hour-sent','hour-deferred']"
                    ".map(i => document.getElementById(i).textContent)))"
                )
                reason = browser.evaluate(
                    "document.querySelector('#deferred td.reason').textContent"
                )
                scripts = browser.evaluate("document.scripts.length")
                bars = browser.evaluate("document.querySelectorAll('svg rect').length")
                shot = tmp_path / "status-page.png"
                browser.screenshot(shot)
                problems = list(browser.problems)
    finally:
        srv.stop()
    assert problems == []
    assert shown == '["0","0","1","1","1","2","1","2"]'
    assert reason.startswith("host 127.0.0.1[127.0.0.1] said: 450 4.2.0 ")
    assert scripts == 0 and bars == 2
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    if os.environ.get("MAILCARRIER_REGEN_SCREENSHOT"):  # the README's copy, on request
        README_SHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, README_SHOT)

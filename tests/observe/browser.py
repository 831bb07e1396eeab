"""A headless Chromium driven over its DevTools pipe (``--remote-debugging-pipe``), for the
status page test: no CDP library, a dozen commands.

Chromium reads commands on fd 3 and writes replies and events on fd 4, each a JSON object
ended by a NUL byte. `Browser.load(url)` opens a page, waits for its load event and keeps
every console message, uncaught exception and log entry of level error (a Content-Security-
Policy violation, a failed request) in `problems`; `evaluate()` runs an expression in the
page; `screenshot()` saves a PNG. Skip the test when `find_chromium()` finds none.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

TIMEOUT = 60.0  # a generous ceiling for one reply, never a timing assertion


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    def __init__(self, executable: str, profile: Path) -> None:
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        args = [
            executable,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--metrics-recording-only",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        # fd 3 and 4 of the browser are our pipes' ends (a shell's redirection may not take
        # descriptors above 9: a small Python launcher moves them).
        launch = (
            "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
            "os.execv(sys.argv[3], sys.argv[3:])"
        )
        self.stderr = profile.with_suffix(".stderr")
        with self.stderr.open("wb") as errors:  # chromium's own complaints (D-Bus, ...)
            self.proc = subprocess.Popen(
                [sys.executable, "-c", launch, str(cmd_r), str(resp_w), *args],
                pass_fds=(cmd_r, resp_w),
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
        os.close(cmd_r)
        os.close(resp_w)
        self._buffer = b""
        self._ids = 0
        self._session = ""
        self.problems: list[str] = []

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(OSError):
            self._send("Browser.close", {}, session=False)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._resp_r)

    # --- the pipe -------------------------------------------------------------------------
    def _send(self, method: str, params: dict[str, Any], *, session: bool = True) -> int:
        self._ids += 1
        message: dict[str, Any] = {"id": self._ids, "method": method, "params": params}
        if session and self._session:
            message["sessionId"] = self._session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        return self._ids

    def _next(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._resp_r], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._resp_r, 65536)
            if not chunk:
                tail = self.stderr.read_text(errors="replace")[-2000:]
                raise EOFError(f"chromium closed its pipe: {tail}")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        self._note(message)
        return message

    def _note(self, message: dict[str, Any]) -> None:
        method = message.get("method", "")
        params = message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            texts = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
            self.problems.append(f"console.{params['type']}: {' '.join(texts)}")
        elif method == "Runtime.exceptionThrown":
            self.problems.append(f"exception: {params['exceptionDetails'].get('text', '')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            entry = params["entry"]
            self.problems.append(f"log {entry['level']}: {entry['text']} {entry.get('url', '')}")

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = True
    ) -> dict[str, Any]:
        sent = self._send(method, params or {}, session=session)
        while True:
            message = self._next()
            if message.get("id") == sent:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def _wait_event(self, method: str) -> None:
        while self._next().get("method") != method:
            pass

    # --- what the test uses ---------------------------------------------------------------
    def load(self, url: str, width: int = 1000, height: int = 1200) -> None:
        targets = self.call("Target.getTargets", session=False)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        attached = self.call(
            "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}, session=False
        )
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.call("Page.navigate", {"url": url})
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(shot["data"]))

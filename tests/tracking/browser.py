"""A headless Chromium driven over the DevTools protocol on a pipe (standard library only).

`chromium --remote-debugging-pipe` reads protocol messages on file descriptor 3 and writes
them on 4, each a JSON object ended by a NUL byte. That is enough to open a page, evaluate
JavaScript in it (read its text, click) and poll until the page shows what a test waits for.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any

from tests.tracking.ui_process import group_members

CHROMIUM = shutil.which("chromium")


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, width: int = 1400, height: int = 900, log=subprocess.DEVNULL) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="sweeps-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def on_fds_3_and_4() -> None:     # in the child, before exec: where Chromium reads
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)   # out of the way of 3 and 4
                    for fd in (to_browser_read, from_browser_write)]
            os.dup2(high[0], 3)                                   # inheritable copies
            os.dup2(high[1], 4)

        # close_fds=False: fds 3 and 4 must survive; every other fd Python opened is
        # close-on-exec anyway (PEP 446).
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            preexec_fn=on_fds_3_and_4, close_fds=False, start_new_session=True)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self.call("Target.attachToTarget", targetId=target,
                                      flatten=True)["sessionId"]
        except BaseException:
            self.close()
            raise

    def call(self, method: str, timeout: float = 60.0, session: str | None = None,
             **params: Any) -> dict:
        """Send one protocol command and return its result (events in between are skipped)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply["result"]

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError(f"chromium exited (status {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str) -> None:
        self.call("Page.navigate", session=self._session, url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", session=self._session, expression=expression,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> Any:
        """Poll a JavaScript expression until it is truthy; its value. The page renders with
        JavaScript after the load, so a single read would race it."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never satisfied {expression!r} within "
                                   f"{timeout:.0f} s; it shows:\n{self.text()[:1000]}")
            time.sleep(0.25)   # poll interval while the page renders

    def screenshot(self, path) -> None:
        """The page as a PNG file at `path`."""
        import base64
        data = self.call("Page.captureScreenshot", session=self._session, format="png")["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (BrowserError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        if group_members(self.process.pid):      # its renderers, or a browser that hangs
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        self._profile.cleanup()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""cdp — drive headless Chromium over the DevTools protocol, Python standard library only.

golbtest.page_dom() is enough to see what a page rendered; this is for what it cannot tell: the
layout (bounding boxes at a given window size), computed styles, and the page's behaviour while
its requests are held, answered with chosen data or failed (the Fetch domain).

Chromium runs with --remote-debugging-pipe: it reads commands on fd 3 and writes answers and
events on fd 4, each one JSON object ended by a NUL byte. One browser per test, one page in it:

    with Browser(tmpdir) as b:
        p = b.new_page(width=1280, height=800)
        p.intercept("*/api/v1/status*")       # hold every matching request
        p.navigate(url)
        req = p.paused()                      # {"requestId", "request": {"url", ...}, ...}
        p.fulfill(req, 200, body_bytes, "application/json")   # or p.resume(req) / p.fail(req)
        p.wait_for("document.body.dataset.loaded === 'true'")
        p.evaluate("document.title")
"""

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

from golbtest import scaled


class CDPError(Exception):
    pass


class Browser:
    def __init__(self, tmpdir, timeout=None):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        assert exe, "chromium (Debian package chromium) is not installed"
        self.timeout = timeout or scaled(30)
        profile = tempfile.mkdtemp(prefix="golb-cdp-", dir=tmpdir)
        self.log_path = os.path.join(profile, "chromium.log")
        cmd_r, self.cmd_w = os.pipe()   # commands: we write, Chromium reads on fd 3
        self.res_r, res_w = os.pipe()   # answers and events: Chromium writes on fd 4
        # Move the child's ends above 4, so that placing them on 3 and 4 cannot clobber each other.
        hi_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
        hi_w = fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
        os.close(cmd_r)
        os.close(res_w)

        def place_fds():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--hide-scrollbars", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", "about:blank"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         pass_fds=(3, 4), preexec_fn=place_fds)
        os.close(hi_r)
        os.close(hi_w)
        self.next_id = 0
        self.buf = b""
        self.events = []  # events read while waiting for an answer, oldest first

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("Browser.close", timeout=scaled(5))
            except (CDPError, OSError):
                pass
            try:
                self.proc.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in (self.cmd_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("no message from Chromium in time")
            ready, _, _ = select.select([self.res_r], [], [], left)
            if ready:
                data = os.read(self.res_r, 65536)
                if not data:
                    raise CDPError("Chromium closed the pipe:\n" + self.log_text()[-2000:])
                self.buf += data
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def call(self, method, params=None, session=None, timeout=None):
        """Sends a command and returns its result; events read meanwhile are kept."""
        mid = self.send(method, params, session)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = self._read_message(deadline)
            if m.get("id") == mid:
                if "error" in m:
                    raise CDPError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_event(self, method, session=None, timeout=None):
        """The next event named method (of the session when given), in arrival order."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, m in enumerate(self.events):
                if m["method"] == method and (session is None or m.get("sessionId") == session):
                    del self.events[i]
                    return m["params"]
            m = self._read_message(deadline)
            if "method" in m:
                self.events.append(m)

    def new_page(self, width=1280, height=800):
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, sid)
        page.call("Page.enable")
        page.call("Runtime.enable")
        page.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        return page


class Page:
    def __init__(self, browser, session):
        self.b = browser
        self.session = session

    def call(self, method, params=None, timeout=None):
        return self.b.call(method, params, self.session, timeout)

    def navigate(self, url):
        r = self.call("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise CDPError(f"navigate {url}: {r['errorText']}")

    def evaluate(self, expression):
        """The value of a JavaScript expression (JSON-serialisable; promises are awaited)."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise CDPError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression, timeout=None, what=None):
        """Polls until the expression is truthy (one that throws, as before the page exists,
        counts as false); returns its value."""
        deadline = time.monotonic() + (timeout or self.b.timeout)
        last = None
        while True:
            try:
                v = self.evaluate(expression)
                if v:
                    return v
            except CDPError as e:
                last = e
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or expression}"
                                     + (f" (last: {last})" if last else ""))
            time.sleep(0.05)

    # ---- holding requests (the Fetch domain) ----

    def intercept(self, url_pattern):
        """From now on every request matching url_pattern (wildcards * and ?) waits for us."""
        self.call("Fetch.enable", {"patterns": [{"urlPattern": url_pattern}]})

    def paused(self, timeout=None):
        """The next held request: Fetch.requestPaused's parameters."""
        return self.b.wait_event("Fetch.requestPaused", self.session, timeout)

    def resume(self, req):
        self.call("Fetch.continueRequest", {"requestId": req["requestId"]})

    def fail(self, req, reason="ConnectionRefused"):
        self.call("Fetch.failRequest", {"requestId": req["requestId"], "errorReason": reason})

    def fulfill(self, req, status, body, content_type):
        self.call("Fetch.fulfillRequest", {
            "requestId": req["requestId"], "responseCode": status,
            "responseHeaders": [{"name": "Content-Type", "value": content_type},
                                {"name": "Cache-Control", "value": "no-store"}],
            "body": base64.b64encode(body).decode()})

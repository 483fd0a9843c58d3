"""golbtest — helpers for golb's end-to-end tests (Python 3 standard library only).

Processes: start_toy(), start_golb(), start_raw_upstream() start servers on ephemeral loopback ports
and read the port each one logs ("listening on ADDR:PORT"); nothing here picks a port and binds it
later. Every process is registered and killed by PID at cleanup, when the test ends (GolbTestCase)
and at interpreter exit, whatever happened; children also get PDEATHSIG so they die with the runner.

Waiting: wait_until(cond, timeout, what) polls with a deadline. Every timeout given to these helpers
is multiplied by GOLB_TEST_TIMEOUT_SCALE (default 1; the ASan run sets it higher) — use scaled() for
any other duration a test needs. Fixed sleeps are never used to synchronise.

HTTP: HTTPConn is a raw-socket client: send bytes, read whole responses framed by Content-Length,
chunked coding or close, several per socket (keep-alive, pipelining).
"""

import atexit
import ctypes
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

SCALE = float(os.environ.get("GOLB_TEST_TIMEOUT_SCALE", "1") or "1")
# GOLB_TEST_TLS=1 (run.py --tls): golb_config() adds an HTTPS listener, a started golb's .port is
# that listener, and HTTPConn speaks TLS to it, so tests written for plain HTTP run over TLS.
TLS_MODE = os.environ.get("GOLB_TEST_TLS", "") == "1"
TLS_PORTS = set()  # golb HTTPS ports HTTPConn must speak TLS to (TLS mode)


def plain_only(why):
    """Skips a test in TLS mode (it speaks raw TCP to golb, or checks plain-only behaviour such as
    splice); it still runs in the plain suite."""
    return unittest.skipIf(TLS_MODE, f"plain HTTP only: {why}")


TLS_LISTEN_RE = re.compile(r"listening on [^\n]*https://(\S+):(\d+)")
BINDIR = os.environ.get("GOLB_BINDIR", "bin")
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")

# The size= body of toy-backend: this 64-byte line repeated and cut at the requested size.
PATTERN_LINE = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+\n"


def scaled(seconds):
    """A duration a test waits for, stretched for slow (sanitizer) runs."""
    return seconds * SCALE


def is_asan_build(bindir=None):
    """True when the binaries under test are the ASan+UBSan build (memory bounds differ)."""
    return "asan" in os.path.abspath(bindir or BINDIR).split(os.sep)


def wait_until(cond, timeout, what, interval=0.02):
    """Polls cond() until it returns a truthy value (returned) or scaled(timeout) passes (fails)."""
    deadline = time.monotonic() + scaled(timeout)
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except (OSError, AssertionError) as e:  # e.g. connection refused while a server starts
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {scaled(timeout):.1f}s waiting for {what}{extra}")
        time.sleep(interval)


def pattern_bytes(n, offset=0):
    """Bytes [offset, offset+n) of the toy's size= pattern."""
    start = offset % len(PATTERN_LINE)
    reps = (start + n) // len(PATTERN_LINE) + 1
    return (PATTERN_LINE * reps)[start:start + n]


def pattern_sha256(n):
    """SHA-256 hex of the first n bytes of the size= pattern, computed piecewise."""
    h = hashlib.sha256()
    block = PATTERN_LINE * 16384  # 1 MiB, a multiple of the line length
    while n >= len(block):
        h.update(block)
        n -= len(block)
    h.update(block[:n])
    return h.hexdigest()


def rss_kib(pid):
    """Resident set size of pid in KiB, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


# ---- processes -----------------------------------------------------------------------------------

_registry = []  # every Proc ever started and not yet reaped
_registry_lock = threading.Lock()


try:
    _libc = ctypes.CDLL(None, use_errno=True)  # loaded here, never between fork and exec
except OSError:
    _libc = None


def _pdeathsig():
    # Runs in the child between fork and exec: die when the parent (the test runner) dies, so no
    # server outlives a runner that was killed. Processes are started from the main thread only
    # (PDEATHSIG follows the thread that forked).
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _child_env():
    env = dict(os.environ)
    # Sanitizer reports must be visible in the log and must fail the process.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: \w+Sanitizer")


class Proc:
    """A started server process; stderr and stdout go to a log file."""

    def __init__(self, name, argv, log_path, cwd=None):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.host = None
        self.port = None
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, cwd=cwd, env=_child_env(),
                                      preexec_fn=_pdeathsig)
        self.pid = self.popen.pid
        with _registry_lock:
            _registry.append(self)

    def __repr__(self):
        return f"<{self.name} pid={self.pid} port={self.port}>"

    @property
    def addr(self):
        return f"{self.host}:{self.port}"

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def wait_log(self, regex, timeout=5, start=0, count=1):
        """Waits until the log (from offset `start`) has `count` matches of regex; returns the last
        re.Match. Fails early if the process exits without having logged it."""
        rx = re.compile(regex)

        def found():
            text = self.log_text()[start:]
            ms = list(rx.finditer(text))
            if len(ms) >= count:
                return ms[count - 1]
            if not self.alive():
                # One more read: the line may have been written just before the exit.
                ms = list(rx.finditer(self.log_text()[start:]))
                if len(ms) >= count:
                    return ms[count - 1]
                raise _ProcExited(f"{self.name} exited with {self.returncode} before logging "
                                  f"/{regex}/:\n{self.log_tail()}")
            return None

        try:
            return wait_until(found, timeout, f"{self.name} to log /{regex}/")
        except AssertionError as e:
            if isinstance(e, _ProcExited):
                raise
            raise AssertionError(f"{e}\n--- {self.name} log tail:\n{self.log_tail()}") from None

    def log_offset(self):
        """Current log length: pass as wait_log(start=...) to wait for a line logged from now on."""
        return len(self.log_text())

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait_exit(self, timeout):
        """Waits up to scaled(timeout) for the process to exit; returns its exit code or None."""
        try:
            return self.popen.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=5):
        """Signals the process by PID and reaps it, killing it after scaled(timeout). Returns the
        exit status (negative: killed by that signal)."""
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            if self.wait_exit(timeout) is None:
                self.kill()
        return self._reap()

    def kill(self):
        """SIGKILL by PID, then reap."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self._reap()

    def _reap(self):
        rc = self.popen.wait()
        if not self._log.closed:
            self._log.close()
        with _registry_lock:
            if self in _registry:
                _registry.remove(self)
        return rc

    def sanitizer_report(self):
        """The sanitizer report in the log, if any (ASan/UBSan/LSan)."""
        text = self.log_text()
        m = SANITIZER_RE.search(text)
        if not m:
            return None
        return text[max(0, m.start() - 200):m.start() + 4000]


class _ProcExited(AssertionError):
    pass


def kill_all():
    """Kills every process still registered (by PID). Safe to call more than once."""
    with _registry_lock:
        procs = list(_registry)
    for p in procs:
        try:
            p.kill()
        except Exception:
            pass


atexit.register(kill_all)


def _new_tmpdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


def start_toy(bindir=None, id=0, extra_args=(), tmpdir=None, listen="127.0.0.1:0", verbose=True):
    """Starts toy-backend -id ID (on `listen`, 127.0.0.1:0 by default; listen=None keeps the toy's
    own default 127.0.0.1:808ID; extra_args may hold -listen too) and waits for its "listening on"
    line. Returns the Proc with .host/.port set."""
    bindir = bindir or BINDIR
    tmpdir = tmpdir or _new_tmpdir("golb-toy-")
    argv = [os.path.join(bindir, "toy-backend"), "-id", str(id)]
    if verbose:
        argv.append("-v")
    has_listen = any(a.lstrip("-").split("=")[0] == "listen" for a in extra_args if a.startswith("-"))
    if listen is not None and not has_listen:
        argv += ["-listen", listen]
    argv += list(extra_args)
    p = Proc(f"toy{id}", argv, os.path.join(tmpdir, f"toy{id}-{time.monotonic_ns()}.log"))
    m = p.wait_log(LISTEN_RE.pattern, timeout=10)
    p.host, p.port = m.group(1), int(m.group(2))
    return p


def start_golb(bindir=None, config_text=None, expect_ready=True, tmpdir=None, args=None,
               config_name="golb.yml", cwd=None):
    """Writes config_text into tmpdir/config_name and starts `golb -confpath FILE` (or golb with
    `args` instead, when given: then config_text may be None and cwd is the working directory).
    With expect_ready, waits for the "listening on" line and sets .host/.port. Sets .config_path."""
    bindir = bindir or BINDIR
    tmpdir = tmpdir or _new_tmpdir("golb-")
    path = None
    if config_text is not None:
        path = os.path.join(cwd or tmpdir, config_name)
        with open(path, "w") as f:
            f.write(config_text)
    argv = [os.path.join(bindir, "golb")]
    argv += list(args) if args is not None else ["-confpath", path]
    p = Proc("golb", argv, os.path.join(tmpdir, f"golb-{time.monotonic_ns()}.log"), cwd=cwd or tmpdir)
    p.config_path = path
    if expect_ready:
        _set_listen_addr(p, p.wait_log(LISTEN_RE.pattern, timeout=10))
    return p


def _set_listen_addr(p, m):
    """Sets p.host/p.port from a LISTEN_RE match; a wildcard address is reached on 127.0.0.1.
    In TLS mode .port is golb's HTTPS listener (and .plain_port the plain one) when it has one."""
    p.host, p.port = m.group(1), int(m.group(2))
    p.plain_port = p.port
    if TLS_MODE:
        t = TLS_LISTEN_RE.search(p.log_text())
        if t:
            p.port = int(t.group(2))
            TLS_PORTS.add(p.port)
    if p.host.startswith("[") and p.host.endswith("]"):
        p.host = p.host[1:-1]
    if p.host in ("0.0.0.0", "::", "*", ""):
        p.host = "127.0.0.1"


def run_golb(bindir, args, timeout=10, cwd=None):
    """Runs golb to completion (e.g. -h, -t, -version). Returns CompletedProcess with text output."""
    return subprocess.run([os.path.join(bindir or BINDIR, "golb")] + list(args), cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=scaled(timeout), env=_child_env())


def page_dom(url, tmpdir, budget_ms=5000, extra_args=()):
    """Loads url in headless Chromium (Debian's chromium), lets its scripts run for budget_ms of
    virtual time, and returns (the DOM as HTML, Chromium's stderr). extra_args: more switches
    (e.g. --ignore-certificate-errors)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium (Debian package chromium) is not installed"
    profile = tempfile.mkdtemp(prefix="golb-chromium-", dir=tmpdir)
    argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
            *extra_args, "--dump-dom", url]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=scaled(60),
                       stdin=subprocess.DEVNULL)
    return p.stdout, p.stderr


def golb_config(backends, listen="127.0.0.1:0", period=None, timeout=None, **extra):
    """Builds a golb YAML config. backends: Procs (toys, raw upstreams) or ports or full URLs.
    period/timeout: healthCheckPeriod/healthCheckTimeout in seconds (default 0.3 and 0.25, scaled).
    extra: more top-level keys, e.g. upstreamTimeout=1, workers=2."""
    period = round(scaled(0.3), 3) if period is None else period
    timeout = round(scaled(0.25), 3) if timeout is None else timeout
    lines = []
    if listen is not None:
        lines.append(f"listen: {listen}")
    lines.append(f"healthCheckTimeout: {timeout}")
    lines.append(f"healthCheckPeriod: {period}")
    for k, v in extra.items():
        lines.append(f"{k}: {v}")
    if TLS_MODE and "tls" not in extra:
        import tlstest  # noqa: PLC0415 - only in TLS mode; tlstest imports this module
        cert, key = tlstest.pki().leaf("golb-tls-mode", ["golb.test", "IP:127.0.0.1"])
        lines += ["tls:", "  listen: 127.0.0.1:0", "  certificates:",
                  f"    - certFile: {cert}", f"      keyFile: {key}"]
    lines.append("backends:")
    for b in backends:
        if isinstance(b, str):
            url = b
        else:
            port = b if isinstance(b, int) else b.port
            url = f"http://127.0.0.1:{port}/health"
        lines.append(f"  - {url}")
    return "\n".join(lines) + "\n"


# ---- raw upstream (a Python server for behaviours toy-backend does not have) -----------------------

def loopback_listener(backlog):
    """A listening TCP socket on 127.0.0.1 on an ephemeral port (for test-made upstreams)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(backlog)
    return s


def stop_listening(lsock, thread):
    """Stops a test-made server's accept loop: shutdown() wakes the thread blocked in accept()
    (close() alone would not), then the listener is closed and its port free again."""
    try:
        lsock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    thread.join(scaled(5))
    try:
        lsock.close()
    except OSError:
        pass


class RawUpstream:
    """A threaded loopback server. handler(conn, head_bytes, path) is called for each request head
    that is not GET /health (answered 200 "ok" unless health_status says otherwise, after
    health_delay seconds; never with health_hang); it owns the socket for that request and returns
    True to keep reading requests on it."""

    def __init__(self, handler, health_status=200, health_hang=False, health_delay=0):
        self.handler = handler
        self.health_status = health_status
        self.health_hang = health_hang
        self.health_delay = health_delay  # seconds before each health answer (a slow check)
        self.requests = []  # heads seen (bytes), health checks excluded
        self.lsock = loopback_listener(64)
        self.host, self.port = self.lsock.getsockname()
        self._conns = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self):
        while not self._stop:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self._conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            c.settimeout(scaled(30))
            while not self._stop:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                head += b"\r\n\r\n"
                first = head.split(b"\r\n", 1)[0].split(b" ")
                path = first[1].decode("latin-1") if len(first) > 1 else ""
                if path == "/health":
                    if self.health_hang:
                        while c.recv(65536):
                            pass
                        return
                    if self.health_delay:
                        time.sleep(self.health_delay)
                    body = b"ok\n"
                    c.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s"
                              % (self.health_status, len(body), body))
                    continue
                self.requests.append(head)
                if not self.handler(c, head, path):
                    return
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        """Stops listening (the port is free again on return) and closes every connection."""
        self._stop = True
        stop_listening(self.lsock, self._thread)
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass


# ---- HTTP client -----------------------------------------------------------------------------------

class Response:
    def __init__(self, version, status, reason, headers, body, head):
        self.version = version    # "HTTP/1.1"
        self.status = status      # int
        self.reason = reason
        self.headers = headers    # [(name, value)] in order
        self.body = body          # bytes (b"" when streamed to a sink)
        self.head = head          # raw head bytes
        self.body_len = len(body)
        self.chunked = False
        self.interim = []         # 1xx responses received before this one

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def echo(self):
        """Parses a toy-backend echo body into a dict: server, method, path, headers [(n, v)],
        body-length, body-sha256."""
        out = {"headers": []}
        lines = self.text.split("\n")
        out["first_line"] = lines[0]
        if lines[0].startswith("server "):
            out["server"] = int(lines[0][7:])
        for line in lines[1:]:
            if not line:
                continue
            k, _, v = line.partition(": ")
            if k == "header":
                n, _, hv = v.partition(": ")
                out["headers"].append((n, hv))
            else:
                out[k] = v
        return out

    def echo_header(self, name, default=None):
        name = name.lower()
        for k, v in self.echo()["headers"]:
            if k.lower() == name:
                return v
        return default

    def __repr__(self):
        return f"<Response {self.status} {self.reason!r} {len(self.body)} bytes>"


class ConnectionClosed(Exception):
    """The peer closed before a complete response."""


class HTTPConn:
    """One client TCP connection with a receive buffer; responses are read one at a time."""

    def __init__(self, host, port, timeout=5):
        self.host, self.port = host, port
        self.timeout = scaled(timeout)
        self.sock = socket.create_connection((host, port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if port in TLS_PORTS:
            import tlstest  # noqa: PLC0415
            ctx = tlstest.client_context()
            ctx.check_hostname = False
            self.sock = ctx.wrap_socket(self.sock, server_hostname="golb.test")
        self.buf = bytearray()
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method="GET", path="/", headers=None, body=None, host="golb.test",
                version="HTTP/1.1", head_only=None, sink=None):
        """Sends one request and reads its response. body: bytes, or an iterable of bytes sent
        with chunked coding (unless headers set Content-Length)."""
        self.send_request(method, path, headers, body, host, version)
        return self.read_response(head_only=(method == "HEAD") if head_only is None else head_only,
                                  sink=sink)

    def send_request(self, method="GET", path="/", headers=None, body=None, host="golb.test",
                     version="HTTP/1.1"):
        hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {k.lower() for k, _ in hdrs}
        lines = [f"{method} {path} {version}"]
        if host is not None and "host" not in names:
            lines.append(f"Host: {host}")
        streamed = body is not None and not isinstance(body, (bytes, bytearray))
        if body is not None and not streamed and "content-length" not in names \
                and "transfer-encoding" not in names:
            lines.append(f"Content-Length: {len(body)}")
        if streamed and "content-length" not in names and "transfer-encoding" not in names:
            hdrs.append(("Transfer-Encoding", "chunked"))
            names.add("transfer-encoding")
        for k, v in hdrs:
            lines.append(f"{k}: {v}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if body is None:
            self.send(head)
        elif not streamed:
            self.send(head + bytes(body))
        else:
            self.send(head)
            chunked = "transfer-encoding" in names and "content-length" not in names
            for piece in body:
                if not piece:
                    continue
                if chunked:
                    self.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
                else:
                    self.send(piece)
            if chunked:
                self.send(b"0\r\n\r\n")

    def _fill(self):
        d = self.sock.recv(1 << 20)
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def _read_line(self, limit=65536):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise AssertionError("line too long in response")
            if not self._fill():
                raise ConnectionClosed(f"closed mid-line (have {bytes(self.buf[:200])!r})")

    def _read_exact(self, n, sink):
        while n > 0:
            if not self.buf and not self._fill():
                raise ConnectionClosed(f"closed with {n} body bytes missing")
            take = min(n, len(self.buf))
            sink(bytes(self.buf[:take]))
            del self.buf[:take]
            n -= take

    def read_head(self):
        """Reads one response head. Returns (version, status, reason, headers, raw)."""
        raw = b""
        while True:
            line = self._read_line()
            raw += line
            if line in (b"\r\n", b"\n"):
                if raw.strip() == b"":  # tolerate nothing; an empty line first is a protocol error
                    raise AssertionError("response starts with an empty line")
                break
        lines = raw.decode("latin-1").split("\n")
        status_line = lines[0].rstrip("\r")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise AssertionError(f"bad status line {status_line!r}")
        headers = []
        for line in lines[1:]:
            line = line.rstrip("\r")
            if not line:
                continue
            k, _, v = line.partition(":")
            headers.append((k, v.strip()))
        return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers, raw

    def read_response(self, head_only=False, sink=None, timeout=None):
        """Reads one complete response (skipping 1xx interim ones). head_only: the request was HEAD.
        sink(bytes) receives the body instead of Response.body when given."""
        if timeout is not None:
            self.sock.settimeout(scaled(timeout))
        try:
            interim = []
            while True:
                try:
                    version, status, reason, headers, raw = self.read_head()
                except ConnectionClosed:
                    if not self.buf:
                        raise ConnectionClosed("closed before a response") from None
                    raise
                if 100 <= status < 200 and status != 101:
                    interim.append((status, headers))
                    continue
                break
            parts = []
            out = sink or parts.append
            resp = Response(version, status, reason, headers, b"", raw)
            resp.interim = interim
            te = ",".join(v for k, v in headers if k.lower() == "transfer-encoding").lower()
            cl = [v for k, v in headers if k.lower() == "content-length"]
            total = [0]

            def counting(b):
                total[0] += len(b)
                out(b)

            if head_only or status in (204, 304) or 100 <= status < 200:
                pass
            elif te:
                if te.replace(" ", "").split(",")[-1] != "chunked":
                    self._read_until_close(counting)
                else:
                    resp.chunked = True
                    self._read_chunked(counting)
            elif cl:
                if len(set(cl)) != 1:
                    raise AssertionError(f"conflicting Content-Length {cl}")
                self._read_exact(int(cl[0]), counting)
            else:
                self._read_until_close(counting)
            resp.body = b"".join(parts)
            resp.body_len = total[0]
            return resp
        finally:
            if timeout is not None:
                self.sock.settimeout(self.timeout)

    def _read_chunked(self, out):
        while True:
            line = self._read_line(4096)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                break
            self._read_exact(size, out)
            crlf = self._read_line(16)
            if crlf not in (b"\r\n",):
                raise AssertionError(f"bad chunk terminator {crlf!r}")
        while self._read_line() not in (b"\r\n", b"\n"):
            pass  # trailers

    def _read_until_close(self, out):
        if self.buf:
            out(bytes(self.buf))
            self.buf.clear()
        while self._fill():
            out(bytes(self.buf))
            self.buf.clear()

    def wait_closed(self, timeout=2):
        """True if the peer closes the connection (EOF or reset) within scaled(timeout) and sends
        no more bytes; AssertionError when it sends bytes; False on timeout."""
        self.sock.settimeout(scaled(timeout))
        try:
            if self.eof:
                return True
            d = self.sock.recv(65536)
            if d:
                raise AssertionError(f"unexpected bytes: {d[:200]!r}")
            self.eof = True
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(self.timeout)


def http_request(port, method="GET", path="/", host="127.0.0.1", timeout=5, **kw):
    """One request on a fresh connection, closed afterwards."""
    with HTTPConn(host, port, timeout) as c:
        return c.request(method, path, **kw)


def http_get(port, path="/", **kw):
    return http_request(port, "GET", path, **kw)


def can_connect(port, host="127.0.0.1"):
    try:
        s = socket.create_connection((host, port), timeout=1)
        s.close()
        return True
    except OSError:
        return False


# ---- test case base ----------------------------------------------------------------------------------

class GolbTestCase(unittest.TestCase):
    """Base for e2e tests: a temp dir per test, processes stopped at the end whatever happens, their
    logs kept for the failure report (runner prints self.procs' logs), sanitizer reports fail the test."""

    needs_golb = True

    def setUp(self):
        self.bindir = BINDIR
        if self.needs_golb and not os.access(os.path.join(self.bindir, "golb"), os.X_OK):
            self.fail(f"{self.bindir}/golb is not built")  # a failure, never a silent skip
        self.tmp = tempfile.mkdtemp(prefix=f"golb-e2e-{self._testMethodName}-")
        self.procs = []
        self.raw_upstreams = []
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        """Stops what the test left running with SIGTERM: each must exit 0 within the deadline
        (graceful shutdown is checked after every test, and LeakSanitizer runs at that exit)."""
        for u in self.raw_upstreams:
            u.close()
        problems = []
        for p in self.procs:
            if p.alive():
                rc = p.stop(timeout=10)
                if rc != 0:
                    problems.append(f"{p.name} (pid {p.pid}) exited with {rc} on SIGTERM at the end "
                                    f"of the test" + (" (killed: no exit within 10 s)" if rc == -9 else ""))
        for p in self.procs:
            r = p.sanitizer_report()
            if r:
                problems.append(f"sanitizer report from {p.name} (pid {p.pid}):\n{r}")
        if problems:
            self.fail("\n".join(problems))

    def toy(self, id=0, extra_args=(), **kw):
        p = start_toy(self.bindir, id, extra_args, tmpdir=self.tmp, **kw)
        self.procs.append(p)
        return p

    def toys(self, n):
        return [self.toy(i) for i in range(n)]

    def golb(self, config_text=None, expect_ready=True, **kw):
        p = start_golb(self.bindir, config_text, expect_ready=False, tmpdir=self.tmp, **kw)
        self.procs.append(p)  # registered before waiting, so a failed start is still cleaned up
        if expect_ready:
            _set_listen_addr(p, p.wait_log(LISTEN_RE.pattern, timeout=10))
        return p

    def golb_for(self, backends, wait_up=True, **cfg):
        """Starts golb in front of backends (Procs/RawUpstreams) with golb_config(**cfg); waits
        until every backend is logged UP when wait_up."""
        g = self.golb(golb_config(backends, **cfg))
        if wait_up:
            for b in backends:
                self.wait_backend(g, b, "UP")
        return g

    def raw_upstream(self, handler, **kw):
        u = RawUpstream(handler, **kw)
        self.raw_upstreams.append(u)
        return u

    def recording_upstream(self, respond=None, **kw):
        """A RecordingUpstream (every byte recorded, parsed strictly), closed at the end."""
        u = RecordingUpstream(respond, **kw)
        self.raw_upstreams.append(u)
        return u

    def wait_backend(self, golb, backend, state, timeout=None, start=0):
        """Waits for golb's log line "backend 127.0.0.1:PORT is STATE"; returns the re.Match."""
        port = backend if isinstance(backend, int) else backend.port
        if timeout is None:
            timeout = 5
        return golb.wait_log(rf"backend \S*:{port} is {state}\b[^\n]*", timeout=timeout, start=start)

    def get(self, golb, path="/", **kw):
        return http_request(golb.port, "GET", path, host=golb.host, **kw)

    def request(self, golb, method, path="/", **kw):
        return http_request(golb.port, method, path, host=golb.host, **kw)

    def conn(self, proc, timeout=5):
        c = HTTPConn(proc.host or "127.0.0.1", proc.port, timeout)
        self.addCleanup(c.close)
        return c

    def proc_logs(self):
        return [(p.name, p.pid, p.log_text()) for p in getattr(self, "procs", [])]



def assert_rotation(testcase, ids, n_backends):
    """ids follow a strict rotation over n_backends distinct servers: each window of n_backends
    consecutive ids holds every server once, in the same order throughout."""
    testcase.assertGreaterEqual(len(ids), n_backends)
    first = ids[:n_backends]
    testcase.assertEqual(len(set(first)), n_backends, f"first {n_backends} picks not distinct: {ids}")
    for i, v in enumerate(ids):
        testcase.assertEqual(v, first[i % n_backends], f"rotation broken at request {i}: {ids}")


# ---- request vectors (tests/vectors/requests.vec) ------------------------------------------------

VECTORS_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "vectors", "requests.vec")


class Vector:
    """One case of the vector file: name, expected ("ok" or a status as int), raw request bytes."""

    def __init__(self, name, expected, raw, lineno):
        self.name, self.expected, self.raw, self.lineno = name, expected, raw, lineno

    @property
    def ok(self):
        return self.expected == "ok"

    def __repr__(self):
        return f"<Vector {self.name} {self.expected} line {self.lineno}>"


def decode_vec_escapes(s):
    """Decodes the vector format's C-style escapes (\\r \\n \\t \\0 \\\\ \\xHH), as
    tests/unit/test_http1.c does; raises ValueError on any other escape."""
    out = bytearray()
    i = 0
    while i < len(s):
        ch = s[i]
        if ch != "\\":
            out += ch.encode("latin-1") if ord(ch) < 256 else ch.encode("utf-8")
            i += 1
            continue
        e = s[i + 1:i + 2]
        simple = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}
        if e in simple:
            out += simple[e]
            i += 2
        elif e == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", s[i + 2:i + 4]):
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            raise ValueError(f"bad escape at {i}: {s[i:i + 4]!r}")
    return bytes(out)


def load_vectors(path=None):
    """Every case of the vector file (name<TAB>expected<TAB>request; # comments, blank lines)."""
    out = []
    with open(path or VECTORS_PATH, "rb") as f:
        for lineno, line in enumerate(f.read().decode("utf-8").split("\n"), 1):
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise ValueError(f"line {lineno}: want name<TAB>expected<TAB>request")
            name, expected, raw = parts
            exp = expected if expected == "ok" else int(expected)
            out.append(Vector(name, exp, decode_vec_escapes(raw), lineno))
    return out


# ---- a recording upstream: every byte it receives, parsed strictly as HTTP/1.1 requests ---------

_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_REQ_LINE_RE = re.compile(rb"(" + _TCHAR + rb"+) ([\x21-\x7e]+) HTTP/1\.1")
_FIELD_RE = re.compile(rb"(" + _TCHAR + rb"+):[ \t]*((?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)[ \t]*")
_CHUNK_LINE_RE = re.compile(rb"([0-9A-Fa-f]{1,16})((?:[ \t]*;[ \t]*" + _TCHAR + rb"+(?:[ \t]*=[ \t]*(?:"
                            + _TCHAR + rb"+|\"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*\"))?)*)")

HOP_BY_HOP = ("connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade")


class UpstreamParseError(ValueError):
    pass


def parse_strict_head(head):
    """Parses one request head (bytes up to and including the blank line, CRLF only) the way a
    strict HTTP/1.1 server would. Returns (method, target, [(name, value)]) as str (latin-1)."""
    if not head.endswith(b"\r\n\r\n"):
        raise UpstreamParseError("head does not end with CRLF CRLF")
    lines = head[:-4].split(b"\r\n")
    for ln in lines:
        if b"\r" in ln or b"\n" in ln:
            raise UpstreamParseError(f"bare CR or LF in {ln[:80]!r}")
    m = _REQ_LINE_RE.fullmatch(lines[0])
    if not m:
        raise UpstreamParseError(f"bad request line {lines[0][:200]!r}")
    headers = []
    for ln in lines[1:]:
        fm = _FIELD_RE.fullmatch(ln)
        if not fm:
            raise UpstreamParseError(f"bad field line {ln[:200]!r}")
        headers.append((fm.group(1).decode("latin-1"), fm.group(2).decode("latin-1")))
    return m.group(1).decode("latin-1"), m.group(2).decode("latin-1"), headers


def request_framing(headers):
    """("none" | "length" | "chunked", content_length) from strictly parsed fields; raises
    UpstreamParseError on ambiguous framing (both fields, differing lengths, chunked not final)."""
    te = [v for k, v in headers if k.lower() == "transfer-encoding"]
    cl = [v for k, v in headers if k.lower() == "content-length"]
    if te and cl:
        raise UpstreamParseError(f"both Transfer-Encoding {te} and Content-Length {cl}")
    if te:
        codings = [c.strip().lower() for v in te for c in v.split(",")]
        if codings[-1] != "chunked" or codings.count("chunked") != 1 or "" in codings:
            raise UpstreamParseError(f"Transfer-Encoding {te}: chunked must be final and once")
        return "chunked", None
    if cl:
        vals = {x.strip() for v in cl for x in v.split(",")}
        if len(vals) != 1 or not re.fullmatch(r"[0-9]{1,18}", next(iter(vals))):
            raise UpstreamParseError(f"bad Content-Length {cl}")
        return "length", int(next(iter(vals)))
    return "none", 0


def decode_chunked_strict(buf, start=0, limit=1 << 22):
    """Decodes a chunked body at buf[start:] (CRLF only, extensions and trailers checked).
    Returns (end_offset, body_bytes, trailers) or None when incomplete; UpstreamParseError when bad."""
    pos = start
    body = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > 4096 or b"\n" in buf[pos:]:
                raise UpstreamParseError(f"bad chunk-size line {bytes(buf[pos:pos + 80])!r}")
            return None
        m = _CHUNK_LINE_RE.fullmatch(bytes(buf[pos:eol]))
        if not m:
            raise UpstreamParseError(f"bad chunk-size line {bytes(buf[pos:eol][:80])!r}")
        size = int(m.group(1), 16)
        pos = eol + 2
        if size == 0:
            break
        if len(body) + size > limit:
            raise UpstreamParseError("chunked body over the recorder's limit")
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos:pos + size]
        pos += size
        if buf[pos:pos + 2] != b"\r\n":
            raise UpstreamParseError(f"chunk data not followed by CRLF: {bytes(buf[pos:pos + 20])!r}")
        pos += 2
    trailers = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if b"\n" in buf[pos:] or b"\r" in buf[pos:-1]:
                raise UpstreamParseError("bare CR or LF in trailers")
            return None
        line = bytes(buf[pos:eol])
        pos = eol + 2
        if not line:
            return pos, bytes(body), trailers
        if b"\r" in line or b"\n" in line:
            raise UpstreamParseError(f"bare CR or LF in trailer {line[:80]!r}")
        fm = _FIELD_RE.fullmatch(line)
        if not fm:
            raise UpstreamParseError(f"bad trailer line {line[:80]!r}")
        trailers.append((fm.group(1).decode("latin-1"), fm.group(2).decode("latin-1")))


class RecordedRequest:
    """One request a RecordingUpstream saw: the head as received, how it was framed, its body."""

    def __init__(self, conn, index, tag, head, method, target, headers):
        self.conn, self.index, self.tag = conn, index, tag
        self.head, self.method, self.target, self.headers = head, method, target, headers
        self.framing, self.content_length = request_framing(headers)
        self.body = b""
        self.trailers = []
        self.raw = b""          # head + body bytes exactly as received
        self.complete = False   # the whole body (as framed) arrived
        self.answered = False

    def header(self, name, default=None):
        vals = self.header_all(name)
        return vals[0] if vals else default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return (f"<RecordedRequest conn {self.conn.id} #{self.index} tag={self.tag!r} {self.method} "
                f"{self.target} {self.framing} complete={self.complete}>")


class RecordedConn:
    def __init__(self, cid):
        self.id = cid
        self.raw = bytearray()   # every byte received, in order
        self.requests = []
        self.error = None        # first strict-parse error (the stream is out of step from there)
        self.leftover = b""      # bytes after the last complete request when the connection ended
        self.closed = False      # the peer closed (EOF or reset)
        self.eof_clean = False   # EOF with no partial request pending
        self.accepted_at = time.monotonic()
        self.closed_at = None

    @property
    def health(self):
        return bool(self.requests) and self.requests[0].target == "/health"

    def __repr__(self):
        return (f"<RecordedConn {self.id} requests={len(self.requests)} error={self.error!r} "
                f"closed={self.closed} leftover={self.leftover[:40]!r}>")


class RecordingUpstream:
    """A loopback upstream that records exactly the bytes it receives, per connection, and parses
    them strictly as a stream of HTTP/1.1 requests (CRLF only, token names, no obs-fold, exactly one
    of Content-Length / chunked, chunked bodies validated). Each complete request is answered by
    respond(req) -> bytes (default: a small 200 with Content-Length and X-Rec: CONN.INDEX); GET
    /health is answered 200 "ok" and its connection counted as a health connection. Set .tag
    before a test step: every request records the tag current when its head arrived. A parse error
    is recorded on the connection, answered 400 and the connection closed."""

    def __init__(self, respond=None, health_status=200, max_request=1 << 22):
        self.respond = respond
        self.health_status = health_status
        self.max_request = max_request
        self.tag = None
        self.conns = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.lsock = loopback_listener(128)
        self.host, self.port = self.lsock.getsockname()
        self._socks = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    # -- views --
    def data_conns(self):
        with self.lock:
            return [c for c in self.conns if not c.health and (c.requests or c.raw)]

    def requests(self, tag=None, complete_only=False):
        """Non-health requests (optionally with this tag / only complete ones), in arrival order."""
        with self.lock:
            out = [r for c in self.conns for r in c.requests if r.target != "/health"]
        if tag is not None:
            out = [r for r in out if r.tag == tag]
        if complete_only:
            out = [r for r in out if r.complete]
        return sorted(out, key=lambda r: r.seq)

    def errors(self):
        with self.lock:
            return [(c.id, c.error) for c in self.conns if c.error]

    # -- server --
    def _accept_loop(self):
        while not self._stop:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                rc = RecordedConn(len(self.conns))
                self.conns.append(rc)
                self._socks.append(s)
            threading.Thread(target=self._serve, args=(s, rc), daemon=True).start()

    def _default_response(self, req):
        body = b"rec %d.%d\n" % (req.conn.id, req.index)
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Rec: %d.%d\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (req.conn.id, req.index, len(body), body))

    def _serve(self, s, rc):
        buf = bytearray()
        cur = None       # request whose body is pending
        body_at = 0      # offset in buf where cur's body starts
        seq = [0]
        try:
            s.settimeout(scaled(60))
            while not self._stop:
                # Parse everything complete in buf.
                while buf and rc.error is None:
                    if cur is None:
                        end = buf.find(b"\r\n\r\n")
                        if end < 0:
                            if len(buf) > 65536:
                                raise UpstreamParseError("request head over 64 KiB")
                            if re.search(rb"(?<!\r)\n", bytes(buf)):
                                raise UpstreamParseError(f"bare LF in head {bytes(buf[:200])!r}")
                            break
                        head = bytes(buf[:end + 4])
                        method, target, headers = parse_strict_head(head)
                        with self.lock:
                            cur = RecordedRequest(rc, len(rc.requests), self.tag, head, method,
                                                  target, headers)
                            cur.seq = (time.monotonic_ns(), rc.id, cur.index)
                            rc.requests.append(cur)
                            self.cond.notify_all()
                        body_at = end + 4
                    if cur.framing == "length":
                        if cur.content_length > self.max_request:
                            raise UpstreamParseError("Content-Length over the recorder's limit")
                        if len(buf) < body_at + cur.content_length:
                            break
                        end = body_at + cur.content_length
                        cur.body = bytes(buf[body_at:end])
                    elif cur.framing == "chunked":
                        got = decode_chunked_strict(buf, body_at, self.max_request)
                        if got is None:
                            break
                        end, cur.body, cur.trailers = got
                    else:
                        end = body_at
                    cur.raw = bytes(buf[:end])
                    del buf[:end]
                    req, cur = cur, None
                    with self.lock:
                        req.complete = True
                        self.cond.notify_all()
                    if req.target == "/health":
                        b = b"ok\n"
                        s.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s"
                                  % (self.health_status, len(b), b))
                    else:
                        s.sendall((self.respond or self._default_response)(req))
                    req.answered = True
                d = s.recv(65536)
                if not d:
                    break
                with self.lock:
                    rc.raw += d
                buf += d
        except UpstreamParseError as e:
            with self.lock:
                rc.error = str(e)
            try:
                s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
        except OSError:
            pass
        finally:
            with self.lock:
                rc.leftover = bytes(buf)
                rc.eof_clean = not buf and cur is None and rc.error is None
                rc.closed = True
                rc.closed_at = time.monotonic()
                self.cond.notify_all()
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        """Stops listening and closes every connection (the port is free again on return)."""
        self._stop = True
        stop_listening(self.lsock, self._thread)
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# ---- process and resource probes ------------------------------------------------------------------

def cpu_seconds(pid):
    """User + system CPU time consumed so far by pid (all threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    """Number of file descriptors pid has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_nofile(want):
    """Raises this process's RLIMIT_NOFILE soft limit to min(want, hard); processes started
    afterwards inherit it. Returns (soft, hard) as now in force."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)

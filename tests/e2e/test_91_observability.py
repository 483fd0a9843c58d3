"""Observability and control: /metrics (promtool-valid, exact deltas, consistent histograms), the JSON
access log (values for 200/502/504/client abort, hostile input, a destination nobody reads), the
admin API (drain, maint, weight, token and Origin rules, bad input; who may change what: a token or
tokenFile on TCP, or a unix socket of mode 0600, issue 15), X-Request-Id, SIGUSR1, JSON event lines
and the status page in headless Chromium."""

import json
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import threading
import time

from cdp import Browser
from golbtest import (GolbTestCase, HTTPConn, golb_config, http_request, page_dom, run_golb,
                      scaled, wait_until)

ADMIN_RE = r"admin API and status page on http://(\S+):(\d+)/"
ADMIN_TOKEN = "obs-test-token"  # changes on a TCP admin listener need one
LINE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


# Every histogram's `le` values: OpenTelemetry's (what dashboards query) after sub-millisecond ones.
EXPORTED_LE = ("0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
               "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5", "5", "7.5", "10", "+Inf")


def parse_metrics(text):
    """{(name, frozenset(labels)): float} from an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE_RE.match(line)
        assert m, f"unparsable metrics line {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def val(metrics, name, **labels):
    return metrics.get((name, frozenset(labels.items())), 0.0)


def total(metrics, name, **labels):
    """Sum of every series of name whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= set(ls))


class ObsCase(GolbTestCase):
    def start(self, backends, admin=True, token=ADMIN_TOKEN, access="json", **extra):
        """golb in front of backends with the admin listener (with `token`; None: without) and an
        access log file."""
        self.nstarts = getattr(self, "nstarts", 0) + 1
        self.alog = os.path.join(self.tmp, f"access{self.nstarts}.log")
        # One worker unless a test asks for more: lines from two workers' rings may reach the file
        # in either order.
        extra.setdefault("workers", 1)
        cfg = golb_config(backends, **extra)
        if admin:
            cfg += "admin:\n  listen: 127.0.0.1:0\n"
            if token:
                cfg += f"  token: {token}\n"
        if access:
            cfg += f"accessLog: {access}\naccessLogPath: {self.alog}\n"
        g = self.golb(cfg)
        for b in backends:
            self.wait_backend(g, b, "UP")
        if admin:
            m = g.wait_log(ADMIN_RE)
            g.admin = int(m.group(2))
            g.admin_token = token
        return g

    def admin(self, g, method, path, body=None, headers=None, auth=True):
        """One admin request; a change carries g's token (auth=False: none) unless headers give
        an Authorization of their own."""
        h = dict(headers or {})
        if auth and method != "GET" and getattr(g, "admin_token", None):
            h.setdefault("Authorization", f"Bearer {g.admin_token}")
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        return http_request(g.admin, method, path, headers=h, body=data)

    def status(self, g):
        r = self.admin(g, "GET", "/api/v1/status")
        self.assertEqual(r.status, 200, r.text)
        return json.loads(r.body)

    def backend(self, g, port):
        for b in self.status(g)["backends"]:
            if b["name"].endswith(f":{port}"):
                return b
        raise AssertionError(f"no backend on port {port}")

    def scrape(self, g):
        r = self.admin(g, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/plain; version=0.0.4"))
        return r.text

    def access_lines(self, n=None, timeout=5):
        """The access log's lines, parsed; waits until at least n are there."""
        def read():
            try:
                with open(self.alog, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                return None
            lines = data.split(b"\n")
            self.assertEqual(lines[-1], b"", "the log must end with a whole line")
            lines = lines[:-1]
            return lines if n is None or len(lines) >= n else None
        lines = wait_until(read, timeout, f"{n} access log lines") if n else (read() or [])
        return [json.loads(x) for x in lines]


class MetricsTest(ObsCase):
    def test_promtool_accepts_a_real_scrape(self):
        toys = self.toys(2)
        g = self.start(toys)
        for i in range(5):
            self.get(g, f"/{i}")
        self.get(g, "/?status=503")
        text = self.scrape(g)
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool (Debian package prometheus) is not installed")
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=scaled(30))
        self.assertEqual(p.returncode, 0, f"promtool: {p.stdout}{p.stderr}")
        m = parse_metrics(text)
        for name in ("golb_build_info", "golb_start_time_seconds", "golb_workers",
                     "golb_http_requests_in_flight", "golb_connections_active",
                     "golb_connections_total"):
            self.assertTrue(any(k[0] == name for k in m), f"{name} missing")
        # Series known in advance exist from the start, as 0.
        self.assertIn(("golb_http_request_errors_total", frozenset({("reason", "too_large")})), m)
        self.assertIn(("golb_backend_connection_errors_total",
                       frozenset({("pool", "default"), ("backend", f"127.0.0.1:{toys[0].port}"),
                                  ("reason", "tls")})), m)
        self.assertEqual(val(m, "golb_log_lines_dropped_total", log="access"), 0)

    def test_counters_move_by_exact_deltas(self):
        toys = self.toys(2)
        g = self.start(toys, workers=2)
        before = parse_metrics(self.scrape(g))
        c = self.conn(g)
        for i in range(7):
            self.assertEqual(c.request("GET", f"/ok{i}").status, 200)
        for i in range(3):
            self.assertEqual(c.request("GET", "/?status=404").status, 404)
        for i in range(2):
            self.assertEqual(c.request("GET", "/?status=500").status, 500)
        bad = self.conn(g)
        bad.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        self.assertEqual(bad.read_response().status, 400)
        self.access_lines(13)
        after = parse_metrics(self.scrape(g))

        def d(name, **labels):
            return total(after, name, **labels) - total(before, name, **labels)

        self.assertEqual(d("golb_http_requests_total", code="2xx"), 7)
        self.assertEqual(d("golb_http_requests_total", code="4xx"), 4)
        self.assertEqual(d("golb_http_requests_total", code="5xx"), 2)
        self.assertEqual(d("golb_http_request_errors_total", reason="bad_request"), 1)
        self.assertEqual(d("golb_backend_requests_total", code="2xx"), 7)
        self.assertEqual(d("golb_backend_requests_total", code="4xx"), 3)
        self.assertEqual(d("golb_backend_requests_total", code="5xx"), 2)
        self.assertEqual(d("golb_http_request_duration_seconds_count"), 13)
        self.assertEqual(d("golb_backend_response_duration_seconds_count"), 12)
        # One client connection kept alive: the backends saw 12 requests on at most 2 new
        # connections (one per backend), the rest reused.
        self.assertEqual(d("golb_backend_connections_total") + d("golb_backend_connection_reuses_total"), 12)
        self.assertLessEqual(d("golb_backend_connections_total"), 2)
        self.assertEqual(d("golb_connections_total"), 2)
        self.assertGreater(d("golb_backend_sent_bytes_total"), 12 * 20)
        self.assertGreater(d("golb_backend_received_bytes_total"), 12 * 100)
        self.assertEqual(total(after, "golb_http_requests_in_flight"), 0)
        self.assertEqual(total(after, "golb_backend_requests_in_flight"), 0)
        # Every histogram: cumulative buckets, +Inf == _count.
        for (name, labels), v in after.items():
            if name.endswith("_count"):
                base = name[:-6]
                inf = after[(base + "_bucket", labels | {("le", "+Inf")})]
                self.assertEqual(inf, v, f"{base}{dict(labels)}")
                prev = -1
                for le in EXPORTED_LE:
                    b = after[(base + "_bucket", labels | {("le", le)})]
                    self.assertGreaterEqual(b, prev)
                    prev = b

    def test_exported_buckets_count_exactly_what_the_access_log_says(self):
        # The histograms count the very values the access log prints (µs), so every exported
        # bucket must equal the number of lines at or under its bound, sub-millisecond ones too.
        toys = self.toys(1)
        g = self.start(toys)
        lab = f"127.0.0.1:{toys[0].port}"
        before = parse_metrics(self.scrape(g))
        c = self.conn(g)
        paths = ["/"] * 20 + ["/?delay=1"] * 6 + ["/?delay=4"] * 4 + ["/?delay=30"] * 2
        for p in paths:
            self.assertEqual(c.request("GET", p).status, 200)
        lines = self.access_lines(len(paths))
        self.assertEqual(len(lines), len(paths))
        after = parse_metrics(self.scrape(g))
        for name, labels, field in (("golb_backend_response_duration_seconds", {"pool": "default", "backend": lab},
                                     lambda x: x["timing"]["response_head"]),
                                    ("golb_http_request_duration_seconds", {}, lambda x: x["duration"])):
            les = [dict(ls)["le"] for (n, ls) in after if n == name + "_bucket"
                   and set(labels.items()) <= set(ls)]
            self.assertEqual(sorted(les, key=float), list(EXPORTED_LE), name)
            for le in EXPORTED_LE:
                got = (val(after, name + "_bucket", le=le, **labels)
                       - val(before, name + "_bucket", le=le, **labels))
                want = sum(1 for x in lines if le == "+Inf"
                           or round(field(x) * 1e6) <= round(float(le) * 1e6))
                self.assertEqual(got, want, f"{name}{labels} le={le}")
            self.assertEqual(val(after, name + "_count", **labels)
                             - val(before, name + "_count", **labels), len(paths))

    def test_status_quantiles_agree_with_the_access_log(self):
        # The issue: backends answering in 0.1-0.4 ms showed p50 2.50 ms and p99 4.95 ms. Every
        # request here took between min and max (the access log's response_head), so any window's
        # quantiles must lie within [min - 10 %, max + 10 %].
        toys = self.toys(1)
        g = self.start(toys)
        c = self.conn(g)
        for i in range(60):
            self.assertEqual(c.request("GET", f"/{i}").status, 200)
        heads = sorted(x["timing"]["response_head"] for x in self.access_lines(60))
        b = wait_until(lambda: (lambda b: b if b["response_p50_seconds"] is not None else None)(
            self.backend(g, toys[0].port)), scaled(5), "p50 over the window")
        lo, hi = 0.9 * heads[0], 1.1 * heads[-1]
        for q in ("response_p50_seconds", "response_p99_seconds"):
            self.assertTrue(lo <= b[q] <= hi, f"{q} {b[q]} outside [{lo}, {hi}] (access log: {heads[0]} .. {heads[-1]} s)")

    def test_retries_connection_errors_and_health_changes(self):
        toys = self.toys(2)
        g = self.start(toys, period=60, timeout=1, maxFails=1000)
        before = parse_metrics(self.scrape(g))
        dead = toys[1].port
        toys[1].kill()  # health checks are a minute apart: golb learns it from traffic
        for i in range(6):
            self.assertEqual(self.get(g, f"/{i}").status, 200)
        lines = self.access_lines(6)
        retried = sum(x["retries"] for x in lines)
        self.assertGreaterEqual(retried, 1, lines)
        after = parse_metrics(self.scrape(g))
        lab = f"127.0.0.1:{dead}"
        self.assertEqual(val(after, "golb_backend_retries_total", pool="default", backend=lab)
                         - val(before, "golb_backend_retries_total", pool="default", backend=lab), retried)
        self.assertEqual(val(after, "golb_backend_connection_errors_total", pool="default", backend=lab, reason="refused")
                         - val(before, "golb_backend_connection_errors_total", pool="default", backend=lab,
                               reason="refused"), retried)
        for x in lines:
            self.assertEqual(x["backend"], f"127.0.0.1:{toys[0].port}")

    def test_health_check_results_are_counted(self):
        toys = self.toys(1)
        g = self.start(toys)
        lab = f"127.0.0.1:{toys[0].port}"
        m0 = parse_metrics(self.scrape(g))
        self.assertGreaterEqual(val(m0, "golb_backend_health_checks_total", pool="default", backend=lab, result="success"), 1)
        self.assertEqual(val(m0, "golb_backend_up", pool="default", backend=lab), 1)
        self.assertEqual(val(m0, "golb_backend_state", pool="default", backend=lab, state="up"), 1)
        off = g.log_offset()
        http_request(toys[0].port, "POST", "/toy/health?status=500")
        self.wait_backend(g, toys[0], "DOWN", start=off)
        m1 = parse_metrics(self.scrape(g))
        self.assertGreaterEqual(val(m1, "golb_backend_health_checks_total", pool="default", backend=lab, result="failure"), 1)
        self.assertEqual(val(m1, "golb_backend_up", pool="default", backend=lab), 0)
        self.assertEqual(val(m1, "golb_backend_state", pool="default", backend=lab, state="down"), 1)
        self.assertEqual(val(m1, "golb_backend_state", pool="default", backend=lab, state="up"), 0)
        self.assertGreaterEqual(val(m1, "golb_backend_last_state_change_timestamp_seconds", pool="default", backend=lab),
                                val(m0, "golb_backend_last_state_change_timestamp_seconds", pool="default", backend=lab))
        st = self.backend(g, toys[0].port)
        self.assertEqual(st["last_check"]["result"], "failure")
        self.assertIn("500", st["last_check"]["reason"])


class AccessLogTest(ObsCase):
    def test_normal_request_fields(self):
        toys = self.toys(1)
        g = self.start(toys)
        r = self.get(g, "/a/b?x=1&y=2", headers={"User-Agent": "probe/1.0", "X-Request-Id": "req-42"})
        self.assertEqual(r.status, 200)
        (x,) = self.access_lines(1)
        self.assertEqual(x["http.request.method"], "GET")
        self.assertEqual(x["url.path"], "/a/b")
        self.assertEqual(x["url.query"], "x=1&y=2")
        self.assertEqual(x["network.protocol.version"], "1.1")
        self.assertEqual(x["http.response.status_code"], 200)
        self.assertEqual(x["http.response.body.size"], len(r.body))
        self.assertEqual(x["http.request.body.size"], 0)
        self.assertEqual(x["user_agent.original"], "probe/1.0")
        self.assertEqual(x["client.address"], "127.0.0.1")
        self.assertEqual(x["backend"], f"127.0.0.1:{toys[0].port}")
        self.assertEqual(x["request_id"], "req-42")
        self.assertEqual(x["termination"], "--")
        self.assertIsNone(x["error.type"])
        self.assertEqual(x["retries"], 0)
        self.assertFalse(x["upstream.reused"])
        self.assertTrue(0 < x["duration"] < scaled(5))
        self.assertEqual(x["timing"]["total"], x["duration"])
        # Long values are cut, and say so.
        self.assertEqual(self.get(g, "/" + "L" * 1000, headers={"User-Agent": "U" * 300}).status, 200)
        y = self.access_lines(2)[1]
        self.assertEqual(y["url.path"], "/" + "L" * 508 + "...")
        self.assertEqual(y["user_agent.original"], "U" * 189 + "...")
        self.assertLessEqual(x["timing"]["response_head"], x["duration"])
        self.assertRegex(x["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        # A POST body is counted too.
        self.assertEqual(self.request(g, "POST", "/p", body=b"x" * 1000).status, 200)
        self.assertEqual(self.access_lines(3)[2]["http.request.body.size"], 1000)

    def test_502_504_and_client_abort(self):
        def slam(conn, head, path):
            return False  # close without an answer: 502
        u = self.raw_upstream(slam)
        toys = self.toys(1)
        g = self.start([u], upstreamTimeout=round(scaled(0.5), 3), retries=0)
        r = self.get(g, "/broken")
        self.assertEqual(r.status, 502)
        x = self.access_lines(1)[0]
        self.assertEqual(x["http.response.status_code"], 502)
        self.assertEqual(x["termination"], "SH")
        self.assertEqual(x["error.type"], "invalid_response")
        self.assertEqual(x["backend"], f"127.0.0.1:{u.port}")
        g.stop()

        g = self.start(toys, upstreamTimeout=round(scaled(0.5), 3))
        before = parse_metrics(self.scrape(g))
        r = self.get(g, f"/slow?delay={int(scaled(3000))}")
        self.assertEqual(r.status, 504)
        x = self.access_lines(1)[0]
        self.assertEqual((x["http.response.status_code"], x["termination"], x["error.type"]),
                         (504, "sH", "response_timeout"))
        # Client abort: the client resets its connection while golb waits for the response.
        s = socket.create_connection((g.host, g.port))
        s.sendall(b"GET /?delay=%d HTTP/1.1\r\nHost: t\r\n\r\n" % int(scaled(300)))
        wait_until(lambda: self.backend(g, toys[0].port)["in_flight"] == 1, 5, "request in flight")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        x = self.access_lines(2)[1]
        self.assertIsNone(x["http.response.status_code"])
        self.assertEqual(x["termination"], "CH")
        self.assertEqual(x["error.type"], "client_abort")
        after = parse_metrics(self.scrape(g))
        self.assertEqual(total(after, "golb_http_request_errors_total", reason="client_abort")
                         - total(before, "golb_http_request_errors_total", reason="client_abort"), 1)
        wait_until(lambda: total(parse_metrics(self.scrape(g)), "golb_http_requests_in_flight") == 0,
                   5, "no request in flight")

    def test_hostile_header_cannot_break_a_line(self):
        toys = self.toys(1)
        g = self.start(toys)
        hostile = b'a"b\\c\t"}\n{"x":1\xff\xfe\xc3\xa9 \\u0000 \x80end'
        with HTTPConn(g.host, g.port) as c:
            c.send(b"GET /q?a=%22%5C HTTP/1.1\r\nHost: t\r\nUser-Agent: " + hostile.replace(b"\n", b"")
                   + b"\r\nX-Request-Id: " + b'bad"id' + b"\r\n\r\n")
            self.assertEqual(c.read_response().status, 200)
        (x,) = self.access_lines(1)
        ua = x["user_agent.original"]
        self.assertIn('a"b\\c\t"}', ua)
        self.assertIn("\ufffd", ua)   # invalid UTF-8 bytes stand out, never break the JSON
        self.assertIn("\u00e9", ua)   # valid UTF-8 is kept
        self.assertRegex(x["request_id"], r"^[0-9a-f]{32}$")  # the invalid id was replaced
        with open(self.alog, "rb") as f:
            self.assertEqual(f.read().count(b"\n"), 1)

    def test_text_format_is_one_line_with_the_same_facts(self):
        toys = self.toys(1)
        g = self.start(toys, access="text")
        with HTTPConn(g.host, g.port) as c:
            c.send(b'GET /t?k=v HTTP/1.1\r\nHost: t\r\nUser-Agent: x"y\\z\tw\xff\r\n\r\n')
            self.assertEqual(c.read_response().status, 200)

        def one():
            with open(self.alog, "rb") as f:
                return f.read() or None
        data = wait_until(one, 5, "a text line")
        self.assertEqual(data.count(b"\n"), 1, data)
        self.assertIn(b'"GET /t?k=v HTTP/1.1" 200 ', data)
        self.assertIn(b'"x\\"y\\\\z\\x09w\\xff"', data)
        self.assertIn(b" -- - id=", data)

    def test_slow_destination_never_stalls_requests_and_drops_are_counted(self):
        toys = self.toys(1)
        fifo = os.path.join(self.tmp, "access.fifo")
        os.mkfifo(fifo)
        # Opened for reading (so golb can open it for writing) and never read.
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, rfd)
        cfg = golb_config(toys, workers=1) + f"admin:\n  listen: 127.0.0.1:0\naccessLog: json\naccessLogPath: {fifo}\n"
        g = self.golb(cfg)
        self.wait_backend(g, toys[0], "UP")
        g.admin = int(g.wait_log(ADMIN_RE).group(2))
        ua = "u" * 180
        c = self.conn(g)
        n = 2500  # lines of about 1.2 KB: twice what the 1 MiB ring and the pipe can hold
        long_path = "/" + "p" * 500
        t0 = time.monotonic()
        worst = 0.0
        for i in range(n):
            t = time.monotonic()
            r = c.request("GET", f"{long_path}{i}", headers={"User-Agent": ua})
            worst = max(worst, time.monotonic() - t)
            self.assertEqual(r.status, 200)
        elapsed = time.monotonic() - t0
        self.assertLess(worst, scaled(1.0), f"one request took {worst:.2f}s")
        m = parse_metrics(self.scrape(g))
        dropped = val(m, "golb_log_lines_dropped_total", log="access")
        self.assertGreater(dropped, 0, f"{n} requests in {elapsed:.1f}s and nothing dropped")
        self.assertLess(dropped, n)
        # a request is counted when its exchange ends, just after its last byte went: the last
        # one may still be on its way when the client already has its response
        wait_until(lambda: total(parse_metrics(self.scrape(g)), "golb_http_requests_total",
                                 code="2xx") == n, 5, f"{n} requests counted")

    def test_sigusr1_reopens_the_log_file(self):
        toys = self.toys(1)
        g = self.start(toys)
        self.get(g, "/1")
        self.access_lines(1)
        os.rename(self.alog, self.alog + ".1")
        off = g.log_offset()
        g.send_signal(signal.SIGUSR1)
        g.wait_log("reopening the log files", start=off)
        # The writer reopens before its next write: a later request lands in the new file.
        def new_file():
            self.get(g, "/2")
            return os.path.exists(self.alog) and os.path.getsize(self.alog) > 0
        wait_until(new_file, 5, "a line in the reopened file", interval=0.1)
        self.assertTrue(all(x["url.path"] == "/2" for x in self.access_lines(1)))
        with open(self.alog + ".1") as f:
            self.assertIn('"url.path":"/1"', f.read())


class RequestIdTest(ObsCase):
    def test_kept_generated_forwarded_and_logged(self):
        toys = self.toys(1)
        g = self.start(toys)
        r = self.get(g, "/", headers={"X-Request-Id": "abc-123_4.5:6"})
        self.assertEqual(r.echo_header("X-Request-Id"), "abc-123_4.5:6")
        r2 = self.get(g, "/")
        gen = r2.echo_header("X-Request-Id")
        self.assertRegex(gen, r"^[0-9a-f]{32}$")
        r3 = self.get(g, "/", headers={"X-Request-Id": "x" * 100})  # too long: replaced
        self.assertRegex(r3.echo_header("X-Request-Id"), r"^[0-9a-f]{32}$")
        self.assertNotEqual(r3.echo_header("X-Request-Id"), gen)
        ids = [x["request_id"] for x in self.access_lines(3)]
        # (two workers: their lines may reach the file in any order)
        self.assertEqual(sorted(ids), sorted(["abc-123_4.5:6", gen, r3.echo_header("X-Request-Id")]))
        self.assertEqual(sum(1 for k, _ in r.echo()["headers"] if k.lower() == "x-request-id"), 1)


class AdminApiTest(ObsCase):
    def put(self, g, port, body, **kw):
        return self.admin(g, "PUT", f"/api/v1/backends/127.0.0.1:{port}", body, **kw)

    def test_drain_stops_new_traffic_while_a_slow_request_completes(self):
        toys = self.toys(2)
        g = self.start(toys)
        slow = self.conn(g, timeout=10)
        slow.send_request("GET", f"/slow?delay={int(scaled(1500))}")
        busy = wait_until(lambda: [b for b in self.status(g)["backends"] if b["in_flight"] == 1], 5,
                          "the slow request in flight")[0]
        port = int(busy["name"].rsplit(":", 1)[1])
        sid = [i for i, t in enumerate(toys) if t.port == port][0]
        off = g.log_offset()
        r = self.put(g, port, {"state": "drain"})
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(json.loads(r.body)["state"], "drain")
        g.wait_log(rf"backend 127.0.0.1:{port} set to drain \(was ready\) by 127\.0\.0\.1:\d+", start=off)
        ids = [int(self.get(g, f"/{i}").header("X-Server-Id")) for i in range(6)]
        self.assertNotIn(sid, ids)
        resp = slow.read_response()
        self.assertEqual(resp.status, 200)
        self.assertEqual(int(resp.header("X-Server-Id")), sid)
        b = self.backend(g, port)
        self.assertEqual((b["state"], b["health"], b["admin_state"]), ("drain", "up", "drain"))
        # Still checked while draining; ready brings it back into the rotation.
        n0 = b["last_check"]["time"]
        wait_until(lambda: self.backend(g, port)["last_check"]["time"] != n0, 5, "a check while draining")
        self.assertEqual(self.put(g, port, {"state": "ready"}).status, 200)
        ids = [int(self.get(g, f"/{i}").header("X-Server-Id")) for i in range(4)]
        self.assertIn(sid, ids)

    def test_maint_stops_checks_and_ready_restarts_them(self):
        toys = self.toys(2)
        g = self.start(toys)
        port = toys[0].port
        lab = f"127.0.0.1:{port}"
        self.assertEqual(self.put(g, port, {"state": "maint"}).status, 200)
        checks = lambda: total(parse_metrics(self.scrape(g)), "golb_backend_health_checks_total", pool="default", backend=lab)
        c0 = checks()
        other = lambda: total(parse_metrics(self.scrape(g)), "golb_backend_health_checks_total",
                              pool="default", backend=f"127.0.0.1:{toys[1].port}")
        o0 = other()
        wait_until(lambda: other() >= o0 + 3, 10, "three rounds of checks of the other backend")
        self.assertLessEqual(checks() - c0, 1, "a maint backend is not checked (one may have been running)")
        ids = {int(self.get(g, f"/{i}").header("X-Server-Id")) for i in range(4)}
        self.assertEqual(ids, {1})
        m = parse_metrics(self.scrape(g))
        self.assertEqual(val(m, "golb_backend_state", pool="default", backend=lab, state="maint"), 1)
        self.assertEqual(self.put(g, port, {"state": "ready"}).status, 200)
        c1 = checks()
        wait_until(lambda: checks() > c1, 5, "checks again after ready")

    def test_weight_change_is_published(self):
        toys = self.toys(2)
        g = self.start(toys)
        port = toys[1].port
        r = self.put(g, port, {"weight": 7})
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(json.loads(r.body)["weight"], 7)
        self.assertEqual(self.backend(g, port)["weight"], 7)
        m = parse_metrics(self.scrape(g))
        self.assertEqual(val(m, "golb_backend_weight", pool="default", backend=f"127.0.0.1:{port}"), 7)
        self.assertEqual(val(m, "golb_backend_weight", pool="default", backend=f"127.0.0.1:{toys[0].port}"), 1)
        r = self.put(g, port, {"weight": 0, "state": "ready"})
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(self.backend(g, port)["weight"], 0)

    def test_weight_change_is_visible_in_shares(self):
        # Smooth weighted round-robin reads the weight at every pick: 1:1 becomes 1:3 at once,
        # and weight 0 takes no new traffic.
        toys = self.toys(2)
        g = self.start(toys, workers=1)

        def shares(n):
            ids = [self.get(g, f"/w{i}").echo()["server"] for i in range(n)]
            return ids.count(0), ids.count(1)

        self.assertEqual(shares(40), (20, 20))
        self.assertEqual(self.put(g, toys[1].port, {"weight": 3}).status, 200)
        a, b = shares(40)
        self.assertLessEqual(abs(b - 30), 1, (a, b))  # the old weights' running state may shift one pick
        self.assertEqual(self.put(g, toys[1].port, {"weight": 0}).status, 200)
        self.assertEqual(shares(20), (20, 0))

    def test_token_and_origin_rules(self):
        toys = self.toys(1)
        g = self.start(toys, token="s3cr3t-token")
        port = toys[0].port
        self.assertEqual(self.put(g, port, {"state": "drain"}, auth=False).status, 401)
        self.assertEqual(self.put(g, port, {"state": "drain"},
                                  headers={"Authorization": "Bearer wrong"}).status, 401)
        self.assertEqual(self.put(g, port, {"state": "drain"},
                                  headers={"Authorization": "Bearer s3cr3t-token-x"}).status, 401)
        self.assertEqual(self.backend(g, port)["admin_state"], "ready")
        # Reads need no token.
        self.assertEqual(self.admin(g, "GET", "/metrics").status, 200)
        own = f"http://127.0.0.1:{g.admin}"
        auth = {"Authorization": "Bearer s3cr3t-token"}
        r = self.put(g, port, {"state": "drain"}, headers=dict(auth, Origin="http://evil.example"))
        self.assertEqual(r.status, 403)
        self.assertIn("error", json.loads(r.body))
        self.assertEqual(self.admin(g, "GET", "/api/v1/status", headers={"Origin": "null"}).status, 403)
        self.assertEqual(self.backend(g, port)["admin_state"], "ready")
        self.assertEqual(self.put(g, port, {"state": "drain"}, headers=dict(auth, Origin=own)).status, 200)
        self.assertEqual(self.backend(g, port)["admin_state"], "drain")
        # GET never changes anything.
        self.assertEqual(self.admin(g, "GET", f"/api/v1/backends/127.0.0.1:{port}").status, 405)

    def test_every_bad_input_is_refused_and_changes_nothing(self):
        toys = self.toys(1)
        g = self.start(toys)
        port = toys[0].port
        before = self.status(g)["backends"]
        bad = [b"not json", b"[]", b"{}", b'"drain"', b'{"state":"sleep"}', b'{"state":1}',
               b'{"state":null}', b'{"weight":-1}', b'{"weight":1001}', b'{"weight":1.5}',
               b'{"weight":"3"}', b'{"weight":true}', b'{"color":"red"}',
               b'{"state":"drain","x":1}', b'{"weight":5,"state":"nope"}',
               b'{"state":"drain","state":"maint"}', b'{"state":"drain"} trailing', b"\xff\xfe"]
        for body in bad:
            r = self.put(g, port, body)
            self.assertEqual(r.status, 400, f"{body!r}: {r.status} {r.text}")
            self.assertIsInstance(json.loads(r.body)["error"], str)
        r = self.admin(g, "PUT", "/api/v1/backends/127.0.0.1:1", {"state": "drain"})
        self.assertEqual(r.status, 404)
        self.assertIn("error", json.loads(r.body))
        self.assertEqual(self.admin(g, "PUT", "/api/v1/backends/%zz", {"state": "drain"}).status, 400)
        self.assertEqual(self.admin(g, "GET", "/nope").status, 404)
        self.assertEqual(self.admin(g, "POST", "/metrics", b"{}").status, 405)
        after = self.status(g)["backends"]
        for a, b in zip(before, after):
            self.assertEqual((a["admin_state"], a["weight"]), (b["admin_state"], b["weight"]))
        # Percent-encoded names work (a browser's encodeURIComponent).
        r = self.admin(g, "PUT", f"/api/v1/backends/127.0.0.1%3A{port}", {"state": "drain"})
        self.assertEqual(r.status, 200, r.text)

    def test_healthz_readyz(self):
        toys = self.toys(1)
        g = self.start(toys)
        self.assertEqual(self.admin(g, "GET", "/healthz").status, 200)
        self.assertEqual(self.admin(g, "GET", "/readyz").status, 200)
        self.put(g, toys[0].port, {"state": "maint"})
        self.assertEqual(self.admin(g, "GET", "/readyz").status, 503)
        self.assertEqual(self.admin(g, "GET", "/healthz").status, 200)

    def test_non_loopback_admin_needs_a_token(self):
        path = os.path.join(self.tmp, "c.yml")
        with open(path, "w") as f:
            f.write("backends:\n  - http://127.0.0.1:1/\nadmin:\n  listen: 0.0.0.0:0\n")
        p = run_golb(self.bindir, ["-t", "-confpath", path])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f"{path}:4:11: admin.token or admin.tokenFile is required", p.stderr)

    def test_unix_socket_admin(self):
        # Without a token, changes are allowed here only: the socket's mode (0600) says who may
        # connect, unlike a TCP port any local user can reach.
        toys = self.toys(1)
        sock = os.path.join(self.tmp, "admin.sock")
        g = self.golb(golb_config(toys) + f"admin:\n  listen: unix:{sock}\n")
        self.wait_backend(g, toys[0], "UP")
        g.wait_log(r"admin API and status page on unix:")
        st = os.lstat(sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertRegex(g.log_text(), r"admin API and status page on unix:\S+ \(mode 0600\)")
        self.assertEqual(unix_request(sock, "GET", "/healthz")[0], 200)
        status, body = unix_request(sock, "PUT", f"/api/v1/backends/127.0.0.1:{toys[0].port}",
                                    b'{"state":"drain"}')
        self.assertEqual(status, 200, body)
        status, body = unix_request(sock, "GET", "/api/v1/status")
        self.assertEqual(json.loads(body)["backends"][0]["admin_state"], "drain")
        g.wait_log(r"set to drain \(was ready\) by unix")
        status, body = unix_request(sock, "POST", "/api/v1/reload")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["result"], "success")
        # golb removes its socket at exit
        self.assertEqual(g.stop(), 0)
        self.assertFalse(os.path.lexists(sock), "the socket is left behind")


def unix_request(path, method, target, body=None, headers=()):
    """One HTTP/1.1 request over a unix socket; returns (status, body)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(scaled(5))
    try:
        s.connect(path)
        head = f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers)
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        s.sendall(head.encode() + b"\r\n" + (body or b""))
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), rest


class AdminAccessTest(ObsCase):
    """Who may change what (issue 15): any local user can reach a TCP port on loopback, so changes
    there need a token (admin.token, or admin.tokenFile since the config is world-readable)."""

    def put(self, g, port, body, **kw):
        return self.admin(g, "PUT", f"/api/v1/backends/127.0.0.1:{port}", body, **kw)

    def test_tcp_listener_without_a_token_refuses_changes(self):
        toys = self.toys(1)
        g = self.start(toys, token=None)
        port = toys[0].port
        for h in ({}, {"Authorization": "Bearer guess"}):
            r = self.put(g, port, {"state": "drain"}, headers=h)
            self.assertEqual(r.status, 403, r.text)
            err = json.loads(r.body)["error"]
            self.assertIn("admin.tokenFile", err)
            self.assertIn("unix", err)
        r = self.admin(g, "POST", "/api/v1/reload")
        self.assertEqual(r.status, 403, r.text)
        self.assertIn("token", json.loads(r.body)["error"])
        self.assertNotIn("reload by", g.log_text())
        st = self.status(g)
        self.assertEqual(st["generation"], 1)
        self.assertEqual((st["backends"][0]["admin_state"], st["backends"][0]["weight"]), ("ready", 1))
        # Reads stay as they were.
        for path in ("/", "/metrics", "/api/v1/status", "/healthz", "/readyz"):
            self.assertEqual(self.admin(g, "GET", path).status, 200, path)
        # The start says so.
        self.assertRegex(g.log_text(), r"admin API and status page on http://\S+/ \(read-only: "
                                       r"changes need admin\.token, admin\.tokenFile or a unix: socket\)")

    def test_token_file(self):
        toys = self.toys(1)
        tok = os.path.join(self.tmp, "admin.token")
        with open(tok, "w") as f:
            f.write("from-a-file\n")
        os.chmod(tok, 0o600)
        g = self.golb(golb_config(toys, workers=1) +
                      f"admin:\n  listen: 127.0.0.1:0\n  tokenFile: {tok}\n")
        self.wait_backend(g, toys[0], "UP")
        g.admin = int(g.wait_log(ADMIN_RE).group(2))
        self.assertNotIn("read-only", g.log_text())
        self.assertNotIn("warning", g.log_text())
        port = toys[0].port
        bearer = lambda t: {"Authorization": f"Bearer {t}"}  # noqa: E731
        self.assertEqual(self.put(g, port, {"state": "drain"}).status, 401)
        self.assertEqual(self.put(g, port, {"state": "drain"}, headers=bearer("from-a-fil")).status, 401)
        self.assertEqual(self.put(g, port, {"state": "drain"}, headers=bearer("wrong")).status, 401)
        self.assertEqual(self.backend(g, port)["admin_state"], "ready")
        r = self.put(g, port, {"state": "drain"}, headers=bearer("from-a-file"))
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(self.backend(g, port)["admin_state"], "drain")
        # A reload reads the file again: the new token replaces the old one.
        with open(tok, "w") as f:
            f.write("second-token\n")
        r = self.admin(g, "POST", "/api/v1/reload", headers=bearer("from-a-file"))
        self.assertEqual(r.status, 200, r.text)
        self.assertIn("setting changed: admin.token", json.loads(r.body)["changes"])
        self.assertNotIn("second-token", r.text)
        self.assertEqual(self.put(g, port, {"state": "ready"}, headers=bearer("from-a-file")).status, 401)
        self.assertEqual(self.put(g, port, {"state": "ready"}, headers=bearer("second-token")).status, 200)
        # An empty file fails the reload (FILE:LINE:COL) and keeps the running token.
        with open(tok, "w") as f:
            f.write("\n")
        r = self.admin(g, "POST", "/api/v1/reload", headers=bearer("second-token"))
        self.assertEqual(r.status, 422, r.text)
        self.assertRegex(json.loads(r.body)["errors"][0],
                         r"golb\.yml:\d+:\d+: admin\.tokenFile: cannot use .*: it is empty")
        self.assertEqual(self.put(g, port, {"weight": 2}, headers=bearer("second-token")).status, 200)

    def test_token_and_token_file_are_exclusive_and_the_file_must_be_usable(self):
        tok = os.path.join(self.tmp, "t")
        path = os.path.join(self.tmp, "c.yml")

        def check(admin_yaml, want):
            with open(path, "w") as f:
                f.write("backends:\n  - http://127.0.0.1:1/\nadmin:\n  listen: 127.0.0.1:0\n" +
                        admin_yaml)
            p = run_golb(self.bindir, ["-t", "-confpath", path])
            self.assertNotEqual(p.returncode, 0, p.stderr)
            self.assertIn(f"{path}:{want}", p.stderr)

        check(f"  token: a\n  tokenFile: {tok}\n",
              "6:3: admin.token and admin.tokenFile are mutually exclusive")
        check(f"  tokenFile: {tok}\n", f'5:14: admin.tokenFile: cannot read "{tok}": No such file')
        with open(tok, "w") as f:
            f.write("  \n")
        check(f"  tokenFile: {tok}\n", f'5:14: admin.tokenFile: cannot use "{tok}": it is empty')

    def test_unix_path_holding_something_else_is_never_removed(self):
        toys = self.toys(1)
        sock = os.path.join(self.tmp, "admin.sock")
        cfg = golb_config(toys) + f"admin:\n  listen: unix:{sock}\n"

        def fails_to_start(why, intact=lambda: None):
            g = self.golb(cfg, expect_ready=False)
            g.wait_log(r"listening on")  # the admin listener starts after the proxy's
            rc = g.wait_exit(5)
            intact()
            self.assertIsNotNone(rc, "golb kept running")
            self.assertNotEqual(rc, 0)
            self.assertIn(f"admin: cannot listen on unix:{sock}: {why}", g.log_text())

        # a regular file
        with open(sock, "w") as f:
            f.write("precious\n")

        def file_intact():
            self.assertTrue(os.path.isfile(sock), "a regular file at the path was removed")
            with open(sock) as f:
                self.assertEqual(f.read(), "precious\n")
        fails_to_start("the path exists and is not a socket", file_intact)
        # a symlink (to a file that must stay too)
        os.unlink(sock)
        target = os.path.join(self.tmp, "target")
        with open(target, "w") as f:
            f.write("keep\n")
        os.symlink(target, sock)
        fails_to_start("the path exists and is not a socket",
                       lambda: self.assertTrue(os.path.islink(sock), "a symlink was removed"))
        with open(target) as f:
            self.assertEqual(f.read(), "keep\n")
        os.unlink(sock)
        # a socket another process listens on is not taken over
        live = socket.socket(socket.AF_UNIX)
        live.bind(sock)
        live.listen(1)
        try:
            fails_to_start("another process listens on it")
        finally:
            live.close()
        # ... but the same socket left behind (nothing listens any more) is replaced
        self.assertTrue(stat.S_ISSOCK(os.lstat(sock).st_mode))
        g = self.golb(cfg)
        g.wait_log(r"admin API and status page on unix:")
        self.assertEqual(stat.S_IMODE(os.lstat(sock).st_mode), 0o600)
        self.assertEqual(unix_request(sock, "GET", "/healthz")[0], 200)


class EventLogTest(ObsCase):
    def test_log_format_json_event_lines(self):
        toys = self.toys(1)
        g = self.golb(golb_config(toys) + "logFormat: json\nadmin:\n  listen: 127.0.0.1:0\n"
                      f"  token: {ADMIN_TOKEN}\n", expect_ready=False)
        m = g.wait_log(r'"event":"listening","msg":"listening on 127\.0\.0\.1:(\d+)')
        g.port, g.host = int(m.group(1)), "127.0.0.1"
        g.admin = int(g.wait_log(r'admin API and status page on http://127\.0\.0\.1:(\d+)/').group(1))
        g.admin_token = ADMIN_TOKEN
        self.put = lambda body: self.admin(g, "PUT", f"/api/v1/backends/127.0.0.1:{toys[0].port}", body)
        self.assertEqual(self.put({"state": "drain"}).status, 200)
        g.wait_log(r'"event":"admin"')
        g.stop()
        events = set()
        for line in g.log_text().splitlines():
            if not line.strip():
                continue
            x = json.loads(line)
            self.assertEqual(set(x) >= {"time", "level", "event", "msg"}, True, x)
            events.add(x["event"])
        self.assertTrue({"backend_state", "listening", "admin", "stop"} <= events, events)


    def json_lines(self, g):
        """Every line golb wrote (stdout and stderr), each parsed as JSON: fails on one that is not."""
        out = []
        for line in g.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                self.fail(f"not a JSON line: {line!r}\n{g.log_text()}")
        return out

    def test_start_up_and_reload_warnings_are_json_lines(self):
        # Two warnings at start (a health check timeout not under the period, a hash-only key),
        # then a reload that brings a third: with logFormat json, every line is one JSON object.
        toys = self.toys(1)
        base = golb_config(toys, period=0.3, timeout=0.3) + "logFormat: json\n"
        g = self.golb(base + "hashKey: header:X-User\n", expect_ready=False)
        g.wait_log(r'"event":"listening"')
        off = g.log_offset()
        with open(g.config_path, "a") as f:
            f.write("hashLoadFactor: 1.5\n")
        g.send_signal(signal.SIGHUP)
        g.wait_log(r'"event":"reload"', start=off)
        g.stop()
        lines = self.json_lines(g)
        warnings = [x for x in lines if x["event"] == "config"]
        self.assertEqual([x["level"] for x in warnings], ["warn"] * len(warnings), warnings)
        msgs = [x["msg"] for x in warnings]
        self.assertTrue(any("warning: healthCheckTimeout" in m for m in msgs), msgs)
        self.assertTrue(any("hashKey is ignored" in m for m in msgs), msgs)
        self.assertTrue(any("hashLoadFactor is ignored" in m for m in msgs), msgs)
        self.assertTrue(all(m.startswith(g.config_path + ":") for m in msgs), msgs)

    def test_a_reload_to_json_logs_its_warnings_as_json(self):
        toys = self.toys(1)
        g = self.golb(golb_config(toys))
        off = g.log_offset()
        with open(g.config_path, "a") as f:
            f.write("logFormat: json\nhashKey: header:X-User\n")
        g.send_signal(signal.SIGHUP)
        g.wait_log(r'"event":"reload"', start=off)
        after = g.log_text()[off:]
        self.assertIn("hashKey is ignored", after)
        for line in after.splitlines():
            self.assertTrue(line.startswith("{"), f"not a JSON line after the reload: {line!r}")
            json.loads(line)

    def test_text_format_keeps_plain_warnings(self):
        toys = self.toys(1)
        g = self.golb(golb_config(toys) + "hashKey: header:X-User\n")
        self.assertRegex(g.log_text(), r"(?m)^\S+golb\.yml:\d+:\d+: warning: hashKey is ignored")


class StatusPageTest(ObsCase):
    def test_page_shows_every_backend_with_its_state(self):
        toys = self.toys(3)
        g = self.start(toys)
        r = self.admin(g, "GET", "/")
        self.assertEqual(r.status, 200)
        wait_until(lambda: len(json.loads(self.admin(g, "GET", "/api/v1/status?history=1").body)
                               ["backends"][0]["history"]["requests_per_second"]) >= 1, 5,
                   "a second of history")
        self.assertIn(b"<script>", r.body)
        self.assertNotRegex(r.text, r'(src|href)="https?://', "no external assets")
        self.assertEqual(self.admin(g, "PUT", f"/api/v1/backends/127.0.0.1:{toys[1].port}",
                                    {"state": "drain"}).status, 200)
        self.assertEqual(self.admin(g, "PUT", f"/api/v1/backends/127.0.0.1:{toys[2].port}",
                                    {"state": "maint"}).status, 200)
        dom, err = page_dom(f"http://127.0.0.1:{g.admin}/", self.tmp)
        self.assertIn('data-loaded="true"', dom, f"the page's script did not render:\n{err[-2000:]}")
        rows = dict(re.findall(r'<tr data-backend="([^"]+)" data-state="([^"]+)"', dom))
        want = {f"127.0.0.1:{toys[0].port}": "up", f"127.0.0.1:{toys[1].port}": "drain",
                f"127.0.0.1:{toys[2].port}": "maint"}
        self.assertEqual(rows, want, dom[-3000:])
        self.assertRegex(dom, r'class="badge drain"[^>]*>drain<')


    def test_live_dot_only_after_an_answer(self):
        # Connecting (no answer yet), live (an answer came), failed: three states, and the green
        # dot only in the second. The page's polls are held and answered one by one.
        toys = self.toys(1)
        g = self.start(toys)
        url = f"http://127.0.0.1:{g.admin}/"
        state = ("(() => { const l = document.getElementById('live');"
                 " return {state: l.dataset.state, text: l.textContent,"
                 " dot: getComputedStyle(l, '::before').backgroundColor}; })()")
        green = "rgb(46, 160, 67)"
        with Browser(self.tmp) as b:
            p = b.new_page()
            p.intercept("*/api/v1/status*")
            p.navigate(url)
            req = p.paused()
            s0 = p.evaluate(state)
            self.assertEqual(s0["state"], "connecting", s0)
            self.assertNotEqual(s0["dot"], green, s0)
            self.assertNotIn("live", s0["text"], s0)
            p.resume(req)
            p.wait_for("document.getElementById('live').dataset.state === 'live'")
            s1 = p.evaluate(state)
            self.assertEqual((s1["dot"], s1["text"]), (green, "live"), s1)
            p.fail(p.paused())  # the next poll, a second later
            p.wait_for("document.getElementById('live').dataset.state === 'failed'")
            s2 = p.evaluate(state)
            self.assertNotIn(s2["dot"], (green, "rgba(0, 0, 0, 0)"), s2)
            self.assertIn("unreachable", s2["text"], s2)
            # A page whose first poll fails says so, rather than "connecting" forever.
            p2 = b.new_page()
            p2.intercept("*/api/v1/status*")
            p2.navigate(url)
            p2.fail(p2.paused())
            p2.wait_for("document.getElementById('live').dataset.state === 'failed'")
            self.assertIn("cannot reach", p2.evaluate(state)["text"])

    def test_long_down_reason_keeps_the_buttons_in_a_1280px_window(self):
        toys = self.toys(2)
        g = self.start(toys)
        off = g.log_offset()
        http_request(toys[1].port, "POST", "/toy/health?status=500")
        self.wait_backend(g, toys[1], "DOWN", start=off)
        status = json.loads(self.admin(g, "GET", "/api/v1/status?history=1").body)
        reason = ("HTTP 500 from the health check: " + "the backend said something long " * 10
                  + "x" * 40)[:300]
        self.assertEqual(len(reason), 300)
        for be in status["backends"]:
            # the widest figures a busy backend shows
            be.update(weight=1000, in_flight=1234, requests_per_second=12345.6,
                      errors_per_second=1234.5, response_p50_seconds=0.00153,
                      response_p99_seconds=0.2505)
            if be["name"].endswith(f":{toys[1].port}"):
                self.assertEqual(be["state"], "down")
                be["last_check"]["reason"] = reason
        body = json.dumps(status).encode()
        with Browser(self.tmp) as b:
            p = b.new_page(width=1280, height=800)
            p.intercept("*/api/v1/status*")
            p.navigate(f"http://127.0.0.1:{g.admin}/")
            p.fulfill(p.paused(), 200, body, "application/json")
            p.wait_for("document.body.dataset.loaded === 'true'")
            boxes = p.evaluate(
                "[...document.querySelectorAll('#rows button')].map(e => {"
                " const r = e.getBoundingClientRect();"
                " return {text: e.textContent, left: r.left, right: r.right}; })")
            self.assertEqual(len(boxes), 6, boxes)
            for box in boxes:
                self.assertTrue(0 <= box["left"] and box["right"] <= 1280, boxes)
            self.assertLessEqual(p.evaluate("document.documentElement.scrollWidth"), 1280)
            down = f"#rows tr[data-backend='127.0.0.1:{toys[1].port}'] td.check"
            self.assertIn(reason, p.evaluate(f"document.querySelector(\"{down}\").title"),
                          "the whole reason in the tooltip")


class DemoConfigTest(ObsCase):
    needs_golb = True

    def test_example_config_is_valid_without_a_warning(self):
        # A copy next to a certificate made as `make run` makes it (scripts/demo-cert.sh): the
        # example's tls section reads certs/demo.pem relative to the file.
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        d = os.path.join(self.tmp, "examples")
        os.makedirs(d)
        shutil.copy(os.path.join(root, "examples", "config.yaml"), d)
        subprocess.run([os.path.join(root, "scripts", "demo-cert.sh"), os.path.join(d, "certs")],
                       check=True, capture_output=True)
        p = run_golb(self.bindir, ["-t", "-confpath", os.path.join(d, "config.yaml")])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("warning", p.stderr)

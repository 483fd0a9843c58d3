"""Pools in the running generation: each pool its own backend objects, health checked once per URL
whichever pools list it, metrics and the admin API by pool, reloads that add, keep and remove
pools; requests go to the pool their route names (the rest of routing: test_59_routing.py)."""

import json
import re
import signal
import socket
import threading
import time

from golbtest import GolbTestCase, golb_config, http_request, page_dom, scaled, wait_until

ADMIN_RE = r"admin API and status page on http://(\S+):(\d+)/"
ADMIN_TOKEN = "pools-test-token"
LINE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')


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
    """The sample with exactly these labels, or None when there is no such series."""
    return metrics.get((name, frozenset(labels.items())))


def url(b):
    port = b if isinstance(b, int) else b.port
    return f"http://127.0.0.1:{port}/health"


def pools_config(default, pools, period=None, routes=True):
    """golb in front of `default` (the top-level backends) with `pools` ({name: [backends]}), a
    route per pool (so none draws a warning) and a TCP admin listener with a token."""
    text = golb_config(default, period=period, workers=2)
    text += f"admin:\n  listen: 127.0.0.1:0\n  token: {ADMIN_TOKEN}\n"
    if pools:
        text += "pools:\n"
        for name, backends in pools.items():
            text += f"  {name}:\n    backends:\n"
            text += "".join(f"      - {url(b)}\n" for b in backends)
    if routes and pools:
        text += "routes:\n"
        for name in pools:
            text += f"  - {{name: to-{name}, match: {{pathPrefix: /{name}}}, pool: {name}}}\n"
    return text


class CheckCounter:
    """A loopback upstream that answers every request 200 and counts health checks (GET /health):
    how many requests golb's checker sends to one URL."""

    def __init__(self):
        self.checks = 0
        self.lock = threading.Lock()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            c.settimeout(scaled(5))
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
            if buf.startswith(b"GET /health "):
                with self.lock:
                    self.checks += 1
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        except OSError:
            pass
        finally:
            c.close()

    def count(self):
        with self.lock:
            return self.checks

    def close(self):
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        self.thread.join(scaled(5))


class PoolsCase(GolbTestCase):
    def start(self, default, pools, **kw):
        g = self.golb(pools_config(default, pools, **kw))
        g.admin = int(g.wait_log(ADMIN_RE).group(2))
        g.generation = 1
        return g

    def wait_up(self, g, pool, b, start=0):
        """Waits for "backend [POOL/]127.0.0.1:PORT is UP" (pool default: no prefix)."""
        port = b if isinstance(b, int) else b.port
        who = "" if pool == "default" else re.escape(pool) + "/"
        return g.wait_log(rf"backend {who}127\.0\.0\.1:{port} is UP\b", timeout=scaled(5),
                          start=start)

    def admin(self, g, method, path, body=None):
        h = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if method != "GET" else {}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            h["Content-Type"] = "application/json"
        return http_request(g.admin, method, path, headers=h, body=data)

    def metrics(self, g):
        r = self.admin(g, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        return parse_metrics(r.text)

    def status(self, g):
        r = self.admin(g, "GET", "/api/v1/status")
        self.assertEqual(r.status, 200, r.text)
        return json.loads(r.body)

    def sighup(self, g):
        """SIGHUP, then waits for the next generation's log line; returns the changes text."""
        start = g.log_offset()
        g.send_signal(signal.SIGHUP)
        g.generation += 1
        m = g.wait_log(rf"reload by SIGHUP: generation {g.generation} running \(([^)]*)\)",
                       timeout=scaled(10), start=start)
        return m.group(1)


class PoolsTest(PoolsCase):
    def test_metrics_and_status_show_both_pools_and_requests_follow_their_route(self):
        a, b, c = self.toys(3)
        # b's URL is in both pools: two backends (two series, two rows)
        g = self.start([a, b], {"api": [b, c]})
        for pool, t in (("default", a), ("default", b), ("api", b), ("api", c)):
            self.wait_up(g, pool, t)
        m = self.metrics(g)
        for pool, t in (("default", a), ("default", b), ("api", b), ("api", c)):
            lab = dict(pool=pool, backend=f"127.0.0.1:{t.port}")
            self.assertEqual(val(m, "golb_backend_up", **lab), 1, lab)
            self.assertEqual(val(m, "golb_backend_state", state="up", **lab), 1, lab)
            self.assertIsNotNone(val(m, "golb_backend_requests_total", code="2xx", **lab), lab)
        self.assertIsNone(val(m, "golb_backend_up", pool="api", backend=f"127.0.0.1:{a.port}"))
        self.assertEqual(val(m, "golb_route_requests_total", route="to-api", code_class="2xx"), 0)
        # /api/... takes the route to-api, the rest the default pool
        for i in range(6):
            r = self.get(g, f"/api/x{i}")
            self.assertEqual(r.status, 200)
            self.assertIn(int(r.header("X-Server-Id")), (1, 2), "only the api pool's toys")
        for i in range(4):
            self.assertIn(int(self.get(g, f"/web/x{i}").header("X-Server-Id")), (0, 1))
        m = self.metrics(g)
        on_default = sum(val(m, "golb_backend_requests_total", pool="default",
                             backend=f"127.0.0.1:{t.port}", code="2xx") for t in (a, b))
        self.assertEqual(on_default, 4)
        on_api = sum(val(m, "golb_backend_requests_total", pool="api",
                         backend=f"127.0.0.1:{t.port}", code="2xx") for t in (b, c))
        self.assertEqual(on_api, 6)
        self.assertEqual(val(m, "golb_route_requests_total", route="to-api", code_class="2xx"), 6)
        s = self.status(g)
        self.assertEqual([x["name"] for x in s["backends"]],
                         [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"], "top level: default")
        self.assertEqual(s["backends_up"], 2)
        self.assertEqual([p["name"] for p in s["pools"]], ["default", "api"])
        api = s["pools"][1]
        self.assertEqual(api["backends_up"], 2)
        self.assertEqual([(x["name"], x["pool"]) for x in api["backends"]],
                         [(f"127.0.0.1:{b.port}", "api"), (f"127.0.0.1:{c.port}", "api")])
        self.assertEqual([(r["name"], r["pools"]) for r in s["routes"]], [("to-api", ["api"])])
        self.assertIn("requests_per_second", s["routes"][0])

    def test_a_url_in_three_pools_is_checked_once_per_period(self):
        shared, alone = CheckCounter(), CheckCounter()
        self.addCleanup(shared.close)
        self.addCleanup(alone.close)
        g = self.start([shared.port, alone.port], {"api": [shared.port], "web": [shared.port]},
                       period=round(scaled(0.2), 3))
        for pool in ("default", "api", "web"):
            self.wait_up(g, pool, shared.port)
        s0, a0 = shared.count(), alone.count()
        wait_until(lambda: alone.count() >= a0 + 10, scaled(10), "ten periods of checks")
        s1, a1 = shared.count(), alone.count()
        self.assertLessEqual(abs((s1 - s0) - (a1 - a0)), 2,
                             f"three pools' URL: {s1 - s0} checks, one pool's: {a1 - a0}")
        m = self.metrics(g)
        per_pool = [val(m, "golb_backend_health_checks_total", pool=p,
                        backend=f"127.0.0.1:{shared.port}", result="success")
                    for p in ("default", "api", "web")]
        self.assertEqual(len(set(per_pool)), 1, f"every pool's backend is told each result: {per_pool}")

    def test_admin_put_on_a_pool_backend_drains_only_that_pools_backend(self):
        a, b = self.toys(2)
        g = self.start([a, b], {"api": [b]})
        self.wait_up(g, "api", b)
        off = g.log_offset()
        r = self.admin(g, "PUT", f"/api/v1/pools/api/backends/127.0.0.1:{b.port}",
                       {"state": "drain"})
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(json.loads(r.body)["admin_state"], "drain")
        g.wait_log(rf"backend api/127\.0\.0\.1:{b.port} set to drain \(was ready\)", start=off)
        m = self.metrics(g)
        self.assertEqual(val(m, "golb_backend_state", pool="api", backend=f"127.0.0.1:{b.port}",
                             state="drain"), 1)
        self.assertEqual(val(m, "golb_backend_state", pool="default",
                             backend=f"127.0.0.1:{b.port}", state="up"), 1, "default's: another")
        # the default pool still serves through b: drained only in api
        ids = {int(self.get(g, f"/{i}").header("X-Server-Id")) for i in range(6)}
        self.assertEqual(ids, {0, 1})
        # the old path is the default pool's
        r = self.admin(g, "PUT", f"/api/v1/backends/127.0.0.1:{b.port}", {"state": "drain"})
        self.assertEqual(r.status, 200, r.text)
        wait_until(lambda: {int(self.get(g, f"/d{i}").header("X-Server-Id"))
                            for i in range(4)} == {0}, scaled(5), "default's b drained")
        self.assertEqual(self.admin(g, "PUT", "/api/v1/pools/nope/backends/127.0.0.1:1",
                                    {"state": "drain"}).status, 404)

    def test_the_status_page_groups_backends_by_pool_and_lists_routes(self):
        a, b = self.toys(2)
        g = self.start([a, b], {"api": [b]})
        self.wait_up(g, "api", b)
        self.assertEqual(self.admin(g, "PUT", f"/api/v1/pools/api/backends/127.0.0.1:{b.port}",
                                    {"state": "maint"}).status, 200)
        dom, err = page_dom(f"http://127.0.0.1:{g.admin}/", self.tmp)
        self.assertIn('data-loaded="true"', dom, f"the page's script did not render:\n{err[-2000:]}")
        rows = re.findall(r'<tr (?:class="pool"|data-backend="([^"]+)" data-state="([^"]+)" '
                          r'data-pool="([^"]+)")', dom)
        want = [("", "", ""), (f"127.0.0.1:{a.port}", "up", "default"),
                (f"127.0.0.1:{b.port}", "up", "default"),
                ("", "", ""), (f"127.0.0.1:{b.port}", "maint", "api")]
        self.assertEqual(rows, want, "a heading per pool, then its backends: " + dom[-4000:])
        self.assertRegex(dom, r'<span class="name">api</span><span>roundRobin · 1 / 1 up</span>')
        self.assertRegex(dom, r'<tr data-route="to-api"><td class="name">to-api</td><td>pool</td>'
                              r'<td class="name">api</td>')
        self.assertNotRegex(dom, r'id="routes-box" hidden')


class PoolsReloadTest(PoolsCase):
    def test_a_reload_adds_and_removes_pools_and_keeps_the_kept_ones_state(self):
        a, b, c, d = self.toys(4)
        g = self.start([a], {"api": [b], "old": [c]})
        for pool, t in (("api", b), ("old", c)):
            self.wait_up(g, pool, t)
        r = self.admin(g, "PUT", f"/api/v1/pools/api/backends/127.0.0.1:{b.port}", {"weight": 7})
        self.assertEqual(r.status, 200, r.text)
        lab_b = dict(pool="api", backend=f"127.0.0.1:{b.port}")
        wait_until(lambda: val(self.metrics(g), "golb_backend_health_checks_total",
                               result="success", **lab_b) >= 5, scaled(10), "five checks of b")
        before = self.metrics(g)
        old_c = val(before, "golb_backend_health_checks_total", pool="old",
                    backend=f"127.0.0.1:{c.port}", result="success")
        # "old" goes, "new" comes with old's URL (another backend: identity is pool and URL),
        # "api" stays and gains d
        with open(g.config_path, "w") as f:
            f.write(pools_config([a], {"api": [b, d], "new": [c]}))
        changes = self.sighup(g)
        for line in ("pool changed: api", f"backend added: http://127.0.0.1:{d.port} in pool api",
                     "pool added: new", "pool removed: old"):
            self.assertIn(line, changes)
        self.assertIn(f"backend new/127.0.0.1:{c.port} is UP", g.log_text(),
                      "the new pool's backend is checked before the reload completes")
        after = self.metrics(g)
        self.assertGreaterEqual(val(after, "golb_backend_health_checks_total", result="success",
                                    **lab_b),
                                val(before, "golb_backend_health_checks_total", result="success",
                                    **lab_b), "api's b kept its counters")
        self.assertEqual(val(after, "golb_backend_weight", **lab_b), 7, "and its admin weight")
        self.assertIsNone(val(after, "golb_backend_up", pool="old", backend=f"127.0.0.1:{c.port}"),
                          "the removed pool's series are gone")
        new_c = val(after, "golb_backend_health_checks_total", pool="new",
                    backend=f"127.0.0.1:{c.port}", result="success")
        self.assertLess(new_c, old_c, "new's c is a new backend: its counters start again")
        self.assertEqual(val(after, "golb_backend_up", pool="api", backend=f"127.0.0.1:{d.port}"), 1)
        s = self.status(g)
        self.assertEqual([p["name"] for p in s["pools"]], ["default", "api", "new"])
        self.assertEqual(s["generation"], 2)

"""Routing end to end (routing phase 2b): requests take the first route whose every condition
holds and go to its pool, or get golb's own answer (redirect, respond, 403, 404, 429); the route's
filters change what the backend and the client see; route counters, the access log's route and
pool, and a reload that changes routes while requests are in flight."""

import json
import os
import re
import signal
import socket
import threading

from golbtest import GolbTestCase, HTTPConn, golb_config, http_request, scaled, wait_until

ADMIN_RE = r"admin API and status page on http://(\S+):(\d+)/"
LINE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')


def url(t):
    return f"http://127.0.0.1:{t.port}/health"


def metric(text, name, **labels):
    want = frozenset(labels.items())
    for line in text.splitlines():
        m = LINE_RE.match(line)
        if not m or m.group(1) != name:
            continue
        got = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if got == want:
            return float(m.group(3))
    return None


class RoutingCase(GolbTestCase):
    def start(self, default, pools, routes, workers=1, extra=""):
        """golb with `default` as top-level backends (None: no default pool), `pools`
        ({name: [toys]}) and `routes` (YAML lines of the routes: list), an admin listener."""
        text = golb_config(default or [], workers=workers)
        if not default:
            text = text.replace("backends:\n", "")
        text += "admin:\n  listen: 127.0.0.1:0\n" + extra
        text += "pools:\n"
        for name, toys in pools.items():
            text += f"  {name}:\n    backends:\n" + "".join(f"      - {url(t)}\n" for t in toys)
        text += "routes:\n" + routes
        g = self.golb(text)
        g.admin = int(g.wait_log(ADMIN_RE).group(2))
        for t in default or []:
            self.wait_backend(g, t, "UP")
        for toys in pools.values():
            for t in toys:
                self.wait_backend(g, t, "UP")
        return g

    def req(self, g, path="/", host="golb.test", method="GET", headers=None, body=None):
        with HTTPConn(g.host, g.port) as c:
            return c.request(method, path, headers=headers, body=body, host=host)

    def metrics(self, g):
        r = http_request(g.admin, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        return r.text


class RoutingTest(RoutingCase):
    def test_host_path_and_header_routes_with_their_filters(self):
        d, api, assets, canary = self.toy(0), self.toy(1), self.toy(2), self.toy(3)
        log = os.path.join(self.tmp, "access.log")
        g = self.start([d], {"api": [api], "assets": [assets], "canary": [canary]}, """\
  - name: canary
    match: {headers: {X-Canary: "1"}}
    pool: canary
  - name: api
    match: {host: api.example.com}
    setRequestHeaders: {X-Api-Version: "1"}
    removeRequestHeaders: [X-Secret]
    pool: api
  - name: static
    match: {pathPrefix: /static}
    stripPrefix: true
    setResponseHeaders: {Cache-Control: "public, max-age=3600"}
    removeResponseHeaders: [X-Conn-Requests]
    pool: assets
  - name: v2
    match: {pathPrefix: /v1}
    rewritePrefix: /v2
    pool: api
""", extra=f"accessLog: json\naccessLogPath: {log}\n")
        r = self.req(g, "/x", host="API.example.com:8080", headers={"X-Secret": "s", "X-Other": "o"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Server-Id"), "1")
        self.assertEqual(r.echo_header("X-Api-Version"), "1")
        self.assertIsNone(r.echo_header("X-Secret"))
        self.assertEqual(r.echo_header("X-Other"), "o")
        r = self.req(g, "/static/css/a.css?v=3")
        self.assertEqual(r.header("X-Server-Id"), "2")
        self.assertEqual(r.echo()["path"], "/css/a.css?v=3")
        self.assertEqual(r.header("Cache-Control"), "public, max-age=3600")
        self.assertIsNone(r.header("X-Conn-Requests"))
        self.assertEqual(self.req(g, "/static").echo()["path"], "/")
        self.assertEqual(self.req(g, "/staticx").header("X-Server-Id"), "0", "whole segments")
        r = self.req(g, "/static/a", headers={"X-Canary": "1"})
        self.assertEqual(r.header("X-Server-Id"), "3", "the first route that holds wins")
        self.assertEqual(self.req(g, "/x/../v1/u").echo()["path"], "/v2/u",
                         "normalised, then rewritten")
        r = self.req(g, "/a/%2e%2e/../x")
        self.assertEqual(r.status, 400, "a path above / is a 400")
        m = self.metrics(g)
        self.assertEqual(metric(m, "golb_route_requests_total", route="api", code_class="2xx"), 1)
        self.assertEqual(metric(m, "golb_route_requests_total", route="static", code_class="2xx"),
                         2)
        self.assertEqual(metric(m, "golb_route_requests_total", route="canary", code_class="2xx"),
                         1)
        self.assertEqual(metric(m, "golb_backend_requests_total", pool="assets",
                                backend=f"127.0.0.1:{assets.port}", code="2xx"), 2)
        lines = []

        def logged():
            nonlocal lines
            with open(log) as f:
                lines = [json.loads(x) for x in f if x.strip()]
            return len(lines) >= 7
        wait_until(logged, scaled(5), "7 access-log lines")
        by_path = {(x["url.path"], x["route"]): x for x in lines}
        x = by_path[("/static/css/a.css", "static")]
        self.assertEqual(x["pool"], "assets")
        self.assertEqual(x["backend"], f"127.0.0.1:{assets.port}")
        self.assertEqual(by_path[("/staticx", None)]["pool"], "default")

    def test_weighted_split_has_exact_shares_over_a_cycle(self):
        a, b = self.toy(0), self.toy(1)
        g = self.start([a], {"canary": [b]}, """\
  - split: [{pool: default, weight: 3}, {pool: canary, weight: 1}]
""")
        ids = []
        with HTTPConn(g.host, g.port) as c:
            for _ in range(40):
                r = c.request("GET", "/")
                self.assertEqual(r.status, 200)
                ids.append(r.header("X-Server-Id"))
        self.assertEqual(ids.count("1"), 10, ids)
        for k in range(0, 40, 4):
            self.assertEqual(ids[k:k + 4].count("1"), 1, f"each cycle of 4: {ids}")

    def test_golb_answers_redirect_respond_403_and_429_itself(self):
        a = self.toy(0)
        g = self.start([a], {"api": [a]}, """\
  - match: {host: old.example.com}
    redirect: {scheme: https, host: www.example.com, status: 308}
  - match: {path: /maint}
    respond: {status: 503, body: "down for maintenance\\n"}
    setResponseHeaders: {Retry-After: "120"}
  - match: {pathPrefix: /admin}
    allow: [10.0.0.0/8]
    pool: api
  - match: {pathPrefix: /local}
    allow: [127.0.0.0/8]
    deny: [127.0.0.2]
    pool: api
  - name: login
    match: {path: /login, methods: [POST]}
    rateLimit: {requestsPerSecond: 0.5, burst: 2}
    pool: api
""")
        with HTTPConn(g.host, g.port) as c:  # golb's own answers keep the connection
            r = c.request("GET", "/a/./b?x=1", host="old.example.com")
            self.assertEqual(r.status, 308)
            self.assertEqual(r.header("Location"), "https://www.example.com/a/b?x=1")
            r = c.request("GET", "/maint")
            self.assertEqual((r.status, r.body), (503, b"down for maintenance\n"))
            self.assertEqual(r.header("Retry-After"), "120")
            r = c.request("HEAD", "/maint")
            self.assertEqual((r.status, r.header("Content-Length")), (503, "21"))
            r = c.request("GET", "/admin/x")
            self.assertEqual(r.status, 403)
            self.assertEqual(c.request("GET", "/local/x").status, 200)
            codes = [c.request("POST", "/login", body=b"").status for _ in range(3)]
            self.assertEqual(codes, [200, 200, 429])
            r = c.request("POST", "/login", body=b"")
            self.assertEqual(r.status, 429)
            self.assertEqual(r.header("Retry-After"), "2")
            self.assertEqual(c.request("GET", "/login").status, 200, "other methods: not limited")
        m = self.metrics(g)
        self.assertEqual(metric(m, "golb_route_requests_total", route="login", code_class="4xx"),
                         2)
        self.assertEqual(metric(m, "golb_route_requests_total", route="route 1",
                                code_class="3xx"), 1)
        self.assertEqual(metric(m, "golb_route_requests_total", route="route 2",
                                code_class="5xx"), 2)

    def test_without_a_default_pool_unmatched_requests_get_404(self):
        api = self.toy(1)
        g = self.start(None, {"api": [api]}, "  - {match: {pathPrefix: /api}, pool: api}\n")
        self.assertEqual(self.req(g, "/api/x").header("X-Server-Id"), "1")
        r = self.req(g, "/other")
        self.assertEqual(r.status, 404)
        r = http_request(g.admin, "GET", "/readyz")
        self.assertEqual(r.status, 200, "ready: the routed pool has a backend up")

    def test_a_reload_changes_routes_and_requests_in_flight_keep_their_generation(self):
        a, b = self.toy(0), self.toy(1)
        routes = "  - {match: {pathPrefix: /r}, stripPrefix: true, pool: %s}\n"
        g = self.start([a], {"one": [a], "two": [b]}, routes % "one" +
                       "  - {match: {pathPrefix: /x}, pool: two}\n", workers=2)
        self.assertEqual(self.req(g, "/r/q").header("X-Server-Id"), "0")
        # a slow request on the old route, in flight across the reload
        slow = HTTPConn(g.host, g.port, timeout=scaled(10))
        self.addCleanup(slow.close)
        slow.send_request("GET", "/r/slow?delay=%d" % int(scaled(1500)))
        # traffic all along: no request may fail
        stop, failures, done = threading.Event(), [], [0]

        def load():
            while not stop.is_set():
                try:
                    r = self.req(g, "/r/load")
                    if r.status != 200:
                        failures.append(r.status)
                    done[0] += 1
                except (OSError, AssertionError) as e:
                    failures.append(repr(e))
        t = threading.Thread(target=load, daemon=True)
        t.start()
        cfg_path = g.config_path
        with open(cfg_path) as f:
            text = f.read()
        with open(cfg_path, "w") as f:
            f.write(text.replace("pool: one}", "pool: two}"))
        start = g.log_offset()
        g.send_signal(signal.SIGHUP)
        g.wait_log(r"reload by SIGHUP: generation 2 running", timeout=scaled(10), start=start)
        wait_until(lambda: self.req(g, "/r/q").header("X-Server-Id") == "1", scaled(5),
                   "the new route on every worker")
        r = slow.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Server-Id"), "0", "pinned to the route it started on")
        self.assertEqual(r.echo()["path"], "/slow?delay=%d" % int(scaled(1500)))
        n = done[0]
        wait_until(lambda: done[0] >= n + 20, scaled(5), "more requests after the reload")
        stop.set()
        t.join(scaled(5))
        self.assertEqual(failures, [])


README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def readme_examples():
    """The ```yaml blocks of the README's Routing section, in order."""
    with open(README) as f:
        text = f.read()
    section = text[text.index("### Routing"):]
    section = section[:section.index("\n## ")]
    return re.findall(r"```yaml\n(.*?)```", section, re.S)


class PoolSettingsTest(RoutingCase):
    def test_upstream_max_idle_is_the_pools_own(self):
        """A pool's upstreamMaxIdle bounds its backends' idle connections: 0 there means a new
        upstream connection per request, while the default pool (64) reuses one."""
        a, b = self.toy(0), self.toy(1)
        text = golb_config([a], workers=1) + (
            "pools:\n  nopool:\n    upstreamMaxIdle: 0\n    backends:\n"
            f"      - {url(b)}\n"
            "routes:\n  - match: {pathPrefix: /np}\n    pool: nopool\n")
        g = self.golb(text)
        self.wait_backend(g, a, "UP")
        self.wait_backend(g, b, "UP")
        with HTTPConn(g.host, g.port) as c:
            seen_default = [int(c.request("GET", f"/d{i}").header("X-Conn-Requests"))
                            for i in range(4)]
            seen_np = [int(c.request("GET", f"/np/{i}").header("X-Conn-Requests"))
                       for i in range(4)]
        self.assertEqual(seen_default[1:], [seen_default[0] + 1, seen_default[0] + 2,
                                            seen_default[0] + 3], "the default pool reuses")
        self.assertEqual(seen_np, [1, 1, 1, 1], "upstreamMaxIdle: 0 pools nothing")


class ReadmeExamplesTest(RoutingCase):
    """The README's worked examples, as written, with a toy-backend for each 10.0.0.N backend
    (its X-Server-Id is N) and golb on loopback."""

    def run_example(self, n):
        text = readme_examples()[n]
        toys = {}
        for octet in sorted(set(re.findall(r"http://10\.0\.0\.(\d+):\d+", text)), key=int):
            toys[octet] = self.toy(int(octet))
        text = re.sub(r"http://10\.0\.0\.(\d+):\d+", lambda m: f"http://127.0.0.1:{toys[m.group(1)].port}",
                      text)
        head = golb_config([], workers=1).replace("backends:\n", "")
        g = self.golb(head + text)
        for t in toys.values():
            self.wait_backend(g, t, "UP")
        return g

    def test_virtual_hosting(self):
        g = self.run_example(0)
        self.assertIn(self.req(g, "/", host="shop.example.com").header("X-Server-Id"), ("1", "2"))
        self.assertEqual(self.req(g, "/", host="www.blog.example.com.").header("X-Server-Id"), "3")
        r = self.req(g, "/cart?x=1", host="example.com")
        self.assertEqual((r.status, r.header("Location")), (301, "http://shop.example.com/cart?x=1"))
        self.assertEqual(self.req(g, "/", host="other.test").header("X-Server-Id"), "9")

    def test_api_under_a_prefix(self):
        g = self.run_example(1)
        r = self.req(g, "/api/v1/users")
        self.assertIn(r.header("X-Server-Id"), ("5", "6"))
        self.assertEqual(r.echo()["path"], "/v1/users")
        self.assertEqual(r.echo_header("X-Api-Version"), "1")
        self.assertEqual(self.req(g, "/api/admin/x").status, 403, "127.0.0.1 is not internal")
        self.assertEqual(self.req(g, "/apix").header("X-Server-Id"), "9")
        with HTTPConn(g.host, g.port) as c:
            codes = [c.request("POST", "/api/items", body=b"{}").status for _ in range(11)]
        self.assertEqual(codes, [200] * 10 + [429], "a burst of 10, then 429")

    def test_canary(self):
        g = self.run_example(2)
        self.assertEqual(self.req(g, "/", headers={"X-Canary": "1"}).header("X-Server-Id"), "7")
        ids = []
        with HTTPConn(g.host, g.port) as c:
            for _ in range(100):
                ids.append(c.request("GET", "/").header("X-Server-Id"))
        self.assertEqual(ids.count("7"), 5, "5 % of every 100 (one worker)")

"""golb's command line and configuration file: flags, -t, error messages FILE:LINE:COL: message."""

import os
import re
import socket

from golbtest import GolbTestCase, HTTPConn, LISTEN_RE, golb_config, run_golb

GOOD = """\
listen: 127.0.0.1:0
healthCheckTimeout: 0.5
healthCheckPeriod: 1
backends:
  - http://127.0.0.1:8081/health
"""


class CommandLineTest(GolbTestCase):
    def test_help(self):
        for flag in ("-h", "-help", "--help"):
            r = run_golb(self.bindir, [flag])
            self.assertEqual(r.returncode, 0, f"{flag}: {r.stderr}")
            out = r.stdout + r.stderr
            for f in ("-confpath", "-t", "-version", "config.yml"):
                self.assertIn(f, out, flag)

    def test_version(self):
        r = run_golb(self.bindir, ["-version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout + r.stderr, r"golb\S* v?\d+\.\d+")

    def test_unknown_flag_is_usage_error(self):
        r = run_golb(self.bindir, ["-nope"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("-confpath", r.stderr)
        r = run_golb(self.bindir, ["-confpath"])
        self.assertEqual(r.returncode, 2, r.stderr)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_check_good_config(self):
        path = self.write("good.yml", GOOD)
        for args in (["-t", "-confpath", path], [f"-confpath={path}", "-t"], ["--t", "--confpath", path]):
            r = run_golb(self.bindir, args)
            self.assertEqual(r.returncode, 0, f"{args}: {r.stdout}{r.stderr}")

    def test_check_default_confpath_in_cwd(self):
        self.write("config.yml", GOOD)
        r = run_golb(self.bindir, ["-t"], cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        os.rename(os.path.join(self.tmp, "config.yml"), os.path.join(self.tmp, "other.yml"))
        r = run_golb(self.bindir, ["-t"], cwd=self.tmp)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("config.yml", r.stderr)

    def errors(self, text, name="bad.yml"):
        """Runs golb -t on text; asserts failure; returns [(line, col, message)] and the path."""
        path = self.write(name, text)
        r = run_golb(self.bindir, ["-t", "-confpath", path])
        self.assertNotEqual(r.returncode, 0, f"accepted:\n{text}")
        errs = []
        rx = re.compile(rf"^{re.escape(path)}:(\d+):(\d+): (.+)$")
        for line in r.stderr.splitlines():
            m = rx.match(line)
            if m and not m.group(3).startswith("warning:"):
                errs.append((int(m.group(1)), int(m.group(2)), m.group(3)))
        self.assertTrue(errs, f"no FILE:LINE:COL: error line in stderr:\n{r.stderr}")
        return errs

    def test_unknown_key_position(self):
        errs = self.errors(GOOD + "healthCheckPerod: 3\n")
        self.assertEqual([(e[0], e[1]) for e in errs], [(6, 1)], errs)
        self.assertIn("healthCheckPerod", errs[0][2])

    def test_bad_values_positions(self):
        cases = [
            ("port: 70000\nbackends:\n  - http://127.0.0.1:8081/health\n", 1, 7),
            ("healthCheckPeriod: -1\nbackends:\n  - http://127.0.0.1:8081/health\n", 1, 20),
            ("healthCheckTimeout: soon\nbackends:\n  - http://127.0.0.1:8081/health\n", 1, 21),
            ("port: 8080\nbackends:\n  - ftp://127.0.0.1:8081/health\n", 3, 5),
            ("port: 8080\nbackends:\n  - http://127.0.0.1:99999/health\n", 3, 5),
            ("port: 8080\nport: 8081\nbackends:\n  - http://127.0.0.1:8081/health\n", 2, 1),
            ("listen: nowhere\nbackends:\n  - http://127.0.0.1:8081/health\n", 1, 9),
        ]
        for text, line, col in cases:
            with self.subTest(text=text.splitlines()[0]):
                errs = self.errors(text)
                self.assertEqual(len(errs), 1, errs)
                self.assertEqual(errs[0][0], line, errs)
                self.assertEqual(errs[0][1], col, errs)

    def test_missing_backends(self):
        errs = self.errors("port: 8080\n")
        self.assertIn("backends", " ".join(e[2] for e in errs))

    def test_all_errors_in_one_run(self):
        errs = self.errors("port: 0\nworkers: many\nbogus: 1\nbackends:\n  - nonsense\n")
        lines = sorted(e[0] for e in errs)
        self.assertEqual(lines, [1, 2, 3, 5], errs)

    def test_yaml_syntax_error(self):
        errs = self.errors("port: 8080\nbackends: [http://127.0.0.1:8081/health\nworkers: 2\n")
        self.assertGreaterEqual(errs[0][0], 2, errs)

    def test_missing_file(self):
        path = os.path.join(self.tmp, "absent.yml")
        r = run_golb(self.bindir, ["-t", "-confpath", path])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(path, r.stderr)

    def test_bad_config_does_not_start(self):
        g = self.golb("port: 8080\nbackends:\n  - nonsense\n", expect_ready=False)
        rc = g.wait_exit(10)
        self.assertIsNotNone(rc, "golb kept running with a bad config")
        self.assertNotEqual(rc, 0)
        self.assertRegex(g.log_text(), rf"{re.escape(g.config_path)}:3:5: ")
        self.assertIsNone(LISTEN_RE.search(g.log_text()))

    def test_listen_zero_logs_real_port(self):
        t = self.toy(0)
        g = self.golb_for([t])
        self.assertNotEqual(g.port, 0)
        self.assertRegex(g.log_text(), rf"listening on 127\.0\.0\.1:{g.port}\b")
        self.assertEqual(self.get(g, "/").status, 200)

    def test_ipv6_listen(self):
        try:
            s = socket.socket(socket.AF_INET6)
            s.bind(("::1", 0))
            s.close()
        except OSError:
            self.skipTest("no IPv6 loopback")
        t = self.toy(0)
        g = self.golb(golb_config([t], listen='"[::1]:0"'))
        self.assertEqual(g.host, "::1")
        with HTTPConn("::1", g.port, timeout=5) as c:
            self.assertEqual(c.request("GET", "/").status, 200)


class AddressInUseTest(GolbTestCase):
    """A second golb on an address a running golb serves: SO_REUSEPORT alone would let it start
    silently and take part of the traffic. It must refuse, at the listen key, unless both opt in
    with reusePort: true (instances side by side during an upgrade)."""

    def second(self, text):
        g = self.golb(text, expect_ready=False)
        rc = g.wait_exit(10)
        self.assertIsNotNone(rc, "the second golb kept running")
        self.assertNotEqual(rc, 0)
        self.assertIsNone(LISTEN_RE.search(g.log_text()), g.log_text())
        return g

    def test_a_served_address_is_in_use(self):
        t = self.toy(0)
        first = self.golb_for([t])
        g = self.second(golb_config([t], listen=f"127.0.0.1:{first.port}"))
        self.assertIn(f"{g.config_path}:1:1: cannot listen on 127.0.0.1:{first.port}: address in "
                      "use", g.log_text())
        # `port` listens on 0.0.0.0, which overlaps 127.0.0.1 on the same port; at the port key
        g = self.second(golb_config([t], listen=None, port=first.port))
        self.assertIn(f"{g.config_path}:3:1: cannot listen on 0.0.0.0:{first.port}: address in use",
                      g.log_text())
        self.assertEqual(self.get(first, "/").status, 200)

    def test_the_https_listener_too(self):
        import tlstest
        cert, key = tlstest.pki().leaf("in-use", ["golb.test", "IP:127.0.0.1"])
        t = self.toy(0)
        first = self.golb(golb_config([t]) + tlstest.tls_config_block([(cert, key)]))
        port = tlstest.https_port(first)
        text = golb_config([t]) + tlstest.tls_config_block([(cert, key)],
                                                          listen=f"127.0.0.1:{port}")
        n = text.splitlines().index(f"  listen: 127.0.0.1:{port}") + 1
        g = self.second(text)
        self.assertIn(f"{g.config_path}:{n}:3: cannot listen on 127.0.0.1:{port}: address in use",
                      g.log_text())

    def test_reuse_port_lets_both_serve(self):
        t = self.toy(0)
        first = self.golb_for([t], reusePort="true")
        second = self.golb(golb_config([t], listen=f"127.0.0.1:{first.port}", reusePort="true"))
        self.assertEqual(second.port, first.port)
        self.wait_backend(second, t, "UP")
        self.assertEqual(self.get(second, "/").status, 200)
        r = run_golb(self.bindir, ["-t", "-confpath", second.config_path])
        self.assertEqual(r.returncode, 0, r.stderr)
        # a configuration that does not opt in still cannot join them
        g = self.second(golb_config([t], listen=f"127.0.0.1:{first.port}"))
        self.assertIn("reusePort: true shares it", g.log_text())


ROUTES = """\
listen: 127.0.0.1:0
healthCheckTimeout: 0.25
healthCheckPeriod: 0.3
backends:
  - http://127.0.0.1:{port}/health
pools:
  api:
    balance: leastConnections
    upstreamTimeout: 10
    backends: [http://127.0.0.1:9, http://127.0.0.2:9]
  canary:
    backends: [http://127.0.0.3:9]
routes:
  - name: canary
    match: {{headers: {{X-Canary: "1"}}}}
    pool: canary
  - match: {{host: api.example.com}}
    pool: api
  - match: {{pathPrefix: /static}}
    stripPrefix: true
    pool: api
  - match: {{host: old.example.com}}
    redirect: {{scheme: https, host: www.example.com, status: 308}}
  - match: {{pathPrefix: /admin}}
    allow: [10.0.0.0/8, "::1"]
    pool: api
  - match: {{path: /login, methods: [POST]}}
    rateLimit: {{requestsPerSecond: 5, burst: 10}}
    pool: api
  - match: {{pathRegex: "^/v[0-9]+/users/[0-9]+$"}}
    pool: api
  - split: [{{pool: default, weight: 95}}, {{pool: canary, weight: 5}}]
"""


class RoutingConfigTest(GolbTestCase):
    """pools and routes: golb -t accepts the issue's example, reports each routing error at its
    FILE:LINE:COL, warns about a route an earlier one shadows, and a 10,000-route table loads."""

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self, text):
        path = self.write("routes.yml", text)
        return path, run_golb(self.bindir, ["-t", "-confpath", path])

    def test_issue_example_is_valid(self):
        path, r = self.check(ROUTES.format(port=8081))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(path, r.stderr, "no warning expected")

    def test_errors_at_their_positions(self):
        text = ("backends: [http://127.0.0.1:8081]\n"
                "pools:\n"
                "  api: {}\n"
                "  default:\n"
                "    backends: [http://127.0.0.1:9]\n"
                "routes:\n"
                "  - pool: nope\n"
                "  - match: {pathRegex: \"^/v[0-9\"}\n"
                "    pool: default\n"
                "  - stripPrefix: true\n"
                "    pool: default\n"
                "  - split: [{pool: default, weight: 0}]\n"
                "  - pool: default\n"
                "    respond: {status: 99}\n"
                "  - match: {headers: {\"X A\": b}}\n"
                "    redirect: {status: 301}\n"
                "  - {allow: [10.0.0.0/40], respond: {status: 403}}\n"
                "  - {match: {path: /a}}\n")
        path, r = self.check(text)
        self.assertEqual(r.returncode, 1, r.stderr)
        want = [
            "3:3: pool \"api\" is missing \"backends\"",
            "4:3: duplicate pool \"default\" (the top-level backends are the pool \"default\")",
            "7:11: unknown pool \"nope\"",
            "8:24: match.pathRegex \"^/v[0-9\" is invalid at offset 7: missing terminating ] for "
            "character class",
            "10:5: stripPrefix needs match.pathPrefix",
            "12:12: split weights must not all be 0",
            "14:5: a route takes one action: respond and pool (line 13) are both given",
            "15:23: match.headers: invalid header name \"X A\"",
            "16:15: redirect needs scheme, host, port or path (else it would send the client to "
            "the same URL)",
            "17:14: allow: invalid address or CIDR range \"10.0.0.0/40\"",
            "18:5: route \"route 8\" needs an action: pool, split, redirect or respond",
        ]
        lines = [l[len(path) + 1:] for l in r.stderr.splitlines() if l.startswith(path + ":")]
        errors = [l for l in lines if ": warning: " not in l]
        self.assertEqual(errors, want, r.stderr)

    def test_shadowed_route_is_a_warning(self):
        text = ("backends: [http://127.0.0.1:8081]\n"
                "routes:\n"
                "  - {match: {pathPrefix: /api}, pool: default}\n"
                "  - {name: v1, match: {pathPrefix: /api/v1}, pool: default}\n")
        path, r = self.check(text)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"{path}:4:5: warning: route \"v1\" can never match: route \"route 1\" "
                      "(line 3) comes first and matches every request it would", r.stderr)

    def test_requests_follow_the_issue_s_routes(self):
        """The issue's example serves: the split's first draws go to the default pool (the only
        pool with a backend that exists), the api and canary pools' backends are down (503),
        golb answers the redirect and the allow list itself."""
        t = self.toy(0)
        g = self.golb(ROUTES.format(port=t.port))
        self.wait_backend(g, t, "UP")
        for path, headers, status in (("/", {}, 200), ("/static/a.css", {}, 503),
                                      ("/", {"X-Canary": "1"}, 503), ("/admin", {}, 403),
                                      ("/", {"Host": "old.example.com"}, 308)):
            self.assertEqual(self.get(g, path, headers=headers).status, status, (path, headers))

    def test_ten_thousand_routes_load_and_serve(self):
        t = self.toy(0)
        lines = [f"listen: 127.0.0.1:0\nhealthCheckTimeout: 0.25\nhealthCheckPeriod: 0.3\n"
                 f"backends: [http://127.0.0.1:{t.port}/health]\nroutes:"]
        for h in range(1000):
            for p in range(10):
                lines.append(f"  - {{match: {{host: h{h}.example.com, pathPrefix: /p{p}}}, "
                             f"pool: default}}")
        text = "\n".join(lines) + "\n"
        path, r = self.check(text)
        self.assertEqual(r.returncode, 0, r.stderr)
        g = self.golb(text)
        self.wait_backend(g, t, "UP")
        self.assertEqual(self.get(g, "/p3/x", headers={"Host": "h999.example.com"}).status, 200)

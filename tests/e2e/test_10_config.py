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

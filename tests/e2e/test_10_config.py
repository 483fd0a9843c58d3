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

"""toy-backend's own behaviour: the contract the golb tests rely on."""

import hashlib
import os
import re
import signal
import socket
import subprocess
import time

from golbtest import GolbTestCase, HTTPConn, pattern_bytes, pattern_sha256, rss_kib, scaled


class ToyBackendTest(GolbTestCase):
    needs_golb = False

    def setUp(self):
        super().setUp()
        if not os.access(os.path.join(self.bindir, "toy-backend"), os.X_OK):
            self.fail(f"{self.bindir}/toy-backend is not built")

    def run_toy(self, *args):
        return subprocess.run([os.path.join(self.bindir, "toy-backend"), *args], capture_output=True,
                              text=True, timeout=scaled(10), stdin=subprocess.DEVNULL)

    def test_listening_line_and_id(self):
        t = self.toy(7)
        m = re.search(r"toy-backend 7 listening on 127\.0\.0\.1:(\d+)", t.log_text())
        self.assertIsNotNone(m, t.log_text())
        self.assertEqual(int(m.group(1)), t.port)
        self.assertNotEqual(t.port, 0)
        r = self.conn(t).request("GET", "/x")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Server-Id"), "7")
        self.assertEqual(r.header("Content-Type"), "text/plain")
        self.assertEqual(r.text.split("\n")[0], "server 7")

    def test_ipv6_listen(self):
        try:
            s = socket.socket(socket.AF_INET6)
            s.bind(("::1", 0))
            s.close()
        except OSError:
            self.skipTest("no IPv6 loopback")
        t = self.toy(2, extra_args=["-listen", "[::1]:0"])
        self.assertEqual(t.host, "[::1]")
        with HTTPConn("::1", t.port) as c:
            self.assertEqual(c.request("GET", "/").header("X-Server-Id"), "2")

    def test_flag_forms(self):
        # -flag=value and --flag forms; the port comes back in the log line.
        t = self.toy(0, extra_args=["--id=3", "--listen", "127.0.0.1:0"])
        self.assertIn("toy-backend 3 listening on", t.log_text())

    def test_help_and_bad_flags(self):
        for flag in ("-h", "-help", "--help"):
            r = self.run_toy(flag)
            self.assertEqual(r.returncode, 0, flag)
            out = r.stdout + r.stderr
            for f in ("-id", "-listen", "-v", "default"):
                self.assertIn(f, out)
            self.assertIn("127.0.0.1:808N", out)
        for bad in (["-id", "10"], ["-id", "x"], ["-nope"], ["-listen"], ["-listen", "nonsense"],
                    ["extra"], ["-id=-1"]):
            r = self.run_toy(*bad)
            self.assertEqual(r.returncode, 2, f"{bad}: {r.stderr}")
            self.assertIn("Usage", r.stderr, bad)

    def test_reuseaddr_restart_same_port(self):
        t = self.toy(1)
        port = t.port
        with HTTPConn("127.0.0.1", port) as c:  # leave a connection behind (TIME_WAIT on close)
            c.request("GET", "/")
        self.assertEqual(t.stop(), 0)
        t2 = self.toy(1, extra_args=["-listen", f"127.0.0.1:{port}"])
        self.assertEqual(t2.port, port)

    def test_sigint_and_sigterm_exit_0(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            t = self.toy(0)
            c = self.conn(t)
            c.request("GET", "/")  # an open keep-alive connection must not block the exit
            self.assertEqual(t.stop(sig), 0)

    def test_health_toggle(self):
        t = self.toy(0)
        c = self.conn(t)
        r = c.request("GET", "/health")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        self.assertEqual(c.request("POST", "/toy/health?status=503").status, 200)
        self.assertEqual(c.request("GET", "/health").status, 503)
        self.assertEqual(c.request("GET", "/toy/health").text, "health: 503\n")
        self.assertEqual(c.request("POST", "/toy/health?status=200").status, 200)
        r = c.request("GET", "/health")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        self.assertEqual(c.request("POST", "/toy/health?status=abc").status, 400)

    def test_echo(self):
        t = self.toy(4)
        c = self.conn(t)
        r = c.request("GET", "/a/b?q=1", headers=[("X-Test", "one"), ("X-Test", "two")])
        e = r.echo()
        self.assertEqual(e["first_line"], "server 4")
        self.assertEqual(e["method"], "GET")
        self.assertEqual(e["path"], "/a/b?q=1")
        self.assertIn(("X-Test", "one"), e["headers"])
        self.assertIn(("X-Test", "two"), e["headers"])
        self.assertIn(("Host", "golb.test"), e["headers"])
        self.assertNotIn("body-length", e)
        body = os.urandom(100000)
        r = c.request("POST", "/up", body=body)
        e = r.echo()
        self.assertEqual(e["body-length"], str(len(body)))
        self.assertEqual(e["body-sha256"], hashlib.sha256(body).hexdigest())
        pieces = [os.urandom(n) for n in (1, 70000, 3, 0, 16384)]
        r = c.request("PUT", "/chunked", body=iter(pieces))
        e = r.echo()
        self.assertEqual(e["method"], "PUT")
        self.assertEqual(e["body-length"], str(sum(map(len, pieces))))
        self.assertEqual(e["body-sha256"], hashlib.sha256(b"".join(pieces)).hexdigest())
        r = c.request("POST", "/empty", body=b"")
        self.assertEqual(r.echo()["body-length"], "0")

    def test_size_pattern_and_chunked(self):
        t = self.toy(0)
        c = self.conn(t)
        for n in (0, 1, 63, 64, 65, 16384, 100001):
            r = c.request("GET", f"/?size={n}")
            self.assertEqual(r.header("Content-Length"), str(n))
            self.assertEqual(r.body, pattern_bytes(n))
            r = c.request("GET", f"/?size={n}&chunked=1")
            self.assertTrue(r.chunked)
            self.assertIsNone(r.header("Content-Length"))
            self.assertEqual(r.body, pattern_bytes(n))
        self.assertEqual(pattern_sha256(100001), hashlib.sha256(pattern_bytes(100001)).hexdigest())
        r = c.request("GET", "/e?chunked=1")
        self.assertTrue(r.chunked)
        self.assertEqual(r.echo()["path"], "/e?chunked=1")

    def test_keepalive_conn_requests_and_stats(self):
        t = self.toy(0)
        c = self.conn(t)
        seen = [int(c.request("GET", f"/{i}").header("X-Conn-Requests")) for i in range(5)]
        self.assertEqual(seen, [1, 2, 3, 4, 5])
        c2 = self.conn(t)
        self.assertEqual(c2.request("GET", "/").header("X-Conn-Requests"), "1")
        r = c2.request("GET", "/toy/stats")
        self.assertEqual(r.text, "connections: 2\nrequests: 7\n")

    def test_pipelining_and_http10(self):
        t = self.toy(0)
        c = self.conn(t)
        c.send(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
               b"abcGET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
        paths = [c.read_response().echo()["path"] for _ in range(3)]
        self.assertEqual(paths, ["/1", "/2", "/3"])
        c10 = self.conn(t)
        c10.send(b"GET /old HTTP/1.0\r\n\r\n")
        r = c10.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.echo()["path"], "/old")
        self.assertTrue(c10.wait_closed())
        c10 = self.conn(t)
        c10.send(b"GET /ka?chunked=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c10.read_response()
        self.assertFalse(r.chunked)  # no chunked coding towards an HTTP/1.0 client
        self.assertEqual(r.header("Connection"), "keep-alive")
        self.assertEqual(c10.request("GET", "/again", version="HTTP/1.0",
                                     headers={"Connection": "keep-alive"}).header("X-Conn-Requests"), "2")

    def test_head(self):
        t = self.toy(0)
        c = self.conn(t)
        r = c.request("HEAD", "/?size=1000")
        self.assertEqual(r.header("Content-Length"), "1000")
        self.assertEqual(r.body, b"")
        self.assertEqual(c.request("GET", "/?size=10").body, pattern_bytes(10))

    def test_status_close_delay_trickle(self):
        t = self.toy(0)
        c = self.conn(t)
        self.assertEqual(c.request("GET", "/?status=418").status, 418)
        r = c.request("GET", "/?status=204")
        self.assertEqual((r.status, r.body), (204, b""))
        t0 = time.monotonic()
        self.assertEqual(c.request("GET", "/?delay=300").status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)
        t0 = time.monotonic()
        r = c.request("GET", f"/?size={16384 * 4}&trickle=100")
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)  # 3 pauses between 4 pieces
        self.assertEqual(r.body, pattern_bytes(16384 * 4))
        r = c.request("GET", "/?close=1")
        self.assertEqual(r.header("Connection"), "close")
        self.assertTrue(c.wait_closed())

    def test_default_delay_and_its_endpoint(self):
        t = self.toy(0, extra_args=["-delay", "200"])
        c = self.conn(t)
        t0 = time.monotonic()
        self.assertEqual(c.request("GET", "/").status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.19)
        t0 = time.monotonic()
        self.assertEqual(c.request("GET", "/health").status, 200)
        self.assertEqual(c.request("GET", "/?delay=0").status, 200)
        self.assertLess(time.monotonic() - t0, 0.15, "/health and delay=0 are not delayed")
        self.assertEqual(c.request("GET", "/toy/delay").text, "delay: 200\n")
        self.assertEqual(c.request("POST", "/toy/delay?delay=0").text, "delay: 0\n")
        t0 = time.monotonic()
        self.assertEqual(c.request("GET", "/").status, 200)
        self.assertLess(time.monotonic() - t0, 0.15)
        self.assertEqual(c.request("POST", "/toy/delay").status, 400)

    def test_stall_schedule(self):
        t = self.toy(0, extra_args=["-stall", "300/600"])
        c = self.conn(t)
        slow = 0
        for _ in range(12):  # ~1.2 s or more: at least one stall window is met
            t0 = time.monotonic()
            self.assertEqual(c.request("GET", "/").status, 200)
            slow += time.monotonic() - t0 > 0.05
            time.sleep(0.1)  # spacing the probes over the schedule, not a synchronisation
        self.assertGreater(slow, 0)
        self.assertLess(slow, 12)
        for bad in (["-stall", "300"], ["-stall", "600/300"], ["-delay", "x"]):
            r = self.run_toy(*bad)
            self.assertEqual(r.returncode, 2, f"{bad}: {r.stderr}")

    def test_hang(self):
        t = self.toy(0)
        c = self.conn(t)
        c.send(b"GET /?hang=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertFalse(c.wait_closed(timeout=0.3))  # no answer, connection still open
        c.close()
        self.assertEqual(self.conn(t).request("GET", "/").status, 200)

    def test_malformed_400_and_close(self):
        t = self.toy(0)
        for raw in (b"GARBAGE\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
                    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
            c = self.conn(t)
            c.send(raw)
            r = c.read_response()
            self.assertEqual(r.status, 400, raw)
            self.assertTrue(c.wait_closed(), raw)

    def test_big_upload_memory_bounded(self):
        t = self.toy(0)
        c = self.conn(t, timeout=30)
        before = rss_kib(t.pid)
        block = os.urandom(1 << 20)
        n = 64
        h = hashlib.sha256()
        for _ in range(n):
            h.update(block)
        r = c.request("POST", "/big", body=(block for _ in range(n)))
        e = r.echo()
        self.assertEqual(e["body-length"], str(n << 20))
        self.assertEqual(e["body-sha256"], h.hexdigest())
        growth = rss_kib(t.pid) - before
        self.assertLess(growth, 8 * 1024, f"toy RSS grew {growth} KiB")
        got = hashlib.sha256()
        r = c.request("GET", f"/?size={n << 20}", sink=got.update)
        self.assertEqual(r.body_len, n << 20)
        self.assertEqual(got.hexdigest(), pattern_sha256(n << 20))

"""Proxying: round-robin rotation, header rewriting, upstream keep-alive, error answers 502/503/504."""

import socket
import time

import golbtest
from golbtest import ConnectionClosed, GolbTestCase, assert_rotation, scaled


def short_error(testcase, r, status):
    testcase.assertEqual(r.status, status, r.text)
    testcase.assertTrue(0 < len(r.body) < 1024, f"error body should be short text: {r.body[:200]!r}")
    testcase.assertIsNone(r.header("X-Server-Id"), "error answer must come from golb, not a backend")


class RotationTest(GolbTestCase):
    def test_strict_rotation_fresh_connections(self):
        toys = self.toys(3)
        g = self.golb_for(toys)
        ids = [int(self.get(g, "/").header("X-Server-Id")) for _ in range(9)]
        self.assertEqual(sorted(ids), [0, 0, 0, 1, 1, 1, 2, 2, 2], ids)
        assert_rotation(self, ids, 3)

    def test_rotation_per_request_on_one_client_connection(self):
        toys = self.toys(3)
        g = self.golb_for(toys)
        c = self.conn(g)
        ids = [int(c.request("GET", f"/{i}").header("X-Server-Id")) for i in range(9)]
        assert_rotation(self, ids, 3)

    def test_echo_matches_server(self):
        toys = self.toys(2)
        g = self.golb_for(toys)
        for _ in range(4):
            r = self.get(g, "/x/y?z=1")
            e = r.echo()
            self.assertEqual(e["first_line"], f"server {r.header('X-Server-Id')}")
            self.assertEqual(e["method"], "GET")
            self.assertEqual(e["path"], "/x/y?z=1")

    def test_methods_and_status_pass_through(self):
        t = self.toy(0)
        g = self.golb_for([t])
        for m in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            r = self.request(g, m, "/m", body=b"x" if m in ("POST", "PUT", "PATCH") else None)
            self.assertEqual(r.status, 200, m)
            self.assertEqual(r.echo()["method"], m)
        for st in (201, 204, 301, 404, 418, 500, 503):
            r = self.get(g, f"/?status={st}")
            self.assertEqual(r.status, st)
            self.assertEqual(r.header("X-Server-Id"), "0")


class HeaderRewriteTest(GolbTestCase):
    def setUp(self):
        super().setUp()
        self.t = self.toy(0)
        self.g = self.golb_for([self.t])

    def test_x_forwarded_headers(self):
        c = self.conn(self.g)
        r = c.request("GET", "/fwd", host="example.test:1234")
        e = r.echo()
        hdr = {k.lower(): [] for k, _ in e["headers"]}
        for k, v in e["headers"]:
            hdr[k.lower()].append(v)
        self.assertEqual(hdr.get("x-forwarded-for"), ["127.0.0.1"], e["headers"])
        want = "https" if golbtest.TLS_MODE else "http"
        self.assertEqual(hdr.get("x-forwarded-proto"), [want], e["headers"])
        self.assertEqual(hdr.get("x-forwarded-host"), ["example.test:1234"], e["headers"])
        self.assertEqual(hdr.get("host"), ["example.test:1234"], "Host must be passed on unchanged")

    def test_x_forwarded_for_with_client_value(self):
        r = self.conn(self.g).request("GET", "/", headers={"X-Forwarded-For": "203.0.113.7"})
        xff = r.echo_header("X-Forwarded-For")
        self.assertIsNotNone(xff)
        self.assertEqual(xff.split(",")[-1].strip(), "127.0.0.1", xff)
        self.assertEqual(len([1 for k, _ in r.echo()["headers"] if k.lower() == "x-forwarded-for"]), 1)

    def test_hop_by_hop_request_headers_removed(self):
        r = self.conn(self.g).request("GET", "/hop", headers=[
            ("Connection", "keep-alive, X-Hop-Custom"),
            ("X-Hop-Custom", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "X-Trail"),
            ("Upgrade", "h2c"),
            ("X-End-To-End", "kept"),
            ("User-Agent", "golbtest/1"),
        ])
        self.assertEqual(r.status, 200, r.text)
        names = {k.lower(): v for k, v in r.echo()["headers"]}
        for gone in ("x-hop-custom", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"):
            self.assertNotIn(gone, names, f"{gone} forwarded: {r.echo()['headers']}")
        self.assertNotIn("x-hop-custom", names.get("connection", "").lower())
        self.assertEqual(names.get("x-end-to-end"), "kept")
        self.assertEqual(names.get("user-agent"), "golbtest/1")

    def test_hop_by_hop_response_headers_removed(self):
        def handler(conn, head, path):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Resp-Hop\r\n"
                         b"X-Resp-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
                         b"X-Resp-End: kept\r\n\r\nok")
            return True
        u = self.raw_upstream(handler)
        g = self.golb_for([u])
        r = self.get(g, "/")
        self.assertEqual((r.status, r.body), (200, b"ok"))
        for gone in ("X-Resp-Hop", "Keep-Alive", "Proxy-Connection"):
            self.assertIsNone(r.header(gone), f"{gone} passed to the client: {r.headers}")
        self.assertNotIn("x-resp-hop", (r.header("Connection") or "").lower())
        self.assertEqual(r.header("X-Resp-End"), "kept")


class UpstreamKeepAliveTest(GolbTestCase):
    def test_one_client_connection_reuses_one_upstream_connection(self):
        t = self.toy(0)
        g = self.golb_for([t])
        c = self.conn(g)
        seq = []
        for i in range(20):
            r = c.request("GET", f"/{i}")
            self.assertEqual(r.status, 200)
            seq.append(int(r.header("X-Conn-Requests")))
        self.assertEqual(seq, list(range(1, 21)), "upstream connection not reused every time")

    def test_pool_shared_across_client_connections(self):
        t = self.toy(0)
        g = self.golb_for([t], workers=2)
        seq = [int(self.get(g, f"/{i}").header("X-Conn-Requests")) for i in range(10)]
        # Two workers, each with its own pool: at most two upstream connections for ten requests.
        self.assertGreaterEqual(max(seq), 5, seq)

    def test_upstream_close_is_not_reused(self):
        t = self.toy(0)
        g = self.golb_for([t])
        c = self.conn(g)
        self.assertEqual(c.request("GET", "/?close=1").status, 200)
        for i in range(3):
            r = c.request("GET", f"/after{i}")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("X-Conn-Requests"), str(i + 1))

    def test_pooled_connection_closed_by_backend_restart(self):
        # A pooled upstream connection whose backend went away and came back: the next request
        # must not fail (golb drops or replays on the dead pooled connection).
        t = self.toy(0)
        g = self.golb_for([t], period=60, timeout=1)
        port = t.port
        self.assertEqual(self.get(g, "/warm").status, 200)
        t.stop()
        t2 = self.toy(0, extra_args=["-listen", f"127.0.0.1:{port}"])
        r = self.get(g, "/again")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.header("X-Conn-Requests"), "1")
        self.assertTrue(t2.alive())


class ErrorAnswerTest(GolbTestCase):
    def test_502_connection_refused(self):
        t = self.toy(0)
        g = self.golb_for([t], period=60, timeout=1)
        t.kill()
        short_error(self, self.get(g, "/"), 502)

    def test_502_garbage_response(self):
        def handler(conn, head, path):
            conn.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            return False
        g = self.golb_for([self.raw_upstream(handler)])
        short_error(self, self.get(g, "/"), 502)

    def test_502_reset_before_response(self):
        def handler(conn, head, path):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return False  # closed with RST, no answer
        g = self.golb_for([self.raw_upstream(handler)])
        short_error(self, self.get(g, "/"), 502)

    def test_502_close_before_response(self):
        g = self.golb_for([self.raw_upstream(lambda conn, head, path: False)])
        short_error(self, self.get(g, "/"), 502)

    def test_truncated_upstream_body_cuts_client(self):
        def handler(conn, head, path):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
            return False
        g = self.golb_for([self.raw_upstream(handler)])
        c = self.conn(g)
        c.send_request("GET", "/")
        # The head was already sent: golb must cut the connection, never complete the body.
        with self.assertRaises(ConnectionClosed):
            c.read_response()

    def test_503_no_healthy_backend(self):
        u = self.raw_upstream(lambda conn, head, path: False, health_status=500)
        g = self.golb_for([u], wait_up=False)
        self.wait_backend(g, u, "DOWN")
        short_error(self, self.get(g, "/"), 503)
        self.assertEqual(u.requests, [], "a request was sent to a DOWN backend")

    def test_504_upstream_hangs(self):
        t = self.toy(0)
        g = self.golb_for([t], upstreamTimeout=1)
        c = self.conn(g, timeout=10)
        t0 = time.monotonic()
        r = c.request("GET", "/?hang=1")
        dt = time.monotonic() - t0
        short_error(self, r, 504)
        self.assertGreaterEqual(dt, 0.9)
        self.assertLess(dt, 1 + scaled(2), "504 came far later than upstreamTimeout")

    def test_504_slow_head(self):
        t = self.toy(0)
        g = self.golb_for([t], upstreamTimeout=1)
        short_error(self, self.get(g, "/?delay=3000", timeout=10), 504)
        # The backend itself stays usable.
        self.assertEqual(self.get(g, "/").status, 200)

    def test_connect_timeout(self):
        # A backend that was UP but whose listener stops accepting with a full queue: SYNs are
        # dropped, so golb's connect hangs until connectTimeout.
        u = self.raw_upstream(lambda conn, head, path: False)
        g = self.golb_for([u], period=60, timeout=5, connectTimeout=1, retries=0, maxFails=0)
        port = u.port
        u.close()
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(ls.close)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", port))
        ls.listen(0)
        fillers = []
        for _ in range(4):  # fill the accept queue (never accepted)
            f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.addCleanup(f.close)
            f.settimeout(0.2)
            try:
                f.connect(("127.0.0.1", port))
            except OSError:
                pass
            fillers.append(f)
        t0 = time.monotonic()
        r = self.get(g, "/", timeout=10)
        dt = time.monotonic() - t0
        self.assertIn(r.status, (502, 504), r.text)
        short_error(self, r, r.status)
        self.assertGreaterEqual(dt, 0.9, "answered before connectTimeout: was the queue full?")
        self.assertLess(dt, 1 + scaled(2))

    def test_connect_failure_retries_next_backend(self):
        toys = self.toys(3)
        g = self.golb_for(toys, period=60, timeout=1, maxFails=0)
        toys[1].kill()
        for i in range(9):
            r = self.get(g, f"/{i}")
            self.assertEqual(r.status, 200, f"request {i}: {r.text}")
            self.assertNotEqual(r.header("X-Server-Id"), "1")

    def test_passive_failures_mark_down(self):
        toys = self.toys(2)
        g = self.golb_for(toys, period=60, timeout=1, maxFails=1)
        toys[1].kill()
        for i in range(4):
            self.assertEqual(self.get(g, f"/{i}").status, 200)
        self.wait_backend(g, toys[1], "DOWN")

"""HTTP/1.x towards the client: pipelining, HEAD, HTTP/1.0, malformed requests, limits."""

import hashlib
import os
import re
import time

import golbtest
from golbtest import ConnectionClosed, GolbTestCase, pattern_bytes, scaled, wait_until


class Http1ClientSideTest(GolbTestCase):
    def setUp(self):
        super().setUp()
        self.t = self.toy(0)
        self.g = self.golb_for([self.t])

    def toy_requests(self):
        """Request lines the toy logged (it runs with -v), health checks excluded."""
        return [m for m in re.findall(r"request \d+ on connection: (\S+ \S+)", self.t.log_text())
                if not m.endswith(" /health")]

    def test_pipelined_requests_answered_in_order(self):
        c = self.conn(self.g)
        c.send(b"GET /p1?delay=200 HTTP/1.1\r\nHost: h\r\n\r\n"
               b"POST /p2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
               b"GET /p3?size=100 HTTP/1.1\r\nHost: h\r\n\r\n"
               b"GET /p4 HTTP/1.1\r\nHost: h\r\n\r\n")
        r1, r2, r3, r4 = (c.read_response() for _ in range(4))
        self.assertEqual([r.status for r in (r1, r2, r3, r4)], [200] * 4)
        self.assertEqual(r1.echo()["path"], "/p1?delay=200")
        self.assertEqual(r2.echo()["path"], "/p2")
        self.assertEqual(r2.echo()["body-sha256"], hashlib.sha256(b"hello").hexdigest())
        self.assertEqual(r3.body, pattern_bytes(100))
        self.assertEqual(r4.echo()["path"], "/p4")
        self.assertEqual(c.request("GET", "/after").status, 200)

    def test_pipelined_across_backends_in_order(self):
        t2 = self.toy(1)
        g = self.golb_for([self.t, t2])
        c = self.conn(g)
        paths = [f"/q{i}?delay={300 if i % 2 == 0 else 0}" for i in range(6)]
        c.send(b"".join(f"GET {p} HTTP/1.1\r\nHost: h\r\n\r\n".encode() for p in paths))
        got = [c.read_response().echo() for _ in paths]
        self.assertEqual([e["path"] for e in got], paths)
        self.assertEqual({e["server"] for e in got}, {0, 1})

    def test_http09_request_line_is_answered_at_once(self):
        # "GET /path" and a line end is all an HTTP/0.9 client sends: golb must not wait for a
        # blank line (clientHeaderTimeout is 10 s here) but answer 400 as soon as the line is in.
        g = self.golb_for([self.t], clientHeaderTimeout=10)
        c = self.conn(g)
        t0 = time.monotonic()
        c.send(b"GET /path\r\n")
        r = c.read_response(timeout=5)
        self.assertEqual(r.status, 400)
        self.assertLess(time.monotonic() - t0, scaled(3))

    def test_head(self):
        c = self.conn(self.g)
        r = c.request("HEAD", "/?size=1000")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Length"), "1000")
        self.assertEqual(r.body, b"")
        r = c.request("HEAD", "/?size=70000&chunked=1")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")
        # The connection is still in sync: no stray body bytes arrive before the next response.
        r = c.request("GET", "/?size=10")
        self.assertEqual(r.body, pattern_bytes(10))

    def test_http10_client(self):
        c = self.conn(self.g)
        c.send(b"GET /old HTTP/1.0\r\nHost: h\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.echo()["path"], "/old")
        self.assertFalse(r.chunked)
        self.assertTrue(c.wait_closed(), "golb kept an HTTP/1.0 connection without keep-alive open")

    def test_http10_client_chunked_upstream_body(self):
        # The toy answers golb (HTTP/1.1) with chunked coding: golb must not pass it to a 1.0 client.
        c = self.conn(self.g)
        c.send(b"GET /?size=50000&chunked=1 HTTP/1.0\r\nHost: h\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertFalse(r.chunked, r.headers)
        self.assertNotIn("chunked", (r.header("Transfer-Encoding") or "").lower())
        self.assertEqual(r.body, pattern_bytes(50000))

    def test_http10_without_host(self):
        # Host is optional in HTTP/1.0 but required in the HTTP/1.1 golb speaks upstream
        # (RFC 9112 §3.2): golb must supply one rather than forward a Host-less 1.1 request.
        c = self.conn(self.g)
        c.send(b"GET /nohost HTTP/1.0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.echo()["path"], "/nohost")
        self.assertIsNotNone(r.echo_header("Host"), r.text)

    def test_http10_keep_alive(self):
        c = self.conn(self.g)
        for i in range(3):
            r = c.request("GET", f"/k{i}", version="HTTP/1.0", headers={"Connection": "keep-alive"})
            self.assertEqual(r.status, 200)
            self.assertEqual(r.echo()["path"], f"/k{i}")

    def test_keepalive_many_requests_one_socket(self):
        c = self.conn(self.g)
        for i in range(50):
            r = c.request("GET", f"/n{i}")
            self.assertEqual(r.status, 200)
            self.assertNotEqual((r.header("Connection") or "").lower(), "close")

    def test_connection_close_honoured(self):
        c = self.conn(self.g)
        r = c.request("GET", "/", headers={"Connection": "close"})
        self.assertEqual(r.status, 200)
        self.assertTrue(c.wait_closed())

    def test_expect_100_continue(self):
        c = self.conn(self.g)
        body = os.urandom(300000)
        c.send(b"POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
        # A client waits a little for 100 Continue and sends the body anyway (RFC 9110 §10.1.1).
        c.sock.settimeout(scaled(1))
        try:
            peek = c.sock.recv(65536)
            c.buf += peek
        except OSError:
            pass
        c.sock.settimeout(c.timeout)
        c.send(body)
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.echo()["body-sha256"], hashlib.sha256(body).hexdigest())

    def assert_rejected(self, raw, status=400):
        before = len(self.toy_requests())
        c = self.conn(self.g)
        c.send(raw)
        r = c.read_response()
        self.assertEqual(r.status, status, f"{raw[:80]!r}: {r.text}")
        self.assertTrue(0 < len(r.body) < 1024, r.body)
        self.assertTrue(c.wait_closed(), f"connection left open after {status}")
        self.assertEqual(len(self.toy_requests()), before, "a rejected request reached the upstream")

    def test_malformed_requests_400(self):
        cases = [
            b"GARBAGE\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n x-folded: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
            b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host (RFC 9112 §3.2)
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\nab",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Nul: a\x00b\r\n\r\n",
        ]
        for raw in cases:
            with self.subTest(raw=raw[:60]):
                self.assert_rejected(raw)

    def test_bad_chunked_request_body(self):
        c = self.conn(self.g)
        c.send(b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
        # The head may already have been forwarded when the bad framing is seen: then golb can only
        # cut the exchange. Either way no 2xx may come back and the connection must close.
        try:
            r = c.read_response(timeout=5)
        except (ConnectionClosed, OSError):
            r = None
        if r is not None:
            self.assertGreaterEqual(r.status, 400, r.text)
        self.assertTrue(c.wait_closed())

    def test_body_that_looks_like_a_request_stays_a_body(self):
        inner = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
        c = self.conn(self.g)
        c.send(b"POST /outer HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (len(inner), inner))
        self.assertEqual(c.read_response().echo()["body-length"], str(len(inner)))
        c.send(b"POST /outer2 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"%x\r\n%s\r\n0\r\n\r\n" % (len(inner), inner))
        self.assertEqual(c.read_response().echo()["body-length"], str(len(inner)))
        self.assertEqual(c.request("GET", "/next").echo()["path"], "/next")
        self.assertNotIn("/smuggled", " ".join(self.toy_requests()))

    def test_unsupported_version_505(self):
        self.assert_rejected(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505)

    def test_uri_too_long_414(self):
        self.assert_rejected(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414)

    def test_headers_too_large_431(self):
        big = b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 1000) for i in range(20))
        self.assert_rejected(b"GET / HTTP/1.1\r\nHost: h\r\n" + big + b"\r\n", 431)

    def test_client_header_timeout_closes(self):
        g = self.golb_for([self.t], clientHeaderTimeout=1)
        c = self.conn(g)
        c.send(b"GET / HTTP/1.1\r\nHost: h\r\n")  # head never completed
        t0 = time.monotonic()
        try:
            r = c.read_response(timeout=5)
        except (ConnectionClosed, OSError):
            r = None  # closing without an answer is acceptable too
        if r is not None:
            self.assertEqual(r.status, 408)
        self.assertTrue(c.wait_closed(timeout=5))
        self.assertGreaterEqual(time.monotonic() - t0, 0.8)

    def test_keepalive_timeout_closes_idle_client(self):
        g = self.golb_for([self.t], keepAliveTimeout=1)
        c = self.conn(g)
        self.assertEqual(c.request("GET", "/").status, 200)
        t0 = time.monotonic()
        self.assertTrue(c.wait_closed(timeout=5), "idle keep-alive connection never closed")
        self.assertGreaterEqual(time.monotonic() - t0, 0.8)

    @golbtest.plain_only("the connection over the limit is closed before any TLS handshake")
    def test_max_connections(self):
        g = self.golb_for([self.t], maxConnections=2, workers=1)
        held = [self.conn(g), self.conn(g)]
        for c in held:
            self.assertEqual(c.request("GET", "/").status, 200)
        extra = self.conn(g)
        try:
            extra.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            r = extra.read_response(timeout=5)
            self.assertEqual(r.status, 503, "a connection over maxConnections was served")
        except (ConnectionClosed, OSError):
            pass  # accepted and closed at once: the documented answer
        held[0].close()
        def served():
            with self.conn(g) as c:
                return c.request("GET", "/").status == 200
        wait_until(served, 5, "a slot to free up after a client left")

"""Body sizes around golb's splice(2) threshold (32 KiB left of a Content-Length body, or any
close-delimited body): exact bytes both ways, keep-alive reuse afterwards on both sides, close-
delimited responses to HTTP/1.1 and 1.0 clients, and an upstream dying mid-body is a cut."""

import hashlib
import os
import socket

import golbtest
from golbtest import (ConnectionClosed, GolbTestCase, open_fds, pattern_bytes, pattern_sha256, scaled,
                      wait_until)

MIB = 1 << 20
SIZES = [0, 1, 16383, 16384, 32767, 32768, 32769, MIB + 7]
BIG = 5 * MIB


class SpliceToyTest(GolbTestCase):
    def setUp(self):
        super().setUp()
        self.t = self.toy(0)
        self.g = self.golb_for([self.t], workers=1)

    def test_response_sizes_around_the_threshold(self):
        c = self.conn(self.g, timeout=20)
        for k, n in enumerate(SIZES):
            with self.subTest(size=n):
                r = c.request("GET", f"/?size={n}")
                self.assertEqual(r.status, 200)
                self.assertEqual(r.header("Content-Length"), str(n))
                self.assertEqual(r.body_len, n)
                self.assertEqual(hashlib.sha256(r.body).hexdigest(), pattern_sha256(n))
                # Keep-alive afterwards on the same client connection, and the upstream
                # connection was reused: golb stopped reading exactly at the end of the body.
                r2 = c.request("GET", f"/after{n}")
                self.assertEqual(r2.status, 200)
                self.assertEqual(r2.echo()["path"], f"/after{n}")
                self.assertEqual(r2.header("X-Conn-Requests"), str(2 * k + 2),
                                 "upstream connection not reused after the body")

    def test_request_sizes_around_the_threshold(self):
        c = self.conn(self.g, timeout=20)
        for k, n in enumerate(SIZES):
            for split in (False, True):
                with self.subTest(size=n, head_first=split):
                    body = os.urandom(n)
                    head = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % n
                    if split:
                        # Head alone first: golb has the exchange going before any body byte
                        # arrives, so the whole body can take the pipe.
                        c.send(head)
                        c.sock.sendall(body)
                    else:
                        c.send(head + body)
                    r = c.read_response()
                    self.assertEqual(r.status, 200, r.text)
                    e = r.echo()
                    self.assertEqual(e.get("body-length", "0"), str(n))
                    if n:
                        self.assertEqual(e["body-sha256"], hashlib.sha256(body).hexdigest())
                    r2 = c.request("GET", f"/after{n}")
                    self.assertEqual(r2.echo()["path"], f"/after{n}")

    def test_pipelined_request_behind_a_spliced_body(self):
        # The spliced request body must stop at exactly Content-Length: the bytes behind it are the
        # next request, read by golb's parser, never sent upstream as body.
        c = self.conn(self.g, timeout=20)
        for n in (32768, 32769, MIB + 7):
            with self.subTest(size=n):
                body = os.urandom(n)
                c.send(b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % n + body +
                       b"GET /behind HTTP/1.1\r\nHost: h\r\n\r\n")
                r1, r2 = c.read_response(), c.read_response()
                self.assertEqual(r1.echo()["body-length"], str(n))
                self.assertEqual(r1.echo()["body-sha256"], hashlib.sha256(body).hexdigest())
                self.assertEqual(r2.echo()["path"], "/behind")
                self.assertEqual(r2.echo().get("body-length"), None)

    def test_head_of_a_large_body(self):
        c = self.conn(self.g, timeout=20)
        r = c.request("HEAD", f"/?size={5 * MIB}")
        self.assertEqual((r.status, r.header("Content-Length"), r.body), (200, str(5 * MIB), b""))
        r = c.request("GET", "/after-head")  # nothing of a body was waiting on the connection
        self.assertEqual(r.echo()["path"], "/after-head")
        self.assertEqual(bytes(c.buf), b"")

    @golbtest.plain_only("raw sockets, and no splice through TLS")
    def test_aborted_transfers_leak_no_descriptors(self):
        # Clients that vanish in the middle of spliced bodies, both directions: golb closes the
        # upstream side and the pipes (a pipe holding bytes cannot be pooled), so its descriptor
        # count comes back to where it was.
        c = self.conn(self.g, timeout=20)
        for _ in range(2):  # warm-up: the pipe pool and the upstream pool hold what they keep
            self.assertEqual(c.request("GET", f"/?size={MIB}").body_len, MIB)
            self.assertEqual(c.request("POST", "/warm", body=os.urandom(MIB)).status, 200)
        c.close()
        base = open_fds(self.g.pid)
        for i in range(10):
            d = socket.create_connection((self.g.host, self.g.port), timeout=scaled(10))
            d.sendall(b"GET /?size=%d HTTP/1.1\r\nHost: h\r\n\r\n" % (64 * MIB))
            got = 0
            while got < 200000:
                got += len(d.recv(65536))
            d.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                         if i % 2 else b"\x00" * 8)
            d.close()
            u = socket.create_connection((self.g.host, self.g.port), timeout=scaled(10))
            u.sendall(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % (64 * MIB))
            u.sendall(os.urandom(300000))
            u.close()
        wait_until(lambda: open_fds(self.g.pid) <= base + 4, 10,
                   f"golb's descriptors to come back to {base} (+4)")
        self.assertEqual(self.get(self.g, f"/?size={MIB}").body_len, MIB)

    def test_both_directions_large_on_one_connection(self):
        c = self.conn(self.g, timeout=20)
        body = os.urandom(MIB + 7)
        r = c.request("POST", f"/both?size={MIB + 7}", body=body)
        self.assertEqual(r.status, 200)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), pattern_sha256(MIB + 7))
        self.assertEqual(c.request("GET", "/again").status, 200)


def close_delimited(conn, head, path):
    """GET /close-delimited: 5 MiB of the pattern without Content-Length, end marked by close.
    GET /die-midway[-rst]: Content-Length 5 MiB, dies after half (FIN, or RST with -rst).
    GET /cl-split?first=K: Content-Length 1 MiB+7, head and K body bytes in one write, then the
    rest. Anything else: a small keep-alive 200."""
    p, _, q = path.partition("?")
    conn.settimeout(scaled(20))
    if p == "/close-delimited":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
        for off in range(0, BIG, MIB):
            conn.sendall(pattern_bytes(min(MIB, BIG - off), off))
        conn.shutdown(socket.SHUT_WR)
        return False
    if p.startswith("/die-midway"):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG)
        conn.sendall(pattern_bytes(BIG // 2))
        if p.endswith("-rst"):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        return False
    if p == "/cl-split":
        k = int(q.split("=")[1])
        n = MIB + 7
        data = pattern_bytes(n)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + data[:k])
        conn.sendall(data[k:])
        return True
    if p == "/cl-extra":
        # A spliced Content-Length body with a fake response right behind it in the stream.
        n = MIB + 7
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + pattern_bytes(n) +
                     b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsmuggle")
        try:
            d = conn.recv(65536)
        except OSError:
            d = b""
        EXTRA_FATE.append("reused" if d else "closed")
        return False
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    return True


EXTRA_FATE = []


class SpliceRawTest(GolbTestCase):
    def setUp(self):
        super().setUp()
        EXTRA_FATE.clear()
        self.u = self.raw_upstream(close_delimited)
        self.g = self.golb_for([self.u], maxFails=0)

    def test_close_delimited_5mib_to_http11_and_http10(self):
        for version in ("HTTP/1.1", "HTTP/1.0"):
            with self.subTest(version=version):
                c = self.conn(self.g, timeout=20)
                r = c.request("GET", "/close-delimited", version=version)
                self.assertEqual(r.status, 200)
                self.assertIsNone(r.header("Content-Length"), r.headers)
                self.assertEqual((r.header("Connection") or "").lower(), "close", r.headers)
                self.assertEqual(r.body_len, BIG)
                self.assertEqual(hashlib.sha256(r.body).hexdigest(), pattern_sha256(BIG))
                self.assertTrue(c.eof, "body read until close")
        self.assertEqual(self.get(self.g, "/ok").body, b"ok")

    def test_upstream_dies_mid_body_is_a_cut(self):
        for path in ("/die-midway", "/die-midway-rst"):
            with self.subTest(path=path):
                c = self.conn(self.g, timeout=20)
                got = [0]
                c.send_request("GET", path)

                def count(b):
                    got[0] += len(b)
                with self.assertRaises(ConnectionClosed, msg="a truncated body came out complete"):
                    c.read_response(sink=count)
                self.assertLess(got[0], BIG)
                self.assertEqual(self.get(self.g, "/ok").body, b"ok")

    def test_head_and_body_start_in_one_write(self):
        c = self.conn(self.g, timeout=20)
        for k in (0, 1, 16383, 16384, 40000, 65536):
            with self.subTest(first=k):
                r = c.request("GET", f"/cl-split?first={k}")
                self.assertEqual(r.status, 200)
                self.assertEqual(hashlib.sha256(r.body).hexdigest(), pattern_sha256(MIB + 7))
                self.assertEqual(c.request("GET", "/ok").body, b"ok")

    def test_bytes_behind_a_spliced_response_body(self):
        c = self.conn(self.g, timeout=20)
        r = c.request("GET", "/cl-extra")
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), pattern_sha256(MIB + 7))
        r = c.request("GET", "/ok")
        self.assertEqual((r.status, r.body), (200, b"ok"), "the smuggled response reached the client")
        self.assertEqual(bytes(c.buf), b"")
        wait_until(lambda: EXTRA_FATE, 5, "the out-of-step upstream connection to end")
        self.assertEqual(EXTRA_FATE, ["closed"], "an out-of-step upstream connection was reused")

"""requestBufferSize: a request is held until its body is complete or requestBufferSize bytes of it
came, before golb takes a backend, so a client that trickles its body costs no backend connection;
bodyTimeout bounds the wait (408); larger bodies stream on after that; 0 streams at once."""

import socket
import time

from golbtest import GolbTestCase, golb_config, scaled, wait_until


def data_conns(u):
    """Connections to the recording upstream that are not health checks (accepted ones without
    a byte yet included)."""
    with u.lock:
        return [c for c in u.conns if not bytes(c.raw).startswith(b"GET /health")]


def trickle(s, pieces, pause):
    for p in pieces:
        s.sendall(p)
        time.sleep(pause)  # the client's pace: the behaviour under test, not a synchronisation


def read_status(s):
    s.settimeout(scaled(10))
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    return buf.split(b"\r\n", 1)[0]


class RequestBufferingTest(GolbTestCase):
    def golb_with(self, u, **cfg):
        # Health checks every 30 s: after the first round, every new upstream connection is a
        # request's.
        g = self.golb(golb_config([u], period=30, timeout=3, workers=1, **cfg))
        self.wait_backend(g, u, "UP")
        return g

    def test_a_trickled_body_takes_no_backend_until_it_is_complete(self):
        u = self.recording_upstream()
        g = self.golb_with(u)
        body = b"x" * 1000
        with socket.create_connection(("127.0.0.1", g.port)) as s:
            s.sendall(b"POST /slow HTTP/1.1\r\nHost: golb.test\r\nContent-Length: %d\r\n\r\n"
                      % len(body))
            trickle(s, [body[i:i + 100] for i in range(0, 900, 100)], 0.05)
            self.assertEqual(data_conns(u), [], "a backend connection was taken for a slow body")
            s.sendall(body[900:])
            self.assertEqual(read_status(s), b"HTTP/1.1 200 OK")
        reqs = u.requests(complete_only=True)
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0].body, body)
        self.assertEqual(len(data_conns(u)), 1)

    def test_a_trickled_chunked_body_takes_no_backend_until_it_is_complete(self):
        u = self.recording_upstream()
        g = self.golb_with(u)
        chunks = [b"%x\r\n%s\r\n" % (50, b"c" * 50) for _ in range(8)] + [b"0\r\n\r\n"]
        with socket.create_connection(("127.0.0.1", g.port)) as s:
            s.sendall(b"POST /slow HTTP/1.1\r\nHost: golb.test\r\nTransfer-Encoding: chunked\r\n\r\n")
            trickle(s, chunks[:-1], 0.05)
            self.assertEqual(data_conns(u), [])
            s.sendall(chunks[-1])
            self.assertEqual(read_status(s), b"HTTP/1.1 200 OK")
        reqs = u.requests(complete_only=True)
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0].body, b"c" * 400)

    def test_a_body_past_request_buffer_size_streams_on_after_it(self):
        u = self.recording_upstream()
        g = self.golb_with(u, requestBufferSize=1024)
        body = bytes(range(256)) * 16  # 4096
        with socket.create_connection(("127.0.0.1", g.port)) as s:
            s.sendall(b"POST /big HTTP/1.1\r\nHost: golb.test\r\nContent-Length: %d\r\n\r\n"
                      % len(body))
            s.sendall(body[:1536])
            # requestBufferSize came: the backend is taken now, the rest streams.
            wait_until(lambda: u.requests(), 5, "the request at the backend")
            s.sendall(body[1536:])
            self.assertEqual(read_status(s), b"HTTP/1.1 200 OK")
        reqs = u.requests(complete_only=True)
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0].body, body)

    def test_a_body_that_stops_while_held_gets_408_and_no_backend(self):
        u = self.recording_upstream()
        g = self.golb_with(u, bodyTimeout=0.5)
        with socket.create_connection(("127.0.0.1", g.port)) as s:
            s.sendall(b"POST /stuck HTTP/1.1\r\nHost: golb.test\r\nContent-Length: 100\r\n\r\n"
                      b"only ten..")
            self.assertEqual(read_status(s), b"HTTP/1.1 408 Request Timeout")
        self.assertEqual(data_conns(u), [])

    def test_request_buffer_size_0_streams_at_once(self):
        u = self.recording_upstream()
        g = self.golb_with(u, requestBufferSize=0)
        with socket.create_connection(("127.0.0.1", g.port)) as s:
            s.sendall(b"POST /now HTTP/1.1\r\nHost: golb.test\r\nContent-Length: 10\r\n\r\n01234")
            wait_until(lambda: u.requests(), 5, "the request at the backend before its body ends")
            s.sendall(b"56789")
            self.assertEqual(read_status(s), b"HTTP/1.1 200 OK")
        self.assertEqual(u.requests(complete_only=True)[0].body, b"0123456789")

    def test_chunked_vectors_trickled_byte_by_byte_are_held_then_sent_whole_or_refused(self):
        # Every chunked case of tests/vectors/requests.vec, its body sent one byte per write after
        # the head: held, a valid body reaches the upstream whole (never a head without it), a
        # bad chunk is a 400 from golb and no backend connection is ever taken for it.
        from test_85_hostile_vectors import BODY_LEVEL_PREFIX, client_view, split_head
        from golbtest import HTTPConn, load_vectors

        cases = [v for v in load_vectors()
                 if (v.ok and split_head(v.raw)[2]) or
                 (v.name.startswith(BODY_LEVEL_PREFIX) and v.expected == 400)]
        self.assertGreaterEqual(len(cases), 30)
        u = self.recording_upstream()
        g = self.golb_with(u, bodyTimeout=round(scaled(3), 3))
        failures = []
        for v in cases:
            u.tag = v.name
            head, rest, _ = split_head(v.raw)
            before = len(data_conns(u))
            try:
                with HTTPConn(g.host, g.port, timeout=5) as c:
                    c.send(head)
                    try:
                        for i in range(len(rest)):
                            c.send(rest[i:i + 1])
                    except (BrokenPipeError, ConnectionResetError):
                        assert not v.ok, "golb closed while a valid body was sent"
                    try:
                        r = c.read_response()
                    except (OSError, AssertionError, Exception):  # noqa: BLE001 - a cut
                        r = None
                    if v.ok:
                        assert r is not None and r.status == 200, f"answered {r}"
                        reqs = u.requests(tag=v.name)
                        assert len(reqs) == 1 and reqs[0].complete, f"upstream got {reqs}"
                        assert reqs[0].body == client_view(v.raw)[5], f"body {reqs[0].body!r}"
                    else:
                        assert r is not None and r.status == 400, f"answered {r}"
                        assert u.requests(tag=v.name) == [], "a broken body reached a backend"
                        assert len(data_conns(u)) == before, "a backend connection was taken"
            except AssertionError as e:
                failures.append(f"{v.name} (line {v.lineno}, expected {v.expected}): {e}")
        self.assertEqual(u.errors(), [])
        self.assertFalse(failures, "\n" + "\n".join(failures))

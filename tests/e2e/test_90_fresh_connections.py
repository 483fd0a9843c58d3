"""A fresh client connection: golb's listener defers accept until the client's first bytes arrive,
reads the request at once, and adds the connection to its epoll set only when it has to wait for
the client (more to read, or a full socket to write to). These tests cover the paths where that
matters: a client that goes away while golb has not been watching it, a response larger than the
socket buffers for a client that reads late, a body that follows the head later, and a client that
connects and never speaks."""

import hashlib
import socket
import struct
import time

from golbtest import GolbTestCase, open_fds, pattern_sha256, scaled, wait_until

MIB = 1 << 20
# Silent connections reach accept() when the client answers a retransmitted SYN-ACK: after 1 s,
# or 3 s when the first answer is lost.
DEFER_HANDOVER = 3.5


def request_bytes(path, extra=b""):
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n" + extra +
            b"\r\n")


class FreshConnectionTest(GolbTestCase):
    def setUp(self):
        super().setUp()
        self.t = self.toy(0)
        self.g = self.golb_for([self.t], workers=1)

    def test_client_reset_while_the_upstream_is_slow(self):
        # golb is not watching the client while the upstream works on a bodiless request; the
        # reset is found when the response is written. Nothing leaks, nothing crashes, and the
        # next client is served.
        g = self.g
        base = open_fds(g.pid)
        for i in range(20):
            s = socket.create_connection((g.host, g.port), timeout=scaled(5))
            s.sendall(request_bytes(f"/?delay=300&i={i}"))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # RST
        r = self.get(g, "/after")
        self.assertEqual(r.status, 200)
        wait_until(lambda: open_fds(g.pid) <= base + 2, scaled(5),
                   "golb to release every reset connection")
        self.assertTrue(g.alive())

    def test_large_response_to_a_client_that_reads_late(self):
        # The response outgrows the socket buffers while the client reads nothing: golb must
        # start watching the client to finish it once the client reads.
        n = 16 * MIB
        s = socket.create_connection((self.g.host, self.g.port), timeout=scaled(10))
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(request_bytes(f"/?size={n}"))
        # Wait until golb has filled what the sockets hold and is blocked on the client.
        wait_until(lambda: len(s.recv(1, socket.MSG_PEEK)) == 1, scaled(5), "the first byte")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head[:100])
        h = hashlib.sha256()
        got = 0
        while True:
            chunk = s.recv(MIB)
            if not chunk:
                break
            h.update(chunk)
            got += len(chunk)
        self.assertEqual(got, n)
        self.assertEqual(h.hexdigest(), pattern_sha256(n))

    def test_body_that_follows_the_head_later(self):
        body = b"x" * 100000
        s = socket.create_connection((self.g.host, self.g.port), timeout=scaled(5))
        self.addCleanup(s.close)
        s.sendall(b"POST /up HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        # golb has the head and must watch the client for the rest: it holds the body until
        # requestBufferSize (64 KiB) of it came, then takes the backend.
        s.sendall(body[10:70000])
        wait_until(lambda: "POST /up" in self.t.log_text(), scaled(5), "the request upstream")
        s.sendall(body[70000:])
        data = read_until_close(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:100])
        self.assertIn(b"body-sha256: " + hashlib.sha256(body).hexdigest().encode(), data)

    def test_silent_connection_is_closed_after_the_header_timeout(self):
        cht = round(scaled(1), 3)
        g = self.golb_for([self.t], workers=1, clientHeaderTimeout=cht)
        s = socket.create_connection((g.host, g.port), timeout=scaled(5))
        self.addCleanup(s.close)
        t0 = time.monotonic()
        s.settimeout(DEFER_HANDOVER + cht + scaled(3))
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        held = time.monotonic() - t0
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:100])
        self.assertGreaterEqual(held, cht - 0.25, f"closed after {held:.2f}s")
        self.assertLess(held, DEFER_HANDOVER + cht + scaled(2), f"held for {held:.2f}s")

    def test_request_in_pieces_on_a_fresh_connection(self):
        # The first bytes make the connection acceptable and golb reads them at once; the rest of
        # the head comes only after that, so golb has to watch the client for it.
        s = socket.create_connection((self.g.host, self.g.port), timeout=scaled(5))
        self.addCleanup(s.close)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req = request_bytes("/pieces")
        s.sendall(req[:5])
        wait_until(lambda: server_side_unread(self.g.port, s.getsockname()[1]) == 0, scaled(5),
                   "golb to read the first piece")
        s.sendall(req[5:])
        data = read_until_close(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:100])
        self.assertIn(b"path: /pieces", data)


def read_until_close(s):
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def server_side_unread(server_port, client_port):
    """Bytes queued unread on golb's end of the loopback connection from client_port (None when
    the kernel shows no such connection), from /proc/net/tcp."""
    want_local, want_remote = f":{server_port:04X}", f":{client_port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(want_local) and fields[2].endswith(want_remote):
                return int(fields[4].split(":")[1], 16)
    return None

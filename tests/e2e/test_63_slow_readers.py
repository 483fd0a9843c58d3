"""Slow readers: a large response spliced to a client that stops reading costs golb the two sockets
(client and upstream), not the splice pipe's two descriptors as well: the pipe goes back when the
client stalls, what was left in it waits in a 16 KiB buffer."""

import hashlib
import socket

from golbtest import GolbTestCase, open_fds, pattern_sha256, scaled, wait_until

N = 50
SIZE = 8 << 20  # Content-Length: spliced


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise AssertionError("closed before the head")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


class SlowReaderTest(GolbTestCase):
    def test_a_stalled_slow_reader_costs_two_descriptors(self):
        t = self.toy(0)
        g = self.golb_for([t], workers=1)
        self.assertEqual(self.get(g, "/warm").status, 200)
        base = open_fds(g.pid)
        socks = []
        try:
            for _ in range(N):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # stalls soon
                s.connect(("127.0.0.1", g.port))
                s.settimeout(scaled(10))
                s.sendall(b"GET /x?size=%d HTTP/1.1\r\nHost: golb.test\r\n\r\n" % SIZE)
                socks.append(s)
            heads = [read_head(s) for s in socks]  # then they read nothing more
            for head, _ in heads:
                self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            # Each client: its socket and the upstream's. The constant: idle pipes kept for
            # reuse (16 per worker, two descriptors each) and slack.
            bound = base + 2 * N + 40
            wait_until(lambda: open_fds(g.pid) <= bound, scaled(10),
                       f"golb's descriptors to fall to {bound} (2 per stalled reader)")
            # A stalled reader that reads again gets its whole body, unchanged.
            s, (_, rest) = socks[0], heads[0]
            h = hashlib.sha256(rest)
            got = len(rest)
            s.settimeout(scaled(30))
            while got < SIZE:
                d = s.recv(1 << 20)
                if not d:
                    break
                h.update(d)
                got += len(d)
            self.assertEqual(got, SIZE)
            self.assertEqual(h.hexdigest(), pattern_sha256(SIZE))
        finally:
            for s in socks:
                s.close()

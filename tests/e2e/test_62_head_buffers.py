"""Buffers: bodies go through fixed 16 KiB buffers whatever maxHeaderSize says; only a head that does
not fit one takes a large buffer (up to maxHeaderSize), so a large limit costs nothing per request
until a head is that large."""

import socket
import threading
import time

from golbtest import GolbTestCase, scaled

MIB = 1 << 20


def vm_hwm_kib(pid):
    """The peak resident set size of pid (VmHWM) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")


def read_response(s, timeout):
    """Reads one Content-Length response from socket s: (head bytes, body bytes)."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(1 << 20)
        if not d:
            raise AssertionError(f"closed after {len(buf)} bytes of head")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        d = s.recv(1 << 20)
        if not d:
            raise AssertionError("closed in the body")
        body += d
    return head, body


class HeadBufferTest(GolbTestCase):
    def test_a_900_kib_header_goes_through_both_ways_with_max_header_size_1_mib(self):
        seen = []

        def handler(c, head, path):
            seen.append(head)
            big = b"b" * (600 * 1024)
            body = b"%d\n" % len(head)
            c.sendall(b"HTTP/1.1 200 OK\r\nX-Back: " + big + b"\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(body), body))
            return True

        up = self.raw_upstream(handler)
        g = self.golb_for([up], maxHeaderSize=1048576, workers=1)
        with socket.create_connection(("127.0.0.1", g.port)) as s:
            value = b"a" * (900 * 1024)
            s.sendall(b"GET /big HTTP/1.1\r\nHost: golb.test\r\nX-Big: " + value + b"\r\n\r\n")
            head, body = read_response(s, scaled(10))
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:100])
            self.assertIn(b"X-Back: " + b"b" * (600 * 1024) + b"\r\n", head + b"\r\n")
            self.assertEqual(len(seen), 1)
            self.assertIn(b"X-Big: " + value + b"\r\n", seen[0])
            self.assertEqual(int(body), len(seen[0]))
            # The same connection goes on with an ordinary request.
            s.sendall(b"GET /small HTTP/1.1\r\nHost: golb.test\r\n\r\n")
            head, body = read_response(s, scaled(10))
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:100])
            self.assertEqual(len(seen), 2)

    def test_a_head_over_max_header_size_is_still_431(self):
        t = self.toy(0)
        g = self.golb_for([t], maxHeaderSize=65536, workers=1)
        with socket.create_connection(("127.0.0.1", g.port)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: golb.test\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
            head, _ = read_response(s, scaled(10))
            self.assertTrue(head.startswith(b"HTTP/1.1 431"), head[:100])

    def test_memory_stays_small_with_200_concurrent_requests_at_max_header_size_1_mib(self):
        # Each response is chunked (copied through golb's buffers, never spliced) and the clients
        # read it only after a pause, so every read from the backend can fill golb's buffer:
        # with buffers of maxHeaderSize (1 MiB) that touched hundreds of KiB per request.
        t = self.toy(0)
        g = self.golb_for([t], maxHeaderSize=1048576, workers=1)
        n, size = 200, 256 * 1024
        self.assertEqual(self.get(g, "/warm").status, 200)
        before = vm_hwm_kib(g.pid)
        socks = []
        for _ in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # golb's buffer fills first
            s.connect(("127.0.0.1", g.port))
            s.sendall(b"GET /x?size=%d&chunked=1 HTTP/1.1\r\nHost: golb.test\r\n\r\n" % size)
            socks.append(s)
        time.sleep(0.3)  # not a synchronisation: the backends' bytes pile up meanwhile
        errors = []

        def drain(s):
            try:
                s.settimeout(scaled(30))
                got = b""
                while not got.endswith(b"\r\n0\r\n\r\n"):
                    d = s.recv(1 << 20)
                    if not d:
                        raise AssertionError("closed early")
                    got += d
            except (OSError, AssertionError) as e:
                errors.append(e)
            finally:
                s.close()

        threads = [threading.Thread(target=drain, args=(s,)) for s in socks]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(errors, [])
        grown = vm_hwm_kib(g.pid) - before
        # 200 requests × 3 buffers × 16 KiB is under 10 MiB (5 measured); buffers of 1 MiB
        # filled by the backend's reads took 26 MiB more.
        self.assertLess(grown, 12 * 1024, f"peak RSS grew by {grown} KiB")

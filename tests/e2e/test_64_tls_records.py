"""TLS records: a response head and its first body bytes reach a TLS client in one record (one
SSL_write) when both are at golb together; a head whose body is not there yet is not held back.
The client reads golb's bytes at the record layer (ssl.MemoryBIO) and counts the application-data
records of each response. Session tickets are off, so after the handshake every record golb sends
is a response's.

When the backend writes the head and the body with two send() calls, golb reads once more before
sending a head that came alone, and once more after the loop's other ready events: that catches a
body a few microseconds behind, not one a Python thread sends tens of microseconds later, so that
case is only checked for correct bytes here; the unit tests (test_exchange_relay.c) pin the
mechanism with the body arriving between the reads."""

import socket
import ssl
import threading

from golbtest import GolbTestCase, golb_config, scaled
from tlstest import client_context, https_port, pki, tls_config_block

BODY = b"hello, world\n"


class RecordClient:
    """A TLS 1.3 client over a raw socket that sees the records golb sends."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        ctx = client_context(verify=False)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname="a.test")
        self.raw = b""  # bytes from golb not yet split into records
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                d = self.sock.recv(65536)
                if not d:
                    raise AssertionError("closed during the handshake")
                self.inc.write(d)
        self._flush()

    def _flush(self):
        d = self.out.read()
        if d:
            self.sock.sendall(d)

    def request(self, path, on_head=None):
        """Sends a GET and reads its response: (decrypted bytes, application-data records).
        on_head() is called once the head is in."""
        self.tls.write(b"GET %s HTTP/1.1\r\nHost: a.test\r\n\r\n" % path)
        self._flush()
        plain, records = b"", 0
        want = None
        while want is None or len(plain) < want:
            while len(self.raw) < 5 or len(self.raw) < 5 + int.from_bytes(self.raw[3:5], "big"):
                d = self.sock.recv(65536)
                if not d:
                    raise AssertionError("closed in a response")
                self.raw += d
            n = 5 + int.from_bytes(self.raw[3:5], "big")
            rec, self.raw = self.raw[:n], self.raw[n:]
            if rec[0] == 0x17:
                records += 1
            self.inc.write(rec)
            try:
                while True:
                    plain += self.tls.read(65536)
            except ssl.SSLWantReadError:
                pass
            if want is None and b"\r\n\r\n" in plain:
                head = plain.split(b"\r\n\r\n", 1)[0]
                length = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
                          if l.lower().startswith(b"content-length:")][0]
                want = len(head) + 4 + length
                if on_head:
                    on_head()
        return plain, records

    def close(self):
        self.sock.close()


class TLSRecordTest(GolbTestCase):
    def test_head_and_body_go_out_in_one_record_and_a_late_body_does_not_hold_the_head(self):
        late = threading.Event()

        def handler(c, head, path):
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            h = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY)
            if path == "/one":
                c.sendall(h + BODY)  # one write: head and body come in one read
            elif path == "/late":
                c.sendall(h)
                late.wait(scaled(10))  # the client has the head: golb did not wait for the body
                late.clear()
                c.sendall(BODY)
            else:
                c.sendall(h)  # two writes, back to back
                c.sendall(BODY)
            return True

        up = self.raw_upstream(handler)
        cert = pki().leaf("rec", ["a.test"], key="ec")
        g = self.golb(golb_config([up], workers=1) +
                      tls_config_block([cert], sessionTickets="false"))
        g.tls_port = https_port(g)
        self.wait_backend(g, up, "UP")
        c = RecordClient(g.tls_port)
        self.addCleanup(c.close)
        plain, records = c.request(b"/one")
        self.assertTrue(plain.startswith(b"HTTP/1.1 200"), plain)
        self.assertTrue(plain.endswith(BODY), plain)
        self.assertEqual(records, 1, "head and body in one record")

        plain, records = c.request(b"/late", on_head=late.set)
        self.assertTrue(plain.endswith(BODY), plain)
        self.assertEqual(records, 2, "the head went ahead of its late body")

        for _ in range(20):
            plain, records = c.request(b"/two")
            self.assertTrue(plain.startswith(b"HTTP/1.1 200"), plain)
            self.assertTrue(plain.endswith(BODY), plain)
            self.assertIn(records, (1, 2))

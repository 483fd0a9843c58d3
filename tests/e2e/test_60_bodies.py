"""Bodies stream through golb in both directions with bounded memory."""

import hashlib
import os
import threading
import time

from golbtest import ConnectionClosed, GolbTestCase, is_asan_build, pattern_bytes, pattern_sha256, rss_kib, scaled

MIB = 1 << 20
BIG = 64 * MIB


class RssSampler:
    """Samples a process's RSS in the background; .peak is the highest value seen (KiB)."""

    def __init__(self, pid, interval=0.02):
        self.pid, self.interval = pid, interval
        self.peak = rss_kib(pid)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (OSError, AssertionError):
                return

    def stop(self):
        self._stop.set()
        self._t.join()
        try:
            self.peak = max(self.peak, rss_kib(self.pid))
        except (OSError, AssertionError):
            pass
        return self.peak


class BodyTest(GolbTestCase):
    def setUp(self):
        super().setUp()
        self.t = self.toy(0)
        self.g = self.golb_for([self.t])
        # Bound on golb's RSS growth while 64 MiB pass through. The ASan build keeps freed memory
        # in quarantine and allocates shadow pages, so it gets more room (still far below 64 MiB).
        self.max_growth_kib = (40 if is_asan_build(self.bindir) else 16) * 1024

    def warm_up(self):
        c = self.conn(self.g, timeout=30)
        for _ in range(3):  # pools and buffers allocated by a first exchange do not count
            self.assertEqual(c.request("POST", "/warm", body=os.urandom(256 * 1024)).status, 200)
            self.assertEqual(c.request("GET", f"/?size={256 * 1024}").status, 200)
        return c

    def assert_rss_bounded(self, base, sampler):
        growth = sampler.stop() - base
        self.assertLess(growth, self.max_growth_kib,
                        f"golb RSS grew {growth} KiB (limit {self.max_growth_kib} KiB)")

    def test_64mib_upload_content_length(self):
        c = self.warm_up()
        base = rss_kib(self.g.pid)
        s = RssSampler(self.g.pid)
        block = os.urandom(MIB)
        h = hashlib.sha256()
        for _ in range(BIG // MIB):
            h.update(block)
        r = c.request("POST", "/upload", headers={"Content-Length": str(BIG)},
                      body=(block for _ in range(BIG // MIB)))
        self.assert_rss_bounded(base, s)
        e = r.echo()
        self.assertEqual(r.status, 200)
        self.assertEqual(e["body-length"], str(BIG))
        self.assertEqual(e["body-sha256"], h.hexdigest())

    def test_64mib_upload_chunked(self):
        c = self.warm_up()
        base = rss_kib(self.g.pid)
        s = RssSampler(self.g.pid)
        block = os.urandom(MIB + 7)  # odd sizes: chunk boundaries never line up with buffers
        n = BIG // len(block) + 1
        h = hashlib.sha256()
        for _ in range(n):
            h.update(block)
        r = c.request("PUT", "/upload", body=(block for _ in range(n)))
        self.assert_rss_bounded(base, s)
        e = r.echo()
        self.assertEqual(e["body-length"], str(n * len(block)))
        self.assertEqual(e["body-sha256"], h.hexdigest())

    def test_64mib_download(self):
        c = self.warm_up()
        base = rss_kib(self.g.pid)
        s = RssSampler(self.g.pid)
        h = hashlib.sha256()
        r = c.request("GET", f"/?size={BIG}", sink=h.update)
        self.assert_rss_bounded(base, s)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Length"), str(BIG))
        self.assertEqual(r.body_len, BIG)
        self.assertEqual(h.hexdigest(), pattern_sha256(BIG))

    def test_64mib_download_chunked(self):
        c = self.warm_up()
        base = rss_kib(self.g.pid)
        s = RssSampler(self.g.pid)
        h = hashlib.sha256()
        r = c.request("GET", f"/?size={BIG}&chunked=1", sink=h.update)
        self.assert_rss_bounded(base, s)
        self.assertEqual(r.body_len, BIG)
        self.assertEqual(h.hexdigest(), pattern_sha256(BIG))

    def test_slow_reader_backpressure(self):
        # The client stops reading: golb must stop reading the upstream rather than buffer.
        c = self.warm_up()
        base = rss_kib(self.g.pid)
        s = RssSampler(self.g.pid)
        c.send_request("GET", f"/?size={BIG}")
        # Once the toy is sending, leave golb one second (the stall under test, not a
        # synchronisation) in which it could wrongly swallow the whole body while nobody reads.
        self.t.wait_log(rf"GET /\?size={BIG}")
        time.sleep(scaled(1))
        self.assert_rss_bounded(base, s)
        h = hashlib.sha256()
        r = c.read_response(sink=h.update, timeout=60)
        self.assertEqual(r.body_len, BIG)
        self.assertEqual(h.hexdigest(), pattern_sha256(BIG))

    def test_both_directions_same_connection(self):
        c = self.warm_up()
        body = os.urandom(3 * MIB + 1)
        for i in range(3):
            r = c.request("POST", f"/b{i}", body=body)
            self.assertEqual(r.echo()["body-sha256"], hashlib.sha256(body).hexdigest())
            r = c.request("GET", f"/?size={2 * MIB + i}&chunked={i % 2}")
            self.assertEqual(r.body, pattern_bytes(2 * MIB + i))

    def test_trickled_response(self):
        c = self.conn(self.g)
        t0 = time.monotonic()
        r = c.request("GET", f"/?size={16384 * 4 + 5}&trickle=150")
        self.assertGreaterEqual(time.monotonic() - t0, 0.6)
        self.assertEqual(r.body, pattern_bytes(16384 * 4 + 5))

    def test_empty_bodies(self):
        c = self.conn(self.g)
        r = c.request("POST", "/e", body=b"")
        self.assertEqual(r.echo()["body-length"], "0")
        r = c.request("POST", "/e", body=iter([]))  # chunked with only the last chunk
        self.assertEqual(r.echo()["body-length"], "0")
        r = c.request("GET", "/?size=0")
        self.assertEqual((r.status, r.body), (200, b""))
        r = c.request("GET", "/?size=0&chunked=1")
        self.assertEqual((r.status, r.body), (200, b""))


class BodyTimeoutTest(GolbTestCase):
    def test_upstream_stalls_mid_body(self):
        t = self.toy(0)
        g = self.golb_for([t], bodyTimeout=1)
        c = self.conn(g, timeout=10)
        c.send_request("GET", f"/?size={16384 * 3}&trickle=3000")
        t0 = time.monotonic()
        # The head and the first piece arrived, then the upstream stalls longer than bodyTimeout:
        # golb cuts the client connection (never a synthetic ending).
        with self.assertRaises(ConnectionClosed):
            c.read_response()
        dt = time.monotonic() - t0
        self.assertGreaterEqual(dt, 0.9)
        self.assertLess(dt, 2.9, "cut only when the upstream resumed: bodyTimeout not applied")

    def test_client_stalls_mid_upload(self):
        t = self.toy(0)
        g = self.golb_for([t], bodyTimeout=1)
        c = self.conn(g, timeout=10)
        c.send(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        t0 = time.monotonic()
        try:
            r = c.read_response(timeout=10)
        except (ConnectionClosed, OSError):
            r = None
        if r is not None:
            self.assertIn(r.status, (408, 400, 502, 504), r.text)
        self.assertTrue(c.wait_closed(timeout=5))
        dt = time.monotonic() - t0
        self.assertGreaterEqual(dt, 0.9)
        self.assertLess(dt, 1 + scaled(3))
        # The toy saw the connection end without a complete body: it answered nothing.
        self.assertEqual(self.get(g, "/").status, 200)

"""Bounded concurrent load: many clients at once, every answer right, traffic spread evenly."""

import collections
import hashlib
import os
import threading
import time

from golbtest import GolbTestCase, HTTPConn, pattern_bytes, scaled

CLIENTS = 16
REQUESTS = 25  # per client


class LoadTest(GolbTestCase):
    def run_clients(self, g, work):
        """Runs work(client_index, conn) in CLIENTS threads, each on its own keep-alive connection;
        returns the exceptions raised (empty when all went well)."""
        errors = []
        lock = threading.Lock()
        deadline = time.monotonic() + scaled(60)

        def client(i):
            try:
                with HTTPConn(g.host, g.port, timeout=20) as c:
                    work(i, c, deadline)
            except BaseException as e:  # noqa: BLE001 — reported by the main thread
                with lock:
                    errors.append(f"client {i}: {e!r}")

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) + 1)
        if any(t.is_alive() for t in threads):
            errors.append("clients still running at the deadline")
        return errors

    def test_concurrent_clients_even_spread(self):
        toys = self.toys(3)
        g = self.golb_for(toys)
        counts = collections.Counter()
        lock = threading.Lock()

        def work(i, c, deadline):
            for n in range(REQUESTS):
                if time.monotonic() > deadline:
                    raise AssertionError("deadline")
                path = f"/c{i}/r{n}"
                r = c.request("GET", path)
                assert r.status == 200, (r.status, r.text)
                e = r.echo()
                assert e["path"] == path, (e["path"], path)  # no crossed responses
                with lock:
                    counts[e["server"]] += 1

        errors = self.run_clients(g, work)
        self.assertEqual(errors, [])
        total = CLIENTS * REQUESTS
        self.assertEqual(sum(counts.values()), total)
        self.assertEqual(set(counts), {0, 1, 2})
        self.assertLessEqual(max(counts.values()) - min(counts.values()), 2, dict(counts))

    def test_concurrent_bodies(self):
        toys = self.toys(2)
        g = self.golb_for(toys)

        def work(i, c, deadline):
            body = os.urandom(200000 + i)
            want = hashlib.sha256(body).hexdigest()
            for n in range(5):
                r = c.request("POST", f"/b{i}", body=body)
                assert r.echo()["body-sha256"] == want, f"upload {n} corrupted"
                size = 300000 + i * 7 + n
                r = c.request("GET", f"/?size={size}&chunked={n % 2}")
                assert r.body == pattern_bytes(size), f"download {n} corrupted"

        self.assertEqual(self.run_clients(g, work), [])

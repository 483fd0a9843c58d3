"""Balancing strategies with real processes: weights, leastConnections, leastLatency, hash, sticky
sessions, slow start, rise/fall thresholds and panic mode."""

import re
import threading
import time
from collections import Counter

from golbtest import GolbTestCase, HTTPConn, http_request, scaled


def config(backends, period=0.3, timeout=0.25, **extra):
    """A golb config whose backends are (toy, weight) pairs or toys (plain string form)."""
    lines = ["listen: 127.0.0.1:0",
             f"healthCheckPeriod: {round(scaled(period), 3)}",
             f"healthCheckTimeout: {round(scaled(timeout), 3)}"]
    for k, v in extra.items():
        lines.append(f"{k}: {v}")
    lines.append("backends:")
    for b in backends:
        if isinstance(b, tuple):
            toy, w = b
            lines.append(f"  - url: http://127.0.0.1:{toy.port}/health")
            lines.append(f"    weight: {w}")
        else:
            lines.append(f"  - http://127.0.0.1:{b.port}/health")
    return "\n".join(lines) + "\n"


class BalancingTest(GolbTestCase):
    def start(self, toys, **kw):
        g = self.golb(config(toys, **kw))
        for t in toys:
            self.wait_backend(g, t[0] if isinstance(t, tuple) else t, "UP")
        return g

    def ids(self, g, n, path="/", headers=None):
        out = []
        for i in range(n):
            r = self.get(g, path, headers=headers)
            self.assertEqual(r.status, 200, f"request {i}: {r.status} {r.text}")
            out.append(int(r.header("X-Server-Id")))
        return out

    def test_weights_3_to_1(self):
        a, b = self.toys(2)
        g = self.start([(a, 3), (b, 1)])
        c = Counter(self.ids(g, 400))
        # smooth WRR is exact per worker: within a few requests of 300:100 in total
        self.assertLessEqual(abs(c[0] - 300), 8, c)
        self.assertLessEqual(abs(c[1] - 100), 8, c)

    def test_weight_zero_gets_no_new_traffic(self):
        a, b = self.toys(2)
        g = self.start([(a, 0), (b, 1)])
        self.assertEqual(set(self.ids(g, 20)), {1})

    def busy_share(self, balance):
        """Four client threads for ~2 s; toy 0 answers in 400 ms, toy 1 at once. Toy 0's share."""
        slow = self.toy(0, extra_args=["-delay", "400"])
        fast = self.toy(1)
        g = self.start([slow, fast], balance=balance)
        counts = Counter()
        lock = threading.Lock()
        stop = time.monotonic() + scaled(2)

        def client():
            n = 0
            while time.monotonic() < stop and n < 2000:
                r = self.get(g, "/")
                with lock:
                    counts[(r.status, r.header("X-Server-Id"))] += 1
                n += 1

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = sum(counts.values())
        self.assertEqual(sum(v for (s, _), v in counts.items() if s == 200), total, counts)
        return counts[(200, "0")] / total, counts

    def test_least_connections_avoids_a_busy_backend(self):
        share, counts = self.busy_share("leastConnections")
        self.assertLess(share, 0.1, counts)

    def test_round_robin_does_not(self):
        # the control for the test above: the same pool with roundRobin halves the traffic
        share, counts = self.busy_share("roundRobin")
        self.assertGreater(share, 0.3, counts)

    def test_least_latency_leaves_a_slow_backend_and_comes_back(self):
        toys = [self.toy(0, extra_args=["-delay", "40"]), self.toy(1), self.toy(2)]
        g = self.start(toys, balance="leastLatency")
        c = Counter(self.ids(g, 300))
        self.assertLess(c[0], 30, f"a 40 ms backend among 1 ms ones: {c}")
        self.assertGreater(c[1] + c[2], 270, c)
        r = http_request(toys[0].port, "POST", "/toy/delay?delay=0")
        self.assertEqual(r.status, 200)
        deadline = time.monotonic() + scaled(20)
        while True:
            c = Counter(self.ids(g, 150))
            if c[0] >= 25:
                break
            self.assertLess(time.monotonic(), deadline, f"toy 0 never came back: {c}")

    def test_hash_on_a_header_and_a_backend_going_down(self):
        toys = self.toys(3)
        g = self.start(toys, balance="hash", hashKey='"header:X-User"')
        home = {}
        for u in range(30):
            ids = self.ids(g, 3, headers={"X-User": f"user{u}"})
            self.assertEqual(len(set(ids)), 1, f"user{u} went to {ids}")
            home[u] = ids[0]
        self.assertEqual(set(home.values()), {0, 1, 2}, home)
        off = g.log_offset()
        toys[1].kill()
        self.wait_backend(g, toys[1], "DOWN", start=off)
        for u in range(30):
            ids = self.ids(g, 2, headers={"X-User": f"user{u}"})
            self.assertEqual(len(set(ids)), 1, f"user{u} went to {ids}")
            if home[u] != 1:
                self.assertEqual(ids[0], home[u], f"user{u} moved off a healthy backend")
            else:
                self.assertNotEqual(ids[0], 1)

    def sticky_request(self, g, cookie=None):
        headers = {"Cookie": f"other=1; GOLBSRV={cookie}"} if cookie else None
        r = self.get(g, "/", headers=headers)
        self.assertEqual(r.status, 200)
        return int(r.header("X-Server-Id")), r.header("Set-Cookie")

    def test_sticky_cookie_keeps_a_client_and_moves_it_when_its_backend_goes_down(self):
        toys = self.toys(3)
        g = self.start(toys, stickySession="{cookie: GOLBSRV, maxAge: 60}")
        sid, sc = self.sticky_request(g)
        self.assertIsNotNone(sc, "the first response sets the cookie")
        m = re.fullmatch(r"GOLBSRV=([0-9a-f]{16}); Path=/; Max-Age=60; HttpOnly", sc)
        self.assertIsNotNone(m, sc)
        value = m.group(1)
        self.assertNotIn(str(toys[sid].port), value)
        for _ in range(8):
            s, again = self.sticky_request(g, value)
            self.assertEqual(s, sid)
            self.assertIsNone(again, "a valid cookie is not set again")
        # forged or stale values are balanced normally and get a real cookie
        for forged in ("0000000000000000", value[::-1], "127.0.0.1:1", value + "0"):
            _, sc2 = self.sticky_request(g, forged)
            self.assertIsNotNone(sc2, f"forged {forged!r}")
        off = g.log_offset()
        toys[sid].kill()
        self.wait_backend(g, toys[sid], "DOWN", start=off)
        s, sc3 = self.sticky_request(g, value)
        self.assertNotEqual(s, sid)
        self.assertIsNotNone(sc3, "moved: the cookie is rewritten")
        new = re.match(r"GOLBSRV=([0-9a-f]{16});", sc3).group(1)
        for _ in range(5):
            self.assertEqual(self.sticky_request(g, new)[0], s)

    def test_slow_start_ramps_a_returning_backend(self):
        a, b = self.toys(2)
        g = self.start([a, b], slowStart=4)
        c = Counter(self.ids(g, 100))
        self.assertEqual(c[1], 50, "both at full weight from start-up")
        off = g.log_offset()
        http_request(b.port, "POST", "/toy/health?status=503")
        self.wait_backend(g, b, "DOWN", start=off)
        off = g.log_offset()
        http_request(b.port, "POST", "/toy/health?status=200")
        self.wait_backend(g, b, "UP", start=off)
        t0 = time.monotonic()
        c = Counter(self.ids(g, 100))
        if time.monotonic() - t0 < 1.5:  # on a slow machine the ramp may be far along
            self.assertLess(c[1], 30, f"a returning backend starts at about 10 %: {c}")
        # the ramp ends 4 s after UP: from then on, equal shares again
        deadline = time.monotonic() + scaled(10)
        while True:
            c = Counter(self.ids(g, 100))
            if c[1] >= 45:
                break
            self.assertLess(time.monotonic(), deadline, f"still ramping: {c}")
        self.assertGreater(time.monotonic() - t0, 2, "the ramp ended too early")

    def test_rise_and_fall_thresholds(self):
        a, b = self.toys(2)
        g = self.start([a, b], healthyThreshold=2, unhealthyThreshold=3)
        off = g.log_offset()
        http_request(b.port, "POST", "/toy/health?status=503")
        m = self.wait_backend(g, b, "DOWN", start=off, timeout=scaled(6))
        self.assertIn("3/3 checks failed", m.group(0))
        # two failures before it were logged at debug level only: the state flipped on the third
        off = g.log_offset()
        http_request(b.port, "POST", "/toy/health?status=200")
        m = self.wait_backend(g, b, "UP", start=off, timeout=scaled(6))
        self.assertIn("2/2 checks passed", m.group(0))

    def test_first_round_decides_at_once_whatever_the_thresholds(self):
        a, b = self.toys(2)
        http_request(b.port, "POST", "/toy/health?status=503")
        g = self.golb(config([a, b], healthyThreshold=5, unhealthyThreshold=5, period=5))
        self.wait_backend(g, a, "UP", timeout=2)
        self.wait_backend(g, b, "DOWN", timeout=2)
        self.assertEqual(set(self.ids(g, 6)), {0})

    def test_panic_mode_serves_over_all_backends(self):
        toys = self.toys(4)
        g = self.start(toys, panicThreshold=50)
        off = g.log_offset()
        for t in toys[1:]:
            http_request(t.port, "POST", "/toy/health?status=503")
        for t in toys[1:]:
            self.wait_backend(g, t, "DOWN", start=off)
        self.assertEqual(set(self.ids(g, 16)), {0, 1, 2, 3}, "1 of 4 UP is below 50 %: fail-open")

    def test_no_panic_without_the_threshold(self):
        toys = self.toys(4)
        g = self.start(toys)
        off = g.log_offset()
        for t in toys[1:]:
            http_request(t.port, "POST", "/toy/health?status=503")
        for t in toys[1:]:
            self.wait_backend(g, t, "DOWN", start=off)
        self.assertEqual(set(self.ids(g, 16)), {0})

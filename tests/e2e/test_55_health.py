"""Active health checks: backends leave the rotation when they fail and come back when they recover."""

import re
import time

from golbtest import GolbTestCase, assert_rotation, http_request, scaled

PERIOD = 0.3  # healthCheckPeriod used here, before scaling


class HealthTest(GolbTestCase):
    def ids(self, g, n):
        out = []
        for i in range(n):
            r = self.get(g, f"/{i}")
            self.assertEqual(r.status, 200, f"request {i}: {r.status} {r.text}")
            out.append(int(r.header("X-Server-Id")))
        return out

    def test_killed_backend_leaves_rotation_and_returns(self):
        toys = self.toys(3)
        g = self.golb_for(toys, period=round(scaled(PERIOD), 3))
        port = toys[1].port
        off = g.log_offset()
        t0 = time.monotonic()
        toys[1].kill()
        m = self.wait_backend(g, port, "DOWN", start=off, timeout=PERIOD + 2)
        detected = time.monotonic() - t0
        # Connection refused is immediate: the next check (at most one period away) sees it.
        self.assertLess(detected, scaled(PERIOD) + scaled(0.25) + 0.5, f"DOWN after {detected:.2f}s")
        self.assertIn("(was UP)", m.group(0))
        ids = self.ids(g, 12)
        self.assertNotIn(1, ids)
        assert_rotation(self, ids, 2)

        off = g.log_offset()
        self.toy(1, extra_args=["-listen", f"127.0.0.1:{port}"])
        m = self.wait_backend(g, port, "UP", start=off, timeout=PERIOD + 5)
        self.assertIn("(was DOWN)", m.group(0))
        ids = self.ids(g, 9)
        self.assertEqual(sorted(set(ids)), [0, 1, 2], ids)
        assert_rotation(self, ids, 3)

    def test_no_client_request_fails_while_a_backend_dies(self):
        toys = self.toys(3)
        g = self.golb_for(toys, period=round(scaled(PERIOD), 3))
        off = g.log_offset()
        killed_at = None
        down_at = None
        after_down = 0
        deadline = time.monotonic() + scaled(10)
        n = 0
        while time.monotonic() < deadline and n < 2000:
            if n == 10:
                toys[2].kill()
                killed_at = n
            r = self.get(g, f"/{n}")
            self.assertEqual(r.status, 200, f"request {n} (backend killed at request {killed_at}, "
                                             f"DOWN at {down_at}): {r.status} {r.text}")
            if down_at is None and killed_at is not None and re.search(
                    rf"backend \S*:{toys[2].port} is DOWN", g.log_text()[off:]):
                down_at = n
            if down_at is not None:
                self.assertNotEqual(r.header("X-Server-Id"), "2", f"request {n} after DOWN")
                after_down += 1
                if after_down >= 20:
                    break
            n += 1
        self.assertIsNotNone(down_at, "backend never marked DOWN")

    def test_health_status_toggle(self):
        toys = self.toys(2)
        g = self.golb_for(toys)
        off = g.log_offset()
        r = http_request(toys[0].port, "POST", "/toy/health?status=503")
        self.assertEqual(r.status, 200)
        m = self.wait_backend(g, toys[0], "DOWN", start=off)
        self.assertIn("503", m.group(0), "the DOWN line should say why")
        self.assertEqual(set(self.ids(g, 6)), {1})
        # The backend still answers proxied requests if asked directly: only golb avoids it.
        off = g.log_offset()
        http_request(toys[0].port, "POST", "/toy/health?status=200")
        self.wait_backend(g, toys[0], "UP", start=off)
        ids = self.ids(g, 6)
        assert_rotation(self, ids, 2)

    def test_all_down_503_then_recovery(self):
        toys = self.toys(2)
        g = self.golb_for(toys)
        ports = [t.port for t in toys]
        off = g.log_offset()
        for t in toys:
            t.kill()
        for p in ports:
            self.wait_backend(g, p, "DOWN", start=off)
        for _ in range(3):
            r = self.get(g, "/")
            self.assertEqual(r.status, 503, r.text)
            self.assertTrue(0 < len(r.body) < 1024)
        off = g.log_offset()
        self.toy(5, extra_args=["-listen", f"127.0.0.1:{ports[0]}"])
        self.wait_backend(g, ports[0], "UP", start=off)
        r = self.get(g, "/")
        self.assertEqual((r.status, r.header("X-Server-Id")), (200, "5"))

    def test_backend_down_at_start(self):
        t = self.toy(0)
        dead = self.toy(1)
        dead_port = dead.port
        dead.kill()
        g = self.golb_for([t, dead_port], wait_up=False)
        self.wait_backend(g, t, "UP")
        self.wait_backend(g, dead_port, "DOWN")
        self.assertRegex(g.log_text(), r"listening on \S+ \(.*1 of 2 backends up")
        self.assertEqual(set(self.ids(g, 4)), {0})

    def test_health_check_timeout(self):
        t = self.toy(0)
        u = self.raw_upstream(lambda c, h, p: False, health_hang=True)
        g = self.golb_for([t, u], wait_up=False, timeout=round(scaled(0.25), 3))
        self.wait_backend(g, u, "DOWN")
        self.assertEqual(set(self.ids(g, 4)), {0})
        self.assertEqual(u.requests, [])

    def test_check_uses_url_path(self):
        t = self.toy(0)
        g = self.golb_for([f"http://127.0.0.1:{t.port}/custom/check?x=1"], wait_up=False)
        self.wait_backend(g, t, "UP")
        t.wait_log(r"GET /custom/check\?x=1")
        self.assertNotIn("GET /health", t.log_text())

    def test_checks_repeat_every_period(self):
        t = self.toy(0)
        self.golb_for([t], period=round(scaled(PERIOD), 3))
        # Four more checks arrive within about four periods (generous bound for loaded machines).
        t0 = time.monotonic()
        t.wait_log(r"GET /health", count=5, timeout=PERIOD * 4 + 3)
        self.assertGreater(time.monotonic() - t0, scaled(PERIOD) * 2.5, "checks come too often")

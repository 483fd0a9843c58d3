"""SIGTERM/SIGINT: stop accepting, finish what is in flight within shutdownTimeout, exit 0."""

import json
import os
import signal
import time

from golbtest import ConnectionClosed, GolbTestCase, can_connect, scaled, wait_until


class SignalTest(GolbTestCase):
    def test_sigterm_lets_inflight_request_finish(self):
        t = self.toy(0)
        g = self.golb_for([t], shutdownTimeout=10)
        delay = int(1500 * max(1.0, scaled(1)))
        c = self.conn(g, timeout=30)
        c.send_request("GET", f"/slow?delay={delay}")
        t.wait_log(rf"GET /slow\?delay={delay}")  # the request is at the backend now
        t0 = time.monotonic()
        g.send_signal(signal.SIGTERM)
        # New connections are refused while the slow one drains (the listener is closed).
        wait_until(lambda: not can_connect(g.port), 1, "golb to stop accepting")
        self.assertTrue(g.alive(), "golb exited before its in-flight request finished")
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.echo()["path"], f"/slow?delay={delay}")
        rc = g.wait_exit(5)
        self.assertEqual(rc, 0, f"exit status {rc}")
        self.assertLess(time.monotonic() - t0, delay / 1000 + scaled(3))
        self.assertRegex(g.log_text(), r"(?i)drain")

    def test_sigterm_idle_exits_promptly(self):
        t = self.toy(0)
        g = self.golb_for([t], shutdownTimeout=10)
        c = self.conn(g)
        self.assertEqual(c.request("GET", "/").status, 200)  # an idle keep-alive connection stays
        t0 = time.monotonic()
        g.send_signal(signal.SIGTERM)
        rc = g.wait_exit(5)
        self.assertEqual(rc, 0)
        # Idle keep-alive connections are closed at once: no wait for shutdownTimeout.
        self.assertLess(time.monotonic() - t0, scaled(2))
        self.assertTrue(c.wait_closed(timeout=1))

    def test_sigint_exits_0(self):
        t = self.toy(0)
        g = self.golb_for([t])
        g.send_signal(signal.SIGINT)
        self.assertEqual(g.wait_exit(5), 0)

    def test_keepalive_client_gets_close_after_inflight(self):
        # A keep-alive client whose request was in flight at SIGTERM gets its response, then the
        # connection is closed (it must not be kept open until shutdownTimeout).
        t = self.toy(0)
        g = self.golb_for([t], shutdownTimeout=10)
        c = self.conn(g, timeout=30)
        c.send_request("GET", "/slow?delay=500")
        t.wait_log(r"GET /slow\?delay=500")
        t0 = time.monotonic()
        g.send_signal(signal.SIGTERM)
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertTrue(c.wait_closed(timeout=3))
        self.assertEqual(g.wait_exit(5), 0)
        self.assertLess(time.monotonic() - t0, scaled(4))

    def test_shutdown_timeout_bounds_drain(self):
        t = self.toy(0)
        g = self.golb_for([t], shutdownTimeout=1)
        c = self.conn(g, timeout=30)
        c.send_request("GET", "/slow?delay=20000")
        t.wait_log(r"GET /slow\?delay=20000")
        t0 = time.monotonic()
        g.send_signal(signal.SIGTERM)
        rc = g.wait_exit(10)
        dt = time.monotonic() - t0
        self.assertEqual(rc, 0, f"exit status {rc}")
        self.assertGreaterEqual(dt, 0.9, "golb did not wait for the in-flight request")
        self.assertLess(dt, 1 + scaled(3))
        with self.assertRaises((ConnectionClosed, OSError)):
            c.read_response(timeout=5)

    def test_a_request_cut_by_shutdown_timeout_is_logged_as_golbs_cut(self):
        # golb cut it when shutdownTimeout passed: its access-log line says K (golb), not C
        # (the client), and the error type is "shutdown", not client_abort.
        t = self.toy(0)
        alog = os.path.join(self.tmp, "access.log")
        g = self.golb_for([t], shutdownTimeout=0.5, workers=1, accessLog="json",
                          accessLogPath=alog)
        c = self.conn(g, timeout=30)
        c.send_request("GET", "/slow?delay=20000")
        t.wait_log(r"GET /slow\?delay=20000")
        g.send_signal(signal.SIGTERM)
        self.assertEqual(g.wait_exit(10), 0)
        with self.assertRaises((ConnectionClosed, OSError)):
            c.read_response(timeout=5)
        lines = [json.loads(x) for x in open(alog, encoding="utf-8").read().splitlines() if x]
        slow = [x for x in lines if x["url.path"] == "/slow"]
        self.assertEqual(len(slow), 1, lines)
        self.assertEqual(slow[0]["termination"], "KH", slow[0])
        self.assertEqual(slow[0]["error.type"], "shutdown", slow[0])
        self.assertIsNone(slow[0]["http.response.status_code"], slow[0])

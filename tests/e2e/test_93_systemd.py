"""systemd notify protocol: golb started with NOTIFY_SOCKET (an AF_UNIX datagram socket the test
itself binds, as systemd would) sends READY=1 once it serves and STOPPING=1 when SIGTERM starts the
drain, in that order, nothing else; the same to an abstract socket name; and a NOTIFY_SOCKET nobody
listens on costs one warning and nothing else."""

import contextlib
import os
import re
import signal
import socket
import time

from golbtest import LISTEN_RE, GolbTestCase, _set_listen_addr, golb_config, scaled, wait_until


@contextlib.contextmanager
def notify_env(value):
    """NOTIFY_SOCKET=value for the processes started inside (Popen copies the environment)."""
    old = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ["NOTIFY_SOCKET"]
        else:
            os.environ["NOTIFY_SOCKET"] = old


class NotifySocket:
    """systemd's end: a bound datagram socket; next() returns the next message as text."""

    def __init__(self, tmpdir, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"golb-e2e-notify-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            self.env = os.path.join(tmpdir, "notify.sock")
            self.sock.bind(self.env)

    def next(self, timeout, what):
        self.sock.settimeout(scaled(timeout))
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            raise AssertionError(f"no notify message within {scaled(timeout)} s (waiting for {what})")

    def pending(self):
        """Messages already queued, without waiting."""
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        return out

    def close(self):
        self.sock.close()


class SystemdNotifyTest(GolbTestCase):
    def start(self, abstract=False):
        t = self.toy(0)
        n = NotifySocket(self.tmp, abstract)
        self.addCleanup(n.close)
        with notify_env(n.env):
            g = self.golb(golb_config([t]), expect_ready=False)
        return t, n, g

    def ready_then_stopping(self, abstract):
        t, n, g = self.start(abstract)
        msg = n.next(10, "READY=1")
        # READY=1 only once golb serves: the listening line is already logged and the listener
        # answers at this moment (no waiting here).
        m = LISTEN_RE.search(g.log_text())
        self.assertIsNotNone(m, f"READY=1 arrived before golb logged its listener:\n{g.log_tail()}")
        _set_listen_addr(g, m)
        self.assertEqual(self.get(g, "/").status, 200)
        self.assertRegex(msg, r"\AREADY=1\nSTATUS=serving on 127\.0\.0\.1:\d+\Z")
        self.assertEqual(msg, f"READY=1\nSTATUS=serving on 127.0.0.1:{g.port}")
        self.assertEqual(n.pending(), [], "more than one message at start-up")

        g.send_signal(signal.SIGTERM)
        msg = n.next(10, "STOPPING=1")
        self.assertEqual(msg, "STOPPING=1\nSTATUS=draining connections")
        self.assertEqual(g.wait_exit(10), 0)
        self.assertEqual(n.pending(), [], "messages after STOPPING=1")
        self.assertNotRegex(g.log_text(), r"notify", "notify problems logged")

    def test_ready_then_stopping_on_a_path_socket(self):
        self.ready_then_stopping(abstract=False)

    def test_ready_then_stopping_on_an_abstract_socket(self):
        self.ready_then_stopping(abstract=True)

    def test_ready_waits_for_the_backends_first_check(self):
        # golb runs one round of health checks before serving: READY=1 must not come earlier. A
        # backend that answers its check slowly holds the start-up (and READY=1) back.
        t = self.toy(0)
        n = NotifySocket(self.tmp)
        self.addCleanup(n.close)
        cfg = golb_config([f"http://127.0.0.1:{t.port}/slow?delay={int(scaled(700))}"],
                          period=round(scaled(5), 3), timeout=round(scaled(3), 3))
        t0 = time.monotonic()
        with notify_env(n.env):
            g = self.golb(cfg, expect_ready=False)
        msg = n.next(10, "READY=1")
        self.assertGreaterEqual(time.monotonic() - t0, scaled(0.7) * 0.9)
        self.assertTrue(msg.startswith("READY=1\n"), msg)
        self.assertIsNotNone(LISTEN_RE.search(g.log_text()))

    def test_nobody_listening_warns_once_and_serves(self):
        t = self.toy(0)
        with notify_env(os.path.join(self.tmp, "absent.sock")):
            g = self.golb(golb_config([t]))
        self.wait_backend(g, t, "UP")
        self.assertEqual(self.get(g, "/").status, 200)
        g.send_signal(signal.SIGTERM)
        self.assertEqual(g.wait_exit(10), 0)
        warnings = re.findall(r"cannot notify the service manager[^\n]*", g.log_text())
        self.assertEqual(len(warnings), 1, g.log_text())  # READY and STOPPING failed: logged once
        self.assertIn("absent.sock", warnings[0])

    def test_reload_sends_reloading_then_ready_also_when_it_fails(self):
        t, n, g = self.start()
        self.assertTrue(n.next(10, "READY=1").startswith("READY=1\n"))
        _set_listen_addr(g, LISTEN_RE.search(g.log_text()))
        # a good reload: RELOADING=1 with the monotonic clock, then READY=1 naming the generation
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        g.send_signal(signal.SIGHUP)
        msg = n.next(10, "RELOADING=1")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        m = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)\nSTATUS=[^\n]+", msg)
        self.assertIsNotNone(m, msg)
        self.assertTrue(before <= int(m.group(1)) <= after, (before, m.group(1), after))
        msg = n.next(10, "READY=1 after the reload")
        self.assertEqual(msg, f"READY=1\nSTATUS=serving on 127.0.0.1:{g.port} (generation 2)")
        # a broken file: RELOADING=1, then READY=1 again (systemd waits for it) with the reason
        with open(g.config_path, "w") as f:
            f.write("backends: [\n")
        g.send_signal(signal.SIGHUP)
        self.assertTrue(n.next(10, "RELOADING=1").startswith("RELOADING=1\nMONOTONIC_USEC="))
        msg = n.next(10, "READY=1 after the failed reload")
        self.assertRegex(msg, r"\AREADY=1\nSTATUS=reload failed, still serving generation 2: "
                              r"\S*golb\.yml:\d+:\d+: ")
        self.assertEqual(self.get(g, "/").status, 200)
        g.send_signal(signal.SIGTERM)
        self.assertEqual(n.next(10, "STOPPING=1"), "STOPPING=1\nSTATUS=draining connections")
        self.assertEqual(g.wait_exit(10), 0)
        self.assertEqual(n.pending(), [])

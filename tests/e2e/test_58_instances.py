"""Identical instances (issue 18, section 4): two golb processes in front of the same backends
route a sticky cookie and a hash key to the same backend, and so does one after a restart or a
reload that keeps the backend set."""

import os
import re
import signal

from golbtest import GolbTestCase, scaled

SECRET = "6f0c9a1e5d2b47c3a8e1f4b7d0c2e9a5"
COOKIE_RE = re.compile(r"GOLBSRV=([0-9a-f]{16});")


def config(toys, order=(0, 1, 2), weights=(1, 1, 1), **extra):
    lines = ["listen: 127.0.0.1:0",
             f"healthCheckPeriod: {round(scaled(0.3), 3)}",
             f"healthCheckTimeout: {round(scaled(0.25), 3)}"]
    for k, v in extra.items():
        lines.append(f"{k}: {v}")
    lines.append("backends:")
    for i in order:
        lines.append(f"  - url: http://127.0.0.1:{toys[i].port}/health")
        lines.append(f"    weight: {weights[i]}")
    return "\n".join(lines) + "\n"


class IdenticalInstancesTest(GolbTestCase):
    def start(self, text, name, toys):
        g = self.golb(text, config_name=name)
        for t in toys:
            self.wait_backend(g, t, "UP")
        return g

    def sticky(self, g, cookie=None):
        """(backend id, the cookie value set or None) for one request carrying `cookie`."""
        headers = {"Cookie": f"GOLBSRV={cookie}"} if cookie else None
        r = self.get(g, "/", headers=headers)
        self.assertEqual(r.status, 200, r.text)
        sc = r.header("Set-Cookie")
        m = COOKIE_RE.match(sc) if sc else None
        if sc:
            self.assertIsNotNone(m, sc)
        return int(r.header("X-Server-Id")), m.group(1) if m else None

    def test_a_sticky_cookie_works_on_every_instance_and_after_a_restart(self):
        toys = self.toys(3)
        path = os.path.join(self.tmp, "sticky.secret")
        with open(path, "w") as f:
            f.write(SECRET + "\n")
        os.chmod(path, 0o600)
        # A reads the secret from a file (relative to its config), B has it inline and lists the
        # backends in another order: the cookie names a backend by its address, not its place
        a_text = config(toys, stickySession="{cookie: GOLBSRV, secretFile: sticky.secret}")
        a = self.start(a_text, "a.yml", toys)
        b = self.start(config(toys, order=(2, 0, 1),
                              stickySession=f"{{cookie: GOLBSRV, secret: {SECRET}}}"), "b.yml", toys)
        cookies = {}
        for _ in range(9):  # round robin: every backend hands out its cookie
            sid, value = self.sticky(a)
            self.assertIsNotNone(value, "a request without a cookie gets one")
            cookies[sid] = value
        self.assertEqual(set(cookies), {0, 1, 2}, cookies)
        for sid, value in cookies.items():
            for _ in range(3):
                self.assertEqual(self.sticky(b, value), (sid, None),
                                 f"A's cookie for backend {sid} routes there through B too")
        # without the secret an instance has its own key: A's cookies mean nothing to it
        c = self.start(config(toys, stickySession="{cookie: GOLBSRV}"), "c.yml", toys)
        for sid, value in cookies.items():
            self.assertIsNotNone(self.sticky(c, value)[1], "balanced again, a new cookie")
        # a restart keeps the key
        self.assertEqual(a.stop(), 0)
        a2 = self.start(a_text, "a.yml", toys)
        for sid, value in cookies.items():
            for _ in range(3):
                self.assertEqual(self.sticky(a2, value), (sid, None),
                                 f"backend {sid}'s cookie after the restart")
        # a reload that changes the secret invalidates the cookies issued before it
        with open(a2.config_path, "w") as f:
            f.write(a_text.replace("secretFile: sticky.secret", "secret: another-secret-0123"))
        start = a2.log_offset()
        a2.send_signal(signal.SIGHUP)
        a2.wait_log(r"generation 2 running \([^)]*setting changed: stickySession\.secret \(sticky "
                    r"cookies issued before no longer match\)", timeout=10, start=start)
        self.assertNotIn(SECRET, a2.log_text(), "the secret is never logged")
        for sid, value in cookies.items():
            self.assertIsNotNone(self.sticky(a2, value)[1], "an old cookie gets a new one")

    def homes(self, g, users=60):
        out = {}
        for u in range(users):
            r = self.get(g, "/", headers={"X-User": f"user{u}"})
            self.assertEqual(r.status, 200, r.text)
            out[u] = int(r.header("X-Server-Id"))
        return out

    def test_hash_sends_a_key_to_the_same_backend_on_every_instance(self):
        toys = self.toys(3)
        keys = dict(balance="hash", hashKey='"header:X-User"')
        weights = (1, 2, 1)
        b_text = config(toys, order=(2, 0, 1), weights=weights, **keys)
        b = self.start(b_text, "b.yml", toys)
        # A ran another set first (other weights), then a reload brings it to B's set, listed in
        # yet another order
        a = self.start(config(toys, **keys), "a.yml", toys)
        self.homes(a)
        with open(a.config_path, "w") as f:
            f.write(config(toys, order=(1, 2, 0), weights=weights, **keys))
        start = a.log_offset()
        a.send_signal(signal.SIGHUP)
        a.wait_log(r"generation 2 running", timeout=10, start=start)
        want = self.homes(b)
        self.assertEqual(set(want.values()), {0, 1, 2}, want)
        self.assertEqual(self.homes(a), want, "A after the reload maps every key as B does")
        # a reload that keeps the set (another order, another timeout) moves no key
        with open(a.config_path, "w") as f:
            f.write(config(toys, order=(0, 2, 1), weights=weights, connectTimeout=2, **keys))
        start = a.log_offset()
        a.send_signal(signal.SIGHUP)
        a.wait_log(r"generation 3 running", timeout=10, start=start)
        self.assertEqual(self.homes(a), want, "after a reload that keeps the set")
        # nor does a restart
        self.assertEqual(b.stop(), 0)
        b2 = self.start(b_text, "b.yml", toys)
        self.assertEqual(self.homes(b2), want, "after a restart")

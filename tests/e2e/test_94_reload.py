"""Hot reload (SIGHUP and POST /api/v1/reload): what changes, what is kept, what a broken file does,
listeners kept/added/removed, certificates re-read, requests finishing on their generation, and the
zero-loss proof under load (keep-alive and new-connection clients, a WebSocket tunnel and a slow
download across 20 reloads)."""

import hashlib
import json
import os
import re
import select
import signal
import socket
import threading
import time

from golbtest import (GolbTestCase, HTTPConn, RawUpstream, can_connect, golb_config,
                      http_request, rss_kib, run_golb, scaled, wait_until)

ADMIN_RE = r"admin API and status page on http://(\S+):(\d+)/"
# Changes on a TCP admin listener need a token (issue 15); self.admin() sends it.
ADMIN_TOKEN = "reload-test-token"
ADMIN_CFG = f"admin:\n  listen: 127.0.0.1:0\n  token: {ADMIN_TOKEN}\n"
GEN_RE = r"reload by (\S+(?: \S+)*?): generation (\d+) running \(([^)]*)\)"


def has_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


class ReloadCase(GolbTestCase):
    def start(self, backends, admin=True, **cfg):
        text = golb_config(backends, **cfg)
        if admin:
            text = text.replace("backends:\n", ADMIN_CFG + "backends:\n", 1)
        g = self.golb(text)
        for b in backends:
            self.wait_backend(g, b, "UP")
        if admin:
            g.admin = int(g.wait_log(ADMIN_RE).group(2))
            g.admin_token = ADMIN_TOKEN
        g.generation = 1
        return g

    def write(self, g, backends, admin=True, **cfg):
        text = golb_config(backends, **cfg)
        if admin:
            text = text.replace("backends:\n", ADMIN_CFG + "backends:\n", 1)
        with open(g.config_path, "w") as f:
            f.write(text)

    def sighup(self, g):
        """SIGHUP, then waits for the next generation's log line; returns the changes text."""
        start = g.log_offset()
        g.send_signal(signal.SIGHUP)
        g.generation += 1
        m = g.wait_log(rf"reload by SIGHUP: generation {g.generation} running \(([^)]*)\)",
                       timeout=10, start=start)
        return m.group(1)

    def admin(self, g, method, path, body=None, headers=None):
        """One admin request; a change carries g's admin token unless headers say otherwise."""
        h = dict(headers or {})
        if method != "GET" and getattr(g, "admin_token", None):
            h.setdefault("Authorization", f"Bearer {g.admin_token}")
        return http_request(g.admin, method, path, headers=h, body=body)

    def reload_api(self, g, headers=None):
        r = self.admin(g, "POST", "/api/v1/reload", headers=headers)
        out = json.loads(r.body) if r.body else {}
        if r.status == 200:
            g.generation = out["generation"]
        return r.status, out

    def read_to_eof(self, sock):
        """Everything a socket (plain or TLS) gets until the peer closes it."""
        data = b""
        sock.settimeout(scaled(5))
        while True:
            d = sock.recv(65536)
            if not d:
                return data
            data += d

    def open_tunnel(self, g, tries=10):
        """A WebSocket tunnel through golb to the tunnel upstream: retried until the balancer's
        rotation lands on it (the toys answer 200). Returns the HTTPConn, or None."""
        for _ in range(tries):
            conn = HTTPConn(g.host, g.port, timeout=scaled(10))
            self.addCleanup(conn.close)
            conn.send_request("GET", "/ws", headers=[("Connection", "Upgrade"),
                                                     ("Upgrade", "websocket")])
            if conn.read_response(head_only=True).status == 101:
                return conn
            conn.close()
        return None

    def server_ids(self, g, n):
        ids = []
        for _ in range(n):
            r = self.get(g, "/x")
            self.assertEqual(r.status, 200, r.text)
            ids.append(r.header("X-Server-Id"))
        return ids


class ReloadBasicsTest(ReloadCase):
    def test_sighup_adds_and_removes_a_backend(self):
        a, b = self.toy(1), self.toy(2)
        g = self.start([a])
        self.assertEqual(set(self.server_ids(g, 4)), {"1"})
        self.write(g, [a, b])
        changes = self.sighup(g)
        self.assertIn(f"backend added: http://127.0.0.1:{b.port}", changes)
        self.assertEqual(set(self.server_ids(g, 6)), {"1", "2"}, "the new backend takes traffic")
        self.write(g, [a])
        changes = self.sighup(g)
        self.assertIn(f"backend removed: http://127.0.0.1:{b.port}", changes)
        self.assertEqual(set(self.server_ids(g, 10)), {"1"}, "a removed backend gets nothing")

    def test_a_broken_file_changes_nothing(self):
        a = self.toy(1)
        g = self.start([a])
        with open(g.config_path, "w") as f:
            f.write("port: 8080\nbackends:\n  - http://127.0.0.1:1/health\n  retries: [\n")
        start = g.log_offset()
        g.send_signal(signal.SIGHUP)
        g.wait_log(r"reload by SIGHUP failed: keeping generation 1", timeout=10, start=start)
        self.assertRegex(g.log_text()[start:], r"golb\.yml:\d+:\d+: ")
        self.assertEqual(set(self.server_ids(g, 3)), {"1"})
        status, out = self.reload_api(g)
        self.assertEqual(status, 422, out)
        self.assertEqual(out["result"], "failure")
        self.assertEqual(out["generation"], 1)
        self.assertTrue(out["errors"] and re.match(r".*golb\.yml:\d+:\d+: ", out["errors"][0]), out)
        m = self.admin(g, "GET", "/metrics").text
        self.assertIn('golb_config_reloads_total{result="failure"} 2', m)
        self.assertIn('golb_config_reloads_total{result="success"} 0', m)
        self.assertIn("golb_config_last_reload_successful 0", m)
        self.assertTrue(g.alive())

    def test_admin_reload_answers_with_the_result(self):
        a, b = self.toy(1), self.toy(2)
        g = self.start([a])
        self.assertEqual(self.admin(g, "GET", "/api/v1/reload").status, 405)
        self.write(g, [a, b], connectTimeout=2)
        status, out = self.reload_api(g)
        self.assertEqual(status, 200, out)
        self.assertEqual(out["result"], "success")
        self.assertEqual(out["generation"], 2)
        self.assertIn(f"backend added: http://127.0.0.1:{b.port}", out["changes"])
        self.assertIn("setting changed: connectTimeout 3s -> 2s", out["changes"])
        self.assertEqual(out["errors"], [])
        st = json.loads(self.admin(g, "GET", "/api/v1/status").body)
        self.assertEqual(st["generation"], 2)
        self.assertEqual(len(st["backends"]), 2)
        m = self.admin(g, "GET", "/metrics").text
        self.assertIn('golb_config_reloads_total{result="success"} 1', m)
        self.assertIn("golb_config_generation 2", m)
        # warnings (and errors) come whole, not cut like other JSON values
        self.write(g, [a, b], connectTimeout=2, period=1, timeout=1)
        status, out = self.reload_api(g)
        self.assertEqual(status, 200, out)
        self.assertEqual(len(out["warnings"]), 1, out)
        self.assertRegex(out["warnings"][0], r"golb\.yml:\d+:\d+: warning: healthCheckTimeout .*"
                                             r"while its previous check is still running$")

    def test_admin_reload_needs_the_token(self):
        a = self.toy(1)
        g = self.golb(golb_config([a]).replace(
            "backends:\n", "admin:\n  listen: 127.0.0.1:0\n  token: s3cret\nbackends:\n", 1))
        g.admin = int(g.wait_log(ADMIN_RE).group(2))
        g.generation = 1
        self.assertEqual(self.reload_api(g)[0], 401)
        self.assertEqual(self.reload_api(g, headers={"Authorization": "Bearer nope"})[0], 401)
        status, out = self.reload_api(g, headers={"Authorization": "Bearer s3cret"})
        self.assertEqual(status, 200, out)

    def test_state_counters_and_admin_overrides_carry_over(self):
        a, b = self.toy(1), self.toy(2)
        g = self.start([a, b])
        self.server_ids(g, 6)
        r = self.admin(g, "PUT", f"/api/v1/backends/127.0.0.1:{b.port}", body=b'{"state":"drain"}',
                       headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r.text)
        before = {x["name"]: x for x in json.loads(self.admin(g, "GET", "/api/v1/status").body)["backends"]}
        self.write(g, [a, b], upstreamTimeout=20)
        start = g.log_offset()
        changes = self.sighup(g)
        self.assertIn("setting changed: upstreamTimeout 30s -> 20s", changes)
        self.assertNotIn("(was UNKNOWN)", g.log_text()[start:],
                         "an unchanged backend is not checked from scratch")
        after = {x["name"]: x for x in json.loads(self.admin(g, "GET", "/api/v1/status").body)["backends"]}
        bn = f"127.0.0.1:{b.port}"
        an = f"127.0.0.1:{a.port}"
        self.assertEqual(after[bn]["admin_state"], "drain", "the operator's drain is kept")
        self.assertGreaterEqual(after[an]["requests_total"], before[an]["requests_total"],
                                "counters are not reset")
        self.assertGreater(after[an]["requests_total"], 0)
        self.assertEqual(after[an]["health"], "up")
        self.assertEqual(set(self.server_ids(g, 4)), {"1"}, "the drained backend stays drained")

    def test_a_new_backend_is_checked_before_it_gets_traffic(self):
        a, b = self.toy(1), self.toy(2)
        g = self.start([a])
        r = http_request(b.port, "POST", "/toy/health?status=503")
        self.assertEqual(r.status, 200, r.text)
        self.write(g, [a, b])
        self.sighup(g)
        self.wait_backend(g, b, "DOWN")
        self.assertEqual(set(self.server_ids(g, 10)), {"1"}, "an unhealthy new backend gets nothing")

    def test_workers_change_needs_a_restart(self):
        a = self.toy(1)
        g = self.start([a], workers=2)
        self.write(g, [a], workers=3)
        start = g.log_offset()
        self.sighup(g)
        self.assertIn("workers: a change needs a restart; keeping 2", g.log_text()[start:])
        self.assertIn("golb_workers 2", self.admin(g, "GET", "/metrics").text)

    def test_check_diff_says_what_a_reload_would_change(self):
        a, b = self.toy(1), self.toy(2)
        old = os.path.join(self.tmp, "old.yml")
        new = os.path.join(self.tmp, "new.yml")
        with open(old, "w") as f:
            f.write(golb_config([a, b]))
        with open(new, "w") as f:
            f.write(golb_config([a], connectTimeout=5).replace(
                f"http://127.0.0.1:{a.port}/health", f"http://127.0.0.1:{a.port}/ready"))
        r = run_golb(self.bindir, ["-t", "-confpath", new, "-diff", old])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"backend removed: http://127.0.0.1:{b.port}", r.stdout)
        self.assertIn(f'backend changed: http://127.0.0.1:{a.port}: healthPath "/health" -> "/ready"',
                      r.stdout)
        self.assertIn("setting changed: connectTimeout 3s -> 5s", r.stdout)
        r = run_golb(self.bindir, ["-t", "-confpath", old, "-diff", old])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("no changes", r.stdout)
        r = run_golb(self.bindir, ["-confpath", old, "-diff", old])
        self.assertEqual(r.returncode, 2, "-diff without -t is a usage error")

    def test_check_diff_against_a_copy_in_another_directory(self):
        """-diff OLD with OLD a copy kept in another directory. Without the certificates beside
        it, it is read as the running golb read its original: relative paths against the checked
        file's directory; with them (a copy of the whole directory), from its own, and paths
        compare as written. What a reload keeps (workers) says "needs a restart"."""
        import shutil
        import tlstest
        cert, key = tlstest.pki().leaf("diff-copy", ["golb.test", "IP:127.0.0.1"])
        etc, backup = os.path.join(self.tmp, "etc"), os.path.join(self.tmp, "backup")
        os.makedirs(os.path.join(etc, "certs"))
        os.makedirs(backup)
        shutil.copy(cert, os.path.join(etc, "certs", "site.pem"))
        shutil.copy(key, os.path.join(etc, "certs", "site.key"))
        tls = ('{listen: "127.0.0.1:0", certificates: '
               '[{certFile: certs/site.pem, keyFile: certs/site.key}]}')
        new = os.path.join(etc, "golb.yml")
        old = os.path.join(backup, "golb.yml.running")
        with open(old, "w") as f:
            f.write(golb_config([8081], workers=2, tls=tls))
        with open(new, "w") as f:
            f.write(golb_config([8081], workers=2, tls=tls))
        for cwd, args in ((None, ["-confpath", new, "-diff", old]),
                          (etc, ["-confpath", "golb.yml", "-diff", "../backup/golb.yml.running"])):
            r = run_golb(self.bindir, ["-t"] + args, cwd=cwd)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.splitlines()[1:], ["no changes"], r.stdout)
        with open(new, "w") as f:
            f.write(golb_config([8081], workers=3, connectTimeout=5, tls=tls))
        r = run_golb(self.bindir, ["-t", "-confpath", new, "-diff", old])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.splitlines()[1:]),
                         ["setting changed: connectTimeout 3s -> 5s",
                          "setting changed: workers 2 -> 3 (needs a restart)"], r.stdout)
        # a copy taken with its files beside it loads from its own directory
        shutil.copytree(os.path.join(etc, "certs"), os.path.join(backup, "certs"))
        with open(new, "w") as f:
            f.write(golb_config([8081], workers=2, tls=tls))
        r = run_golb(self.bindir, ["-t", "-confpath", new, "-diff", old])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[1:], ["no changes"], r.stdout)
        os.rename(os.path.join(etc, "certs", "site.pem"), os.path.join(etc, "certs", "new.pem"))
        with open(new, "w") as f:
            f.write(golb_config([8081], workers=2, tls=tls.replace("site.pem", "new.pem")))
        r = run_golb(self.bindir, ["-t", "-confpath", new, "-diff", old])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("setting changed: tls.certificates.certFile", r.stdout)


class ReloadListenersTest(ReloadCase):
    def test_an_unchanged_listener_is_never_closed(self):
        a = self.toy(1)
        g = self.start([a])
        c = self.conn(g)
        c.request("GET", "/x")  # a keep-alive connection from before
        # connections waiting in the listen queue (not yet accepted) across the reload
        queued = []
        for _ in range(5):
            s = socket.create_connection((g.host, g.port))
            queued.append(s)
        self.write(g, [a], keepAliveTimeout=30)
        self.sighup(g)
        for s in queued:
            s.sendall(b"GET /q HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            data = self.read_to_eof(s)
            s.close()
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
        self.assertEqual(c.request("GET", "/y").status, 200, "the old keep-alive connection serves on")
        self.assertEqual(self.get(g, "/z").status, 200)

    def test_a_moved_listener_is_bound_and_the_old_one_closed(self):
        if not has_ipv6_loopback():
            self.skipTest("no ::1 on this machine")
        a = self.toy(1)
        g = self.start([a])
        old_port = g.port
        c = self.conn(g)
        self.assertEqual(c.request("GET", "/x").status, 200)
        self.write(g, [a], listen="'[::1]:0'")
        start = g.log_offset()
        self.sighup(g)
        m = re.search(r"generation 2 running .*listening on \[::1\]:(\d+)", g.log_text()[start:])
        self.assertTrue(m, g.log_tail())
        self.assertIn("listener changed: listen 127.0.0.1:0 -> [::1]:0", g.log_text()[start:])
        new_port = int(m.group(1))
        r = http_request(new_port, "GET", "/n", host="::1")
        self.assertEqual(r.status, 200)
        wait_until(lambda: not can_connect_v4(old_port), scaled(5), "the old listener to close")
        self.assertTrue(c.wait_closed(5), "its idle keep-alive connection is closed")

    def test_a_removed_listener_closes_its_keepalive_connections_and_the_others_stay(self):
        # as in a drain, per listener: an idle keep-alive connection closes at once, a busy one
        # answers with Connection: close and closes after it; the kept listener's go on. One
        # worker: the idle connection's close says the worker saw the listener go.
        release = threading.Event()

        def handler(conn, head, path):
            if path == "/held":
                release.wait(scaled(10))
            body = path.encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            return True

        u = RawUpstream(handler)
        self.addCleanup(u.close)
        self.addCleanup(release.set)
        g = self.start([u], listen='["127.0.0.1:0", "127.0.0.2:0"]', workers=1)
        m = g.wait_log(r"listening on 127\.0\.0\.1:(\d+), 127\.0\.0\.2:(\d+) ")
        gone, kept = int(m.group(1)), int(m.group(2))
        conns = {}
        for name, host, port in (("idle", "127.0.0.1", gone), ("busy", "127.0.0.1", gone),
                                 ("stay", "127.0.0.2", kept)):
            conns[name] = HTTPConn(host, port, scaled(10))
            self.addCleanup(conns[name].close)
            r = conns[name].request("GET", f"/{name}")
            self.assertEqual((r.status, r.header("Connection")), (200, None))
        conns["busy"].send_request("GET", "/held")
        wait_until(lambda: any(b"GET /held " in h for h in u.requests), scaled(5),
                   "the busy connection's request upstream")
        self.write(g, [u], listen='["127.0.0.2:0"]', workers=1)
        self.assertEqual(self.sighup(g), "listener removed: listen 127.0.0.1:0")
        self.assertTrue(conns["idle"].wait_closed(5), "the idle connection closes at once")
        release.set()
        r = conns["busy"].read_response()
        self.assertEqual((r.status, r.body), (200, b"/held"))
        self.assertEqual(r.header("Connection"), "close")
        self.assertTrue(conns["busy"].wait_closed(5), "the busy connection closes after it")
        for p in ("/after1", "/after2"):
            r = conns["stay"].request("GET", p)
            self.assertEqual((r.status, r.body, r.header("Connection")), (200, p.encode(), None))

    def test_a_listener_that_cannot_be_bound_fails_the_reload(self):
        a = self.toy(1)
        g = self.start([a])
        self.write(g, [a], listen=f"127.0.0.1:{a.port}")  # taken by the toy
        status, out = self.reload_api(g)
        self.assertEqual(status, 422, out)
        # at the listen key (line 1 of golb_config's text), as every configuration error
        want = f"{g.config_path}:1:1: cannot listen on 127.0.0.1:{a.port}: address in use"
        self.assertTrue(any(e.startswith(want) for e in out["errors"]), out)
        self.assertEqual(self.get(g, "/x").status, 200, "the old listener still serves")

    def test_a_reload_onto_another_golbs_address_fails_unless_reuse_port(self):
        """SO_REUSEPORT would let the reload join another golb's listener (and take part of its
        traffic): the new address is probed first, as at start, for the plain and the HTTPS
        listener, each error at its own key; reusePort: true lets the reload share it."""
        import tlstest
        cert, key = tlstest.pki().leaf("reload-busy", ["golb.test", "IP:127.0.0.1"])
        a = self.toy(1)
        other = self.golb(golb_config([a], reusePort="true") +
                          tlstest.tls_config_block([(cert, key)]))
        other_tls = tlstest.https_port(other)
        g = self.start([a])
        text = (golb_config([a], listen=f"127.0.0.1:{other.port}") +
                tlstest.tls_config_block([(cert, key)], listen=f"127.0.0.1:{other_tls}"))
        with open(g.config_path, "w") as f:
            f.write(text)
        start = g.log_offset()
        g.send_signal(signal.SIGHUP)
        g.wait_log(r"reload by SIGHUP failed: keeping generation 1", timeout=10, start=start)
        log = g.log_text()[start:]
        self.assertIn(f"{g.config_path}:1:1: cannot listen on 127.0.0.1:{other.port}: address in "
                      f"use (another process listens on it; reusePort: true shares it", log)
        self.assertEqual(self.get(g, "/x").status, 200, "the old listener still serves")
        with open(g.config_path, "w") as f:  # the plain one moves elsewhere: the HTTPS one fails
            f.write(text.replace(f"listen: 127.0.0.1:{other.port}", "listen: 127.0.0.1:0"))
        start = g.log_offset()
        g.send_signal(signal.SIGHUP)
        g.wait_log(r"reload by SIGHUP failed: keeping generation 1", timeout=10, start=start)
        n = text.splitlines().index(f"  listen: 127.0.0.1:{other_tls}") + 1
        self.assertIn(f"{g.config_path}:{n}:3: cannot listen on 127.0.0.1:{other_tls}: address in "
                      f"use", g.log_text()[start:])
        with open(g.config_path, "w") as f:
            f.write(text.replace("backends:", "reusePort: true\nbackends:"))
        changes = self.sighup(g)
        self.assertIn(f"listener changed: listen 127.0.0.1:0 -> 127.0.0.1:{other.port}", changes)


def listening_sockets(pid):
    """How many listening TCP sockets process pid holds (its descriptors' socket inodes that
    /proc/net/tcp{,6} list in state LISTEN)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    cols = line.split()
                    if cols[3] == "0A":
                        listening.add(cols[9])
        except OSError:
            pass
    return len(inodes & listening)


def can_connect_v4(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
        s.close()
        return True
    except OSError:
        return False


class ListenListsTest(ReloadCase):
    """listen and tls.listen as lists (issue 18): every address serves, a reload binds the added
    ones, closes the removed ones and leaves the others alone, per address in its report."""

    def need_ipv6(self):
        if not has_ipv6_loopback():
            self.skipTest("this machine has no IPv6 loopback (cannot bind [::1]): the IPv4+IPv6 "
                          "listener test needs it")

    def test_ipv4_and_ipv6_side_by_side(self):
        self.need_ipv6()
        a = self.toy(1)
        g = self.start([a], listen='["127.0.0.1:0", "[::1]:0"]', workers=2)
        m = g.wait_log(r"listening on 127\.0\.0\.1:(\d+), \[::1\]:(\d+) \(2 workers")
        v4, v6 = int(m.group(1)), int(m.group(2))
        self.assertEqual((g.host, g.port), ("127.0.0.1", v4), "the first address is the one read")
        self.assertEqual(http_request(v4, "GET", "/4").status, 200)
        self.assertEqual(http_request(v6, "GET", "/6", host="::1").status, 200)
        self.assertEqual(listening_sockets(g.pid), 2 * 2 + 1, "a socket per address per worker, "
                         "and the admin's")

    def test_a_reload_adds_and_removes_addresses_and_keeps_the_others(self):
        self.need_ipv6()
        a = self.toy(1)
        g = self.start([a], listen='["127.0.0.1:0", "[::1]:0"]', workers=2)
        m = g.wait_log(r"listening on 127\.0\.0\.1:(\d+), \[::1\]:(\d+) ")
        v4, v6 = int(m.group(1)), int(m.group(2))
        old_text = open(g.config_path).read()
        c = HTTPConn("::1", v6, scaled(5))  # a keep-alive connection on the kept address
        self.addCleanup(c.close)
        self.assertEqual(c.request("GET", "/before").status, 200)
        queued = socket.create_connection(("::1", v6))  # waiting in its listen queue
        self.addCleanup(queued.close)
        self.write(g, [a], listen='["[::1]:0", "127.0.0.2:0", "127.0.0.3:0"]', workers=2)
        changes = self.sighup(g)
        self.assertEqual(changes, "listener removed: listen 127.0.0.1:0; "
                                  "listener added: listen 127.0.0.2:0; "
                                  "listener added: listen 127.0.0.3:0")
        m = g.wait_log(r"generation 2 running [^\n]*; listening on \[::1\]:(\d+), "
                       r"127\.0\.0\.2:(\d+), 127\.0\.0\.3:(\d+)\n")
        self.assertEqual(int(m.group(1)), v6, "the kept address keeps its port (its sockets)")
        self.assertEqual(http_request(int(m.group(2)), "GET", "/2", host="127.0.0.2").status, 200)
        self.assertEqual(http_request(int(m.group(3)), "GET", "/3", host="127.0.0.3").status, 200)
        queued.sendall(b"GET /q HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        self.assertTrue(self.read_to_eof(queued).startswith(b"HTTP/1.1 200"),
                        "a connection queued on the kept address across the reload is served")
        self.assertEqual(c.request("GET", "/after").status, 200)
        wait_until(lambda: not can_connect_v4(v4), scaled(5), "the removed address to close")
        self.assertEqual(listening_sockets(g.pid), 3 * 2 + 1, "nothing leaked, nothing missing")
        # golb -t -diff says the same, per address
        old = os.path.join(self.tmp, "old.yml")
        with open(old, "w") as f:
            f.write(old_text)
        r = run_golb(self.bindir, ["-t", "-confpath", g.config_path, "-diff", old])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[1:], ["listener removed: listen 127.0.0.1:0",
                                                     "listener added: listen 127.0.0.2:0",
                                                     "listener added: listen 127.0.0.3:0"],
                         r.stdout)
        # back to one address (a list of one): the two others close, nothing takes their place
        p2, p3 = int(m.group(2)), int(m.group(3))
        self.write(g, [a], listen='["[::1]:0"]', workers=2)
        self.assertEqual(self.sighup(g), "listener removed: listen 127.0.0.2:0; "
                                         "listener removed: listen 127.0.0.3:0")
        for host, port in (("127.0.0.2", p2), ("127.0.0.3", p3)):
            wait_until(lambda: not can_connect(port, host), scaled(5), f"{host}:{port} to close")
        self.assertEqual(http_request(v6, "GET", "/last", host="::1").status, 200)
        self.assertEqual(listening_sockets(g.pid), 1 * 2 + 1)

    def test_tls_listen_list_serves_https_on_every_address(self):
        import tlstest
        a = self.toy(1)
        cert, key = tlstest.pki().leaf("listen-list", ["golb.test"])
        text = golb_config([a]) + tlstest.tls_config_block(
            [(cert, key)], listen='["127.0.0.2:0", "127.0.0.1:0"]', redirectHttp="true")
        g = self.golb(text)
        self.wait_backend(g, a, "UP")
        m = g.wait_log(r"listening on 127\.0\.0\.1:\d+ and https://127\.0\.0\.2:(\d+), "
                       r"https://127\.0\.0\.1:(\d+) ")
        first, second = int(m.group(1)), int(m.group(2))
        for host, port in (("127.0.0.2", first), ("127.0.0.1", second)):
            c = tlstest.TLSConn(host, port, server_name="golb.test")
            self.addCleanup(c.close)
            self.assertEqual(c.request("GET", "/", host="golb.test").status, 200)
        r = self.get(g, "/x", headers={"Host": "golb.test"})
        self.assertEqual(r.status, 308)
        self.assertEqual(r.header("Location"), f"https://golb.test:{first}/x",
                         "redirects name the first tls.listen address's port")


class ReloadRequestsTest(ReloadCase):
    def test_a_request_finishes_on_a_removed_backend(self):
        a, b = self.toy(1), self.toy(2)
        g = self.start([a, b])
        c1, c2 = self.conn(g), self.conn(g)
        # two slow requests: one lands on each backend
        c1.send_request("GET", "/slow?delay=1500")
        c2.send_request("GET", "/slow?delay=1500")
        wait_until(lambda: "GET /slow" in b.log_text() and "GET /slow" in a.log_text(), scaled(5),
                   "both backends to receive a slow request")
        self.write(g, [a])
        self.sighup(g)
        for c in (c1, c2):
            r = c.read_response()
            self.assertEqual(r.status, 200, "an in-flight request finishes on its generation")
        self.assertEqual(set(self.server_ids(g, 4)), {"1"})

    def test_requests_on_a_removed_backend_are_cut_after_shutdown_timeout(self):
        a, b = self.toy(1), self.toy(2)
        g = self.start([a, b], shutdownTimeout=1, upstreamTimeout=60)
        conns = [self.conn(g, timeout=30) for _ in range(2)]
        for c in conns:
            c.send_request("GET", "/hang?hang=1")
        wait_until(lambda: "GET /hang" in b.log_text() and "GET /hang" in a.log_text(), scaled(5),
                   "both backends to receive a hanging request")
        self.write(g, [a], shutdownTimeout=1, upstreamTimeout=60)
        self.sighup(g)
        t0 = time.monotonic()

        def closed(c):
            r, _, _ = select.select([c.sock], [], [], 0)
            return bool(r) and c.sock.recv(1, socket.MSG_PEEK) == b""
        wait_until(lambda: any(closed(c) for c in conns), scaled(6),
                   "the request on the removed backend to be cut")
        self.assertLess(time.monotonic() - t0, scaled(4), "cut after shutdownTimeout (1 s)")
        self.assertEqual(sum(closed(c) for c in conns), 1,
                         "only the request on the removed backend is cut")
        g.wait_log(r"1 request\(s\) on removed backends cut after shutdownTimeout", timeout=5)


class ReloadQueueTest(ReloadCase):
    def test_two_sighups_back_to_back_while_a_request_runs_leak_nothing(self):
        """Two SIGHUPs back to back, each moving the listener, while a slow request holds a
        worker: golb ends on the last file, the request finishes on its generation, every
        listener replaced on the way is closed (golb's descriptors come back to their count) and,
        under ASan, LeakSanitizer finds no generation left behind at exit."""
        a = self.toy(1)
        g = self.start([a], workers=2, upstreamTimeout=30)
        base = listening_sockets(g.pid)
        self.assertEqual(base, 3, "a listener per worker, and the admin's")
        c = self.conn(g, timeout=scaled(30))
        c.send_request("GET", "/slow?delay=%d" % int(scaled(2) * 1000),
                       headers=[("Connection", "close")])
        wait_until(lambda: "GET /slow" in a.log_text(), scaled(5), "the toy to get the request")
        start = g.log_offset()

        def replace(listen):  # whole files only: golb may read it at any moment now
            text = golb_config([a], workers=2, upstreamTimeout=30, listen=listen)
            with open(g.config_path + ".new", "w") as f:
                f.write(text.replace("backends:\n", ADMIN_CFG + "backends:\n", 1))
            os.replace(g.config_path + ".new", g.config_path)
        replace("127.0.0.2:0")
        g.send_signal(signal.SIGHUP)
        replace("127.0.0.3:0")
        g.send_signal(signal.SIGHUP)
        # each SIGHUP reloads, or the second joins the first while it still waits: either way
        # the last reload reads the last file
        m = g.wait_log(r"reload by SIGHUP: generation (\d+) running \([^)]*\); "
                       r"listening on 127\.0\.0\.3:(\d+)", timeout=scaled(10), start=start)
        self.assertNotIn("reload by SIGHUP failed", g.log_text()[start:])
        port = int(m.group(2))
        r = c.read_response()
        self.assertEqual(r.status, 200, "the request in flight finishes on its generation")
        c.close()
        r = http_request(port, "GET", "/after", host="127.0.0.3")
        self.assertEqual(r.status, 200)
        self.assertFalse(can_connect_v4(g.port), "the first listener is closed")
        self.assertEqual(listening_sockets(g.pid), base,
                         "every listener replaced on the way is closed, none leaked")
        self.assertEqual(g.stop(timeout=15), 0)


class ReloadControlTest(ReloadCase):
    def test_metrics_and_healthz_answer_while_a_reload_runs(self):
        """A POST /api/v1/reload whose new backend answers its first health check only after a
        few seconds: the reload runs on the control thread, so the admin listener answers
        /healthz and /metrics at once all along, and the POST gets its answer at the end."""
        a = self.toy(1)
        delay = scaled(3)
        slow = self.raw_upstream(lambda c, head, path: False, health_delay=delay)
        timing = dict(period=round(delay + scaled(4), 3), timeout=round(delay + scaled(2), 3))
        g = self.start([a], **timing)
        self.write(g, [a, slow], **timing)
        result = {}

        def post():
            t0 = time.monotonic()
            result["answer"] = self.reload_api(g)
            result["took"] = time.monotonic() - t0
        t = threading.Thread(target=post)
        t.start()
        polls = 0
        slowest = 0.0
        try:
            while t.is_alive():
                for path in ("/healthz", "/metrics"):
                    t0 = time.monotonic()
                    r = self.admin(g, "GET", path)
                    took = time.monotonic() - t0
                    slowest = max(slowest, took)
                    self.assertEqual(r.status, 200, path)
                    self.assertLess(took, scaled(1.5),
                                    f"{path} took {took:.2f} s while a reload ran")
                    if t.is_alive():
                        polls += 1
                time.sleep(0.05)
        finally:
            t.join(scaled(30))
        status, out = result["answer"]
        self.assertEqual(status, 200, out)
        self.assertEqual(out["result"], "success")
        self.assertEqual(out["generation"], 2)
        self.assertIn(f"backend added: http://127.0.0.1:{slow.port}", out["changes"])
        self.assertGreaterEqual(result["took"], delay * 0.9, "the reload waited for the check")
        self.assertGreaterEqual(polls, 4, "the admin answered while the reload ran")
        self.wait_backend(g, slow, "UP")


class ReloadHealthStartTest(ReloadCase):
    def test_a_checker_that_cannot_start_fails_the_reload_and_checks_go_on(self):
        """The new health checker needs descriptors of its own (its loop): with golb's
        descriptor limit lowered to allow exactly one more (the file's), it cannot start. The
        reload fails and changes nothing; the running checker goes on (a backend going down is
        still seen); with the limit back the same file loads."""
        import resource
        a, b = self.toy(1), self.toy(2)
        g = self.start([a])
        self.write(g, [a, b])
        soft, hard = resource.prlimit(g.pid, resource.RLIMIT_NOFILE)
        failed = None
        for _ in range(5):  # a health check in flight may take the one descriptor: try again
            used = {int(x) for x in os.listdir(f"/proc/{g.pid}/fd")}
            lowest_free = min(set(range(len(used) + 1)) - used)
            start = g.log_offset()
            resource.prlimit(g.pid, resource.RLIMIT_NOFILE, (lowest_free + 1, hard))
            try:
                g.send_signal(signal.SIGHUP)
                m = g.wait_log(r"reload by SIGHUP(?: failed)?:", timeout=scaled(10), start=start)
            finally:
                resource.prlimit(g.pid, resource.RLIMIT_NOFILE, (soft, hard))
            text = g.log_text()[start:]
            self.assertIn("failed", m.group(0), "the reload went through without a checker")
            if "cannot start health checks" in text:
                failed = text
                break
        self.assertIsNotNone(failed, "never failed at the checker's start")
        self.assertIn("reload by SIGHUP failed: keeping generation 1", failed)
        self.assertIn("golb_config_generation 1", self.admin(g, "GET", "/metrics").text)
        self.assertEqual(set(self.server_ids(g, 4)), {"1"}, "the new backend gets nothing")
        # the running checker is still there: a backend that goes down is seen
        start = g.log_offset()
        self.assertEqual(http_request(a.port, "POST", "/toy/health?status=503").status, 200)
        self.wait_backend(g, a, "DOWN", start=start, timeout=scaled(5))
        self.assertEqual(http_request(a.port, "POST", "/toy/health?status=200").status, 200)
        self.wait_backend(g, a, "UP", start=start, timeout=scaled(5))
        changes = self.sighup(g)  # the limit is back: the same file loads
        self.assertIn(f"backend added: http://127.0.0.1:{b.port}", changes)
        self.assertEqual(set(self.server_ids(g, 6)), {"1", "2"})


class ReloadTunnelTest(ReloadCase):
    def test_a_tunnel_to_a_removed_backend_ends_after_shutdown_timeout(self):
        from test_86_tunnel import TunnelUpstream
        a = self.toy(1)
        t = TunnelUpstream(self)
        g = self.start([a, t.u], shutdownTimeout=1)
        tun = self.open_tunnel(g)
        self.assertIsNotNone(tun)
        self.write(g, [a], shutdownTimeout=1)
        self.sighup(g)
        t0 = time.monotonic()
        tun.sock.sendall(b"still-there")  # inside shutdownTimeout the tunnel still works
        got = b""
        while len(got) < 11:
            got += tun.sock.recv(11 - len(got))
        self.assertEqual(got, b"still-there")
        tun.sock.settimeout(scaled(6))
        self.assertEqual(tun.sock.recv(100), b"", "the tunnel is closed after shutdownTimeout")
        self.assertGreaterEqual(time.monotonic() - t0, 0.5)
        self.assertEqual(set(self.server_ids(g, 4)), {"1"})


class ReloadTLSTest(ReloadCase):
    def test_renewed_certificate_is_served_after_a_reload(self):
        import ssl
        import tlstest
        pki = tlstest.pki()
        a = self.toy(1)
        cert1, key1 = pki.leaf("reload-a", ["golb.test", "IP:127.0.0.1"])
        cert2, key2 = pki.leaf("reload-b", ["golb.test", "IP:127.0.0.1"])
        cert = os.path.join(self.tmp, "site.pem")
        key = os.path.join(self.tmp, "site.key")

        def install(c, k):
            with open(c, "rb") as s, open(cert, "wb") as d:
                d.write(s.read())
            with open(k, "rb") as s, open(key, "wb") as d:
                d.write(s.read())
        install(cert1, key1)
        tls = (f"tls:\n  listen: 127.0.0.1:0\n  certificates:\n    - certFile: {cert}\n"
               f"      keyFile: {key}\n")
        text = golb_config([a]).replace("backends:\n", ADMIN_CFG + tls + "backends:\n", 1)
        g = self.golb(text)
        self.wait_backend(g, a, "UP")
        g.admin = int(g.wait_log(ADMIN_RE).group(2))
        g.admin_token = ADMIN_TOKEN
        g.generation = 1
        tport = int(re.search(r"and https://127\.0\.0\.1:(\d+)", g.log_text()).group(1))

        def serving_cert():
            ctx = ssl.create_default_context(cafile=pki.ca_cert)
            with socket.create_connection(("127.0.0.1", tport)) as s:
                with ctx.wrap_socket(s, server_hostname="golb.test") as t:
                    return t.getpeercert(binary_form=True)

        def der(path):
            return ssl.PEM_cert_to_DER_cert(open(path).read().split("-----END CERTIFICATE-----")[0]
                                            + "-----END CERTIFICATE-----\n")
        self.assertEqual(serving_cert(), der(cert1))
        # a session ticket from before the reload
        rctx = ssl.create_default_context(cafile=pki.ca_cert)
        rctx.maximum_version = ssl.TLSVersion.TLSv1_2  # the ticket is there after the handshake
        with rctx.wrap_socket(socket.create_connection(("127.0.0.1", tport)),
                              server_hostname="golb.test") as s1:
            s1.sendall(b"GET /x HTTP/1.1\r\nHost: golb.test\r\nConnection: close\r\n\r\n")
            while s1.recv(65536):
                pass
            session = s1.session
        self.assertIsNotNone(session)
        ctx = ssl.create_default_context(cafile=pki.ca_cert)
        old = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tport)), server_hostname="golb.test")
        install(cert2, key2)
        with open(g.config_path, "w") as f:
            f.write(text)
        self.sighup(g)
        self.assertEqual(serving_cert(), der(cert2), "the renewed certificate is served")
        with rctx.wrap_socket(socket.create_connection(("127.0.0.1", tport)),
                              server_hostname="golb.test", session=session) as s2:
            self.assertTrue(s2.session_reused, "a ticket from before the reload still resumes")
        old.sendall(b"GET /x HTTP/1.1\r\nHost: golb.test\r\nConnection: close\r\n\r\n")
        data = self.read_to_eof(old)
        old.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), "an existing TLS connection keeps its own")


class ZeroLossTest(ReloadCase):
    """The proof: constant load across 20 reloads that add and remove a backend and change a
    timeout. Nothing fails, nothing is reset, the tunnel and the slow download live through all of
    it, the removed backend receives nothing after its reload, memory returns to its level."""

    RELOADS = 20

    def test_twenty_reloads_under_load_lose_nothing(self):
        from test_86_tunnel import TunnelUpstream
        a, c = self.toy(1), self.toy(3)
        t = TunnelUpstream(self)
        small = [a, t.u]
        big = [a, t.u, c]
        g = self.start(small, workers=2, upstreamTimeout=30)
        stop = threading.Event()
        failures = []
        counts = {"ka": 0, "new": 0, "pings": 0}
        lock = threading.Lock()

        def fail(what):
            with lock:
                failures.append(what)

        def keep_alive_client():
            conn = HTTPConn(g.host, g.port, timeout=scaled(10))
            try:
                while not stop.is_set():
                    r = conn.request("GET", "/ka")
                    if r.status != 200:
                        fail(f"keep-alive: {r.status}")
                    with lock:
                        counts["ka"] += 1
            except Exception as e:  # a reset or a close golb should not have made
                fail(f"keep-alive: {e!r}")
            finally:
                conn.close()

        def new_conn_client():
            try:
                while not stop.is_set():
                    r = http_request(g.port, "GET", "/new", host=g.host, timeout=scaled(10),
                                     headers={"Connection": "close"})
                    if r.status != 200:
                        fail(f"new connection: {r.status}")
                    with lock:
                        counts["new"] += 1
            except Exception as e:
                fail(f"new connection: {e!r}")

        # the tunnel: retried until it lands on the tunnel upstream (the balancer rotates)
        tun = self.open_tunnel(g)
        self.assertIsNotNone(tun, "no tunnel to the tunnel upstream")

        def tunnel_pinger():
            n = 0
            try:
                while not stop.is_set():
                    msg = b"ping-%d;" % n
                    tun.sock.sendall(msg)
                    got = b""
                    while len(got) < len(msg):
                        d = tun.sock.recv(len(msg) - len(got))
                        if not d:
                            raise AssertionError("tunnel closed")
                        got += d
                    if got != msg:
                        raise AssertionError(f"tunnel echoed {got!r} for {msg!r}")
                    n += 1
                    with lock:
                        counts["pings"] += 1
            except Exception as e:
                fail(f"tunnel: {e!r}")

        # the slow download from the unchanged toy (retried until it lands there)
        size = 3 << 20
        dl = {}

        def downloader():
            try:
                for _ in range(10):
                    conn = HTTPConn(g.host, g.port, timeout=scaled(30))
                    h = hashlib.sha256()
                    r = conn.request("GET", f"/dl?size={size}&trickle=40")
                    conn.close()
                    if r.header("X-Server-Id") == "1":
                        h.update(r.body)
                        dl["status"], dl["len"], dl["sha"] = r.status, len(r.body), h.hexdigest()
                        return
                fail("download never reached the toy")
            except Exception as e:
                fail(f"download: {e!r}")

        threads = [threading.Thread(target=keep_alive_client) for _ in range(2)]
        threads += [threading.Thread(target=new_conn_client), threading.Thread(target=tunnel_pinger)]
        dthread = threading.Thread(target=downloader)
        for th in threads + [dthread]:
            th.start()
        try:
            rss_warm = None
            c_removed_at = None
            for i in range(self.RELOADS):
                with lock:
                    seen = counts["ka"] + counts["new"]
                wait_until(lambda: counts["ka"] + counts["new"] >= seen + 10 or failures,
                           scaled(10), "load to make progress between reloads")
                add = i % 2 == 0
                self.write(g, big if add else small, workers=2,
                           upstreamTimeout=25 if add else 30)
                changes = self.sighup(g)
                self.assertIn("backend added" if add else "backend removed", changes)
                if not add:
                    c_removed_at = len(c.log_text())
                if i == 3:
                    rss_warm = rss_kib(g.pid)
            self.assertFalse(add, "the run ends with the backend removed")
            with lock:
                seen = counts["ka"] + counts["new"]
            wait_until(lambda: counts["ka"] + counts["new"] >= seen + 50 or failures, scaled(10),
                       "load after the last reload")
        finally:
            stop.set()
            for th in threads:
                th.join(scaled(20))
        dthread.join(scaled(60))
        self.assertEqual(failures, [], "no failed or reset request, no dropped tunnel")
        self.assertGreater(counts["pings"], 0)
        self.assertEqual(dl.get("status"), 200, dl)
        self.assertEqual(dl.get("len"), size)
        from golbtest import pattern_sha256
        self.assertEqual(dl.get("sha"), pattern_sha256(size), "the slow download is intact")
        after = c.log_text()[c_removed_at:]
        self.assertNotRegex(after, r"request \d+ on connection: GET /(ka|new|dl|ws)",
                            "the removed backend received a request after its reload")
        ids = set(self.server_ids(g, 6))
        self.assertTrue(ids <= {"1", None}, f"only the toy and the tunnel upstream serve: {ids}")
        if rss_warm is not None and not os.environ.get("GOLB_E2E_ASAN"):
            from golbtest import is_asan_build
            if not is_asan_build():
                rss_end = rss_kib(g.pid)
                self.assertLess(rss_end - rss_warm, 2048,
                                f"memory grew from {rss_warm} to {rss_end} KiB over the reloads")


class ReloadLeakTest(ReloadCase):
    def test_a_hundred_reloads_leak_nothing(self):
        """Every generation is freed: under ASan, LeakSanitizer checks golb's exit (the harness
        fails the test on its report); in a release build, RSS stays level."""
        a, b = self.toy(1), self.toy(2)
        g = self.start([a])
        rss = []
        for i in range(100):
            self.write(g, [a, b] if i % 2 == 0 else [a], connectTimeout=2 + i % 2)
            status, out = self.reload_api(g)
            self.assertEqual(status, 200, out)
            self.assertEqual(self.get(g, "/x").status, 200)
            if i in (19, 99):
                rss.append(rss_kib(g.pid))
        from golbtest import is_asan_build
        if not is_asan_build():
            self.assertLess(rss[1] - rss[0], 1024, f"RSS grew {rss[0]} -> {rss[1]} KiB in 80 reloads")
        self.assertEqual(g.stop(timeout=15), 0)


class ReloadAccessLogTest(ReloadCase):
    def lines(self, path, n, what):
        def read():
            try:
                with open(path) as f:
                    return [json.loads(x) for x in f.read().splitlines() if x]
            except FileNotFoundError:
                return []
        wait_until(lambda: len(read()) >= n, scaled(5), what)
        return read()

    def test_the_access_log_follows_the_file(self):
        a = self.toy(1)
        g = self.start([a])
        first = os.path.join(self.tmp, "first.log")
        second = os.path.join(self.tmp, "second.log")
        self.get(g, "/before")  # the access log is off: nowhere to go
        # turned on by a reload
        self.write(g, [a], accessLog="json", accessLogPath=first)
        self.sighup(g)
        self.get(g, "/one")
        got = self.lines(first, 1, "the first line in the new access log")
        self.assertEqual([r["url.path"] for r in got], ["/one"])
        # moved to another file: what was logged stays, new lines go to the new file
        self.write(g, [a], accessLog="json", accessLogPath=second)
        self.sighup(g)
        self.get(g, "/two")
        self.assertEqual([r["url.path"] for r in self.lines(second, 1, "a line in the second file")],
                         ["/two"])
        # a destination that cannot be opened fails the reload and changes nothing
        self.write(g, [a], accessLog="json",
                   accessLogPath=os.path.join(self.tmp, "no-such-dir", "x.log"))
        status, out = self.reload_api(g)
        self.assertEqual(status, 422, out)
        self.assertTrue(any("cannot open the access log" in e for e in out["errors"]), out)
        self.get(g, "/three")
        self.assertEqual([r["url.path"] for r in self.lines(second, 2, "the line after the failure")],
                         ["/two", "/three"])
        # turned off again
        self.write(g, [a])
        self.sighup(g)
        self.get(g, "/four")
        self.get(g, "/five")
        # and on again into the same file: /six shows up, /four and /five never do
        self.write(g, [a], accessLog="json", accessLogPath=second)
        self.sighup(g)
        self.get(g, "/six")
        self.assertEqual([r["url.path"] for r in self.lines(second, 3, "the line after turning on")],
                         ["/two", "/three", "/six"], "lines logged while the access log was off")
        self.assertEqual([r["url.path"] for r in self.lines(first, 1, "first file")], ["/one"])


class ReloadStatusPageTest(ReloadCase):
    def test_the_status_page_shows_the_running_generation_and_its_backends(self):
        from golbtest import page_dom
        a, b = self.toy(1), self.toy(2)
        g = self.start([a, b])
        self.write(g, [a])
        self.sighup(g)
        dom, err = page_dom(f"http://127.0.0.1:{g.admin}/", self.tmp)
        self.assertIn('data-loaded="true"', dom, err[-2000:])
        self.assertIn("configuration generation 2", dom)
        rows = re.findall(r'<tr data-backend="([^"]+)"', dom)
        self.assertEqual(rows, [f"127.0.0.1:{a.port}"], "only the running generation's backends")

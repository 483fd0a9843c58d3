"""Upgrade (WebSocket-style) tunnels: 101 relayed, bytes both ways, half-close passed on, the idle
tunnelTimeout, a 101 nobody asked for answered 502, and upgradeProtocols: an Upgrade to any other
protocol (h2c smuggling) is proxied as an ordinary request and never becomes a tunnel."""

import hashlib
import os
import socket
import threading
import time

import golbtest
from golbtest import GolbTestCase, scaled, wait_until

MIB = 1 << 20


def head_fields(head):
    lines = head.decode("latin-1").split("\r\n")
    out = []
    for ln in lines[1:]:
        if ln:
            k, _, v = ln.partition(":")
            out.append((k.strip().lower(), v.strip()))
    return out


class TunnelUpstream:
    """Answers GET /ws* that asks for Upgrade: websocket with 101, then:
      /ws           echoes every byte; at EOF sends b"EOF-SEEN" and closes
      /ws-halfclose sends b"BYE", shuts its write side, then records what still arrives until EOF
    GET /plain-101 gets a 101 although it asked for no upgrade; /declined-upgrade gets a 200.
    GET /h2c is an h2c server: a request with Upgrade: h2c gets a 101 to h2c and an echo tunnel,
    any other a 200 "plain" (keep-alive).
    Every tunnel's end (EOF time) and received bytes are recorded."""

    def __init__(self, testcase):
        self.heads = []
        self.after_fin = bytearray()
        self.tunnel_ended = []  # monotonic times the upstream saw EOF on a tunnel
        self.lock = threading.Lock()
        self.u = testcase.raw_upstream(self.handle)
        self.port = self.u.port

    def handle(self, conn, head, path):
        fields = head_fields(head)
        with self.lock:
            self.heads.append((path, fields))
        conn_opts = ",".join(v for k, v in fields if k == "connection").lower()
        upgrade = ",".join(v for k, v in fields if k == "upgrade").lower()
        if path == "/h2c":
            if "h2c" in [p.strip() for p in upgrade.split(",")]:
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             b"Upgrade: h2c\r\n\r\n")
                self.echo(conn)
                return False
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain")
            return True
        if path == "/plain-101":
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                         b"Upgrade: websocket\r\n\r\n")
            return False
        if path == "/declined-upgrade" or not path.startswith("/ws"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ndeclined")
            return True
        if "upgrade" not in conn_opts or upgrade != "websocket":
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 10\r\n\r\nno upgrade")
            return False
        if path == "/ws-eager":
            # The 101 and the first tunnel bytes in one write.
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                         b"Upgrade: websocket\r\nX-Tunnel: yes\r\n\r\nHELLO-FIRST")
        else:
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                         b"Upgrade: websocket\r\nX-Tunnel: yes\r\n\r\n")
        if path == "/ws-reset":
            d = conn.recv(65536)  # one message, then an abortive close
            with self.lock:
                self.after_fin += d
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        elif path == "/ws-halfclose":
            conn.sendall(b"BYE")
            conn.shutdown(socket.SHUT_WR)
            while True:
                d = conn.recv(65536)
                if not d:
                    break
                with self.lock:
                    self.after_fin += d
        else:
            self.echo(conn)
            return False
        with self.lock:
            self.tunnel_ended.append(time.monotonic())
        return False

    def echo(self, conn):
        """Echoes every byte; at EOF sends b"EOF-SEEN"; records the tunnel's end."""
        while True:
            try:
                d = conn.recv(65536)
            except OSError:
                break
            if not d:
                try:
                    conn.sendall(b"EOF-SEEN")
                except OSError:
                    pass  # golb closed both directions
                break
            try:
                conn.sendall(d)
            except OSError:
                break
        with self.lock:
            self.tunnel_ended.append(time.monotonic())


def recv_exact(c, n):
    """n bytes from an HTTPConn's socket, its read buffer first."""
    out = bytearray(c.buf[:n])
    del c.buf[:n]
    while len(out) < n:
        d = c.sock.recv(min(n - len(out), 1 << 20))
        if not d:
            raise AssertionError(f"tunnel closed after {len(out)} of {n} bytes")
        out += d
    return bytes(out)


def recv_until_eof(c, limit=1 << 20):
    out = bytearray(c.buf)
    c.buf.clear()
    while len(out) <= limit:
        d = c.sock.recv(65536)
        if not d:
            return bytes(out)
        out += d
    raise AssertionError("too much data before EOF")


class TunnelTest(GolbTestCase):
    def open_tunnel(self, g, path="/ws", timeout=10):
        c = self.conn(g, timeout=timeout)
        c.send_request("GET", path, headers=[("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                             ("Sec-WebSocket-Version", "13")])
        r = c.read_response()
        self.assertEqual(r.status, 101, r.text)
        self.assertEqual((r.header("Upgrade") or "").lower(), "websocket", r.headers)
        self.assertIn("upgrade", (r.header("Connection") or "").lower(), r.headers)
        self.assertEqual(r.header("X-Tunnel"), "yes")
        return c

    def test_upgrade_bytes_both_ways_and_half_close(self):
        tu = TunnelUpstream(self)
        g = self.golb_for([tu], tunnelTimeout=30)
        c = self.open_tunnel(g)
        # What golb sent upstream asked for the upgrade.
        path, fields = tu.heads[-1]
        self.assertEqual(path, "/ws")
        self.assertIn(("upgrade", "websocket"), fields)
        self.assertIn("upgrade", ",".join(v for k, v in fields if k == "connection").lower())

        for i in range(20):  # round trips
            msg = b"ping %d " % i + os.urandom(i * 37)
            c.send(msg)
            self.assertEqual(recv_exact(c, len(msg)), msg, f"round trip {i}")

        # 1 MiB each way at once: the upstream echoes while we still send.
        data = os.urandom(MIB)
        errors = []

        def sender():
            try:
                for off in range(0, len(data), 65536):
                    c.sock.sendall(data[off:off + 65536])
            except OSError as e:
                errors.append(e)

        if golbtest.TLS_MODE:
            # One OpenSSL connection must not be used by two threads at once: send and receive
            # in turns, 64 KiB at a time (still both directions in flight through golb).
            back = b""
            for off in range(0, len(data), 65536):
                c.sock.sendall(data[off:off + 65536])
                back += recv_exact(c, min(65536, len(data) - off))
        else:
            t = threading.Thread(target=sender, daemon=True)
            t.start()
            back = recv_exact(c, len(data))
            t.join(scaled(10))
        self.assertFalse(errors)
        self.assertEqual(hashlib.sha256(back).hexdigest(), hashlib.sha256(data).hexdigest())

        if golbtest.TLS_MODE:
            return  # Python's ssl cannot half-close a TLS stream (shutdown() drops the TLS layer)
        # Half-close from the client: the upstream sees EOF, and its reply still reaches us.
        c.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_until_eof(c), b"EOF-SEEN")
        wait_until(lambda: tu.tunnel_ended, 5, "the upstream to see the tunnel end")

        # golb is still fine for ordinary requests.
        self.assertEqual(self.get(g, "/declined-upgrade").status, 200)

    def test_half_close_from_upstream(self):
        tu = TunnelUpstream(self)
        g = self.golb_for([tu], tunnelTimeout=30)
        c = self.open_tunnel(g, "/ws-halfclose")
        self.assertEqual(recv_until_eof(c), b"BYE", "the upstream's FIN must reach the client")
        # Our direction is still open: bytes sent now still reach the upstream.
        c.send(b"still here")
        wait_until(lambda: bytes(tu.after_fin) == b"still here", 5,
                   "bytes sent after the upstream's half-close to arrive")
        c.sock.shutdown(socket.SHUT_WR)
        wait_until(lambda: tu.tunnel_ended, 5, "the upstream to see our FIN")
        self.assertTrue(c.wait_closed())

    def test_tunnel_timeout_closes_idle_tunnel(self):
        tu = TunnelUpstream(self)
        tt = round(scaled(1), 3)
        g = self.golb_for([tu], tunnelTimeout=tt)
        c = self.open_tunnel(g)
        # Activity keeps it open past tunnelTimeout (the timeout is about idleness) ...
        t_end = time.monotonic() + 1.5 * tt
        i = 0
        while True:
            msg = b"keepalive %d" % i
            c.send(msg)
            self.assertEqual(recv_exact(c, len(msg)), msg)
            t0 = time.monotonic()  # the last byte moved
            i += 1
            if t0 >= t_end:
                break
            time.sleep(tt / 4)  # pacing the traffic, not synchronisation
        # ... then idleness closes it, on both sides, at about tunnelTimeout.
        self.assertTrue(c.wait_closed(timeout=tt + 5), "idle tunnel never closed")
        dt = time.monotonic() - t0
        self.assertGreaterEqual(dt, tt * 0.8, "closed before tunnelTimeout")
        self.assertLess(dt, tt + scaled(2), "closed long after tunnelTimeout")
        wait_until(lambda: tu.tunnel_ended, 5, "the upstream side of the tunnel to be closed")
        self.assertEqual(self.get(g, "/declined-upgrade").status, 200)

    def test_bytes_that_travel_with_the_handshake(self):
        tu = TunnelUpstream(self)
        g = self.golb_for([tu], tunnelTimeout=30)
        # The upstream's first tunnel bytes share a segment with its 101.
        c = self.open_tunnel(g, "/ws-eager")
        self.assertEqual(recv_exact(c, len(b"HELLO-FIRST")), b"HELLO-FIRST")
        c.send(b"echo me")
        self.assertEqual(recv_exact(c, 7), b"echo me")
        c.close()
        # The client's first bytes sent right behind the upgrade request, before the 101.
        c = self.conn(g, timeout=10)
        c.send(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
               b"EARLY-BYTES")
        r = c.read_response()
        self.assertEqual(r.status, 101, r.text)
        self.assertEqual(recv_exact(c, len(b"EARLY-BYTES")), b"EARLY-BYTES")

    def test_abortive_close_on_either_side(self):
        tu = TunnelUpstream(self)
        g = self.golb_for([tu], tunnelTimeout=30)
        # The upstream resets: the client's connection is closed too.
        c = self.open_tunnel(g, "/ws-reset")
        c.send(b"last words")
        wait_until(lambda: bytes(tu.after_fin) == b"last words", 5, "the message to arrive")
        self.assertTrue(c.wait_closed(timeout=5), "client side left open after the upstream reset")
        # The client resets: the upstream's connection is closed too.
        n = len(tu.tunnel_ended)
        c = self.open_tunnel(g, "/ws")
        c.send(b"x")
        self.assertEqual(recv_exact(c, 1), b"x")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        wait_until(lambda: len(tu.tunnel_ended) > n, 5, "the upstream side to be closed after a client reset")
        self.assertEqual(self.get(g, "/declined-upgrade").status, 200)

    def test_sigterm_with_an_open_tunnel(self):
        # An idle tunnel is in flight, not idle keep-alive: SIGTERM lets it run until
        # shutdownTimeout, then cuts it, and golb exits 0 (checked again at cleanup).
        import signal
        tu = TunnelUpstream(self)
        st = round(scaled(1), 3)
        g = self.golb_for([tu], tunnelTimeout=300, shutdownTimeout=st)
        c = self.open_tunnel(g)
        c.send(b"before")
        self.assertEqual(recv_exact(c, 6), b"before")
        t0 = time.monotonic()
        g.send_signal(signal.SIGTERM)
        self.assertTrue(c.wait_closed(timeout=st + 5), "tunnel never cut at shutdown")
        rc = g.wait_exit(st + 5)
        self.assertEqual(rc, 0, f"golb exited with {rc}")
        self.assertLess(time.monotonic() - t0, st + scaled(3))

    def test_101_without_upgrade_request_is_502(self):
        tu = TunnelUpstream(self)
        g = self.golb_for([tu])
        c = self.conn(g)
        r = c.request("GET", "/plain-101")
        self.assertEqual(r.status, 502, r.text)
        self.assertTrue(0 < len(r.body) < 1024)
        self.assertTrue(c.wait_closed())
        self.assertEqual(self.get(g, "/declined-upgrade").status, 200)

    def test_declined_upgrade_stays_http(self):
        tu = TunnelUpstream(self)
        g = self.golb_for([tu])
        c = self.conn(g)
        r = c.request("GET", "/declined-upgrade",
                      headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")])
        self.assertEqual((r.status, r.body), (200, b"declined"))
        r = c.request("GET", "/declined-upgrade")  # the connection is still plain HTTP
        self.assertEqual((r.status, r.body), (200, b"declined"))


H2C_HEADERS = [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
               ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]


class UpgradeProtocolsTest(GolbTestCase):
    """upgradeProtocols (default [websocket]): issue 15, h2c smuggling."""

    def last_head(self, tu, path):
        with tu.lock:
            heads = [f for p, f in tu.heads if p == path]
        self.assertTrue(heads, f"no request for {path} reached the upstream")
        return heads[-1]

    def test_h2c_upgrade_is_proxied_as_an_ordinary_request(self):
        tu = TunnelUpstream(self)
        g = self.golb_for([tu], tunnelTimeout=30)
        c = self.conn(g)
        r = c.request("GET", "/h2c", headers=H2C_HEADERS)
        # The backend would have switched to h2c: it never saw the Upgrade, so it answered plainly.
        self.assertEqual((r.status, r.body), (200, b"plain"), r.headers)
        fields = self.last_head(tu, "/h2c")
        names = {k for k, _ in fields}
        self.assertNotIn("upgrade", names, fields)
        self.assertNotIn("http2-settings", names, fields)
        conn_opts = ",".join(v for k, v in fields if k == "connection").lower()
        self.assertNotIn("upgrade", conn_opts)
        self.assertNotIn("http2-settings", conn_opts)
        # Keep-alive as for any request: the same connection serves the next one.
        self.assertIsNone(r.header("Upgrade"))
        r = c.request("GET", "/declined-upgrade")
        self.assertEqual((r.status, r.body), (200, b"declined"))

    def test_101_to_an_h2c_request_is_502_never_a_tunnel(self):
        tu = TunnelUpstream(self)
        g = self.golb_for([tu], tunnelTimeout=30)
        c = self.conn(g)
        r = c.request("GET", "/plain-101", headers=H2C_HEADERS)
        self.assertEqual(r.status, 502, r.text)
        self.assertTrue(c.wait_closed())
        self.assertEqual(self.get(g, "/declined-upgrade").status, 200)

    def test_websocket_among_other_protocols_still_tunnels(self):
        tu = TunnelUpstream(self)
        g = self.golb_for([tu], tunnelTimeout=30)
        c = self.conn(g, timeout=10)
        c.send_request("GET", "/ws", headers=[("Connection", "Upgrade, HTTP2-Settings"),
                                              ("Upgrade", "h2c, websocket"),
                                              ("HTTP2-Settings", "AAMAAABk")])
        r = c.read_response(head_only=True)
        self.assertEqual(r.status, 101, r.text)
        fields = self.last_head(tu, "/ws")
        self.assertEqual([v for k, v in fields if k == "upgrade"], ["websocket"], fields)
        self.assertNotIn("http2-settings", {k for k, _ in fields}, fields)
        c.send(b"through")
        self.assertEqual(recv_exact(c, 7), b"through")

    def test_an_empty_list_turns_upgrades_off_and_h2c_can_be_allowed(self):
        tu = TunnelUpstream(self)
        g = self.golb_for([tu], tunnelTimeout=30, upgradeProtocols="[]")
        c = self.conn(g)
        r = c.request("GET", "/declined-upgrade",
                      headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")])
        self.assertEqual((r.status, r.body), (200, b"declined"))
        self.assertNotIn("upgrade", {k for k, _ in self.last_head(tu, "/declined-upgrade")})
        # An operator who wants h2c passed through says so.
        g2 = self.golb_for([tu], tunnelTimeout=30, upgradeProtocols="[websocket, H2C]")
        c = self.conn(g2, timeout=10)
        c.send_request("GET", "/h2c", headers=H2C_HEADERS)
        self.assertEqual(c.read_response(head_only=True).status, 101)
        fields = self.last_head(tu, "/h2c")
        self.assertIn(("upgrade", "h2c"), fields)
        self.assertIn(("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"), fields)
        c.send(b"h2 bytes")
        self.assertEqual(recv_exact(c, 8), b"h2 bytes")

    def test_config_errors_name_the_entry(self):
        path = os.path.join(self.tmp, "c.yml")
        with open(path, "w") as f:
            f.write("backends:\n  - http://127.0.0.1:1/\nupgradeProtocols:\n  - websocket\n"
                    "  - \"h2c, x\"\n")
        p = golbtest.run_golb(self.bindir, ["-t", "-confpath", path])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f"{path}:5:5: upgradeProtocols entry must be a protocol name", p.stderr)
        with open(path, "w") as f:
            f.write("backends:\n  - http://127.0.0.1:1/\nupgradeProtocols: websocket\n")
        p = golbtest.run_golb(self.bindir, ["-t", "-confpath", path])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f"{path}:3:19: upgradeProtocols must be a sequence", p.stderr)

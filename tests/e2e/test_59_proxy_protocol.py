"""Client addresses (issue 18, sections 2 and 3). PROXY protocol on accept: a trusted L4 peer's v1 or v2 header gives the
client address golb uses everywhere (X-Forwarded-For, access log, clientAddress hashing), on the
plain and the TLS listener; headers from untrusted peers, malformed ones, missing ones when
required, and ones that never complete close the connection and are counted by reason.
trustedProxies: forwarding headers replaced from untrusted peers, appended to and read
(right-most untrusted X-Forwarded-For entry) from trusted ones."""

import json
import os
import socket
import struct
import threading
import time

from golbtest import (GolbTestCase, HTTPConn, RawUpstream, golb_config, run_golb, scaled,
                      wait_until)
from test_91_observability import ADMIN_RE, parse_metrics, val
from tlstest import TLSConn, client_context, https_port, pki, tls_config_block

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(src, dst, sport=4000, dport=80, command=1, tlvs=b""):
    """A v2 PROXY (command 1) or LOCAL (0) header over TCP for src/dst (IPv4 or IPv6 text)."""
    if command == 0:
        return SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    addrs = socket.inet_pton(fam, src) + socket.inet_pton(fam, dst) + struct.pack("!HH", sport, dport)
    body = addrs + tlvs
    return SIG + bytes([0x21, 0x21 if fam == socket.AF_INET6 else 0x11]) + struct.pack("!H", len(body)) + body


def v1(src, dst, sport=4000, dport=80):
    proto = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode()


class ProxyProtocolCase(GolbTestCase):
    def start(self, backends, pp, extra_text="", **cfg):
        cfg.setdefault("workers", 1)
        self.alog = os.path.join(self.tmp, "access.log")
        text = (golb_config(backends, **cfg) + "proxyProtocol:\n" + pp +
                "admin:\n  listen: 127.0.0.1:0\n" +
                f"accessLog: json\naccessLogPath: {self.alog}\n" + extra_text)
        g = self.golb(text)
        for b in backends:
            self.wait_backend(g, b, "UP")
        g.admin = int(g.wait_log(ADMIN_RE).group(2))
        return g

    def metrics(self, g):
        c = HTTPConn("127.0.0.1", g.admin)
        self.addCleanup(c.close)
        r = c.request("GET", "/metrics", host="127.0.0.1")
        self.assertEqual(r.status, 200)
        return parse_metrics(r.text)

    def pp_errors(self, g, reason):
        return val(self.metrics(g), "golb_proxy_protocol_errors_total", reason=reason)

    def wait_error(self, g, reason, n=1):
        wait_until(lambda: self.pp_errors(g, reason) >= n, scaled(3),
                   f"golb_proxy_protocol_errors_total{{reason={reason}}} >= {n}")
        self.assertEqual(self.pp_errors(g, reason), n)

    def raw(self, g, port=None):
        s = socket.create_connection(("127.0.0.1", port or g.port), timeout=scaled(5))
        self.addCleanup(s.close)
        return s

    def assert_closed_silently(self, s):
        """The peer closes without a byte (an answer the wrong protocol would not understand)."""
        s.settimeout(scaled(5))
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        self.assertEqual(data, b"")

    def access_log(self, n):
        def read():
            try:
                with open(self.alog, "rb") as f:
                    lines = f.read().split(b"\n")[:-1]
            except FileNotFoundError:
                return None
            return lines if len(lines) >= n else None
        return [json.loads(x) for x in wait_until(read, scaled(5), f"{n} access log lines")]


class AcceptTest(ProxyProtocolCase):
    def test_v1_and_v2_addresses_become_the_client_address(self):
        t = self.toy(1)
        g = self.start([t], "  trustedNetworks: [127.0.0.1/32]\n  required: true\n")
        # v1, then two requests on the same connection: the address holds for the connection
        c = self.conn(g)
        c.send(v1("192.0.2.7", "198.51.100.1"))
        for _ in range(2):
            r = c.request("GET", "/a")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.echo_header("X-Forwarded-For"), "192.0.2.7")
        # v2 IPv6 with an unknown TLV, header and request in one write
        c = self.conn(g)
        c.send(v2("2001:db8::9", "2001:db8::1", tlvs=b"\xe0\x00\x03abc"))
        r = c.request("GET", "/b")
        self.assertEqual(r.echo_header("X-Forwarded-For"), "2001:db8::9")
        # v2 LOCAL (the L4 tier's own health check): the peer's address
        c = self.conn(g)
        c.send(v2(None, None, command=0))
        self.assertEqual(c.request("GET", "/c").echo_header("X-Forwarded-For"), "127.0.0.1")
        # a client's own X-Forwarded-For is replaced (it is not one of trustedProxies)
        c = self.conn(g)
        c.send(v1("192.0.2.8", "198.51.100.1"))
        r = c.request("GET", "/d", headers={"X-Forwarded-For": "10.9.9.9"})
        self.assertEqual(r.echo_header("X-Forwarded-For"), "192.0.2.8")
        lines = self.access_log(5)
        self.assertEqual([x["client.address"] for x in lines],
                         ["192.0.2.7", "192.0.2.7", "2001:db8::9", "127.0.0.1", "192.0.2.8"])
        m = self.metrics(g)
        self.assertEqual(val(m, "golb_proxy_protocol_headers_total", version="1"), 2)
        self.assertEqual(val(m, "golb_proxy_protocol_headers_total", version="2"), 2)

    def test_header_in_pieces_waits_for_the_rest(self):
        t = self.toy(1)
        g = self.start([t], "  trustedNetworks: [127.0.0.1]\n")
        h = v2("203.0.113.5", "198.51.100.1")
        c = self.conn(g)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(h), 7):  # pieces across loop turns
            c.send(h[i:i + 7])
            time.sleep(0.01)  # not a synchronisation: only spreads the pieces over reads
        self.assertEqual(c.request("GET", "/").echo_header("X-Forwarded-For"), "203.0.113.5")

    def test_refusals_are_counted_by_reason(self):
        t = self.toy(1)
        g = self.start([t], "  trustedNetworks: [127.0.0.1/32]\n  required: true\n",
                       clientHeaderTimeout=0.5)
        s = self.raw(g)  # required, and a request comes without a header
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assert_closed_silently(s)
        self.wait_error(g, "missing")
        s = self.raw(g)  # a malformed v1 line (two spaces)
        s.sendall(b"PROXY TCP4  192.0.2.1 198.51.100.1 1 2\r\nGET / HTTP/1.1\r\n\r\n")
        self.assert_closed_silently(s)
        self.wait_error(g, "malformed")
        s = self.raw(g)  # a v2 whose length is too small for its addresses
        s.sendall(SIG + b"\x21\x11\x00\x04" + b"\x00" * 4)
        self.assert_closed_silently(s)
        self.wait_error(g, "malformed", 2)
        s = self.raw(g)  # a header that never completes
        t0 = time.monotonic()
        s.sendall(b"PROXY TCP4 192.0.2.1")
        self.assert_closed_silently(s)
        self.assertLess(time.monotonic() - t0, scaled(2.5))
        self.wait_error(g, "timeout")
        s = self.raw(g)  # reset before a byte: not counted
        s.close()
        # still serving
        c = self.conn(g)
        c.send(v1("192.0.2.1", "198.51.100.1"))
        self.assertEqual(c.request("GET", "/").status, 200)
        self.assertEqual(self.pp_errors(g, "untrusted"), 0)

    def test_untrusted_peer_may_not_send_one(self):
        t = self.toy(1)
        g = self.start([t], "  trustedNetworks: [10.0.0.0/8, \"2001:db8::/32\"]\n  required: true\n")
        s = self.raw(g)
        s.sendall(v1("192.0.2.1", "198.51.100.1") + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assert_closed_silently(s)
        self.wait_error(g, "untrusted")
        s = self.raw(g)
        s.sendall(v2("192.0.2.1", "198.51.100.1"))
        self.assert_closed_silently(s)
        self.wait_error(g, "untrusted", 2)
        # without a header it is an ordinary client, its own address the client address
        r = self.get(g, "/", headers={"X-Forwarded-For": "10.1.1.1"})
        self.assertEqual(r.echo_header("X-Forwarded-For"), "127.0.0.1")

    def test_optional_header(self):
        t = self.toy(1)
        g = self.start([t], "  trustedNetworks: [127.0.0.0/8]\n  required: false\n")
        self.assertEqual(self.get(g, "/").echo_header("X-Forwarded-For"), "127.0.0.1")
        c = self.conn(g)
        c.send(v1("192.0.2.3", "198.51.100.1"))
        self.assertEqual(c.request("GET", "/").echo_header("X-Forwarded-For"), "192.0.2.3")

    def test_hash_on_client_address_uses_the_carried_address(self):
        toys = self.toys(3)
        g = self.start(toys, "  trustedNetworks: [127.0.0.1]\n", balance="hash")
        seen = {}
        for i in range(30):
            src = f"192.0.2.{i + 1}"
            ids = set()
            for _ in range(2):
                c = HTTPConn("127.0.0.1", g.port)
                c.send(v1(src, "198.51.100.1"))
                ids.add(c.request("GET", "/").header("X-Server-Id"))
                c.close()
            self.assertEqual(len(ids), 1, f"{src} always goes to one backend")
            seen[src] = ids.pop()
        self.assertEqual(len(set(seen.values())), 3, "distinct clients spread over the backends")

    def test_tls_listener_reads_the_header_before_the_handshake(self):
        t = self.toy(1)
        cert = pki().leaf("pp-a", ["a.test"], key="ec")
        g = self.start([t], "  trustedNetworks: [127.0.0.1]\n  required: true\n",
                       extra_text=tls_config_block([cert]))
        port = https_port(g)
        raw = self.raw(g, port)
        raw.sendall(v2("198.51.100.77", "198.51.100.1", dport=443))
        s = client_context().wrap_socket(raw, server_hostname="a.test")
        s.sendall(b"GET /t HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        self.assertIn(b"HTTP/1.1 200", data)
        self.assertIn(b"198.51.100.77", data)  # the echo of X-Forwarded-For
        # a TLS client without the header is refused before its handshake
        raw = self.raw(g, port)
        with self.assertRaises((ssl_errors())):
            client_context().wrap_socket(raw, server_hostname="a.test")
        self.wait_error(g, "missing")


def ssl_errors():
    import ssl
    return (ssl.SSLError, ConnectionResetError, OSError)


FORWARDING = {"X-Forwarded-For": "203.0.113.1, 10.0.0.5", "X-Forwarded-Proto": "https",
              "X-Forwarded-Host": "front.example", "Forwarded": "for=203.0.113.1;proto=https",
              "X-Real-IP": "203.0.113.1"}


class TrustedProxiesTest(ProxyProtocolCase):
    def start_plain(self, backends, **cfg):
        cfg.setdefault("workers", 1)
        self.alog = os.path.join(self.tmp, "access.log")
        g = self.golb(golb_config(backends, **cfg) + f"accessLog: json\naccessLogPath: {self.alog}\n")
        for b in backends:
            self.wait_backend(g, b, "UP")
        return g

    def test_untrusted_peer_headers_are_replaced(self):
        t = self.toy(1)
        g = self.start_plain([t])  # trustedProxies: [] by default
        r = self.get(g, "/", headers=FORWARDING)
        self.assertEqual(r.echo_header("X-Forwarded-For"), "127.0.0.1")
        self.assertEqual(r.echo_header("X-Forwarded-Proto"), "http")
        self.assertEqual(r.echo_header("X-Forwarded-Host"), "golb.test")
        self.assertEqual(r.echo_header("Forwarded"), 'for=127.0.0.1;proto=http;host="golb.test"')
        self.assertEqual(r.echo_header("X-Real-IP"), "127.0.0.1")
        self.assertEqual(self.access_log(1)[0]["client.address"], "127.0.0.1")

    def test_trusted_peer_chain_gives_the_client(self):
        toys = self.toys(3)
        g = self.start_plain(toys, trustedProxies='[127.0.0.1, "10.0.0.0/8"]', balance="hash")
        r = self.get(g, "/", headers=FORWARDING)
        self.assertEqual(r.echo_header("X-Forwarded-For"), "203.0.113.1, 10.0.0.5, 127.0.0.1")
        self.assertEqual(r.echo_header("X-Forwarded-Proto"), "https")
        self.assertEqual(r.echo_header("X-Forwarded-Host"), "front.example")
        # golb's element follows the trusted chain (RFC 7239 §4: the fields form one list)
        self.assertEqual([v for k, v in r.echo()["headers"] if k.lower() == "forwarded"],
                         ["for=203.0.113.1;proto=https", 'for=127.0.0.1;proto=http;host="golb.test"'])
        self.assertEqual(r.echo_header("X-Real-IP"), "203.0.113.1")
        self.assertEqual(self.access_log(1)[0]["client.address"], "203.0.113.1")
        # clientAddress hashing follows the chain's client, not the proxy's address
        ids = {}
        for i in range(30):
            for _ in range(2):
                r = self.get(g, "/", headers={"X-Forwarded-For": f"198.51.100.{i}, 10.0.0.5"})
                ids.setdefault(i, set()).add(r.header("X-Server-Id"))
        self.assertTrue(all(len(v) == 1 for v in ids.values()), ids)
        self.assertEqual(len(set().union(*ids.values())), 3, "distinct clients spread")

    def test_proxy_protocol_hop_then_trusted_chain(self):
        t = self.toy(1)
        g = self.start([t], "  trustedNetworks: [127.0.0.1]\n  required: true\n",
                       trustedProxies="[10.0.0.0/8]")
        # the L4 tier says the peer is 10.0.0.5, a trusted HTTP proxy, whose chain names the client
        c = self.conn(g)
        c.send(v2("10.0.0.5", "198.51.100.1"))
        r = c.request("GET", "/", headers={"X-Forwarded-For": "192.0.2.44"})
        self.assertEqual(r.echo_header("X-Forwarded-For"), "192.0.2.44, 10.0.0.5")
        # the L4 tier says 192.0.2.45: not a trusted proxy, its chain is replaced
        c = self.conn(g)
        c.send(v2("192.0.2.45", "198.51.100.1"))
        r = c.request("GET", "/", headers={"X-Forwarded-For": "203.0.113.1"})
        self.assertEqual(r.echo_header("X-Forwarded-For"), "192.0.2.45")
        self.assertEqual([x["client.address"] for x in self.access_log(2)], ["192.0.2.44", "192.0.2.45"])

    def test_route_allow_list_sees_the_carried_and_chained_address(self):
        t = self.toy(1)
        g = self.start([t], "  trustedNetworks: [127.0.0.1]\n  required: true\n",
                       extra_text="routes:\n  - match: {pathPrefix: /office}\n"
                                  "    allow: [192.0.2.0/24]\n    pool: default\n",
                       trustedProxies="[10.0.0.0/8]")

        def office(src, xff=None):
            c = self.conn(g)
            c.send(v2(src, "198.51.100.1"))
            return c.request("GET", "/office/x", headers={"X-Forwarded-For": xff} if xff else {}).status

        self.assertEqual(office("192.0.2.7"), 200, "the PROXY source is in the allow list")
        self.assertEqual(office("203.0.113.9"), 403, "the socket peer (127.0.0.1) does not count")
        self.assertEqual(office("10.0.0.5", "192.0.2.44"), 200, "a trusted proxy's client")
        self.assertEqual(office("10.0.0.5", "203.0.113.1"), 403)
        self.assertEqual(office("203.0.113.9", "192.0.2.44"), 403, "an untrusted peer's claim")


def read_proxy_header(c):
    """Reads one PROXY header off socket c: (text describing it, rest of the bytes read)."""
    buf = b""
    while len(buf) < 16:
        d = c.recv(4096)
        if not d:
            raise ConnectionError("closed before a PROXY header")
        buf += d
    if buf.startswith(SIG):
        n = 16 + struct.unpack("!H", buf[14:16])[0]
        while len(buf) < n:
            buf += c.recv(4096)
        cmd, fam = buf[12], buf[13]
        if cmd == 0x20:
            return "v2 LOCAL", buf[n:]
        if fam == 0x11:
            src, dst = socket.inet_ntop(socket.AF_INET, buf[16:20]), socket.inet_ntop(socket.AF_INET, buf[20:24])
            sp, dp = struct.unpack("!HH", buf[24:28])
        else:
            src, dst = socket.inet_ntop(socket.AF_INET6, buf[16:32]), socket.inet_ntop(socket.AF_INET6, buf[32:48])
            sp, dp = struct.unpack("!HH", buf[48:52])
        return f"v2 {src} {dst} {sp} {dp}", buf[n:]
    while b"\r\n" not in buf:
        buf += c.recv(4096)
    line, _, rest = buf.partition(b"\r\n")
    return line.decode(), rest


class PPUpstream(RawUpstream):
    """An upstream that wants a PROXY header first on each connection: records each connection's
    header (self.headers, in accept order) and answers every request with "CONN-INDEX HEADER"."""

    def __init__(self):
        self.headers = []
        self.lock = threading.Lock()
        super().__init__(None)

    def _serve(self, c):
        try:
            c.settimeout(scaled(30))
            hdr, buf = read_proxy_header(c)
            with self.lock:
                self.headers.append(hdr)
                idx = len(self.headers) - 1
            while not self._stop:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                body = f"{idx} {hdr}".encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except (OSError, ConnectionError):
            pass
        finally:
            c.close()


class SendProxyProtocolTest(ProxyProtocolCase):
    def start_pp(self, up, version, **cfg):
        cfg.setdefault("workers", 1)
        text = golb_config([], **cfg).replace("backends:\n", "backends:\n"
            f"  - url: http://127.0.0.1:{up.port}/health\n    sendProxyProtocol: {version}\n")
        text += "proxyProtocol:\n  trustedNetworks: [127.0.0.1]\n"
        g = self.golb(text)
        self.wait_backend(g, up, "UP")
        return g

    def via(self, g, src):
        """One request from client `src` (told to golb by a PROXY v1 header); the upstream's answer."""
        c = HTTPConn("127.0.0.1", g.port)
        try:
            c.send(v1(src, "2001:db8::1" if ":" in src else "198.51.100.1"))
            r = c.request("GET", "/x")
            self.assertEqual(r.status, 200, r.text)
            return r.text
        finally:
            c.close()

    def test_v2_header_per_client_and_pooled_only_for_that_client(self):
        up = self.raw_upstream_pp()
        g = self.start_pp(up, "v2")
        self.assertIn("v2 LOCAL", up.headers, "health checks say LOCAL")
        a1 = self.via(g, "192.0.2.1")
        self.assertRegex(a1, rf"^\d+ v2 192\.0\.2\.1 127\.0\.0\.1 0 {up.port}$")
        a2 = self.via(g, "192.0.2.1")
        self.assertEqual(a2, a1, "the same client reuses its pooled connection")
        b1 = self.via(g, "192.0.2.2")
        self.assertRegex(b1, r"^\d+ v2 192\.0\.2\.2 ")
        self.assertNotEqual(b1.split()[0], a1.split()[0], "another client: another connection")
        self.assertEqual(self.via(g, "192.0.2.1"), a1, "A's connection is still A's")
        c6 = self.via(g, "2001:db8::7")
        self.assertRegex(c6, rf"^\d+ v2 2001:db8::7 ::ffff:127\.0\.0\.1 0 {up.port}$")

    def test_v1_header_and_unknown_health_checks(self):
        up = self.raw_upstream_pp()
        g = self.start_pp(up, "v1")
        self.assertIn("PROXY UNKNOWN", up.headers)
        r = self.via(g, "192.0.2.9")
        self.assertRegex(r, rf"^\d+ PROXY TCP4 192\.0\.2\.9 127\.0\.0\.1 0 {up.port}$")

    def raw_upstream_pp(self):
        u = PPUpstream()
        self.raw_upstreams.append(u)
        return u


class ConfigTest(GolbTestCase):
    def check(self, text):
        path = os.path.join(self.tmp, "c.yml")
        with open(path, "w") as f:
            f.write(text)
        return run_golb(self.bindir, ["-t", "-confpath", path]), path

    def test_errors_name_the_place(self):
        base = "backends:\n  - http://127.0.0.1:9/\n"
        r, p = self.check(base + "proxyProtocol:\n  required: true\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f'{p}:4:3: proxyProtocol is missing "trustedNetworks"', r.stderr)
        r, p = self.check(base + "proxyProtocol:\n  trustedNetworks: [10.0.0.0/33]\n  required: yes\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f'{p}:4:21: proxyProtocol.trustedNetworks: invalid address or CIDR range "10.0.0.0/33"',
                      r.stderr)
        self.assertIn(f'{p}:5:13: proxyProtocol.required must be true or false, got "yes"', r.stderr)
        r, p = self.check(base + "proxyProtocol: [10.0.0.0/8]\n")
        self.assertIn(f'{p}:3:16: proxyProtocol must be a mapping with "trustedNetworks"', r.stderr)
        r, p = self.check(base + "proxyProtocol:\n  trustedNetwork: [10.0.0.0/8]\n")
        self.assertIn(f'{p}:4:3: unknown key "trustedNetwork" in proxyProtocol (did you mean "trustedNetworks"?)',
                      r.stderr)
        r, p = self.check(base + "proxyProtocol:\n  trustedNetworks: [10.0.0.0/8, \"::1\"]\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        r, p = self.check("backends:\n  - url: http://127.0.0.1:9/\n    sendProxyProtocol: v3\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f'{p}:3:24: sendProxyProtocol must be one of off, v1, v2, got "v3"', r.stderr)

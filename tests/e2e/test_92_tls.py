"""TLS: HTTPS termination (SNI, versions, ciphers, resumption, mTLS, redirect, hostile clients)
and TLS to upstreams (verification, pooling, resumption), with real golb processes and certificates
made by the test CA (tests/support/tlstest.py)."""

import hashlib
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

from golbtest import (GolbTestCase, HTTPConn, golb_config, pattern_sha256, rss_kib, run_golb,
                      scaled, wait_until, is_asan_build)
from tlstest import TLSConn, TLSUpstream, client_context, https_port, pki, tls_config_block


class TLSCase(GolbTestCase):
    def certs(self):
        p = pki()
        a_ec = p.leaf("a-ec", ["a.test", "*.a.test"], key="ec")
        a_rsa = p.leaf("a-rsa", ["a.test", "*.a.test"], key="rsa")
        b_ec = p.leaf("b-ec", ["b.test"], key="ec")
        return a_ec, a_rsa, b_ec

    def tls_golb(self, backends, certs=None, tls_extra=None, **cfg):
        certs = certs or list(self.certs())
        text = golb_config(backends, **cfg) + tls_config_block(certs, **(tls_extra or {}))
        g = self.golb(text)
        g.tls_port = https_port(g)
        for b in backends:
            if not isinstance(b, str):
                self.wait_backend(g, b, "UP")
        return g

    def tconn(self, g, name="a.test", **kw):
        c = TLSConn("127.0.0.1", g.tls_port, server_name=name, **kw)
        self.addCleanup(c.close)
        return c


class TestTermination(TLSCase):
    def test_request_over_tls_gets_forwarded_proto_https(self):
        t = self.toy(1)
        g = self.tls_golb([t])
        c = self.tconn(g)
        r = c.request("GET", "/x?y=1", host="a.test")
        self.assertEqual(r.status, 200)
        e = r.echo()
        self.assertEqual(e["path"], "/x?y=1")
        self.assertEqual(r.echo_header("X-Forwarded-Proto"), "https")
        self.assertEqual(c.sock.version(), "TLSv1.3")
        self.assertEqual(c.sock.selected_alpn_protocol(), "http/1.1")
        # keep-alive over TLS: a second request on the same connection
        r2 = c.request("GET", "/again", host="a.test")
        self.assertEqual(r2.echo()["path"], "/again")
        # the plain listener still says http
        self.assertEqual(self.get(g, "/p").echo_header("X-Forwarded-Proto"), "http")

    def test_sni_picks_certificate_by_name_wildcard_and_default(self):
        t = self.toy(1)
        g = self.tls_golb([t])
        self.assertEqual(self.tconn(g, "b.test").peer_names(), ["b.test"])
        self.assertEqual(self.tconn(g, "a.test").peer_names(), ["*.a.test", "a.test"])
        self.assertEqual(self.tconn(g, "www.a.test").peer_names(), ["*.a.test", "a.test"])
        self.assertEqual(self.tconn(g, "B.TEST").peer_names(), ["b.test"])
        # a wildcard matches one label only, an unknown name and no SNI get the first certificate
        for name in ("x.y.a.test", "unknown.test", None):
            ctx = client_context(verify=False)
            c = self.tconn(g, name, ctx=ctx)
            cert = ssl.DER_cert_to_PEM_cert(c.peer_cert())
            with open(pki().leaf("a-ec", ["a.test", "*.a.test"], key="ec")[0]) as f:
                self.assertEqual(cert.strip(), f.read().strip(), name)

    def test_ecdsa_preferred_rsa_for_rsa_only_clients(self):
        t = self.toy(1)
        g = self.tls_golb([t])
        c = self.tconn(g, "a.test")
        self.assertIn("ECDSA", self._key_type(c))
        ctx = client_context(max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES128-GCM-SHA256")
        c2 = self.tconn(g, "a.test", ctx=ctx)
        self.assertEqual(c2.sock.cipher()[0], "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertEqual(c2.request("GET", "/rsa", host="a.test").status, 200)

    @staticmethod
    def _key_type(c):
        der = c.peer_cert()
        # the OID of id-ecPublicKey in the SubjectPublicKeyInfo
        return "ECDSA" if b"\x2a\x86\x48\xce\x3d\x02\x01" in der else "RSA"

    def test_old_protocols_and_weak_ciphers_refused(self):
        t = self.toy(1)
        g = self.tls_golb([t])
        for v in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            ctx = client_context(min_version=v, max_version=v, ciphers="ALL:@SECLEVEL=0")
            with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError), msg=str(v)):
                TLSConn("127.0.0.1", g.tls_port, ctx=ctx).close()
        for cipher in ("AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA", "DHE-RSA-AES128-GCM-SHA256"):
            ctx = client_context(max_version=ssl.TLSVersion.TLSv1_2, ciphers=cipher + ":@SECLEVEL=0")
            with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError), msg=cipher):
                TLSConn("127.0.0.1", g.tls_port, ctx=ctx).close()
        # TLS 1.2 with a forward-secret AEAD suite is fine
        ctx = client_context(max_version=ssl.TLSVersion.TLSv1_2)
        c = self.tconn(g, ctx=ctx)
        self.assertEqual(c.sock.version(), "TLSv1.2")
        self.assertIn("GCM", c.sock.cipher()[0])
        self.assertEqual(c.request("GET", "/", host="a.test").status, 200)

    def test_min_version_13(self):
        t = self.toy(1)
        g = self.tls_golb([t], tls_extra={"minVersion": '"1.3"'})
        ctx = client_context(max_version=ssl.TLSVersion.TLSv1_2)
        with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError)):
            TLSConn("127.0.0.1", g.tls_port, ctx=ctx).close()
        self.assertEqual(self.tconn(g).sock.version(), "TLSv1.3")

    def test_resumption_across_workers(self):
        t = self.toy(1)
        g = self.tls_golb([t], workers=2)
        ctx = client_context()
        c = self.tconn(g, ctx=ctx)
        c.request("GET", "/", host="a.test")  # a TLS 1.3 ticket arrives with the first response
        session = c.sock.session
        self.assertIsNotNone(session)
        c.close()
        reused = 0
        for i in range(12):
            c = TLSConn("127.0.0.1", g.tls_port, ctx=ctx, session=session)
            r = c.request("GET", f"/r{i}", host="a.test")
            self.assertEqual(r.status, 200)
            reused += c.sock.session_reused
            session = c.sock.session or session
            c.close()
        # 12 connections land on both workers (SO_REUSEPORT hashing), every one resumed
        self.assertEqual(reused, 12)

    def test_session_tickets_off(self):
        t = self.toy(1)
        g = self.tls_golb([t], tls_extra={"sessionTickets": "false"})
        ctx = client_context()
        c = self.tconn(g, ctx=ctx)
        c.request("GET", "/", host="a.test")
        session = c.sock.session
        c.close()
        c2 = TLSConn("127.0.0.1", g.tls_port, ctx=ctx, session=session)
        self.addCleanup(c2.close)
        c2.request("GET", "/", host="a.test")
        self.assertFalse(c2.sock.session_reused)

    def test_plain_http_and_garbage_on_tls_port(self):
        t = self.toy(1)
        g = self.tls_golb([t])
        c = HTTPConn("127.0.0.1", g.tls_port)
        self.addCleanup(c.close)
        r = c.request("GET", "/")
        self.assertEqual(r.status, 400)
        self.assertIn("HTTPS", r.text)
        s = socket.create_connection(("127.0.0.1", g.tls_port))
        self.addCleanup(s.close)
        s.send(os.urandom(2000))
        s.settimeout(scaled(5))
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
        # still serving
        self.assertEqual(self.tconn(g).request("GET", "/", host="a.test").status, 200)

    def test_client_stopping_mid_handshake_is_closed_at_the_timeout(self):
        t = self.toy(1)
        g = self.tls_golb([t], tls_extra={"handshakeTimeout": 0.5})
        # the first bytes of a ClientHello record, then silence
        s = socket.create_connection(("127.0.0.1", g.tls_port))
        self.addCleanup(s.close)
        s.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        t0 = time.monotonic()
        s.settimeout(scaled(10))
        try:
            self.assertEqual(s.recv(100), b"")
        except ConnectionResetError:
            pass
        self.assertLess(time.monotonic() - t0, scaled(5))
        self.assertEqual(self.tconn(g).request("GET", "/", host="a.test").status, 200)

    def test_large_bodies_both_ways_with_bounded_memory(self):
        t = self.toy(1)
        g = self.tls_golb([t], workers=1)
        c = self.tconn(g)
        size = 32 << 20
        digest = hashlib.sha256()
        r = c.request("GET", f"/big?size={size}", host="a.test", sink=digest.update)
        self.assertEqual(r.body_len, size)
        self.assertEqual(digest.hexdigest(), pattern_sha256(size))
        body = os.urandom(1 << 20)
        up = c.request("POST", "/up", host="a.test", body=(body for _ in range(16)))
        e = up.echo()
        h = hashlib.sha256()
        for _ in range(16):
            h.update(body)
        self.assertEqual(int(e["body-length"]), 16 << 20)
        self.assertEqual(e["body-sha256"], h.hexdigest())
        if not is_asan_build():
            self.assertLess(rss_kib(g.pid), 40 * 1024, "golb's RSS after 48 MiB through TLS")

    def test_redirect_http_to_https(self):
        t = self.toy(1)
        g = self.tls_golb([t], tls_extra={"redirectHttp": "true"})
        r = self.request(g, "GET", "/path/x?q=1", headers={"Host": "a.test:8080"})
        self.assertEqual(r.status, 308)
        self.assertEqual(r.header("Location"), f"https://a.test:{g.tls_port}/path/x?q=1")
        self.assertEqual(r.header("Connection"), "close")
        r = self.request(g, "POST", "/p", headers={"Host": "[::1]"}, body=b"abc")
        self.assertEqual(r.header("Location"), f"https://[::1]:{g.tls_port}/p")
        # HTTPS itself is served, not redirected
        self.assertEqual(self.tconn(g).request("GET", "/", host="a.test").status, 200)

    def test_https_only(self):
        t = self.toy(1)
        text = golb_config([t], listen="off") + tls_config_block(list(self.certs()))
        g = self.golb(text, expect_ready=False)
        m = g.wait_log(r"listening on https://127\.0\.0\.1:(\d+) ", timeout=10)
        g.tls_port = int(m.group(1))
        self.wait_backend(g, t, "UP")
        self.assertEqual(self.tconn(g).request("GET", "/", host="a.test").status, 200)


class TestClientCertificates(TLSCase):
    def setUp(self):
        super().setUp()
        p = pki()
        self.client_cert = p.leaf("client1", [], client=True, subject="/CN=alice/O=golb tests")
        other_cert, other_key = p.other_ca("rogue")
        self.rogue_cert = p.leaf("rogue-client", [], client=True, subject="/CN=mallory",
                                 ca=(other_cert, other_key))

    def test_mtls_required_verified_and_subject_forwarded(self):
        t = self.toy(1)
        g = self.tls_golb([t], tls_extra={"clientCaFile": pki().ca_cert,
                                          "clientSubjectHeader": "X-Client-Subject"})
        # no certificate: the handshake fails (TLS 1.3 reports it on the first read)
        with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
            c = TLSConn("127.0.0.1", g.tls_port)
            try:
                c.request("GET", "/", host="a.test")
            finally:
                c.close()
        # a certificate from another CA: refused too
        with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
            c = TLSConn("127.0.0.1", g.tls_port, ctx=client_context(cert=self.rogue_cert[0],
                                                                     key=self.rogue_cert[1]))
            try:
                c.request("GET", "/", host="a.test")
            finally:
                c.close()
        ctx = client_context(cert=self.client_cert[0], key=self.client_cert[1])
        c = self.tconn(g, ctx=ctx)
        r = c.request("GET", "/", host="a.test", headers={"X-Client-Subject": "CN=forged"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.echo_header("X-Client-Subject"), "O=golb tests,CN=alice")
        self.assertEqual(len([v for k, v in r.echo()["headers"] if k.lower() == "x-client-subject"]), 1)


class TestResumptionAcrossReloads(TLSCase):
    """A session (ticket) is resumed only under the client-authentication rules it was made under:
    a reload that changes clientCaFile turns an old ticket into a full handshake under the new
    rules (issue 15, item 1); under unchanged rules tickets keep resuming, the verified subject
    with them."""

    def setUp(self):
        super().setUp()
        p = pki()
        self.alice = p.leaf("client1", [], client=True, subject="/CN=alice/O=golb tests")
        self.other_ca = p.other_ca("reload-ca")

    def start(self, **tls_extra):
        self.t = self.toy(1)
        self.gen = 1
        return self.tls_golb([self.t], workers=1, tls_extra=tls_extra)

    def reload(self, g, **tls_extra):
        """Rewrites the config with these tls keys, SIGHUP, waits for the next generation; returns
        the changes the reload logged."""
        text = golb_config([self.t], workers=1) + tls_config_block(list(self.certs()), **tls_extra)
        with open(g.config_path, "w") as f:
            f.write(text)
        start = g.log_offset()
        g.send_signal(signal.SIGHUP)
        self.gen += 1
        m = g.wait_log(rf"reload by SIGHUP: generation {self.gen} running \((.*)\); listening on",
                       timeout=10, start=start)
        return m.group(1)

    def s_client(self, g, *args, path="/"):
        """One `openssl s_client` connection sending GET path with Connection: close; returns
        its stdout + stderr."""
        req = f"GET {path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n".encode()
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{g.tls_port}",
                            "-servername", "a.test", "-CAfile", pki().ca_cert, "-ign_eof", *args],
                           input=req, capture_output=True, timeout=scaled(15))
        return r.stdout.decode("latin-1") + r.stderr.decode("latin-1")

    def test_reload_adding_client_ca_refuses_an_old_ticket(self):
        g = self.start()
        sess = os.path.join(self.tmp, "sess.pem")
        out = self.s_client(g, "-sess_out", sess, path="/before")
        self.assertIn("HTTP/1.1 200", out)
        self.assertIn("TLS session ticket lifetime hint: 300 (seconds)", out)  # sessionTimeout
        self.assertTrue(os.path.getsize(sess) > 0, "s_client saved no session")
        out = self.s_client(g, "-sess_in", sess, path="/resumed")
        self.assertIn("Reused, TLSv1.3", out)  # the ticket resumes while the rules are the same
        changes = self.reload(g, clientCaFile=pki().ca_cert)
        self.assertIn("tls: client authentication changed, earlier sessions are not resumed",
                      changes)
        out = self.s_client(g, path="/fresh")  # no certificate: refused
        self.assertNotIn("HTTP/1.1", out)
        self.assertRegex(out, r"alert certificate required|alert number 116")
        out = self.s_client(g, "-sess_in", sess, path="/bypass")
        self.assertNotIn("Reused", out)  # a full handshake under the new rules ...
        self.assertNotIn("HTTP/1.1", out)  # ... refused: no request reaches the backend
        self.assertRegex(out, r"alert certificate required|alert number 116")
        # a client with a certificate is served
        out = self.s_client(g, "-cert", self.alice[0], "-key", self.alice[1], path="/cert")
        self.assertIn("HTTP/1.1 200", out)

    def test_reload_adding_client_ca_refuses_an_old_tls12_session(self):
        g = self.start()
        ctx = client_context(max_version=ssl.TLSVersion.TLSv1_2)
        c = self.tconn(g, ctx=ctx)
        self.assertEqual(c.request("GET", "/", host="a.test").status, 200)
        session = c.sock.session
        c.close()
        self.reload(g, clientCaFile=pki().ca_cert)
        with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
            c = TLSConn("127.0.0.1", g.tls_port, ctx=ctx, session=session)
            try:
                reused = c.sock.session_reused
                r = c.request("GET", "/bypass", host="a.test")
                self.fail(f"served after the reload (resumed: {reused}): {r.status}")
            finally:
                c.close()

    def test_subject_forwarded_on_resumption_only_under_the_same_rules(self):
        g = self.start(clientCaFile=pki().ca_cert, clientSubjectHeader="X-Client-Subject")
        ctx = client_context(cert=self.alice[0], key=self.alice[1])

        def resume(session, path):
            c = TLSConn("127.0.0.1", g.tls_port, ctx=ctx, session=session)
            try:
                r = c.request("GET", path, host="a.test")
                return c.sock.session_reused, r.echo_header("X-Client-Subject"), c.sock.session
            finally:
                c.close()

        reused, subject, session = resume(None, "/full")
        self.assertEqual((reused, subject), (False, "O=golb tests,CN=alice"))
        reused, subject, session = resume(session, "/resumed")
        self.assertEqual((reused, subject), (True, "O=golb tests,CN=alice"))
        # a reload that keeps the rules (another timeout) keeps the tickets and the subject
        changes = self.reload(g, clientCaFile=pki().ca_cert, clientSubjectHeader="X-Client-Subject",
                              handshakeTimeout=7)
        self.assertEqual(changes, "setting changed: tls.handshakeTimeout 10s -> 7s")
        reused, subject, session = resume(session, "/after-same-rules")
        self.assertEqual((reused, subject), (True, "O=golb tests,CN=alice"))
        # another CA: alice's session is not resumed, and her certificate is refused
        self.reload(g, clientCaFile=self.other_ca[0], clientSubjectHeader="X-Client-Subject")
        with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
            reused, subject, _ = resume(session, "/other-ca")
            self.fail(f"served under another CA (resumed: {reused}, subject {subject!r})")


class TestCloseNotify(TLSCase):
    """golb ends every orderly close of a TLS client with close_notify (issue 15, item 4), and never
    a cut one: the client tells a complete close-delimited body from a truncated one by it."""

    def raw(self, g):
        c = TLSConn("127.0.0.1", g.tls_port, suppress_ragged_eofs=False)
        self.addCleanup(c.close)
        return c

    @staticmethod
    def read_to_end(c, timeout=5):
        """Everything until the end, and how it ended: "close_notify", "eof" (TCP FIN without
        close_notify), "reset" or "timeout"."""
        c.sock.settimeout(scaled(timeout))
        data, c.buf = bytes(c.buf), bytearray()
        while True:
            try:
                d = c.sock.recv(65536)
            except ssl.SSLEOFError:
                return data, "eof"
            except ssl.SSLZeroReturnError:
                return data, "close_notify"
            except ConnectionResetError:
                return data, "reset"
            except socket.timeout:
                return data, "timeout"
            if not d:
                return data, "close_notify"
            data += d

    def test_connection_close_and_http10_responses_end_with_close_notify(self):
        t = self.toy(1)
        g = self.tls_golb([t], workers=1)
        s = self.raw(g)
        s.send(b"GET /cc HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        data, end = self.read_to_end(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
        self.assertIn(b"path: /cc", data)
        self.assertEqual(end, "close_notify")
        # HTTP/1.0 and a chunked upstream body: de-chunked, it ends at the close
        s = self.raw(g)
        s.send(b"GET /ten?chunked=1&size=100000 HTTP/1.0\r\nHost: a.test\r\n\r\n")
        data, end = self.read_to_end(s)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head)
        self.assertNotIn(b"content-length", head.lower())
        self.assertEqual(hashlib.sha256(body).hexdigest(), pattern_sha256(100000))
        self.assertEqual(end, "close_notify")

    def test_idle_keepalive_timeout_and_drain_end_with_close_notify(self):
        t = self.toy(1)
        g = self.tls_golb([t], workers=1, keepAliveTimeout=0.3)
        c = self.raw(g)
        self.assertEqual(c.request("GET", "/ka", host="a.test").status, 200)
        data, end = self.read_to_end(c)  # idle past keepAliveTimeout
        self.assertEqual((data, end), (b"", "close_notify"))
        # SIGTERM: idle keep-alive connections are closed at once, cleanly
        g2 = self.tls_golb([t], workers=1)
        c = self.raw(g2)
        self.assertEqual(c.request("GET", "/ka", host="a.test").status, 200)
        g2.send_signal(signal.SIGTERM)
        data, end = self.read_to_end(c)
        self.assertEqual((data, end), (b"", "close_notify"))
        self.assertEqual(g2.wait_exit(10), 0)

    def test_body_cut_by_the_upstream_gets_no_close_notify(self):
        def handler(conn, head, path):
            if path.startswith("/cut"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
            else:  # close-delimited: no length, ends when the upstream closes
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"y" * 1000)
            return False

        u = self.raw_upstream(handler)
        g = self.tls_golb([u], workers=1)
        for version in (b"1.1", b"1.0"):
            s = self.raw(g)
            s.send(b"GET /cut HTTP/" + version + b"\r\nHost: a.test\r\n\r\n")
            data, end = self.read_to_end(s)
            self.assertIn(b"Content-Length: 100000", data)
            self.assertLess(len(data.partition(b"\r\n\r\n")[2]), 100000)
            self.assertIn(end, ("eof", "reset"), version)
        # the same upstream's close-delimited body is complete: close_notify
        s = self.raw(g)
        s.send(b"GET /whole HTTP/1.1\r\nHost: a.test\r\n\r\n")
        data, end = self.read_to_end(s)
        self.assertTrue(data.endswith(b"y" * 1000))
        self.assertEqual(end, "close_notify")


class TestUpstreamTLS(TLSCase):
    def upstream(self, sans=("up.test", "IP:127.0.0.1"), **kw):
        cert, key = pki().leaf("up-" + "-".join(s.replace(":", "_") for s in sans), list(sans))
        u = TLSUpstream(cert, key, **kw)
        self.raw_upstreams.append(u)
        return u

    def backend(self, u, **keys):
        lines = [f"  - url: https://127.0.0.1:{u.port}/health"]
        for k, v in keys.items():
            lines.append(f"    {k}: {v}")
        return "\n".join(lines)

    def golb_https(self, u, wait="UP", **keys):
        text = golb_config([], workers=1).replace("backends:\n", "backends:\n" + self.backend(u, **keys) + "\n")
        g = self.golb(text)
        if wait:
            self.wait_backend(g, u, wait)
        return g

    def test_verified_upstream_pooled_and_resumed(self):
        u = self.upstream()
        g = self.golb_https(u, caFile=pki().ca_cert, serverName="up.test")
        c = self.conn(g)
        for i in range(20):
            r = c.request("GET", f"/k{i}")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.text, "tls upstream\n")
        data = [h for h, _ in u.requests]
        self.assertEqual(len(data), 20)
        # a second connection while the first is busy resumes the session the backend gave
        slow = threading.Event()

        def respond(head, body):
            if b"/slow" in head:
                slow.wait(scaled(5))
            return 200, [], b"tls upstream\n"

        u.respond = respond
        before = u.resumed
        c1, c2 = self.conn(g), self.conn(g)
        c1.send_request("GET", "/slow")
        wait_until(lambda: any(b"/slow" in h for h, _ in u.requests), 5, "the slow request upstream")
        self.assertEqual(c2.request("GET", "/b").status, 200)  # the pooled one is busy: new + resumed
        slow.set()
        self.assertEqual(c1.read_response().status, 200)
        self.assertGreater(u.resumed, before)

    def test_pool_reuse_counts_exactly(self):
        u = self.upstream()
        text = golb_config([], workers=1, period=30, timeout=5).replace(
            "backends:\n", "backends:\n" + self.backend(u, caFile=pki().ca_cert) + "\n")
        g = self.golb(text)
        self.wait_backend(g, u, "UP")
        base = u.handshakes  # the first health check
        c = self.conn(g)
        for i in range(30):
            self.assertEqual(c.request("GET", f"/{i}").status, 200)
        self.assertEqual(u.handshakes - base, 1)

    def test_wrong_name_and_wrong_ca_are_down_with_the_reason(self):
        u = self.upstream(sans=("up.test",))
        g = self.golb_https(u, wait="DOWN", caFile=pki().ca_cert, serverName="other.test")
        self.assertRegex(g.log_text(), r"hostname mismatch")
        self.assertEqual(self.get(g, "/").status, 503)
        other_ca, _ = pki().other_ca("elsewhere")
        g2 = self.golb_https(u, wait="DOWN", caFile=other_ca, serverName="up.test")
        self.assertRegex(g2.log_text(), r"certificate verify failed: unable to get local issuer")
        # the system store does not know the test CA either
        g3 = self.golb_https(u, wait="DOWN", serverName="up.test")
        self.assertRegex(g3.log_text(), r"certificate verify failed")

    def test_certificate_turning_bad_gives_502_with_the_reason(self):
        u = self.upstream(sans=("up.test",))
        text = golb_config([], workers=1, period=60, timeout=5).replace(
            "backends:\n", "backends:\n" + self.backend(u, caFile=pki().ca_cert,
                                                         serverName="up.test", ) + "\n")
        text = text.replace("backends:", "upstreamMaxIdle: 0\nbackends:")
        g = self.golb(text)
        self.wait_backend(g, u, "UP")
        self.assertEqual(self.get(g, "/").status, 200)
        other_ca, other_key = pki().other_ca("swap")
        u.swap_cert(*pki().leaf("swapped", ["up.test"], ca=(other_ca, other_key)))
        off = g.log_offset()
        self.assertEqual(self.get(g, "/").status, 502)
        g.wait_log(r"backend 127\.0\.0\.1:\d+: connect failed: TLS handshake failed: certificate "
                   r"verify failed", start=off)

    def test_tls_verify_false_works_and_warns(self):
        u = self.upstream(sans=("up.test",))
        g = self.golb_https(u, tlsVerify="false")
        self.assertRegex(g.log_text(), r"warning: tlsVerify: false")
        self.assertEqual(self.get(g, "/").status, 200)

    def test_mtls_to_backend(self):
        client = pki().leaf("golb-client", [], client=True, subject="/CN=golb")
        u = self.upstream(client_ca=pki().ca_cert)
        g = self.golb_https(u, caFile=pki().ca_cert, clientCertFile=client[0],
                            clientKeyFile=client[1])
        self.assertEqual(self.get(g, "/").status, 200)
        self.assertTrue(any(dict(x[0] for x in pc["subject"]).get("commonName") == "golb"
                            for pc in u.peer_certs))
        # without the client certificate the backend refuses golb: DOWN
        u2 = self.upstream(sans=("up.test", "IP:127.0.0.1", "DNS:b2"), client_ca=pki().ca_cert)
        self.golb_https(u2, wait="DOWN", caFile=pki().ca_cert)


class TestTLSConfig(TLSCase):
    needs_golb = True

    def check(self, text):
        path = os.path.join(self.tmp, "c.yml")
        with open(path, "w") as f:
            f.write(text)
        return run_golb(self.bindir, ["-t", "-confpath", path])

    def test_errors_before_listening(self):
        a_ec, a_rsa, b_ec = self.certs()
        nosan = pki().leaf("nosan", [], subject="/CN=nosan")
        text = (
            "listen: 127.0.0.1:0\n"
            "tls:\n"
            "  listen: 127.0.0.1:0\n"
            "  minVersion: \"1.1\"\n"
            "  certificates:\n"
            f"    - certFile: {a_ec[0]}\n"
            f"      keyFile: {a_rsa[1]}\n"
            f"    - certFile: {nosan[0]}\n"
            f"      keyFile: {nosan[1]}\n"
            "    - certFile: missing.pem\n"
            f"      keyFile: {a_ec[1]}\n"
            f"    - certFile: {a_ec[1]}\n"
            f"      keyFile: {a_ec[1]}\n"
            "backends:\n"
            "  - url: https://127.0.0.1:9/health\n"
            "    caFile: nope.pem\n")
        r = self.check(text)
        self.assertEqual(r.returncode, 1, r.stderr)
        err = r.stderr
        self.assertRegex(err, r'c\.yml:4:15: tls\.minVersion must be "1\.2" or "1\.3", got the quoted string "1\.1"')
        self.assertRegex(err, r"c\.yml:7:16: key \".*a-rsa\.key\" does not match certificate")
        self.assertRegex(err, r"c\.yml:8:17: certificate \".*nosan\.pem\" has no usable names")
        self.assertRegex(err, r"c\.yml:10:17: cannot read certificate file \".*missing\.pem\": No such file")
        self.assertRegex(err, r"c\.yml:12:17: certificate file \".*a-ec\.key\" holds no PEM certificate")
        self.assertRegex(err, r"c\.yml:16:13: cannot read CA file \".*nope\.pem\"")

    def test_relative_paths_resolve_against_the_config_directory(self):
        a_ec = self.certs()[0]
        d = os.path.join(self.tmp, "conf")
        os.makedirs(os.path.join(d, "certs"))
        for src, name in ((a_ec[0], "c.pem"), (a_ec[1], "c.key")):
            with open(src, "rb") as f, open(os.path.join(d, "certs", name), "wb") as out:
                out.write(f.read())
        path = os.path.join(d, "golb.yml")
        with open(path, "w") as f:
            f.write("listen: 127.0.0.1:0\ntls:\n  listen: 127.0.0.1:0\n  certificates:\n"
                    "    - certFile: certs/c.pem\n      keyFile: certs/c.key\n"
                    "backends:\n  - http://127.0.0.1:9/\n")
        r = run_golb(self.bindir, ["-t", "-confpath", path], cwd="/")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_expired_certificate_is_a_warning_with_dates(self):
        cert, key = pki().leaf_dated("old", ["old.test"], "20200101000000Z", "20200201000000Z")
        r = self.check("listen: 127.0.0.1:0\ntls:\n  listen: 127.0.0.1:0\n  certificates:\n"
                       f"    - certFile: {cert}\n      keyFile: {key}\n"
                       "backends:\n  - http://127.0.0.1:9/\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, r'c\.yml:5:17: warning: certificate ".*old\.pem" is expired '
                                   r'\(valid from Jan  1 00:00:00 2020 GMT to Feb  1 00:00:00 2020 GMT\)')


class TestTLSMetrics(TLSCase):
    def test_handshakes_counted_by_result(self):
        from test_91_observability import ADMIN_RE, parse_metrics, val
        from golbtest import http_request
        t = self.toy(1)
        g = self.tls_golb([t], admin="{listen: 127.0.0.1:0}", workers=1)
        admin = int(g.wait_log(ADMIN_RE, timeout=10).group(2))

        def scrape():
            r = http_request(admin, "GET", "/metrics")
            self.assertEqual(r.status, 200)
            return parse_metrics(r.text)

        def count(result):
            return val(scrape(), "golb_tls_handshakes_total", result=result)

        self.assertEqual([count(x) for x in ("full", "resumed", "failed")], [0, 0, 0])
        ctx = client_context()
        c = TLSConn("127.0.0.1", g.tls_port, ctx=ctx)
        c.request("GET", "/", host="a.test")
        session = c.sock.session
        c.close()
        c = TLSConn("127.0.0.1", g.tls_port, ctx=ctx, session=session)
        c.request("GET", "/", host="a.test")
        self.assertTrue(c.sock.session_reused)
        # a resumed connection gets a fresh ticket too (TLS 1.3 clients use a ticket once)
        self.assertNotEqual(c.sock.session.id, session.id)
        c.close()
        s = socket.create_connection(("127.0.0.1", g.tls_port))
        s.send(b"\x16\x03\x01\x00\x05hello" + os.urandom(64))
        s.settimeout(scaled(5))
        try:
            s.recv(100)
        except OSError:
            pass
        s.close()
        wait_until(lambda: count("failed") == 1, 5, "the failed handshake to be counted")
        self.assertEqual(count("full"), 1)
        self.assertEqual(count("resumed"), 1)

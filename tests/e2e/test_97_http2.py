"""HTTP/2 to clients: h2c with prior knowledge and h2 over TLS (ALPN) with real clients (curl,
nghttp, h2load), and hand-made frames (python3-h2, hyperframe, hpack from Debian) for what those
cannot send: every refusal of a malformed request, flow control, floods, resets, trailers,
extended CONNECT (RFC 8441), drain and idle GOAWAY. Upstreams stay HTTP/1.1."""

import base64
import json
import os
import hashlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings
except ImportError:  # Debian's python3-h2 is pure Python: the test interpreter may be another
    sys.path.append("/usr/lib/python3/dist-packages")
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings
import hpack
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, RstStreamFrame

from golbtest import (GolbTestCase, golb_config, http_request, page_dom, pattern_sha256,
                      plain_only, run_golb, scaled, wait_until)
from h2raw import Conn, describe
from tlstest import https_port, pki, tls_config_block

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PROTOCOL_ERROR, CANCEL, ENHANCE_YOUR_CALM = 1, 8, 11


class H2:
    """A hand-driven HTTP/2 client over a plain or TLS socket (python3-h2, no validation of what
    it sends, so it can send what a real client would not)."""

    def __init__(self, port, tls=False, timeout=5, window=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            raw = ctx.wrap_socket(raw, server_hostname="golb.test")
            assert raw.selected_alpn_protocol() == "h2", raw.selected_alpn_protocol()
        self.sock = raw
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False,
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.responses = {}  # stream id → {"headers": [...], "data": bytearray, "trailers", "reset"}
        self.goaway = None   # (error code, last stream id)
        self.closed = False
        self.remote_settings = {}

    def flush(self):
        d = self.conn.data_to_send()
        if d:
            self.sock.sendall(d)

    def send_raw(self, b):
        self.sock.sendall(b)

    def request(self, path="/", method="GET", authority="golb.test", scheme="http", headers=(),
                body=None, end=True, stream_id=None):
        sid = stream_id or self.conn.get_next_available_stream_id()
        hs = [(":method", method), (":scheme", scheme), (":authority", authority), (":path", path)]
        hs = [h for h in hs if h[1] is not None] + list(headers)
        self.conn.send_headers(sid, hs, end_stream=end and body is None)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=end)
        self.flush()
        self.responses[sid] = {"headers": None, "data": bytearray(), "trailers": None,
                               "reset": None, "ended": False, "interim": [], "order": []}
        return sid

    def pump(self, timeout=5):
        """Reads once (up to timeout) and handles the events; False at EOF."""
        self.sock.settimeout(scaled(timeout))
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            d = b""
        if not d:
            self.closed = True
            return False
        for e in self.conn.receive_data(d):
            r = self.responses.get(getattr(e, "stream_id", None))
            if isinstance(e, h2.events.ResponseReceived):
                r["headers"] = dict(e.headers)
                r["header_list"] = e.headers
            elif isinstance(e, h2.events.InformationalResponseReceived):
                r["interim"].append(dict(e.headers))
            elif isinstance(e, h2.events.TrailersReceived):
                r["trailers"] = dict(e.headers)
                r["order"].append("trailers")
            elif isinstance(e, h2.events.DataReceived):
                r["data"] += e.data
                r["order"].append("data")
                if self.auto_ack:
                    self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.StreamEnded):
                r["ended"] = True
                r["order"].append("end")
            elif isinstance(e, h2.events.StreamReset):
                if r is not None:
                    r["reset"] = e.error_code
                    r["order"].append("reset")
            elif isinstance(e, h2.events.ConnectionTerminated):
                self.goaway = (e.error_code, e.last_stream_id)
            elif isinstance(e, h2.events.RemoteSettingsChanged):
                for k, v in e.changed_settings.items():
                    self.remote_settings[int(k)] = v.new_value
        try:
            self.flush()
        except OSError:
            pass
        return True

    auto_ack = True

    def wait(self, cond, timeout=5, what="condition"):
        deadline = time.monotonic() + scaled(timeout)
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            try:
                if not self.pump(timeout=left):
                    if cond():
                        return
                    raise AssertionError(f"connection closed while waiting for {what}")
            except socket.timeout:
                continue

    def done(self, sid):
        r = self.responses[sid]
        return r["ended"] or r["reset"] is not None

    def get(self, path="/", **kw):
        sid = self.request(path, **kw)
        self.wait(lambda: self.done(sid), what=f"stream {sid}")
        return self.responses[sid]

    def wait_closed(self, timeout=5):
        deadline = time.monotonic() + scaled(timeout)
        while not self.closed and time.monotonic() < deadline:
            try:
                self.pump(timeout=deadline - time.monotonic())
            except socket.timeout:
                break
        return self.closed

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def status(r):
    return int(r["headers"][":status"]) if r["headers"] else None


def echo(r):
    """The toy's echo body: path and headers."""
    out = {"headers": []}
    for line in bytes(r["data"]).decode("latin-1").splitlines():
        k, _, v = line.partition(": ")
        if k == "header":
            out["headers"].append(tuple(v.split(": ", 1)))
        else:
            out[k] = v
    return out


def echo_header(r, name):
    for k, v in echo(r)["headers"]:
        if k.lower() == name.lower():
            return v
    return None


class H2Case(GolbTestCase):
    def h2c(self, backends, **cfg):
        cfg.setdefault("http2", "{cleartext: true}")
        return self.golb_for(backends, **cfg)

    def h2tls(self, backends, tls_extra=None, **cfg):
        cert, key = pki().leaf("golb-h2", ["golb.test", "IP:127.0.0.1"])
        text = golb_config(backends, **cfg) + tls_config_block([(cert, key)], **(tls_extra or {}))
        g = self.golb(text)
        g.tls_port = https_port(g)
        for b in backends:
            if not isinstance(b, str):
                self.wait_backend(g, b, "UP")
        return g

    def client(self, g, tls=False, **kw):
        c = H2(g.tls_port if tls else g.port, tls=tls, **kw)
        self.addCleanup(c.close)
        return c

    def curl(self, *args, timeout=10):
        r = subprocess.run(["curl", "-s", "-k"] + list(args), capture_output=True,
                           timeout=scaled(timeout))
        return r


@plain_only("golb's own listeners are chosen per test")
class TestClients(H2Case):
    def test_curl_prior_knowledge_get_post_and_upload_of_unknown_length(self):
        t = self.toy(1)
        g = self.h2c([t])
        url = f"http://127.0.0.1:{g.port}"
        r = self.curl("--http2-prior-knowledge", "-w", "\\n%{http_version} %{http_code}",
                      f"{url}/a/b?c=1")
        body, _, tail = r.stdout.decode().rpartition("\n")
        self.assertEqual(tail, "2 200")
        self.assertIn("path: /a/b?c=1", body)
        self.assertIn(f"header: Host: 127.0.0.1:{g.port}", body)
        self.assertIn("header: X-Forwarded-Proto: http", body)
        data = bytes(range(256)) * 4000  # 1 MB
        r = subprocess.run(
            ["curl", "-s", "--http2-prior-knowledge", "--data-binary", "@-", f"{url}/up"],
            input=data, capture_output=True, timeout=scaled(20))
        self.assertIn(b"header: Content-Length: 1024000", r.stdout)
        self.assertIn(b"body-length: 1024000", r.stdout)
        self.assertIn(b"body-sha256: " + hashlib.sha256(data).hexdigest().encode(), r.stdout)
        r = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-T", "-", f"{url}/up2"],
                           input=data, capture_output=True, timeout=scaled(20))
        self.assertIn(b"header: Transfer-Encoding: chunked", r.stdout)
        self.assertIn(b"body-sha256: " + hashlib.sha256(data).hexdigest().encode(), r.stdout)
        # a large download arrives whole
        r = self.curl("--http2-prior-knowledge", f"{url}/d?size=3000000", timeout=20)
        self.assertEqual(hashlib.sha256(r.stdout).hexdigest(), pattern_sha256(3000000))
        # HTTP/1.1 still works on the same listener
        r = self.curl("--http1.1", "-w", "\\n%{http_version}", f"{url}/h1")
        self.assertTrue(r.stdout.decode().endswith("\n1.1"))

    def test_tls_alpn_prefers_h2_and_http11_only_turns_it_off(self):
        t = self.toy(1)
        g = self.h2tls([t])
        url = f"https://127.0.0.1:{g.tls_port}"
        r = self.curl("--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                      f"{url}/x")
        self.assertEqual(r.stdout.decode(), "2 200")
        r = self.curl("--http1.1", "-o", "/dev/null", "-w", "%{http_version}", f"{url}/x")
        self.assertEqual(r.stdout.decode(), "1.1")
        c = self.client(g, tls=True)
        resp = c.get("/t")
        self.assertEqual(status(resp), 200)
        self.assertEqual(echo_header(resp, "X-Forwarded-Proto"), "https")
        # nghttp: several streams on one connection
        out = subprocess.run(["nghttp", "-n", "-s", f"{url}/a", f"{url}/b", f"{url}/c"],
                             capture_output=True, timeout=scaled(10)).stdout.decode()
        self.assertEqual(out.count(" 200 "), 3, out)

        g2 = self.h2tls([t], tls_extra={"alpn": "[http/1.1]"})
        r = self.curl("--http2", "-o", "/dev/null", "-w", "%{http_version}",
                      f"https://127.0.0.1:{g2.tls_port}/x")
        self.assertEqual(r.stdout.decode(), "1.1")

    def test_config_errors_name_the_entry(self):
        cert, key = pki().leaf("golb-h2", ["golb.test", "IP:127.0.0.1"])
        path = f"{self.tmp}/bad.yml"
        with open(path, "w") as f:
            f.write(f"backends: [http://127.0.0.1:1/]\ntls:\n  listen: 127.0.0.1:0\n"
                    f"  certificates: [{{certFile: {cert}, keyFile: {key}}}]\n"
                    f"  alpn: [h2c, h2, h2]\nhttp2: {{maxConcurrentStreams: 0}}\n")
        r = run_golb(self.bindir, ["-t", "-confpath", path])
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.splitlines(), [
            f'{path}:5:10: tls.alpn entry must be h2 or http/1.1, got "h2c"',
            f'{path}:5:19: tls.alpn lists "h2" twice',
            f"{path}:6:31: maxConcurrentStreams must be between 1 and 10000, got 0"])

    def test_cleartext_off_by_default_preface_is_an_http1_error(self):
        t = self.toy(1)
        g = self.golb_for([t])
        s = socket.create_connection(("127.0.0.1", g.port), timeout=scaled(5))
        s.sendall(PREFACE)
        d = s.recv(4096)
        s.close()
        self.assertTrue(d.startswith(b"HTTP/1.1 "), d)

    def test_many_streams_on_one_connection_to_several_backends(self):
        ts = self.toys(3)
        g = self.h2c(ts)
        c = self.client(g)
        sids = [c.request(f"/s{i}") for i in range(100)]
        c.wait(lambda: all(c.done(s) for s in sids), timeout=20, what="100 streams")
        servers = set()
        for i, s in enumerate(sids):
            r = c.responses[s]
            self.assertEqual(status(r), 200)
            self.assertEqual(echo(r)["path"], f"/s{i}")
            servers.add(r["headers"]["x-server-id"])
        self.assertEqual(servers, {"0", "1", "2"})
        r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "50",
                            f"http://127.0.0.1:{g.port}/h2load"], capture_output=True,
                           timeout=scaled(60)).stdout.decode()
        self.assertIn("2000 succeeded, 0 failed", r)


@plain_only("golb's own listeners are chosen per test")
class TestTranslation(H2Case):
    def test_cookies_joined_host_from_authority_and_response_fields_cleaned(self):
        u = self.raw_upstream(lambda c, head, path: c.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Hop\r\n"
            b"Keep-Alive: timeout=5\r\nX-Hop: 1\r\nX-Kept: yes\r\n\r\nok") or True)
        g = self.h2c([u])
        c = self.client(g)
        r = c.get("/c", authority="site.test",
                  headers=[("cookie", "a=1"), ("x-y", "z"), ("cookie", "b=2")])
        self.assertEqual(status(r), 200)
        self.assertEqual(bytes(r["data"]), b"ok")
        head = u.requests[-1].decode()
        self.assertIn("cookie: a=1; b=2\r\n", head)
        self.assertIn("Host: site.test\r\n", head)
        names = [k for k, _ in r["header_list"]]
        self.assertIn("x-kept", names)
        for hop in ("connection", "keep-alive", "x-hop"):
            self.assertNotIn(hop, names)

    def test_trailers_both_ways(self):
        u = self.recording_upstream(respond=lambda req: (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n"
            b"\r\n5\r\nhello\r\n0\r\ngrpc-status: 0\r\nX-Up: t\r\n\r\n"))
        g = self.h2c([u])
        c = self.client(g)
        sid = c.request("/t", method="POST", headers=[("te", "trailers")], body=b"abc", end=False)
        c.conn.send_headers(sid, [("x-req-trailer", "v1")], end_stream=True)
        c.flush()
        c.wait(lambda: c.done(sid), what="the response")
        r = c.responses[sid]
        self.assertEqual(status(r), 200)
        self.assertEqual(bytes(r["data"]), b"hello")
        self.assertEqual(r["trailers"], {"grpc-status": "0", "x-up": "t"})
        req = u.requests(complete_only=True)[-1]
        self.assertEqual(req.framing, "chunked")
        self.assertEqual(req.body, b"abc")
        self.assertIn(b"x-req-trailer: v1\r\n", req.raw)

    def test_upstream_failure_is_an_answer_on_that_stream_only(self):
        t = self.toy(1)
        g = self.h2c([t], upstreamTimeout=scaled(1))
        c = self.client(g)
        slow = c.request("/slow?hang=1")
        quick = c.request("/quick")
        c.wait(lambda: c.done(quick), what="the quick stream")
        self.assertEqual(status(c.responses[quick]), 200)
        self.assertFalse(c.done(slow))
        c.wait(lambda: c.done(slow), timeout=10, what="the hung stream")
        self.assertEqual(status(c.responses[slow]), 504)
        self.assertEqual(bytes(c.responses[slow]["data"]), b"504 Gateway Timeout\n")
        self.assertEqual(status(c.get("/after")), 200)
        # a dead backend: 502 on the stream, the connection goes on
        g2 = self.h2c(["http://127.0.0.1:1/"], wait_up=False, period=60)
        c2 = self.client(g2)
        self.assertIn(status(c2.get("/x")), (502, 503))
        self.assertIn(status(c2.get("/y")), (502, 503))

    def test_websocket_over_extended_connect(self):
        def handle(c, head, path):
            if b"Upgrade: websocket" not in head:
                c.sendall(b"HTTP/1.1 400 X\r\nContent-Length: 0\r\n\r\n")
                return False
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                      b"Upgrade: websocket\r\n\r\nHELLO")
            while True:
                d = c.recv(65536)
                if not d:
                    c.sendall(b"EOF-SEEN")
                    return False
                c.sendall(d)
        u = self.raw_upstream(handle)
        g = self.h2c([u])
        c = self.client(g)
        c.wait(lambda: 8 in c.remote_settings, what="SETTINGS_ENABLE_CONNECT_PROTOCOL")
        self.assertEqual(c.remote_settings[8], 1)
        sid = c.request("/chat", method="CONNECT",
                        headers=[(":protocol", "websocket"), ("sec-websocket-version", "13")],
                        end=False)
        c.wait(lambda: c.responses[sid]["headers"] is not None, what="the 200")
        self.assertEqual(status(c.responses[sid]), 200)
        self.assertIn(b"GET /chat HTTP/1.1\r\n", u.requests[-1])
        c.wait(lambda: bytes(c.responses[sid]["data"]) == b"HELLO", what="bytes with the 101")
        c.conn.send_data(sid, b"ping")
        c.flush()
        c.wait(lambda: bytes(c.responses[sid]["data"]) == b"HELLOping", what="the echo")
        c.conn.end_stream(sid)
        c.flush()
        c.wait(lambda: c.done(sid), what="the tunnel's end")
        self.assertEqual(bytes(c.responses[sid]["data"]), b"HELLOpingEOF-SEEN")
        # plain CONNECT is a forward proxy: refused
        r = c.get(None, method="CONNECT", authority="example.test:443", scheme=None)
        self.assertEqual(status(r), 501)

    def test_routes_apply_to_http2_streams(self):
        """The route decision is the exchange's, whatever the client speaks: pools, filters both
        ways, and golb's own answers (redirect, respond with the route's fields, 403) as HEADERS
        and DATA on the stream; the connection goes on after each."""
        a, b = self.toy(0), self.toy(1)
        routes = ("pools: {api: {backends: [http://127.0.0.1:%d/health]}}\n"
                  "routes:\n"
                  "  - match: {host: old.test}\n"
                  "    redirect: {host: new.test, status: 308}\n"
                  "  - match: {path: /maint}\n"
                  "    respond: {status: 503, body: \"down for maintenance\\n\"}\n"
                  "    setResponseHeaders: {Retry-After: \"120\", X-Maint: \"Yes\"}\n"
                  "  - match: {pathPrefix: /office}\n"
                  "    allow: [10.0.0.0/8]\n"
                  "    pool: api\n"
                  "  - match: {pathPrefix: /api}\n"
                  "    stripPrefix: true\n"
                  "    setRequestHeaders: {X-Api-Version: \"1\"}\n"
                  "    setResponseHeaders: {X-Served-By: api}\n"
                  "    removeResponseHeaders: [X-Server-Id]\n"
                  "    pool: api\n") % b.port
        g = self.golb(golb_config([a], http2="{cleartext: true}") + routes)
        self.wait_backend(g, a, "UP")
        self.wait_backend(g, b, "UP")
        c = self.client(g)
        r = c.get("/a/./b?x=1", authority="old.test")
        self.assertEqual(status(r), 308)
        self.assertEqual(r["headers"]["location"], "http://new.test/a/b?x=1")
        r = c.get("/maint")
        self.assertEqual((status(r), bytes(r["data"])), (503, b"down for maintenance\n"))
        self.assertEqual((r["headers"]["retry-after"], r["headers"]["x-maint"]), ("120", "Yes"))
        r = c.get("/maint", method="HEAD")
        self.assertEqual((status(r), bytes(r["data"])), (503, b""))
        self.assertEqual(status(c.get("/office/x")), 403)
        r = c.get("/api/v1/users")
        self.assertEqual(status(r), 200)
        self.assertEqual(echo(r)["path"], "/v1/users")
        self.assertEqual(echo_header(r, "X-Api-Version"), "1")
        self.assertEqual(r["headers"].get("x-served-by"), "api")
        self.assertNotIn("x-server-id", r["headers"])
        r = c.get("/other")
        self.assertEqual((status(r), r["headers"].get("x-server-id")), (200, "0"), "default pool")
        self.assertFalse(c.closed)

    def test_request_buffer_size_holds_a_stream_body_before_a_backend(self):
        """requestBufferSize over HTTP/2: a body of declared length that comes slowly takes no
        backend until it ended (or requestBufferSize came), held in the stream's own buffers,
        then sent whole; one that stops gets 408 and no backend was asked. A body without a
        length (a stream the client may feed as answers come: gRPC) goes at once."""
        u = self.recording_upstream()
        g = self.golb(golb_config([u], period=30, timeout=3, workers=1, bodyTimeout=1,
                                  http2="{cleartext: true}"))
        self.wait_backend(g, u, "UP")
        c = self.client(g)
        body = os.urandom(1000)
        sid = c.request("/slow", method="POST", headers=[("content-length", "1000")],
                        body=body[:400], end=False)
        for i in (400, 700):
            time.sleep(0.2)  # the client's pace: the behaviour under test
            self.assertEqual(u.requests(complete_only=False), [],
                             "the backend was asked before the body was complete")
            c.conn.send_data(sid, body[i:i + 300 if i == 400 else None], end_stream=i == 700)
            c.flush()
        c.wait(lambda: c.done(sid), what="the answer")
        self.assertEqual(status(c.responses[sid]), 200)
        self.assertEqual([r.body for r in u.requests(complete_only=True)], [body])
        # no length: the backend has the request before its body ended
        sid = c.request("/stream", method="POST", body=body[:400], end=False)
        wait_until(lambda: len(u.requests(complete_only=False)) == 2, scaled(5),
                   "the streamed request at the backend")
        c.conn.send_data(sid, body[400:], end_stream=True)
        c.flush()
        c.wait(lambda: c.done(sid), what="the answer")
        self.assertEqual(status(c.responses[sid]), 200)
        self.assertEqual(u.requests(complete_only=True)[1].body, body)
        # a body that stops while held: 408 from golb, no backend asked
        sid = c.request("/stops", method="POST", headers=[("content-length", "1000")],
                        body=b"x" * 10, end=False)
        c.wait(lambda: c.done(sid), timeout=scaled(5), what="the 408")
        self.assertEqual(status(c.responses[sid]), 408)
        self.assertEqual(len(u.requests(complete_only=False)), 2)

    def test_golbs_own_answer_before_the_request_ended_then_the_reset(self):
        """RFC 9113 §8.1 for golb's own answers too (a route's respond, a 403): the whole answer,
        its END_STREAM, then RST_STREAM(NO_ERROR) so that the client stops sending its body; the
        connection goes on."""
        a = self.toy(0)
        routes = ("pools: {api: {backends: [http://127.0.0.1:%d/health]}}\n"
                  "routes:\n"
                  "  - match: {path: /maint}\n"
                  "    respond: {status: 503, body: \"down for maintenance\\n\"}\n"
                  "  - match: {pathPrefix: /office}\n"
                  "    allow: [10.0.0.0/8]\n"
                  "    pool: api\n") % a.port
        g = self.golb(golb_config([a], http2="{cleartext: true}") + routes)
        self.wait_backend(g, a, "UP")
        c = self.client(g)
        for path, want, body in (("/maint", 503, b"down for maintenance\n"), ("/office/x", 403,
                                                                            None)):
            sid = c.request(path, method="POST", body=b"x" * 1000, end=False)
            c.wait(lambda sid=sid: c.responses[sid]["reset"] is not None, what="the reset")
            r = c.responses[sid]
            self.assertEqual(status(r), want)
            if body is not None:
                self.assertEqual(bytes(r["data"]), body)
            self.assertEqual(r["order"][-2:], ["end", "reset"], r["order"])
            self.assertEqual(r["reset"], 0)  # NO_ERROR
        self.assertEqual(status(c.get("/other")), 200)
        self.assertFalse(c.closed)

WS_PAGE = b"""<html><body><div id=r>pending</div><script>
fetch("/wait");  // pending until /done: Chromium's virtual time does not run out before
const ws = new WebSocket("wss://" + location.host + "/ws");
ws.onopen = () => ws.send("hello");
ws.onmessage = e => {
  document.getElementById("r").textContent = "got:" + e.data;
  ws.close();
  fetch("/done");
};
ws.onerror = () => { document.getElementById("r").textContent = "error"; fetch("/done"); };
</script></body></html>"""


def websocket_backend():
    """A strict RFC 6455 server: no Sec-WebSocket-Key, no handshake (400); echoes one text
    message as "echo:" + it. /wait is answered once /done came (or after 10 s); anything else
    is WS_PAGE."""
    done = threading.Event()

    def handle(c, head, path):
        if path.startswith("/done"):
            done.set()
            c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
            return True
        if path.startswith("/wait"):
            done.wait(scaled(10))
            c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
            return True
        if not path.startswith("/ws"):
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
                      % len(WS_PAGE) + WS_PAGE)
            return True
        key = next((line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")), None)
        if key is None:
            c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return False
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                  .digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        buf = b""
        while len(buf) < 2 or len(buf) < 6 + (buf[1] & 0x7F):
            d = c.recv(65536)
            if not d:
                return False
            buf += d
        n, mask = buf[1] & 0x7F, buf[2:6]
        msg = b"echo:" + bytes(b ^ mask[i % 4] for i, b in enumerate(buf[6:6 + n]))
        c.sendall(bytes([0x81, len(msg)]) + msg)
        while c.recv(65536):  # the close frame, then the end
            pass
        return False
    return handle


@plain_only("golb's own listeners are chosen per test")
class TestBrowser(H2Case):
    def test_chromium_opens_a_wss_websocket_over_h2(self):
        """A page served over h2 opens wss:// to the same origin: Chromium sends an extended
        CONNECT (RFC 8441) on its h2 connection, golb makes it an HTTP/1.1 handshake with a
        Sec-WebSocket-Key of its own (a real WebSocket server refuses one without)."""
        if not (shutil.which("chromium") or shutil.which("chromium-browser")):
            self.skipTest("chromium is not installed")
        u = self.raw_upstream(websocket_backend())
        g = self.h2tls([u])
        dom, err = page_dom(f"https://127.0.0.1:{g.tls_port}/page", self.tmp, budget_ms=5000,
                            extra_args=["--ignore-certificate-errors"])
        if "<html" not in dom:
            self.skipTest(f"chromium did not start: {err[-300:]}")
        self.assertIn('<div id="r">got:echo:hello</div>', dom)
        ws = [h for h in u.requests if h.startswith(b"GET /ws ")]
        self.assertEqual(len(ws), 1, u.requests)
        # lower-case names: it came over HTTP/2, as an extended CONNECT
        self.assertIn(b"\r\nsec-websocket-version: 13\r\n", ws[0])
        self.assertIn(b"\r\nUpgrade: websocket\r\n", ws[0])
        self.assertRegex(ws[0], rb"\r\nSec-WebSocket-Key: [A-Za-z0-9+/]{22}==\r\n")


@plain_only("golb's own listeners are chosen per test")
class TestRefusals(H2Case):
    def test_malformed_requests_never_reach_the_backend(self):
        u = self.raw_upstream(lambda c, head, path: c.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") or True)
        g = self.h2c([u], maxHeaderSize=4096)
        c = self.client(g)
        cases = {
            "connection field": dict(headers=[("connection", "close")]),
            "transfer-encoding": dict(headers=[("transfer-encoding", "chunked")]),
            "upgrade field": dict(headers=[("upgrade", "h2c")]),
            "te other than trailers": dict(headers=[("te", "gzip")]),
            "upper-case name": dict(headers=[("X-Upper", "1")]),
            "CR in a value": dict(headers=[("x-a", "1\r\nx-b: 2")]),
            "path with a space": dict(path="/a b"),
            "path without a slash": dict(path="a"),
            "empty path": dict(path=""),
            "unknown pseudo-header": dict(headers=[(":foo", "1")]),
            "pseudo-header after a field": dict(headers=[("x-a", "1"), (":bar", "2")]),
            "no :scheme": dict(scheme=None),
            "value with a leading space": dict(headers=[("x-a", " 1")]),
        }
        for what, kw in cases.items():
            sid = c.request(**{"path": "/ok", **kw})
            c.wait(lambda: c.done(sid), what=what)
            r = c.responses[sid]
            self.assertTrue(r["reset"] == PROTOCOL_ERROR or status(r) == 400, (what, r))
        # Host that disagrees with :authority: a 400 on the stream
        r = c.get("/h", authority="a.test", headers=[("host", "b.test")])
        self.assertEqual(status(r), 400)
        # a content-length that the DATA contradicts
        sid = c.request("/cl", method="POST", headers=[("content-length", "10")], body=b"abc")
        c.wait(lambda: c.done(sid), what="content-length mismatch")
        self.assertTrue(c.responses[sid]["reset"] is not None or status(c.responses[sid]) == 400)
        # a header list over maxHeaderSize: 431
        r = c.get("/big", headers=[("x-big", "v" * 5000)])
        self.assertEqual(status(r), 431)
        # nothing malformed went up; the connection still serves
        self.assertEqual(status(c.get("/fine")), 200)
        for head in u.requests:
            self.assertTrue(head.startswith(b"GET /fine ") or head.startswith(b"POST /cl "), head)

    def test_rapid_reset_gets_enhance_your_calm(self):
        t = self.toy(1)
        g = self.h2c([t])
        c = self.client(g)
        for i in range(400):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                      (":authority", "golb.test"), (":path", "/r?delay=1000")],
                                end_stream=True)
            c.conn.reset_stream(sid, CANCEL)
            c.responses[sid] = {"headers": None, "data": bytearray(), "trailers": None,
                                "reset": None, "ended": False, "interim": [], "order": []}
            try:
                c.flush()
            except OSError:
                break
        c.wait(lambda: c.goaway is not None, what="GOAWAY")
        self.assertEqual(c.goaway[0], ENHANCE_YOUR_CALM)
        g.wait_log(r"too many streams reset", timeout=5)

    def test_continuation_flood_closes_the_connection(self):
        t = self.toy(1)
        g = self.h2c([t])
        c = self.client(g)
        enc = hpack.Encoder()
        block = enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "a"),
                            (":path", "/")])
        hf = HeadersFrame(1, data=block)  # no END_HEADERS
        frames = hf.serialize()
        for _ in range(200):
            frames += ContinuationFrame(1, data=enc.encode([("x-a", "b" * 50)])).serialize()
        try:
            c.send_raw(frames)
        except OSError:
            pass
        self.assertTrue(c.wait_closed(), "the connection ends")
        self.assertEqual(status(self.client(g).get("/still")), 200)

    def test_ping_flood_gets_enhance_your_calm(self):
        t = self.toy(1)
        g = self.h2c([t])
        c = self.client(g)
        c.pump(timeout=2)
        frames = b"".join(PingFrame(0, opaque_data=b"12345678").serialize() for _ in range(3000))
        try:
            c.send_raw(frames)
        except OSError:
            pass
        c.auto_ack = True
        self.assertTrue(c.wait_closed(timeout=10))

    def test_a_client_with_a_tiny_window_gets_its_body_and_blocks_no_other_stream(self):
        t = self.toy(1)
        g = self.h2c([t])
        c = self.client(g, window=1)
        c.auto_ack = False
        c.pump(timeout=2)
        slow = c.request("/slow?size=100000")
        c.wait(lambda: len(c.responses[slow]["data"]) >= 1, what="the first byte")
        # another stream is served meanwhile (its own window opened by hand)
        fast = c.request("/fast?size=20000")
        c.conn.increment_flow_control_window(1 << 20)
        c.conn.increment_flow_control_window(1 << 20, stream_id=fast)
        c.flush()
        c.wait(lambda: c.done(fast), what="the other stream")
        self.assertEqual(len(c.responses[fast]["data"]), 20000)
        self.assertLess(len(c.responses[slow]["data"]), 100000)
        # then the slow one gets the rest, byte windows at a time
        c.conn.increment_flow_control_window(200000, stream_id=slow)
        c.flush()
        c.wait(lambda: c.done(slow), timeout=10, what="the slow stream")
        self.assertEqual(hashlib.sha256(bytes(c.responses[slow]["data"])).hexdigest(),
                         pattern_sha256(100000))


@plain_only("golb's own listeners are chosen per test")
class TestLifecycle(H2Case):
    def test_idle_connection_gets_goaway(self):
        t = self.toy(1)
        g = self.h2c([t], http2="{cleartext: true, idleTimeout: 0.3}")
        c = self.client(g)
        self.assertEqual(status(c.get("/x")), 200)
        c.wait(lambda: c.goaway is not None, what="GOAWAY")
        self.assertEqual(c.goaway[0], 0)
        self.assertTrue(c.wait_closed())

    def test_sigterm_sends_goaway_and_streams_in_flight_finish(self):
        t = self.toy(1)
        g = self.h2c([t], shutdownTimeout=scaled(5))
        p = subprocess.Popen(["nghttp", "-nv", f"http://127.0.0.1:{g.port}/slow?delay=700"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        t.wait_log(r"/slow", timeout=5)  # in flight upstream
        g.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=scaled(10))[0].decode()
        # nghttp opens its request as stream 13 (after its PRIORITY anchors)
        self.assertRegex(out, r"recv GOAWAY frame <[^>]*>\s*\(last_stream_id=13, error_code=NO_ERROR")
        self.assertLess(out.index("recv GOAWAY"), out.index(":status: 200"))
        self.assertRegex(out, r"recv DATA frame <length=\d+, flags=0x01, stream_id=13>")
        self.assertEqual(g.wait_exit(scaled(10)), 0)

    def test_metrics_count_connections_streams_resets_and_goaways(self):
        t = self.toy(1)
        g = self.h2c([t], admin="{listen: 127.0.0.1:0}",
                     http2="{cleartext: true, idleTimeout: 0.3}")
        admin = int(g.wait_log(r"admin API and status page on http://(\S+):(\d+)/", timeout=5).group(2))
        c = self.client(g)
        self.assertEqual(status(c.get("/m")), 200)
        sid = c.request("/r?delay=500")
        c.conn.reset_stream(sid, CANCEL)
        c.flush()
        bad = c.request("/b", headers=[("connection", "x")])
        c.wait(lambda: c.done(bad), what="the refused stream")
        c.wait(lambda: c.goaway is not None, what="the idle GOAWAY")
        c.wait_closed()

        def metric(name):
            body = http_request(admin, "GET", "/metrics").body.decode()
            for line in body.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
            return None
        wait_until(lambda: metric("golb_http2_connections") == 0, 5, "the connection closed")
        self.assertEqual(metric("golb_http2_connections_total"), 1)
        self.assertEqual(metric("golb_http2_streams_total"), 3)
        self.assertEqual(metric("golb_http2_streams"), 0)
        self.assertEqual(metric('golb_http2_stream_resets_total{by="client"}'), 1)
        self.assertEqual(metric('golb_http2_stream_resets_total{by="golb"}'), 1)
        self.assertEqual(metric('golb_http2_goaway_sent_total{reason="idle"}'), 1)
        # the request counters and durations say which protocol the client spoke
        self.assertEqual(metric('golb_http_requests_total{code="2xx",protocol="h2"}'), 1)
        self.assertEqual(metric('golb_http_requests_total{code="2xx",protocol="http/1.1"}'), 0)
        self.assertGreaterEqual(metric('golb_http_request_duration_seconds_count{protocol="h2"}'), 1)
        # the status API (and its page) gives the protocol mix
        st = json.loads(http_request(admin, "GET", "/api/v1/status").body)
        self.assertEqual(st["protocols"], {"http/1.1": 0, "h2": 1})

    def test_reload_under_h2_load_fails_no_stream(self):
        ts = self.toys(2)
        g = self.h2c(ts[:1])
        p = subprocess.Popen(["h2load", "-n", "8000", "-c", "4", "-m", "20",
                              f"http://127.0.0.1:{g.port}/load?delay=10"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        ts[0].wait_log(r"/load", timeout=5)
        with open(g.config_path, "w") as f:  # the second backend joins
            f.write(golb_config(ts, http2="{cleartext: true}"))
        start = g.log_offset()
        g.send_signal(signal.SIGHUP)
        g.wait_log(r"reload by SIGHUP: generation 2 running", timeout=10, start=start)
        self.assertIsNone(p.poll(), "the load still runs after the reload")
        ts[1].wait_log(r"/load", timeout=5)  # new streams reach the new backend
        out = p.communicate(timeout=scaled(60))[0].decode()
        self.assertIn("8000 succeeded, 0 failed, 0 errored", out)
        self.assertIn("status codes: 8000 2xx", out)

    def test_reload_that_moves_a_listener_sends_goaway_to_its_connections(self):
        """A reload that closes the listener a connection came through: GOAWAY (last stream id),
        the stream in flight finishes, one that does not is cut at shutdownTimeout, then the
        connection closes; a connection on a listener the reload kept is left alone."""
        t = self.toy(1)
        cert, key = pki().leaf("golb-h2", ["golb.test", "IP:127.0.0.1"])

        def text(listen):
            return (golb_config([t], listen=listen, http2="{cleartext: true}",
                                shutdownTimeout=scaled(2)) + tls_config_block([(cert, key)]))
        g = self.golb(text("127.0.0.1:0"))
        g.tls_port = https_port(g)
        self.wait_backend(g, t, "UP")
        moved = Conn(g.port, False, "golb.test")  # python3-h2 reads nothing after a GOAWAY
        self.addCleanup(moved.close)
        kept = self.client(g, tls=True)
        self.assertEqual(status(kept.get("/before")), 200)
        moved.send(moved.headers(1, path="/slow?delay=700"), moved.headers(3, path="/stuck?hang=1"))
        t.wait_log(r"/stuck", timeout=5)
        with open(g.config_path, "w") as f:
            f.write(text("127.0.0.2:0"))
        start = g.log_offset()
        g.send_signal(signal.SIGHUP)
        g.wait_log(r"reload by SIGHUP: generation 2 running", timeout=10, start=start)
        t0 = time.monotonic()
        self.assertEqual(moved.conn_error(0), 3, "GOAWAY NO_ERROR names the last stream started")
        self.assertEqual(moved.stream_close(1)[0], 200, "the stream in flight finishes")
        ev = moved.next(timeout=10)
        self.assertEqual(ev[0], "closed", f"closed at shutdownTimeout, not {describe(ev)}")
        self.assertGreater(time.monotonic() - t0, scaled(2) * 0.8)
        g.wait_log(r"1 stream\(s\) cut: their listener closed", timeout=5, start=start)
        # the TLS listener was kept: its connection goes on, no GOAWAY
        self.assertEqual(status(kept.get("/after")), 200)
        self.assertIsNone(kept.goaway)

    def test_a_connection_serves_again_after_its_frame_buffer_was_trimmed(self):
        """After a second without a stream golb gives nghttp2's frame buffer back to the kernel
        (its pages read as zeros after): the connection still serves, over h2c and TLS."""
        t = self.toy(1)
        g = self.h2tls([t], http2="{cleartext: true}")
        clients = [self.client(g), self.client(g, tls=True)]
        for c in clients:
            self.assertEqual(status(c.get("/a")), 200)
        time.sleep(1.3)  # TRIM_AFTER_MS is 1 s
        for c in clients:
            r = c.get("/b?size=50000")
            self.assertEqual((status(r), len(r["data"])), (200, 50000))
            self.assertEqual(hashlib.sha256(bytes(r["data"])).hexdigest(), pattern_sha256(50000))

    def test_access_log_says_version_2(self):
        t = self.toy(1)
        g = self.h2c([t], accessLog="json")
        c = self.client(g)
        self.assertEqual(status(c.get("/logged")), 200)
        g.wait_log(r'"network.protocol.version":"2"', timeout=5)

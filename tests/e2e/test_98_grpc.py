"""gRPC through golb with real gRPC peers (Debian's python3-grpcio; generic handlers and raw
bytes, no generated code) and hand-made HTTP/2 frames: golb's own errors answered the gRPC way
(trailers-only, grpc-status and grpc-message), grpc-timeout as the request's deadline, the upstream
keys of the configuration."""

import importlib
import os
import socket
import hashlib
import json
import subprocess
import sys
import threading
import time

try:
    import grpc
except ImportError:  # Debian's python3-grpcio is seen only by /usr/bin/python3's path
    sys.path.append("/usr/lib/python3/dist-packages")
    import grpc

from golbtest import (HTTPConn, golb_config, http_request, loopback_listener, plain_only,
                      scaled, stop_listening, wait_until)

h2t = importlib.import_module("test_97_http2")

E2E_DIR = os.path.dirname(os.path.abspath(__file__))
SUPPORT_DIR = os.path.join(os.path.dirname(E2E_DIR), "support")

GRPC_HEADERS = [("content-type", "application/grpc"), ("te", "trailers")]
MESSAGE = b"\x00\x00\x00\x00\x03abc"  # one uncompressed gRPC message of 3 bytes


def channel(port):
    ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)])
    return ch


def call(ch, method, payload=b"abc", timeout=5, metadata=None):
    """A unary call with raw bytes; returns (code, details, response or None)."""
    f = ch.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        r = f(payload, timeout=scaled(timeout), metadata=metadata)
        return grpc.StatusCode.OK, "", r
    except grpc.RpcError as e:
        return e.code(), e.details(), None


@plain_only("golb's own listeners are chosen per test (h2c)")
class GrpcErrorsTest(h2t.H2Case):
    def test_no_backend_is_unavailable_for_grpc_and_a_text_answer_for_others(self):
        g = self.h2c(["http://127.0.0.1:1/"], wait_up=False, period=60)
        ch = channel(g.port)
        self.addCleanup(ch.close)
        code, details, _ = call(ch, "/golb.test.Echo/Unary")
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, details)
        self.assertIn(details, ("Service Unavailable", "Bad Gateway"))
        # on the wire: one HEADERS frame that ends the stream, no DATA (trailers-only)
        c = self.client(g)
        r = c.get("/golb.test.Echo/Unary", method="POST", headers=GRPC_HEADERS, body=MESSAGE)
        self.assertEqual(h2t.status(r), 200)
        self.assertEqual(r["headers"]["content-type"], "application/grpc")
        self.assertEqual(r["headers"]["grpc-status"], "14")
        self.assertIn(r["headers"]["grpc-message"], ("Service Unavailable", "Bad Gateway"))
        self.assertEqual(bytes(r["data"]), b"")
        self.assertIsNone(r["trailers"])
        # not a gRPC call: golb's usual text answer
        r = c.get("/x", method="POST", headers=[("content-type", "application/json")], body=b"{}")
        self.assertIn(h2t.status(r), (502, 503))
        # HTTP/1.1 (a gRPC-Web client): the same fields in the head
        h1 = http_request(g.port, "POST", "/golb.test.Echo/Unary",
                          headers={"Content-Type": "application/grpc-web+proto"}, body=MESSAGE)
        self.assertEqual(h1.status, 200)
        self.assertEqual(h1.header("grpc-status"), "14")
        self.assertEqual(h1.header("Content-Type"), "application/grpc")

    def test_grpc_timeout_is_the_deadline(self):
        t = self.toy(1)
        g = self.h2c([t], upstreamTimeout=scaled(20))
        c = self.client(g)
        start = time.monotonic()
        r = c.get("/slow?hang=1", method="POST", body=MESSAGE,
                  headers=GRPC_HEADERS + [("grpc-timeout", "300m")])
        took = time.monotonic() - start
        self.assertEqual(r["headers"]["grpc-status"], "4")
        self.assertEqual(r["headers"]["grpc-message"], "Gateway Timeout")
        self.assertGreaterEqual(took, 0.25)
        self.assertLess(took, scaled(5))  # golb's deadline, not upstreamTimeout (20 s)
        # an invalid grpc-timeout is ignored: the request goes on (the toy answers at once)
        r = c.get("/quick", method="POST", body=MESSAGE,
                  headers=GRPC_HEADERS + [("grpc-timeout", "soon")])
        self.assertEqual(h2t.status(r), 200)
        # a real client's deadline: DEADLINE_EXCEEDED, never a hang
        ch = channel(g.port)
        self.addCleanup(ch.close)
        code, _, _ = call(ch, "/slow?hang=1", timeout=0.5)
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED)

    def test_rate_limit_is_resource_exhausted(self):
        t = self.toy(1)
        routes = ("routes:\n"
                  "  - match: {pathPrefix: /golb.test.Echo}\n"
                  "    rateLimit: {requestsPerSecond: 0.001, burst: 1}\n"
                  "    pool: default\n")
        g = self.golb(golb_config([t], http2="{cleartext: true}", accessLog="json") + routes)
        self.wait_backend(g, t, "UP")
        c = self.client(g)
        r1 = c.get("/golb.test.Echo/A", method="POST", headers=GRPC_HEADERS, body=MESSAGE)
        self.assertEqual(h2t.status(r1), 200)  # the toy's answer
        r2 = c.get("/golb.test.Echo/A", method="POST", headers=GRPC_HEADERS, body=MESSAGE)
        self.assertEqual(h2t.status(r2), 200)
        self.assertEqual(r2["headers"]["grpc-status"], "8")
        self.assertEqual(r2["headers"]["grpc-message"], "Too Many Requests")
        # logged as it went: 200, RESOURCE_EXHAUSTED
        g.wait_log(r'"http.response.status_code":200,[^\n]*"rpc.grpc.status_code":8,[^\n]*'
                   r'"termination":"PR","error.type":"rate_limited"', timeout=5)


def grpc_over_http1(conn, head, path):
    """A RawUpstream handler: the request body is drained (its end, or a short quiet), then a gRPC
    answer over HTTP/1.1: one message b"abc" in a chunked body, grpc-status in the trailers."""
    conn.settimeout(0.3)
    got = b""
    try:
        while b"0\r\n\r\n" not in got:
            d = conn.recv(65536)
            if not d:
                break
            got += d
    except OSError:
        pass
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\n"
                 b"transfer-encoding: chunked\r\n\r\n"
                 b"8\r\n\x00\x00\x00\x00\x03abc\r\n"
                 b"0\r\ngrpc-status: 0\r\ngrpc-message: fine\r\nx-echo-trailer: t1\r\n\r\n")
    return False


def endless_grpc_over_http1(conn, head, path):
    """A RawUpstream handler: a gRPC answer over HTTP/1.1 that never ends by itself (one
    message every 50 ms in a chunked body) until golb closes the connection."""
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\n"
                 b"transfer-encoding: chunked\r\n\r\n")
    try:
        while True:
            conn.sendall(b"8\r\n" + MESSAGE + b"\r\n")
            time.sleep(0.05)
    except OSError:
        return False


@plain_only("golb's own listeners are chosen per test (h2c)")
class GrpcTrailersAndLogTest(h2t.H2Case):
    def test_grpc_timeout_after_the_head_from_an_http1_backend_ends_with_trailers(self):
        u = self.raw_upstream(endless_grpc_over_http1)
        g = self.h2c([u])
        c = self.client(g)
        sid = c.request("/golb.test.Echo/Server", method="POST", body=MESSAGE,
                        headers=GRPC_HEADERS + [("grpc-timeout", "300m")])
        c.wait(lambda: c.done(sid), timeout=5, what="the end of the call")
        r = c.responses[sid]
        self.assertIsNone(r["reset"], "the stream ends with trailers, not a reset")
        self.assertTrue(bytes(r["data"]).startswith(MESSAGE), r["data"])
        self.assertEqual(r["trailers"], {"grpc-status": "4", "grpc-message": "Gateway Timeout"})

    def test_trailers_from_an_http1_upstream_reach_a_grpc_client_and_the_log(self):
        u = self.raw_upstream(grpc_over_http1)
        g = self.h2c([u], accessLog="json", admin="{listen: 127.0.0.1:0}")
        admin = int(g.wait_log(r"admin API and status page on http://(\S+):(\d+)/",
                               timeout=5).group(2))
        ch = channel(g.port)
        self.addCleanup(ch.close)
        f = ch.unary_unary("/golb.test.Echo/Unary", request_serializer=None,
                           response_deserializer=None)
        resp, call_ = f.with_call(b"abc", timeout=scaled(5))
        self.assertEqual(resp, b"abc")
        self.assertEqual(call_.code(), grpc.StatusCode.OK)
        self.assertIn(("x-echo-trailer", "t1"), tuple(call_.trailing_metadata()))
        g.wait_log(r'"rpc.system":"grpc","rpc.service":"golb.test.Echo","rpc.method":"Unary",'
                   r'"rpc.grpc.status_code":0', timeout=5)
        series = f'golb_grpc_responses_total{{pool="default",backend="127.0.0.1:{u.port}",' \
                 f'grpc_code="OK"}} 1'
        wait_until(lambda: series in http_request(admin, "GET", "/metrics").body.decode(),
                   5, "the gRPC response counted")

    def test_golbs_own_answer_is_logged_with_its_grpc_code(self):
        g = self.h2c(["http://127.0.0.1:1/"], wait_up=False, period=60, accessLog="json",
                     admin="{listen: 127.0.0.1:0}")
        admin = int(g.wait_log(r"admin API and status page on http://(\S+):(\d+)/",
                               timeout=5).group(2))
        ch = channel(g.port)
        self.addCleanup(ch.close)
        code, _, _ = call(ch, "/golb.test.Echo/Unary")
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        # the status the client got (200, the error in grpc-status), not golb's internal 503
        g.wait_log(r'"network.protocol.version":"2","http.response.status_code":200,[^\n]*'
                   r'"rpc.method":"Unary","rpc.grpc.status_code":14', timeout=5)
        # the same over HTTP/1.1 (a gRPC-Web client)
        h1 = http_request(g.port, "POST", "/golb.test.Echo/Other", body=MESSAGE,
                          headers={"Content-Type": "application/grpc-web+proto"})
        self.assertEqual((h1.status, h1.header("grpc-status")), (200, "14"))
        g.wait_log(r'"network.protocol.version":"1.1","http.response.status_code":200,[^\n]*'
                   r'"rpc.method":"Other","rpc.grpc.status_code":14', timeout=5)
        # counted as the errors they are
        body = http_request(admin, "GET", "/metrics").body.decode()
        self.assertIn('golb_http_requests_total{code="5xx",protocol="h2"} 1\n', body)
        self.assertIn('golb_http_requests_total{code="5xx",protocol="http/1.1"} 1\n', body)
        # not a gRPC call: no rpc fields
        c = self.client(g)
        c.get("/plain")
        m = g.wait_log(r'\{[^\n]*"url.path":"/plain"[^\n]*', timeout=5)
        self.assertNotIn("rpc.", m.group(0))


class GrpcConfigTest(h2t.H2Case):
    def test_upstream_keys_load(self):
        t = self.toy(1)
        text = golb_config([t], maxStreamsPerConnection=10, protocol="http1",
                           healthCheckService='""')
        g = self.golb(text)
        self.wait_backend(g, t, "UP")
        self.assertEqual(self.get(g, "/x").status, 200)


class GrpcServer:
    """A python3-grpcio server on 127.0.0.1 (an ephemeral port; TLS with (cert, key) paths): the
    health service grpc.health.v1.Health/Check with statuses set by the test (service name →
    ServingStatus; a name not in it is NOT_FOUND), messages encoded by hand."""

    def __init__(self, tls=None, name="s", options=()):
        from concurrent import futures  # noqa: PLC0415
        self.health = {"": 1}
        self.checks = 0
        self.name = name
        self.calls = 0
        self.cancelled = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                                  options=[("grpc.so_reuseport", 0),
                                           ("grpc.max_receive_message_length", 16 << 20),
                                           ("grpc.max_send_message_length", 16 << 20)]
                                  + list(options))
        self._add_echo()

        def check(req, ctx):
            self.checks += 1
            svc = req[2:2 + req[1]].decode() if len(req) >= 2 and req[0] == 0x0A else ""
            if svc not in self.health:
                ctx.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {svc}")
            return bytes([0x08, self.health[svc]])

        handlers = {"Check": grpc.unary_unary_rpc_method_handler(check)}
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("grpc.health.v1.Health", handlers),))
        if tls:
            cert, key = tls
            with open(cert, "rb") as c, open(key, "rb") as k:
                creds = grpc.ssl_server_credentials([(k.read(), c.read())])
            self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def close(self):
        self.server.stop(None)

    def _add_echo(self):
        """golb.test.Echo: Unary (echo; metadata "status" picks a code, "sleep" seconds wait,
        request metadata x-* echoed as initial metadata and trailers), Server (the request
        repeated "count" times), Client (the requests joined), Bidi (each echoed), Who (this
        server's name)."""
        def meta(ctx):
            return dict(ctx.invocation_metadata())

        def unary(req, ctx):
            self.calls += 1
            m = meta(ctx)
            echo = tuple((k, v) for k, v in m.items() if k.startswith("x-"))
            if echo:
                ctx.send_initial_metadata(echo)
                ctx.set_trailing_metadata(tuple((k + "-t", v) for k, v in echo))
            if "sleep" in m:
                end = time.monotonic() + float(m["sleep"])
                while time.monotonic() < end and ctx.is_active():
                    time.sleep(0.01)
                if not ctx.is_active():
                    self.cancelled += 1
                    return b""
            if "status" in m:
                ctx.abort(grpc.StatusCode(int(m["status"])) if False else
                          [c for c in grpc.StatusCode if c.value[0] == int(m["status"])][0],
                          "chosen status")
            return req

        def server_stream(req, ctx):
            self.calls += 1
            for _ in range(int(meta(ctx).get("count", "3"))):
                yield req

        def client_stream(it, ctx):
            self.calls += 1
            return b"".join(it)

        def bidi(it, ctx):
            self.calls += 1
            for r in it:
                yield r

        def who(req, ctx):
            self.calls += 1
            return self.name.encode()

        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Server": grpc.unary_stream_rpc_method_handler(server_stream),
            "Client": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Who": grpc.unary_unary_rpc_method_handler(who),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("golb.test.Echo", handlers),))


class GrpcHealthTest(h2t.H2Case):
    def grpc_server(self, **kw):
        s = GrpcServer(**kw)
        self.addCleanup(s.close)
        return s

    def test_health_check_grpc_takes_a_not_serving_backend_out_and_back(self):
        s = self.grpc_server()
        text = golb_config([f"http://127.0.0.1:{s.port}/"], healthCheck="grpc")
        g = self.golb(text)
        self.wait_backend(g, s.port, "UP")
        s.health[""] = 2
        m = self.wait_backend(g, s.port, "DOWN")
        self.assertIn("gRPC NOT_SERVING", m.group(0))
        s.health[""] = 1
        self.wait_backend(g, s.port, "UP", start=g.log_offset())

    def test_health_check_service_name_and_unknown_service(self):
        s = self.grpc_server()
        s.health["golb.test.Echo"] = 1
        text = golb_config([f"http://127.0.0.1:{s.port}/"], healthCheck="grpc",
                           healthCheckService="golb.test.Echo")
        g = self.golb(text)
        self.wait_backend(g, s.port, "UP")
        del s.health["golb.test.Echo"]
        m = self.wait_backend(g, s.port, "DOWN")
        self.assertIn("grpc-status 5 (NOT_FOUND): unknown service golb.test.Echo", m.group(0))

    def test_health_check_grpc_over_tls_offers_h2(self):
        from tlstest import pki  # noqa: PLC0415
        cert, key = pki().leaf("grpc-backend", ["golb.test", "IP:127.0.0.1"])
        s = self.grpc_server(tls=(cert, key))
        text = golb_config([], healthCheck="grpc")
        text += (f"  - url: https://127.0.0.1:{s.port}/\n"
                 f"    tlsVerify: false\n")
        g = self.golb(text)
        self.wait_backend(g, s.port, "UP")

    def test_health_check_http_of_an_h2_pool_speaks_http2(self):
        # an h2c-only backend (H2cUpstream answers nothing to HTTP/1): `protocol: h2` with the
        # default `healthCheck: http` GETs the URL's path over HTTP/2; 2xx up, else down
        u = H2cUpstream()
        self.addCleanup(u.close)
        u.statuses["/healthz"] = 204
        g = self.golb(golb_config([f"http://127.0.0.1:{u.port}/healthz"], protocol="h2"))
        self.wait_backend(g, u.port, "UP")
        self.assertGreaterEqual(u.gets.get("/healthz", 0), 1)
        with HTTPConn("127.0.0.1", g.port, timeout=scaled(5)) as h1:
            self.assertEqual(h1.request("GET", "/data").status, 200)
        u.statuses["/healthz"] = 503
        m = self.wait_backend(g, u.port, "DOWN", start=g.log_offset())
        self.assertIn("HTTP 503", m.group(0))
        u.statuses["/healthz"] = 200
        self.wait_backend(g, u.port, "UP", start=g.log_offset())

    def test_an_http_backend_fails_the_grpc_check(self):
        t = self.toy(1)
        text = golb_config([t], healthCheck="grpc")
        g = self.golb(text)
        self.wait_backend(g, t, "DOWN")


class H2cUpstream:
    """An h2c server on 127.0.0.1 (python3-h2) that shows what golb sends over HTTP/2: each
    request is answered, once it ended, with a JSON body {"headers", "length", "sha256",
    "trailers"} (trailers: the request's trailer fields, or null without a trailer block); the
    gRPC health check is SERVING; a request with `x-delay: S` is answered S seconds after it
    ended; one with `x-early: N` is answered as soon as its head came (N bytes and a trailer
    block, before the request ends); one with `expect: 100-continue` gets a 100 (Continue) at
    once; /golb.test.Slow/Stream is a gRPC call that never ends by itself: its head, then one
    MESSAGE every 50 ms until golb resets it. What happened to the connections that carried
    requests (health checks aside) is recorded: `goaways` received (their error codes),
    `resets` (RST_STREAM error codes), `closed` by golb. With `proxy`, each connection starts
    with a PROXY header (v1 or v2): its source address is in the JSON answers ("proxy"), and
    `proxied` counts the connections whose header named a client ("LOCAL"/"UNKNOWN": none)."""

    SLOW = "/golb.test.Slow/Stream"

    HEALTH = "/grpc.health.v1.Health/Check"

    def __init__(self, proxy=False):
        import h2.config  # noqa: PLC0415 - python3-h2 from Debian
        import h2.connection  # noqa: PLC0415
        import h2.events  # noqa: PLC0415
        self.h2 = h2
        self.proxy = proxy
        self.proxied = 0
        self.goaways = []
        self.resets = []
        self.closed = 0
        self.requests = []  # the JSON answers, in order (health checks excepted)
        self.statuses = {}  # path -> status answered there (no body), instead of the JSON
        self.gets = {}  # path -> GET requests that came for a path of `statuses`
        self.lsock = loopback_listener(16)
        self.port = self.lsock.getsockname()[1]
        self._socks = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self._socks.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _proxy_header(sock):
        """Reads a PROXY header (v1 or v2) off sock: the source address it names, None for
        LOCAL/UNKNOWN, and the bytes read past it."""
        buf = b""
        while len(buf) < 16:
            d = sock.recv(65536)
            if not d:
                raise OSError("closed before a PROXY header")
            buf += d
        if buf.startswith(b"PROXY "):
            while b"\r\n" not in buf:
                buf += sock.recv(65536)
            line, _, rest = buf.partition(b"\r\n")
            f = line.decode().split(" ")
            return (f[2] if f[1] in ("TCP4", "TCP6") else None), rest
        if not buf.startswith(b"\r\n\r\n\x00\r\nQUIT\n"):
            raise OSError(f"not a PROXY header: {buf[:16]!r}")
        n = 16 + int.from_bytes(buf[14:16], "big")
        while len(buf) < n:
            buf += sock.recv(65536)
        if buf[12] & 0x0F == 0:  # LOCAL
            return None, buf[n:]
        if buf[13] >> 4 == 1:
            return socket.inet_ntop(socket.AF_INET, buf[16:20]), buf[n:]
        return socket.inet_ntop(socket.AF_INET6, buf[16:32]), buf[n:]

    def _serve(self, sock):
        h2 = self.h2
        src, first = None, b""
        if self.proxy:
            try:
                src, first = self._proxy_header(sock)
            except OSError:
                sock.close()
                return
            self.proxied += src is not None
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        streams = {}
        served = False  # a request other than a health check came
        lock = threading.Lock()  # conn and sock: this thread's and the slow streams'
        reset = set()

        def slow(sid):
            while True:
                time.sleep(0.05)
                with lock:
                    if sid in reset:
                        return
                    conn.send_data(sid, MESSAGE)
                    sock.sendall(conn.data_to_send())

        try:
            while True:
                d, first = first or sock.recv(65536), b""
                if not d:
                    self.closed += served
                    return
                lock.acquire()
                for e in conn.receive_data(d):
                    if isinstance(e, h2.events.RequestReceived):
                        streams[e.stream_id] = {"headers": dict(e.headers), "data": b"",
                                                "trailers": None}
                        if streams[e.stream_id]["headers"].get("expect") == "100-continue":
                            conn.send_headers(e.stream_id, [(":status", "100")])
                        if "x-early" in streams[e.stream_id]["headers"]:
                            self._answer_early(conn, e.stream_id,
                                               int(streams[e.stream_id]["headers"]["x-early"]))
                    elif isinstance(e, h2.events.DataReceived):
                        streams[e.stream_id]["data"] += e.data
                        conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                    elif isinstance(e, h2.events.TrailersReceived):
                        streams[e.stream_id]["trailers"] = dict(e.headers)
                    elif isinstance(e, h2.events.StreamEnded):
                        r = streams.pop(e.stream_id)
                        if "x-early" in r["headers"]:
                            continue  # answered already
                        served |= r["headers"].get(":path") != self.HEALTH
                        if "x-delay" in r["headers"]:
                            time.sleep(float(r["headers"]["x-delay"]))
                        if r["headers"].get(":path") == self.SLOW:
                            conn.send_headers(e.stream_id, [(":status", "200"),
                                                            ("content-type", "application/grpc")])
                            threading.Thread(target=slow, args=(e.stream_id,),
                                             daemon=True).start()
                        else:
                            r["proxy"] = src
                            self._answer(conn, e.stream_id, r)
                    elif isinstance(e, h2.events.StreamReset):
                        reset.add(e.stream_id)
                        self.resets.append(e.error_code)
                    elif isinstance(e, h2.events.ConnectionTerminated) and served:
                        self.goaways.append(e.error_code)
                out = conn.data_to_send()
                if out:
                    sock.sendall(out)
                lock.release()
        except OSError:
            self.closed += served
        finally:
            sock.close()

    def _answer(self, conn, sid, r):
        path = r["headers"].get(":path")
        if path in self.statuses:
            if r["headers"].get(":method") == "GET":
                self.gets[path] = self.gets.get(path, 0) + 1
            conn.send_headers(sid, [(":status", str(self.statuses[path]))], end_stream=True)
            return
        if path == self.HEALTH:
            conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
            conn.send_data(sid, b"\x00\x00\x00\x00\x02\x08\x01")
            conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
            return
        body = json.dumps({"headers": r["headers"], "length": len(r["data"]),
                           "sha256": hashlib.sha256(r["data"]).hexdigest(),
                           "trailers": r["trailers"], "proxy": r.get("proxy")}).encode()
        self.requests.append(json.loads(body))
        conn.send_headers(sid, [(":status", "200"), ("content-type", "application/json"),
                                ("content-length", str(len(body)))])
        conn.send_data(sid, body, end_stream=True)

    def _answer_early(self, conn, sid, n):
        """`x-early: N`: answered as soon as the head came, before the request ends (RFC 9113
        §8.1): N bytes (N within the initial window) and a trailer block with their sha256."""
        conn.send_headers(sid, [(":status", "200"), ("content-type", "application/octet-stream")])
        body = bytes(range(256)) * (n // 256 + 1)
        body = body[:n]
        for i in range(0, n, 16384):
            conn.send_data(sid, body[i:i + 16384])
        conn.send_headers(sid, [("x-sum", hashlib.sha256(body).hexdigest())], end_stream=True)

    def close(self):
        stop_listening(self.lsock, self._thread)
        for c in self._socks:
            try:
                c.close()
            except OSError:
                pass


def big_channel(port):
    return grpc.insecure_channel(f"127.0.0.1:{port}",
                                 options=[("grpc.enable_http_proxy", 0),
                                          ("grpc.max_receive_message_length", 16 << 20),
                                          ("grpc.max_send_message_length", 16 << 20)])


@plain_only("golb's own listeners are chosen per test (h2c)")
class GrpcUpstreamTest(h2t.H2Case):
    def grpc_servers(self, n, **kw):
        out = []
        for i in range(n):
            s = GrpcServer(name=f"s{i}", **kw)
            self.addCleanup(s.close)
            out.append(s)
        return out

    def h2c_golb(self, **cfg):
        """An H2cUpstream and a golb with it as its one `protocol: h2` backend (checked with
        gRPC), once the backend is UP."""
        u = H2cUpstream()
        self.addCleanup(u.close)
        g = self.golb(golb_config([f"http://127.0.0.1:{u.port}/"], protocol="h2",
                                  healthCheck="grpc", **cfg))
        self.wait_backend(g, u.port, "UP")
        return u, g

    def grpc_golb(self, servers, **cfg):
        cfg.setdefault("http2", "{cleartext: true}")
        text = golb_config([f"http://127.0.0.1:{s.port}/" for s in servers], protocol="h2",
                           healthCheck="grpc", **cfg)
        g = self.golb(text)
        for s in servers:
            self.wait_backend(g, s.port, "UP")
        ch = big_channel(g.port)
        self.addCleanup(ch.close)
        return g, ch

    def test_every_call_kind_over_h2c(self):
        (s,) = self.grpc_servers(1)
        g, ch = self.grpc_golb([s])
        f = ch.unary_unary("/golb.test.Echo/Unary")
        resp, c = f.with_call(b"hello", timeout=scaled(5), metadata=(("x-m", "v"),))
        self.assertEqual(resp, b"hello")
        self.assertIn(("x-m", "v"), tuple(c.initial_metadata()))
        self.assertIn(("x-m-t", "v"), tuple(c.trailing_metadata()))
        got = list(ch.unary_stream("/golb.test.Echo/Server")(b"ab", timeout=scaled(5),
                                                               metadata=(("count", "5"),)))
        self.assertEqual(got, [b"ab"] * 5)
        self.assertEqual(ch.stream_unary("/golb.test.Echo/Client")(iter([b"a", b"b", b"c"]),
                                                                   timeout=scaled(5)), b"abc")
        got = list(ch.stream_stream("/golb.test.Echo/Bidi")(iter([b"1", b"22", b"333"]),
                                                            timeout=scaled(5)))
        self.assertEqual(got, [b"1", b"22", b"333"])
        code, details, _ = call(ch, "/golb.test.Echo/Unary", metadata=(("status", "5"),))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(details, "chosen status")
        big = bytes(range(256)) * (8 * 4096)  # 8 MiB
        self.assertEqual(f(big, timeout=scaled(20)), big)

    def test_spread_over_three_backends_from_one_connection(self):
        servers = self.grpc_servers(3)
        g, ch = self.grpc_golb(servers, workers=1, admin="{listen: 127.0.0.1:0}")
        admin = int(g.wait_log(r"admin API and status page on http://(\S+):(\d+)/",
                               timeout=5).group(2))
        who = ch.unary_unary("/golb.test.Echo/Who")
        seen = [who(b"", timeout=scaled(5)) for _ in range(30)]
        for s in servers:
            self.assertGreaterEqual(seen.count(s.name.encode()), 5, seen)
        # one upstream connection per backend carried them all; no stream is left open
        body = http_request(admin, "GET", "/metrics").body.decode()
        for s in servers:
            lab = f'{{pool="default",backend="127.0.0.1:{s.port}"}}'
            self.assertIn(f"golb_upstream_h2_connections{lab} 1\n", body)
            self.assertIn(f"golb_upstream_h2_streams{lab} 0\n", body)

    def test_max_streams_per_connection_opens_more_connections_only_when_full(self):
        (s,) = self.grpc_servers(1)
        g, ch = self.grpc_golb([s], workers=1, maxStreamsPerConnection=2,
                               admin="{listen: 127.0.0.1:0}")
        admin = int(g.wait_log(r"admin API and status page on http://(\S+):(\d+)/",
                               timeout=5).group(2))
        lab = f'{{pool="default",backend="127.0.0.1:{s.port}"}}'

        def gauges():
            body = http_request(admin, "GET", "/metrics").body.decode()
            return (f"golb_upstream_h2_connections{lab} 3\n" in body and
                    f"golb_upstream_h2_streams{lab} 6\n" in body)

        f = ch.unary_unary("/golb.test.Echo/Unary")
        calls = [f.future(b"%d" % i, timeout=scaled(10), metadata=(("sleep", "1.5"),))
                 for i in range(6)]
        wait_until(gauges, scaled(3), "6 streams on 3 connections of 2")
        self.assertEqual(sorted(c.result() for c in calls), [b"%d" % i for i in range(6)])
        # then one call at a time reuses a connection: none opens
        before = http_request(admin, "GET", "/metrics").body.decode()
        self.assertEqual(f(b"x", timeout=scaled(5)), b"x")
        after = http_request(admin, "GET", "/metrics").body.decode()
        conns = [l for l in after.splitlines() if l.startswith("golb_backend_connections_total")]
        self.assertEqual(conns, [l for l in before.splitlines()
                                 if l.startswith("golb_backend_connections_total")])

    def test_reload_keeps_connections_and_a_removed_backend_closes_them(self):
        import signal  # noqa: PLC0415
        a, b = self.grpc_servers(2)
        g, ch = self.grpc_golb([a, b])
        who = ch.unary_unary("/golb.test.Echo/Who")
        self.assertEqual({who(b"", timeout=scaled(5)) for _ in range(4)}, {b"s0", b"s1"})
        slow = ch.unary_unary("/golb.test.Echo/Unary").future(
            b"in flight", timeout=scaled(10), metadata=(("sleep", "1"),))
        with open(g.config_path, "w") as f:  # b removed, a's streams limit changed
            f.write(golb_config([f"http://127.0.0.1:{a.port}/"], protocol="h2",
                                http2="{cleartext: true}", healthCheck="grpc",
                                maxStreamsPerConnection=7))
        start = g.log_offset()
        g.send_signal(signal.SIGHUP)
        g.wait_log(r"reload by SIGHUP: generation 2 running", timeout=10, start=start)
        self.assertEqual({who(b"", timeout=scaled(5)) for _ in range(4)}, {b"s0"})
        self.assertEqual(slow.result(), b"in flight")  # a stream across the reload finishes

    def test_h2_over_tls_to_the_backend(self):
        from tlstest import pki  # noqa: PLC0415
        cert, key = pki().leaf("grpc-backend", ["golb.test", "IP:127.0.0.1"])
        s = GrpcServer(tls=(cert, key), name="tls")
        self.addCleanup(s.close)
        text = golb_config([], protocol="h2", healthCheck="grpc", http2="{cleartext: true}")
        text += f"  - url: https://127.0.0.1:{s.port}/\n    tlsVerify: false\n"
        g = self.golb(text)
        self.wait_backend(g, s.port, "UP")
        ch = big_channel(g.port)
        self.addCleanup(ch.close)
        self.assertEqual(ch.unary_unary("/golb.test.Echo/Who")(b"", timeout=scaled(5)), b"tls")
        self.assertEqual(list(ch.stream_stream("/golb.test.Echo/Bidi")(iter([b"a", b"b"]),
                                                                       timeout=scaled(5))),
                         [b"a", b"b"])

    def test_deadline_from_the_server_side(self):
        (s,) = self.grpc_servers(1)
        g, ch = self.grpc_golb([s])
        code, _, _ = call(ch, "/golb.test.Echo/Unary", timeout=0.5, metadata=(("sleep", "3"),))
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED)
        code, _, r = call(ch, "/golb.test.Echo/Unary", payload=b"again")
        self.assertEqual((code, r), (grpc.StatusCode.OK, b"again"))

    def test_grpc_timeout_after_the_head_ends_with_deadline_exceeded_trailers(self):
        # a backend that does not keep the deadline itself (H2cUpstream's slow stream): golb's
        # passes after the head and some messages went
        u, g = self.h2c_golb(http2="{cleartext: true}", accessLog="json")
        # HTTP/2 client: the messages that went, then trailers, never a reset (INTERNAL)
        c = self.client(g)
        sid = c.request(H2cUpstream.SLOW, method="POST", body=MESSAGE,
                        headers=GRPC_HEADERS + [("grpc-timeout", "300m")])
        c.wait(lambda: c.done(sid), timeout=5, what="the end of the call")
        r = c.responses[sid]
        self.assertIsNone(r["reset"], "the stream ends with trailers, not a reset")
        self.assertEqual(h2t.status(r), 200)
        self.assertTrue(bytes(r["data"]).startswith(MESSAGE), r["data"])
        self.assertEqual(len(r["data"]) % len(MESSAGE), 0)
        self.assertEqual(r["trailers"], {"grpc-status": "4", "grpc-message": "Gateway Timeout"})
        wait_until(lambda: u.resets == [8], scaled(3), "the backend's stream reset (CANCEL)")
        g.wait_log(r'"http.response.status_code":200,[^\n]*"rpc.grpc.status_code":4,[^\n]*'
                   r'"termination":"sD","error.type":"grpc_deadline"', timeout=5)
        # HTTP/1.1 client: the chunked body's last chunk carries the status
        with HTTPConn("127.0.0.1", g.port, timeout=scaled(5)) as h1:
            h1.send_request("POST", H2cUpstream.SLOW, body=MESSAGE,
                            headers=[("Content-Type", "application/grpc"), ("TE", "trailers"),
                                     ("grpc-timeout", "300m")])
            self.assertEqual(h1.read_head()[1], 200)
            end = b"\r\n0\r\ngrpc-status: 4\r\ngrpc-message: Gateway Timeout\r\n\r\n"
            while not h1.buf.endswith(end):
                self.assertTrue(h1._fill(), bytes(h1.buf[-200:]))
            self.assertTrue(h1.buf.startswith(b"8\r\n" + MESSAGE + b"\r\n"), h1.buf[:100])
            h1.buf.clear()
            # the response ended well: the connection takes the next request
            r = h1.request("POST", "/x", body=b"abc")
            self.assertEqual(json.loads(r.body)["length"], 3)
        wait_until(lambda: u.resets == [8, 8], scaled(3), "the backend's stream reset")

    def test_client_cancel_resets_that_stream_only(self):
        (s,) = self.grpc_servers(1)
        g, ch = self.grpc_golb([s])
        f = ch.unary_unary("/golb.test.Echo/Unary")
        slow = f.future(b"slow", timeout=scaled(10), metadata=(("sleep", "5"),))
        other = f.future(b"other", timeout=scaled(10), metadata=(("sleep", "0.3"),))
        time.sleep(0.1)
        slow.cancel()
        self.assertEqual(other.result(), b"other")  # same client connection, same upstream one
        wait_until(lambda: s.cancelled == 1, scaled(3), "the backend to see the cancel")

    def test_http11_chunked_body_to_an_h2_backend_is_decoded_into_data(self):
        # a gRPC call from an HTTP/1.1 client with a chunked body, its message cut across chunks
        (s,) = self.grpc_servers(1)
        g, _ = self.grpc_golb([s])
        msg = b"\x00\x00\x00\x00\x05hello"
        with HTTPConn("127.0.0.1", g.port, timeout=scaled(5)) as c:
            c.send_request("POST", "/golb.test.Echo/Unary",
                           headers={"Content-Type": "application/grpc", "TE": "trailers"},
                           body=iter([msg[:3], msg[3:7], msg[7:]]))
            r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, msg)
        self.assertEqual(r.header("grpc-status"), None)  # in the chunked trailers, not the head

    def test_http11_chunked_body_and_trailers_reach_an_h2_backend_whole(self):
        u, g = self.h2c_golb()
        # 1 MiB in uneven chunks: past requestBufferSize (held, then streamed from the client)
        # and past what a stream buffers (backpressure); then a pipelined request on the same
        # connection, so the body must end exactly where its last chunk does
        big = bytes(range(256)) * 4096
        pieces, i, n = [], 0, 1
        while i < len(big):
            pieces.append(big[i:i + n])
            i += n
            n = n * 7 % 65521 + 1
        head = (b"POST /up HTTP/1.1\r\nHost: golb.test\r\nTransfer-Encoding: chunked\r\n"
                b"Trailer: x-sum\r\n\r\n")
        chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces)
        last = (b"0\r\nX-Sum: 42\r\nContent-Length: 5\r\nx-Other: o\r\nHTTP2-Settings: AAMAAABk"
                b"\r\n\r\n")
        second = b"POST /again HTTP/1.1\r\nHost: golb.test\r\nTransfer-Encoding: chunked\r\n\r\n" \
                 b"3\r\nabc\r\n0\r\n\r\n"
        with HTTPConn("127.0.0.1", g.port, timeout=scaled(10)) as c:
            c.send(head + chunks + last + second)
            r1 = c.read_response()
            r2 = c.read_response()
        self.assertEqual(r1.status, 200, r1.body)
        got = json.loads(r1.body)
        self.assertEqual(got["length"], len(big))
        self.assertEqual(got["sha256"], hashlib.sha256(big).hexdigest())
        self.assertNotIn("transfer-encoding", got["headers"])
        # the trailer block: names lower-cased, neither Content-Length (framing) nor a field
        # HTTP/2 forbids
        self.assertEqual(got["trailers"], {"x-sum": "42", "x-other": "o"})
        self.assertEqual(r2.status, 200)
        got = json.loads(r2.body)
        self.assertEqual((got["length"], got["trailers"]), (3, None))
        self.assertEqual(got["sha256"], hashlib.sha256(b"abc").hexdigest())

    def test_upstream_idle_timeout_closes_an_h2_connection_without_streams(self):
        u = H2cUpstream()
        self.addCleanup(u.close)
        idle = scaled(0.5)
        text = golb_config([f"http://127.0.0.1:{u.port}/"], protocol="h2", healthCheck="grpc",
                           workers=1, upstreamIdleTimeout=idle, admin="{listen: 127.0.0.1:0}")
        g = self.golb(text)
        self.wait_backend(g, u.port, "UP")
        admin = int(g.wait_log(r"admin API and status page on http://(\S+):(\d+)/",
                               timeout=5).group(2))
        lab = f'{{pool="default",backend="127.0.0.1:{u.port}"}}'

        def conns():
            body = http_request(admin, "GET", "/metrics").body.decode()
            return int(body.split(f"golb_upstream_h2_connections{lab} ")[1].split()[0])

        # a stream open longer than the timeout keeps its connection
        start = time.monotonic()
        r = http_request(g.port, "POST", "/slow", headers={"x-delay": str(2 * idle)}, body=b"x",
                         timeout=scaled(5))
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(time.monotonic() - start, 2 * idle)
        self.assertEqual(u.closed, 0)
        # then, without a stream, it is closed after upstreamIdleTimeout: GOAWAY NO_ERROR first
        self.assertEqual(conns(), 1)
        wait_until(lambda: conns() == 0, scaled(5), "the idle HTTP/2 connection closed")
        wait_until(lambda: u.closed == 1, scaled(5), "the backend to see the close")
        self.assertEqual(u.goaways, [0])
        # and the next request opens another one
        self.assertEqual(http_request(g.port, "GET", "/again").status, 200)
        self.assertEqual(conns(), 1)

    def test_send_proxy_protocol_on_h2_connections_one_per_client_address(self):
        for version in ("v1", "v2"):
            with self.subTest(version=version):
                u = H2cUpstream(proxy=True)
                self.addCleanup(u.close)
                text = golb_config([], protocol="h2", healthCheck="grpc", workers=1,
                                   admin="{listen: 127.0.0.1:0}")
                text += (f"  - url: http://127.0.0.1:{u.port}/\n"
                         f"    sendProxyProtocol: {version}\n")
                g = self.golb(text)
                self.wait_backend(g, u.port, "UP")  # its checks send LOCAL / UNKNOWN
                admin = int(g.wait_log(r"admin API and status page on http://(\S+):(\d+)/",
                                       timeout=5).group(2))

                def get_from(src):
                    s = socket.create_connection(("127.0.0.1", g.port), timeout=scaled(5),
                                                 source_address=(src, 0))
                    with s:
                        s.sendall(b"GET /who HTTP/1.1\r\nHost: golb.test\r\n"
                                  b"Connection: close\r\n\r\n")
                        raw = b""
                        while True:
                            d = s.recv(65536)
                            if not d:
                                break
                            raw += d
                    head, _, body = raw.partition(b"\r\n\r\n")
                    self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
                    return json.loads(body)["proxy"]

                # each client address gets its connection, whose PROXY header names it; a
                # client that comes back shares its own
                self.assertEqual(get_from("127.0.0.2"), "127.0.0.2")
                self.assertEqual(get_from("127.0.0.3"), "127.0.0.3")
                self.assertEqual(get_from("127.0.0.2"), "127.0.0.2")
                self.assertEqual(u.proxied, 2)
                body = http_request(admin, "GET", "/metrics").body.decode()
                lab = f'{{pool="default",backend="127.0.0.1:{u.port}"}}'
                self.assertIn(f"golb_upstream_h2_connections{lab} 2\n", body)

    def test_http2_client_trailers_reach_an_h2_backend(self):
        u, g = self.h2c_golb(http2="{cleartext: true}")
        c = self.client(g)
        sid = c.request("/t", method="POST", body=b"abc", end=False)
        c.conn.send_headers(sid, [("x-req-trailer", "v1")], end_stream=True)
        c.flush()
        c.wait(lambda: c.done(sid), what="the response")
        got = json.loads(bytes(c.responses[sid]["data"]))
        self.assertEqual((got["length"], got["trailers"]), (3, {"x-req-trailer": "v1"}))

    def test_an_answer_before_the_request_ended_reaches_the_client_whole_then_the_reset(self):
        # RFC 9113 §8.1: the backend answers (body and trailers) while the client is still
        # sending; golb tells the client to stop with RST_STREAM(NO_ERROR), but only after the
        # response's END_STREAM went: a reset queued earlier overtook the last DATA and the
        # trailers, and the client lost them
        u, g = self.h2c_golb(http2="{cleartext: true}")
        n = 60000
        body = (bytes(range(256)) * (n // 256 + 1))[:n]
        c = self.client(g)
        for _ in range(3):
            sid = c.request("/early", method="POST", headers=[("x-early", str(n))], body=b"ab",
                            end=False)
            c.wait(lambda sid=sid: c.responses[sid]["reset"] is not None, what="the reset")
            r = c.responses[sid]
            self.assertEqual(r["headers"][":status"], "200")
            self.assertEqual(len(r["data"]), n)
            self.assertEqual(bytes(r["data"]), body)
            self.assertEqual(r["trailers"], {"x-sum": hashlib.sha256(body).hexdigest()})
            self.assertEqual(r["order"][-3:], ["trailers", "end", "reset"])
            self.assertEqual(r["reset"], 0)  # NO_ERROR
        self.assertTrue(g.alive())

    def test_expect_100_continue_reaches_an_h2_backend_and_its_100_the_client(self):
        # as over HTTP/1: the backend's 100 (Continue) is relayed, so curl sends its body at once
        # rather than after its 1 s wait for a 100 that golb dropped
        u, g = self.h2c_golb(http2="{cleartext: true}")
        body = os.urandom(100000)
        path = os.path.join(self.tmp, "body")
        with open(path, "wb") as f:
            f.write(body)
        t0 = time.monotonic()
        r = self.curl("-v", "--http1.1", "-H", "Expect: 100-continue", "--expect100-timeout", "5",
                      "--data-binary", f"@{path}", f"http://127.0.0.1:{g.port}/up")
        took = time.monotonic() - t0
        err = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, 0, err)
        self.assertIn("< HTTP/1.1 100 Continue", err)
        self.assertRegex(err, r"< HTTP/1.1 200 ")
        got = json.loads(r.stdout)
        self.assertEqual(got["headers"].get("expect"), "100-continue")
        self.assertEqual((got["length"], got["sha256"]),
                         (len(body), hashlib.sha256(body).hexdigest()))
        self.assertLess(took, scaled(4), "curl waited for a 100 that did not come")
        # an HTTP/2 client gets it as an interim HEADERS, then sends its body
        c = self.client(g)
        sid = c.request("/up2", method="POST", headers=[("expect", "100-continue")], end=False)
        c.wait(lambda: c.responses[sid]["interim"], what="the 100")
        self.assertEqual(c.responses[sid]["interim"][0][":status"], "100")
        self.assertIsNone(c.responses[sid]["headers"])
        c.conn.send_data(sid, b"abc", end_stream=True)
        c.flush()
        c.wait(lambda: c.done(sid), what="the response")
        self.assertEqual(c.responses[sid]["headers"][":status"], "200")
        self.assertEqual(json.loads(bytes(c.responses[sid]["data"]))["length"], 3)

    def test_http11_keepalive_requests_with_a_body_to_an_h2_backend(self):
        # from the second request on, the backend's connection is ready at once: the body held
        # (requestBufferSize) must then go on the HTTP/2 stream (golb crashed there)
        (s,) = self.grpc_servers(1)
        g, _ = self.grpc_golb([s])
        with HTTPConn("127.0.0.1", g.port, timeout=scaled(5)) as c:
            for _ in range(3):
                r = c.request("POST", "/golb.test.Echo/Unary", body=MESSAGE,
                              headers={"Content-Type": "application/grpc", "TE": "trailers"})
                self.assertEqual((r.status, r.body), (200, MESSAGE))
        self.assertTrue(g.alive())

    def test_http11_client_gets_the_trailers_chunked(self):
        (s,) = self.grpc_servers(1)
        g, _ = self.grpc_golb([s])
        sock = socket.create_connection(("127.0.0.1", g.port), timeout=scaled(5))
        self.addCleanup(sock.close)
        sock.sendall(b"POST /golb.test.Echo/Unary HTTP/1.1\r\nHost: golb.test\r\n"
                     b"Content-Type: application/grpc\r\nTE: trailers\r\n"
                     b"Content-Length: 8\r\nConnection: close\r\n\r\n" + MESSAGE)
        raw = b""
        while True:
            d = sock.recv(65536)
            if not d:
                break
            raw += d
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"), head)
        self.assertIn(b"\r\ntransfer-encoding: chunked", head.lower())
        self.assertTrue(body.startswith(b"8\r\n" + MESSAGE + b"\r\n0\r\ngrpc-status: 0\r\n"),
                        body)
        self.assertTrue(body.endswith(b"\r\n\r\n"), body)

    def test_goaway_during_load_fails_no_call(self):
        # the backends send GOAWAY every 300 ms (grpc.max_connection_age): streams above its
        # last-stream-id are sent again on another connection
        servers = [GrpcServer(name=f"s{i}", options=[("grpc.max_connection_age_ms", 300),
                                                     ("grpc.max_connection_age_grace_ms", 5000)])
                   for i in range(2)]
        for srv in servers:
            self.addCleanup(srv.close)
        g, ch = self.grpc_golb(servers)
        f = ch.unary_unary("/golb.test.Echo/Unary")
        import concurrent.futures  # noqa: PLC0415
        deadline = time.monotonic() + scaled(1.5)
        failures = []

        def worker(i):
            n = 0
            while time.monotonic() < deadline:
                try:
                    if f(b"m%d" % i, timeout=scaled(5)) != b"m%d" % i:
                        failures.append("wrong answer")
                except grpc.RpcError as e:
                    failures.append(f"{e.code()}: {e.details()}")
                n += 1
            return n

        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            total = sum(ex.map(worker, range(8)))
        self.assertGreater(total, 50)
        self.assertEqual(failures, [])

    def test_backend_killed_mid_stream_fails_only_its_streams(self):
        procs = []
        ports = []
        for i in range(2):
            p = subprocess.Popen(
                ["/usr/bin/python3", "-c",
                 "import sys, time; sys.path[:0] = sys.argv[1:3]; import test_98_grpc as t; "
                 f"s = t.GrpcServer(name='k{i}'); print(s.port, flush=True); time.sleep(600)",
                 E2E_DIR, SUPPORT_DIR],
                stdout=subprocess.PIPE, text=True)
            self.addCleanup(lambda p=p: (p.kill(), p.wait()))
            procs.append(p)
            ports.append(int(p.stdout.readline()))
        text = golb_config([f"http://127.0.0.1:{port}/" for port in ports], protocol="h2",
                           http2="{cleartext: true}", healthCheck="grpc")
        g = self.golb(text)
        for port in ports:
            self.wait_backend(g, port, "UP")
        ch = big_channel(g.port)
        self.addCleanup(ch.close)
        who = ch.unary_unary("/golb.test.Echo/Who")
        # two slow streams, one on each backend (round robin), then the first backend dies
        slow = ch.unary_stream("/golb.test.Echo/Server")
        calls = []
        for _ in range(2):
            calls.append(slow(b"x" * 100, timeout=scaled(10), metadata=(("count", "20000"),)))
        firsts = [next(c) for c in calls]
        self.assertEqual(firsts, [b"x" * 100] * 2)
        procs[0].kill()
        procs[0].wait()
        results = []
        for c in calls:
            try:
                for _ in c:
                    pass
                results.append("ended")
            except grpc.RpcError as e:
                results.append(e.code())
        # the killed backend's stream fails UNAVAILABLE; the other goes on (to its end or its
        # deadline)
        self.assertEqual(results.count(grpc.StatusCode.UNAVAILABLE), 1, results)
        other = [r for r in results if r != grpc.StatusCode.UNAVAILABLE]
        self.assertIn(other[0], ("ended", grpc.StatusCode.DEADLINE_EXCEEDED), results)
        self.assertEqual(who(b"", timeout=scaled(5)), b"k1")  # the survivor serves new calls

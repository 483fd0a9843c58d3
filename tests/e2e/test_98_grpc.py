"""gRPC through golb with real gRPC peers (Debian's python3-grpcio; generic handlers and raw
bytes, no generated code) and hand-made HTTP/2 frames: golb's own errors answered the gRPC way
(trailers-only, grpc-status and grpc-message), grpc-timeout as the request's deadline, the upstream
keys of the configuration."""

import importlib
import sys
import time

try:
    import grpc
except ImportError:  # Debian's python3-grpcio is seen only by /usr/bin/python3's path
    sys.path.append("/usr/lib/python3/dist-packages")
    import grpc

from golbtest import golb_config, http_request, plain_only, scaled, wait_until

h2t = importlib.import_module("test_97_http2")

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
        g = self.golb(golb_config([t], http2="{cleartext: true}") + routes)
        self.wait_backend(g, t, "UP")
        c = self.client(g)
        r1 = c.get("/golb.test.Echo/A", method="POST", headers=GRPC_HEADERS, body=MESSAGE)
        self.assertEqual(h2t.status(r1), 200)  # the toy's answer
        r2 = c.get("/golb.test.Echo/A", method="POST", headers=GRPC_HEADERS, body=MESSAGE)
        self.assertEqual(h2t.status(r2), 200)
        self.assertEqual(r2["headers"]["grpc-status"], "8")
        self.assertEqual(r2["headers"]["grpc-message"], "Too Many Requests")


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


@plain_only("golb's own listeners are chosen per test (h2c)")
class GrpcTrailersAndLogTest(h2t.H2Case):
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
        g = self.h2c(["http://127.0.0.1:1/"], wait_up=False, period=60, accessLog="json")
        ch = channel(g.port)
        self.addCleanup(ch.close)
        code, _, _ = call(ch, "/golb.test.Echo/Unary")
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        g.wait_log(r'"rpc.method":"Unary","rpc.grpc.status_code":14', timeout=5)
        # not a gRPC call: no rpc fields
        c = self.client(g)
        c.get("/plain")
        m = g.wait_log(r'\{[^\n]*"url.path":"/plain"[^\n]*', timeout=5)
        self.assertNotIn("rpc.", m.group(0))


class GrpcConfigTest(h2t.H2Case):
    def test_upstream_keys_load_and_warn_until_implemented(self):
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

    def __init__(self, tls=None):
        from concurrent import futures  # noqa: PLC0415
        self.health = {"": 1}
        self.checks = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                                  options=[("grpc.so_reuseport", 0)])

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

    def test_an_http_backend_fails_the_grpc_check(self):
        t = self.toy(1)
        text = golb_config([t], healthCheck="grpc")
        g = self.golb(text)
        self.wait_backend(g, t, "DOWN")

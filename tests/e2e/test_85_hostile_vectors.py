"""Every case of tests/vectors/requests.vec through a real golb, in front of an upstream that records
exactly the bytes it receives and parses them strictly (golbtest.RecordingUpstream).

- error cases: golb's first answer is exactly the expected status, nothing of the request reaches
  the upstream, the connection is closed. Cases whose head is valid but whose chunked body is not
  (the chunk_* cases) may have had their head forwarded before the bad framing arrived: then golb
  answers 400 or cuts the connection, the upstream never gets a complete request, and the upstream
  connection that carried the broken body is closed, never reused.
- ok cases: the upstream gets exactly one complete request, framed as golb framed it (one of
  Content-Length / chunked, never both), with the same method, target (origin-form), body, no
  hop-by-hop field, one Host; the client gets the upstream's own 200.
- throughout: every upstream connection parses as a clean sequence of requests (a smuggled or
  desynchronised request would show as a parse error, a stray request or leftover bytes).

One golb serves all cases (fresh client connection per case) so the run stays fast.
"""

import re

from golbtest import (HOP_BY_HOP, ConnectionClosed, GolbTestCase, HTTPConn, load_vectors, scaled,
                      wait_until)

# Cases with a valid head and an invalid chunked body: golb may have forwarded the head already.
BODY_LEVEL_PREFIX = "chunk_"


def client_view(raw):
    """A lenient reading of a valid vector request (bare LF allowed, leading empty lines skipped):
    (method, target, version, [(name, value)], framing, body)."""
    pos = 0
    while raw.startswith(b"\r\n", pos) or raw.startswith(b"\n", pos):
        pos += 2 if raw.startswith(b"\r\n", pos) else 1
    lines = []
    while True:
        eol = raw.index(b"\n", pos)
        line = raw[pos:eol].rstrip(b"\r")
        pos = eol + 1
        if not line:
            break
        lines.append(line.decode("latin-1"))
    method, target, version = lines[0].split(" ")
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers.append((k, v.strip(" \t")))
    rest = raw[pos:]
    te = [v for k, v in headers if k.lower() == "transfer-encoding"]
    cl = [v for k, v in headers if k.lower() == "content-length"]
    if te:
        body, p = bytearray(), 0
        while True:
            eol = rest.index(b"\r\n", p)
            size = int(rest[p:eol].split(b";")[0].strip(), 16)
            p = eol + 2
            if size == 0:
                break
            body += rest[p:p + size]
            p += size + 2
        return method, target, version, headers, "chunked", bytes(body)
    if cl:
        n = int(cl[0].split(",")[0].strip())
        return method, target, version, headers, "length", rest[:n]
    return method, target, version, headers, "none", b""


def split_head(raw):
    """(head, rest, chunked): the request head as sent (through its blank line), the bytes after
    it, and whether the head asks for chunked framing (Transfer-Encoding ending in chunked)."""
    m = re.search(rb"\r?\n\r?\n", raw.lstrip(b"\r\n"))
    end = len(raw) - len(raw.lstrip(b"\r\n")) + m.end()
    head = raw[:end]
    te = re.findall(rb"(?im)^transfer-encoding:[ \t]*([^\r\n]*)", head)
    chunked = bool(te) and te[-1].strip().lower().endswith(b"chunked")
    return head, raw[end:], chunked


def expected_upstream_target(target):
    m = re.match(r"(?i)https?://[^/?#]*", target)
    if not m:
        return target
    path = target[m.end():]
    return path if path.startswith("/") else "/" + path if path else "/"


class HostileVectorsTest(GolbTestCase):
    def test_every_vector_through_golb(self):
        vectors = load_vectors()
        self.assertGreaterEqual(len(vectors), 150)
        up = self.recording_upstream()
        # A head that golb wrongly waits on ends with a 408 after clientHeaderTimeout, well before
        # the client's own read timeout.
        g = self.golb_for([up], clientHeaderTimeout=round(scaled(3), 3), workers=2)
        failures = []
        for v in vectors:
            up.tag = v.name
            try:
                if v.ok:
                    self.check_ok(g, up, v)
                else:
                    self.check_error(g, up, v)
            except AssertionError as e:
                failures.append(f"{v.name} (line {v.lineno}, expected {v.expected}): {e}")
            # Whatever the outcome, no upstream stream may be out of step.
            errs = up.errors()
            if errs:
                failures.append(f"{v.name}: upstream saw a malformed stream: {errs}")
                break
        up.tag = "after"
        # golb still serves a normal request, and nothing arrived late for any case.
        with HTTPConn(g.host, g.port) as c:
            r = c.request("GET", "/after-all-vectors")
            self.assertEqual(r.status, 200, r.text)
            self.assertIsNotNone(r.header("X-Rec"))
        n_ok = sum(1 for v in vectors if v.ok)
        complete = up.requests(complete_only=True)
        by_tag = {}
        for r in complete:
            by_tag.setdefault(r.tag, []).append(r)
        for v in vectors:
            want = 1 if v.ok else 0
            got = len(by_tag.get(v.name, []))
            if got != want:
                failures.append(f"{v.name}: upstream got {got} complete requests in the end, want {want}")
        self.assertEqual(len(complete), n_ok + 1,
                         f"upstream requests: {[(r.tag, r.method, r.target) for r in complete]}")
        self.assertEqual(up.errors(), [])
        self.assertFalse(failures, "\n" + "\n".join(failures))

    def test_chunked_bodies_streamed_after_the_head(self):
        # The same chunked cases with the body sent only once the upstream has the head, one byte
        # per write: golb forwards a head before it has seen the body (requestBufferSize: 0, no
        # holding), so a bad chunk can only be answered with 400 (response not started) or a cut,
        # and the upstream connection must die.
        cases = [v for v in load_vectors()
                 if (v.ok and split_head(v.raw)[2]) or (v.name.startswith(BODY_LEVEL_PREFIX) and v.expected == 400)]
        self.assertGreaterEqual(len(cases), 30)
        up = self.recording_upstream()
        g = self.golb_for([up], clientHeaderTimeout=round(scaled(3), 3), bodyTimeout=round(scaled(3), 3),
                          requestBufferSize=0)
        failures = []
        for v in cases:
            up.tag = v.name
            head, rest, chunked = split_head(v.raw)
            self.assertTrue(chunked, v.name)
            try:
                with HTTPConn(g.host, g.port, timeout=5) as c:
                    c.send(head)
                    wait_until(lambda: up.requests(tag=v.name), 5, "the head to reach the upstream")
                    try:
                        for i in range(len(rest)):
                            c.send(rest[i:i + 1])
                    except (BrokenPipeError, ConnectionResetError):
                        assert not v.ok, "golb closed while a valid body was sent"
                    r = self.read_first_answer(c)
                    if v.ok:
                        assert r is not None and r.status == 200 and r.header("X-Rec"), f"answered {r}"
                    elif r is not None:
                        assert r.status == 400, f"answered {r.status} {r.text!r}, want 400 or a cut"
                    if not v.ok:
                        assert c.wait_closed(timeout=5), "connection left open after a bad body"
                reqs = up.requests(tag=v.name)
                assert len(reqs) == 1, f"upstream got {reqs}"
                q = reqs[0]
                if v.ok:
                    assert q.complete and q.body == client_view(v.raw)[5], f"{q} body {q.body!r}"
                else:
                    assert not q.complete, f"a broken body reached the upstream complete: {q.raw!r}"
                    wait_until(lambda: q.conn.closed, 5, "golb to close the upstream connection")
                    assert len(q.conn.requests) == q.index + 1, f"reused after a broken body: {q.conn.requests}"
            except AssertionError as e:
                failures.append(f"{v.name} (line {v.lineno}, expected {v.expected}): {e}")
            if up.errors():
                failures.append(f"{v.name}: upstream saw a malformed stream: {up.errors()}")
                break
        up.tag = "after"
        self.assertEqual(self.get(g, "/after").status, 200)
        self.assertEqual(up.errors(), [])
        self.assertFalse(failures, "\n" + "\n".join(failures))

    def test_every_vector_with_a_pipelined_follow_up(self):
        # Each case followed, in the same write, by an ordinary request. A valid case must be
        # framed exactly: the follow-up is then the next request on the connection (unless the
        # case closes it). After an error golb reads nothing more as a request: the follow-up
        # never reaches the upstream.
        vectors = load_vectors()
        up = self.recording_upstream()
        g = self.golb_for([up], clientHeaderTimeout=round(scaled(3), 3), bodyTimeout=round(scaled(3), 3))
        follow = b"GET /follow-up HTTP/1.1\r\nHost: follow.example\r\n\r\n"
        failures = []
        for v in vectors:
            up.tag = v.name
            try:
                with HTTPConn(g.host, g.port, timeout=5) as c:
                    try:
                        c.send(v.raw + follow)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    r = self.read_first_answer(c)
                    if v.ok:
                        assert r is not None and r.status == 200 and r.header("X-Rec"), f"answered {r}"
                        closes = (r.header("Connection") or "").lower() == "close"
                        if not closes:
                            r2 = c.read_response()
                            assert r2.status == 200 and r2.header("X-Rec"), f"follow-up answered {r2}"
                        assert closes or (r.header("Connection") or "").lower() != "close"
                    else:
                        body_level = v.name.startswith(BODY_LEVEL_PREFIX) and v.expected == 400
                        if r is not None or not body_level:
                            assert r is not None and r.status == v.expected, f"answered {r}"
                        assert c.wait_closed(timeout=5), "connection left open after the error"
                reqs = up.requests(tag=v.name)
                targets = [q.target for q in reqs if q.complete]
                if v.ok:
                    want = [expected_upstream_target(client_view(v.raw)[1])]
                    if not closes:
                        want.append("/follow-up")
                    assert targets == want, f"upstream got {targets}, want {want}"
                else:
                    assert targets == [], f"upstream got {targets} after an error"
            except (AssertionError, ConnectionClosed, OSError) as e:
                failures.append(f"{v.name} (line {v.lineno}, expected {v.expected}): {e!r}")
            if up.errors():
                failures.append(f"{v.name}: upstream saw a malformed stream: {up.errors()}")
                break
        self.assertEqual(up.errors(), [])
        self.assertFalse(failures, "\n" + "\n".join(failures))

    def test_every_vector_byte_by_byte_after_a_first_request(self):
        # Each case as the second request on a kept-alive connection, its first 2 KiB one byte per
        # write: the parser's state is reset between requests and its incremental scan for the
        # end of the head is right at every boundary.
        vectors = load_vectors()
        up = self.recording_upstream()
        g = self.golb_for([up], clientHeaderTimeout=round(scaled(5), 3), bodyTimeout=round(scaled(5), 3))
        failures = []
        for v in vectors:
            try:
                with HTTPConn(g.host, g.port, timeout=5) as c:
                    up.tag = v.name + "/first"
                    r = c.request("GET", "/first")
                    assert r.status == 200 and r.header("X-Rec"), f"first request answered {r}"
                    up.tag = v.name
                    try:
                        for i in range(min(len(v.raw), 2048)):
                            c.send(v.raw[i:i + 1])
                        c.send(v.raw[2048:])
                    except (BrokenPipeError, ConnectionResetError):
                        assert not v.ok, "golb closed while a valid request was sent"
                    r = self.read_first_answer(c)
                    body_level = v.name.startswith(BODY_LEVEL_PREFIX) and v.expected == 400
                    if v.ok:
                        assert r is not None and r.status == 200 and r.header("X-Rec"), f"answered {r}"
                    elif r is not None or not body_level:
                        assert r is not None and r.status == v.expected, f"answered {r}"
                reqs = [q for q in up.requests(tag=v.name) if q.complete]
                assert len(reqs) == (1 if v.ok else 0), f"upstream got {reqs}"
                if v.ok:
                    assert reqs[0].body == client_view(v.raw)[5], f"body {reqs[0].body!r}"
            except (AssertionError, ConnectionClosed, OSError) as e:
                failures.append(f"{v.name} (line {v.lineno}, expected {v.expected}): {e!r}")
            if up.errors():
                failures.append(f"{v.name}: upstream saw a malformed stream: {up.errors()}")
                break
        self.assertEqual(up.errors(), [])
        self.assertFalse(failures, "\n" + "\n".join(failures))

    def read_first_answer(self, c):
        try:
            return c.read_response(timeout=5)
        except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
            return None

    def check_error(self, g, up, v):
        body_level = v.name.startswith(BODY_LEVEL_PREFIX) and v.expected == 400
        with HTTPConn(g.host, g.port, timeout=5) as c:
            try:
                c.send(v.raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # golb answered and closed while we were still sending: read the answer
            r = self.read_first_answer(c)
            if body_level:
                if r is not None:
                    assert r.status == 400, f"answered {r.status} {r.text!r}, want 400 or a cut"
            else:
                assert r is not None, "connection closed without an answer"
                assert r.status == v.expected, f"answered {r.status} {r.text!r}"
                assert r.header("X-Rec") is None, "the answer came from the upstream"
                assert (r.header("Connection") or "").lower() == "close", r.headers
            assert c.wait_closed(timeout=5), "connection left open after the error"
        reqs = up.requests(tag=v.name)
        complete = [q for q in reqs if q.complete]
        assert not complete, f"a complete request reached the upstream: {complete} {complete[0].raw[:300]!r}"
        if not body_level:
            assert not reqs, f"the head reached the upstream: {reqs[0].head[:300]!r}"
            return
        for q in reqs:
            # The upstream connection that got the head of a broken body must be closed, never
            # reused: what was left on it would be read as the next request (smuggling).
            wait_until(lambda: q.conn.closed, 5,
                       f"golb to close the upstream connection {q.conn.id} that carried the broken body")
            assert len(q.conn.requests) == q.index + 1, \
                f"the connection was used again after the broken body: {q.conn.requests}"
            assert q.framing == "chunked", f"forwarded as {q.framing}"

    def check_ok(self, g, up, v):
        method, target, version, cheaders, framing, body = client_view(v.raw)
        with HTTPConn(g.host, g.port, timeout=5) as c:
            c.send(v.raw)
            r = c.read_response()
            assert r.status == 200, f"answered {r.status} {r.text!r}"
            rec = r.header("X-Rec")
            assert rec is not None, f"the 200 did not come from the upstream: {r.headers}"
        reqs = up.requests(tag=v.name)
        assert len(reqs) == 1, f"upstream got {len(reqs)} requests: {reqs}"
        q = reqs[0]
        assert q.complete and f"{q.conn.id}.{q.index}" == rec, f"{q} answered {rec}"
        assert q.method == method, q.method
        assert q.target == expected_upstream_target(target), f"target {q.target!r} from {target!r}"
        names = [k.lower() for k, _ in q.headers]
        te, cl = q.header_all("Transfer-Encoding"), q.header_all("Content-Length")
        assert not (te and cl), f"both framings forwarded: TE {te} CL {cl}"
        assert q.framing == framing, f"client framing {framing}, upstream framing {q.framing}"
        if framing == "length":
            assert q.content_length == len(body) and len(cl) == 1, f"Content-Length {cl}, body {len(body)}"
        assert q.body == body, f"body {q.body!r}, want {body!r}"
        for hop in HOP_BY_HOP:
            assert hop not in names, f"hop-by-hop {hop} forwarded: {q.headers}"
        for k, val in cheaders:
            if k.lower() == "connection":
                for opt in val.split(","):
                    opt = opt.strip().lower()
                    if opt and opt not in ("keep-alive", "close"):
                        assert opt not in names, f"Connection-listed {opt} forwarded: {q.headers}"
        assert names.count("host") == 1, f"Host fields: {q.header_all('Host')}"
        # Every other field the client sent arrives unchanged (framing and forwarding fields aside;
        # X-Request-Id is golb's, one field, kept from the client only when valid).
        assert names.count("x-request-id") == 1, f"X-Request-Id fields: {q.header_all('X-Request-Id')}"
        skip = set(HOP_BY_HOP) | {"host", "content-length", "transfer-encoding", "x-forwarded-for",
                                  "x-forwarded-host", "x-forwarded-proto", "x-hop", "x-request-id"}
        sent = [(k.lower(), val) for k, val in cheaders if k.lower() not in skip]
        got = [(k.lower(), val) for k, val in q.headers if k.lower() not in skip]
        assert sent == got, f"fields changed: sent {sent}, upstream got {got}"

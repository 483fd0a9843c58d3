"""HTTP/2 conformance: h2spec's cases, written again as our own tests (h2spec is not in Debian).

Each case of h2spec 2.x (github summerwind/h2spec: "generic", "http2" for RFC 7540/9113, "hpack"
for RFC 7541) is one subtest named by its h2spec id, grouped by h2spec section (one test method
per group), plus a few cases h2spec does not have (`extra`: CONNECT rules, RFC 8441). Frames are
built by hand here (9-byte header and payload, any length, any flag, any stream id) and HPACK
blocks too where a case needs a representation or an error the `hpack` encoder would not make.

Expectations are h2spec's, made exact: a connection error must be a GOAWAY carrying one of
the codes h2spec accepts (h2spec also accepts a bare close; only the bad preface, where no HTTP/2
connection exists yet, is allowed that here), a stream error an RST_STREAM (or a GOAWAY) with
one of them, "ignored" means the connection still answers a PING, and a request must get its
whole response (END_STREAM). Every case runs over h2c (prior knowledge) and over TLS (ALPN h2)
against one golb in front of one toy-backend."""


import re
import struct

from golbtest import GolbTestCase, golb_config, plain_only
from h2raw import (ACK, CANCEL, COMPRESSION_ERROR, CONTINUATION, DATA, END_HEADERS, END_STREAM,
                   FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, GOAWAY, HEADERS, MAX_FRAME, NO_ERROR,
                   PADDED, PING, PREFACE, PRIO, PRIORITY, PROTOCOL_ERROR, PUSH_PROMISE,
                   REFUSED_STREAM, RST_STREAM, S_ENABLE_PUSH, S_INITIAL_WINDOW_SIZE,
                   S_MAX_CONCURRENT_STREAMS, WINDOW_UPDATE,
                   S_MAX_FRAME_SIZE, SETTINGS, STREAM_CLOSED, Conn, describe, frame, indexed,
                   literal, ping, priority, rst, settings_frame, table_size_update, window_update)
from tlstest import https_port, pki, tls_config_block


# ---- the cases -----------------------------------------------------------------------------------

CASES = []  # (group, h2spec id, description, function(tester))


def case(group, cid, desc):
    def deco(fn):
        CASES.append((group, cid, desc, fn))
        return fn
    return deco


def dummy_fields(n, size=1000):
    return [(f"x-dummy{i}", "x" * size) for i in range(n)]


def base_block(rep, c, extra=b""):
    """A GET whose fields are written with the representation under test (`rep` replaces the
    :authority field); the other fields are literals without indexing."""
    scheme = 7 if c.scheme == "https" else 6
    return indexed(2) + indexed(scheme) + indexed(4) + rep + extra


# generic ------------------------------------------------------------------------------------------

@case("generic_1_starting", "generic/1/1", "Sends a client connection preface")
def _(t):
    c = t.open()
    c.alive()


@case("generic_1_starting", "extra/3.4/1", "The first request in the same write as the preface")
def _(t):
    c = t.open(handshake=False)
    c.send(PREFACE + settings_frame() + c.headers(1))
    assert c.stream_close(1)[0] == 200


@case("generic_2_streams", "generic/2/1", "Sends a PRIORITY frame on idle stream")
def _(t):
    c = t.open()
    c.send(priority(1, weight=255), c.headers(3))
    c.stream_close(3)


@case("generic_2_streams", "generic/2/2", "Sends a WINDOW_UPDATE frame on half-closed (remote) stream")
def _(t):
    c = t.open()
    c.send(c.headers(1), window_update(1, 1))
    c.stream_close(1)


@case("generic_2_streams", "generic/2/3", "Sends a PRIORITY frame on half-closed (remote) stream")
def _(t):
    c = t.open()
    c.send(c.headers(1), priority(1, weight=255))
    c.stream_close(1)


@case("generic_2_streams", "generic/2/4", "Sends a RST_STREAM frame on half-closed (remote) stream")
def _(t):
    c = t.open()
    c.send(c.headers(1), rst(1, CANCEL))
    c.alive()


@case("generic_2_streams", "generic/2/5", "Sends a PRIORITY frame on closed stream")
def _(t):
    c = t.open()
    c.send(c.headers(1))
    c.stream_close(1)
    c.send(priority(1, weight=255))
    c.alive()


@case("generic_3_frames", "generic/3.1/1", "Sends a DATA frame")
def _(t):
    c = t.open()
    c.send(c.post(1), frame(DATA, END_STREAM, 1, b"test"))
    c.stream_close(1)


@case("generic_3_frames", "generic/3.1/2", "Sends multiple DATA frames")
def _(t):
    c = t.open()
    c.send(c.post(1), frame(DATA, 0, 1, b"test"), frame(DATA, 0, 1, b"test"),
           frame(DATA, END_STREAM, 1, b"test"))
    status, body = c.stream_close(1)
    assert b"body-length: 12" in body, body


@case("generic_3_frames", "generic/3.1/3", "Sends a DATA frame with padding")
def _(t):
    c = t.open()
    c.send(c.post(1), frame(DATA, END_STREAM | PADDED, 1, b"\x08test" + b"\0" * 8))
    status, body = c.stream_close(1)
    assert b"body-length: 4" in body, body


@case("generic_3_frames", "generic/3.2/1", "Sends a HEADERS frame")
def _(t):
    c = t.open()
    c.send(c.headers(1))
    assert c.stream_close(1)[0] == 200


@case("generic_3_frames", "generic/3.2/2", "Sends a HEADERS frame with padding")
def _(t):
    c = t.open()
    c.send(frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1, b"\x08" + c.block() + b"\0" * 8))
    assert c.stream_close(1)[0] == 200


@case("generic_3_frames", "generic/3.2/3", "Sends a HEADERS frame with priority")
def _(t):
    c = t.open()
    c.send(frame(HEADERS, END_STREAM | END_HEADERS | PRIO, 1,
                 struct.pack(">IB", 0, 255) + c.block()))
    assert c.stream_close(1)[0] == 200


for i, (desc, kw) in enumerate([("priority 1", dict(weight=0)), ("priority 256", dict(weight=255)),
                                 ("stream dependency", dict(dep=3)),
                                 ("exclusive", dict(dep=3, exclusive=True))], 1):
    def _(t, kw=kw):
        c = t.open()
        c.send(priority(1, **kw), c.headers(1))
        c.stream_close(1)
    case("generic_3_frames", f"generic/3.3/{i}", f"Sends a PRIORITY frame with {desc}")(_)


@case("generic_3_frames", "generic/3.3/5",
      "Sends a PRIORITY frame for an idle stream, then send a HEADER frame for a lower stream ID")
def _(t):
    c = t.open()
    c.send(priority(3), c.headers(1))
    c.stream_close(1)


@case("generic_3_frames", "generic/3.4/1", "Sends a RST_STREAM frame")
def _(t):
    c = t.open()
    c.send(c.post(1), rst(1, CANCEL))
    c.alive()


@case("generic_3_frames", "generic/3.5/1", "Sends a SETTINGS frame")
def _(t):
    c = t.open()
    c.send(settings_frame((S_ENABLE_PUSH, 0), (S_MAX_CONCURRENT_STREAMS, 100),
                          (S_INITIAL_WINDOW_SIZE, 65535), (S_MAX_FRAME_SIZE, 16384)))
    c.wait_settings_ack()


@case("generic_3_frames", "generic/3.7/1", "Sends a PING frame")
def _(t):
    t.open().alive(b"h2spec\0\0")


@case("generic_3_frames", "generic/3.8/1", "Sends a GOAWAY frame")
def _(t):
    c = t.open()
    c.send(frame(GOAWAY, 0, 0, struct.pack(">II", 0, NO_ERROR)))
    ev = c.next()
    while ev[0] == "frame" and ev[1] != GOAWAY:
        ev = c.next()
    assert ev[0] == "closed" or ev[1] == GOAWAY, ev


@case("generic_3_frames", "generic/3.9/1", "Sends a WINDOW_UPDATE frame with stream ID 0")
def _(t):
    c = t.open()
    c.send(window_update(0, 1))
    c.alive()


@case("generic_3_frames", "generic/3.9/2", "Sends a WINDOW_UPDATE frame with arbitrary stream ID")
def _(t):
    c = t.open()
    c.send(c.headers(1), window_update(1, 1))
    c.stream_close(1)


@case("generic_3_frames", "generic/3.10/1", "Sends a CONTINUATION frame")
def _(t):
    c = t.open()
    b = c.block(extra=dummy_fields(2, 100))
    c.send(frame(HEADERS, END_STREAM, 1, b[:20]), frame(CONTINUATION, END_HEADERS, 1, b[20:]))
    c.stream_close(1)


@case("generic_3_frames", "generic/3.10/2", "Sends multiple CONTINUATION frames")
def _(t):
    c = t.open()
    b = c.block(extra=dummy_fields(2, 100))
    c.send(frame(HEADERS, END_STREAM, 1, b[:20]), frame(CONTINUATION, 0, 1, b[20:60]),
           frame(CONTINUATION, END_HEADERS, 1, b[60:]))
    c.stream_close(1)


@case("generic_4_messages", "generic/4/1", "Sends a GET request")
def _(t):
    c = t.open()
    c.send(c.headers(1))
    status, body = c.stream_close(1)
    assert status == 200 and b"path: /" in body, (status, body)


@case("generic_4_messages", "generic/4/2", "Sends a HEAD request")
def _(t):
    c = t.open()
    c.send(c.headers(1, method="HEAD"))
    status, body = c.stream_close(1)
    assert status == 200 and body == b"", (status, body)


@case("generic_4_messages", "generic/4/3", "Sends a POST request")
def _(t):
    c = t.open()
    c.send(c.post(1), frame(DATA, END_STREAM, 1, b"test"))
    assert c.stream_close(1)[0] == 200


@case("generic_4_messages", "generic/4/4", "Sends a POST request with trailers")
def _(t):
    c = t.open()
    c.send(c.post(1), frame(DATA, 0, 1, b"test"),
           frame(HEADERS, END_STREAM | END_HEADERS, 1, c.enc.encode([("trailer", "foo")])))
    assert c.stream_close(1)[0] == 200


HPACK_REPS = [
    ("Indexed Header Field Representation / Static Table", None),
    ("Literal Header Field with Incremental Indexing / Indexed Name", ("incr", 1, False)),
    ("Literal Header Field with Incremental Indexing / Indexed Name (Huffman)", ("incr", 1, True)),
    ("Literal Header Field with Incremental Indexing / New Name", ("incr", "x-test", False)),
    ("Literal Header Field with Incremental Indexing / New Name (Huffman)", ("incr", "x-test", True)),
    ("Literal Header Field without Indexing / Indexed Name", ("none", 1, False)),
    ("Literal Header Field without Indexing / Indexed Name (Huffman)", ("none", 1, True)),
    ("Literal Header Field without Indexing / New Name", ("none", "x-test", False)),
    ("Literal Header Field without Indexing / New Name (Huffman)", ("none", "x-test", True)),
    ("Literal Header Field Never Indexed / Indexed Name", ("never", 1, False)),
    ("Literal Header Field Never Indexed / Indexed Name (Huffman)", ("never", 1, True)),
    ("Literal Header Field Never Indexed / New Name", ("never", "x-test", False)),
    ("Literal Header Field Never Indexed / New Name (Huffman)", ("never", "x-test", True)),
]
for i, (desc, rep) in enumerate(HPACK_REPS, 1):
    def _(t, rep=rep):
        c = t.open()
        auth = literal(1, c.authority)
        if rep is None:  # :method, :scheme, :path from the static table, indexed
            b = base_block(auth, c)
        elif rep[1] == 1:
            b = base_block(literal(1, c.authority, rep[0], rep[2]), c)
        else:
            b = base_block(auth, c, literal(rep[1], "hpack", rep[0], rep[2]))
        c.send(c.headers(1, b))
        assert c.stream_close(1)[0] == 200
    case("generic_5_hpack", f"generic/5/{i}", f"Sends a {desc}")(_)


@case("generic_5_hpack", "generic/5/14", "Sends a Dynamic Table Size Update")
def _(t):
    c = t.open()
    c.send(c.headers(1, table_size_update(0) + base_block(literal(1, c.authority), c)))
    assert c.stream_close(1)[0] == 200


@case("generic_5_hpack", "generic/5/15", "Sends an Indexed Header Field from the dynamic table")
def _(t):
    c = t.open()
    c.send(c.headers(1, base_block(literal(1, c.authority, "incr"), c)))
    c.stream_close(1)
    c.send(c.headers(3, base_block(indexed(62), c)))
    assert c.stream_close(3)[0] == 200


# http2: RFC 7540 / 9113 ---------------------------------------------------------------------------

@case("http2_3_5_preface", "http2/3.5/1", "Sends client connection preface")
def _(t):
    c = t.open(handshake=False)
    c.send(PREFACE, settings_frame())
    ev = c.next()
    assert ev[0] == "frame" and ev[1] == SETTINGS and not ev[2] & ACK, describe(ev)


@case("http2_3_5_preface", "http2/3.5/2", "Sends invalid connection preface")
def _(t):
    c = t.open(handshake=False)
    c.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
    c.conn_error(PROTOCOL_ERROR, close_ok=True)


@case("http2_4_frames", "http2/4.1/1", "Sends a frame with unknown type")
def _(t):
    c = t.open()
    c.send(frame(0xFF, 0, 0, b"0123456789"))
    c.alive()


@case("http2_4_frames", "http2/4.1/2", "Sends a frame with undefined flag")
def _(t):
    c = t.open()
    c.send(frame(PING, 0x16, 0, b"unflag\0\0"))
    c.ping_ack(b"unflag\0\0")


@case("http2_4_frames", "http2/4.1/3", "Sends a frame with reserved field bit")
def _(t):
    c = t.open()
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 0x80000001, c.block()))
    c.stream_close(1)


@case("http2_4_frames", "http2/4.2/1", "Sends a DATA frame with 2^14 octets in length")
def _(t):
    c = t.open()
    c.send(c.post(1), frame(DATA, END_STREAM, 1, b"x" * MAX_FRAME))
    status, body = c.stream_close(1)
    assert b"body-length: 16384" in body, body


@case("http2_4_frames", "http2/4.2/2", "Sends a large size DATA frame that exceeds the SETTINGS_MAX_FRAME_SIZE")
def _(t):
    c = t.open()
    c.send(c.post(1), frame(DATA, END_STREAM, 1, b"x" * (MAX_FRAME + 1)))
    c.stream_error(FRAME_SIZE_ERROR)


@case("http2_4_frames", "http2/4.2/3", "Sends a large size HEADERS frame that exceeds the SETTINGS_MAX_FRAME_SIZE")
def _(t):
    c = t.open()
    b = c.block(extra=dummy_fields(20))
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, b[:MAX_FRAME + 1]))
    c.conn_error(FRAME_SIZE_ERROR)


@case("http2_4_frames", "http2/4.3/1", "Sends invalid header block fragment")
def _(t):
    c = t.open()
    # a literal with incremental indexing whose name length says 127+ bytes that never come
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, b"\x40\x7f\xff\xff\xff\xff\x0f"))
    c.conn_error(COMPRESSION_ERROR)


@case("http2_4_frames", "http2/4.3/2", "Sends a PRIORITY frame while sending the header blocks")
def _(t):
    c = t.open()
    c.send(frame(HEADERS, END_STREAM, 1, c.block()), priority(1))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_4_frames", "http2/4.3/3", "Sends a HEADERS frame to another stream while sending the header blocks")
def _(t):
    c = t.open()
    c.send(frame(HEADERS, END_STREAM, 1, c.block()), c.headers(3))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_5_1_states", "http2/5.1/1", "idle: Sends a DATA frame")
def _(t):
    c = t.open()
    c.send(frame(DATA, END_STREAM, 1, b"test"))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_5_1_states", "http2/5.1/2", "idle: Sends a RST_STREAM frame")
def _(t):
    c = t.open()
    c.send(rst(1, CANCEL))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_5_1_states", "http2/5.1/3", "idle: Sends a WINDOW_UPDATE frame")
def _(t):
    c = t.open()
    c.send(window_update(1, 100))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_5_1_states", "http2/5.1/4", "idle: Sends a CONTINUATION frame")
def _(t):
    c = t.open()
    c.send(frame(CONTINUATION, END_HEADERS, 1, c.block()))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_5_1_states", "http2/5.1/5", "half closed (remote): Sends a DATA frame")
def _(t):
    c = t.open()
    c.send(c.headers(1), frame(DATA, END_STREAM, 1, b"test"))
    c.stream_error(STREAM_CLOSED)


@case("http2_5_1_states", "http2/5.1/6", "half closed (remote): Sends a HEADERS frame")
def _(t):
    c = t.open()
    c.send(c.headers(1), c.headers(1))
    c.stream_error(STREAM_CLOSED)


@case("http2_5_1_states", "http2/5.1/7", "half closed (remote): Sends a CONTINUATION frame")
def _(t):
    c = t.open()
    b = c.block()
    c.send(c.headers(1, b), frame(CONTINUATION, END_HEADERS, 1, b))
    c.stream_error(STREAM_CLOSED, PROTOCOL_ERROR)


@case("http2_5_1_states", "http2/5.1/8", "closed: Sends a DATA frame after sending RST_STREAM frame")
def _(t):
    c = t.open()
    c.send(c.post(1), rst(1, CANCEL), frame(DATA, END_STREAM, 1, b"test"))
    c.stream_error(STREAM_CLOSED)


@case("http2_5_1_states", "http2/5.1/9", "closed: Sends a HEADERS frame after sending RST_STREAM frame")
def _(t):
    c = t.open()
    c.send(c.post(1), rst(1, CANCEL), c.headers(1))
    c.stream_error(STREAM_CLOSED)


@case("http2_5_1_states", "http2/5.1/10", "closed: Sends a CONTINUATION frame after sending RST_STREAM frame")
def _(t):
    c = t.open()
    c.send(c.post(1), rst(1, CANCEL), frame(CONTINUATION, END_HEADERS, 1, c.block()))
    c.stream_error(STREAM_CLOSED, PROTOCOL_ERROR)


@case("http2_5_1_states", "http2/5.1/11", "closed: Sends a DATA frame")
def _(t):
    c = t.open()
    c.send(c.headers(1))
    c.stream_close(1)
    c.send(frame(DATA, END_STREAM, 1, b"test"))
    c.stream_error(STREAM_CLOSED)


@case("http2_5_1_states", "http2/5.1/12", "closed: Sends a HEADERS frame")
def _(t):
    c = t.open()
    c.send(c.headers(1))
    c.stream_close(1)
    c.send(c.headers(1))
    c.stream_error(STREAM_CLOSED)


@case("http2_5_1_states", "http2/5.1/13", "closed: Sends a CONTINUATION frame")
def _(t):
    c = t.open()
    c.send(c.headers(1))
    c.stream_close(1)
    c.send(frame(CONTINUATION, END_HEADERS, 1, c.block(extra=dummy_fields(20))[:MAX_FRAME]))
    c.stream_error(STREAM_CLOSED, PROTOCOL_ERROR)


@case("http2_5_1_states", "http2/5.1.1/1", "Sends even-numbered stream identifier")
def _(t):
    c = t.open()
    c.send(c.headers(2))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_5_1_states", "http2/5.1.1/2", "Sends stream identifier that is numerically smaller than previous")
def _(t):
    c = t.open()
    c.send(c.headers(5))
    c.stream_close(5)
    c.send(c.headers(3))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_5_1_states", "extra/5.1.1/1", "a late trailer block on a stream golb reset is ignored, not a connection error")
def _(t):
    c = t.open()
    c.send(c.post(1, extra=[("connection", "close")]))
    c.stream_error(PROTOCOL_ERROR)
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, c.enc.encode([("x-trailer", "t")])))
    c.alive()
    c.send(c.headers(3))
    assert c.stream_close(3)[0] == 200


@case("http2_5_1_states", "http2/5.1.2/1", "Sends HEADERS frames that causes their advertised concurrent stream limit to be exceeded")
def _(t):
    c = t.open()
    limit = c.server_settings[S_MAX_CONCURRENT_STREAMS]
    # a window of 0: no response can end, every stream stays open
    c.send(settings_frame((S_INITIAL_WINDOW_SIZE, 0)),
           *[c.headers(1 + 2 * i) for i in range(limit + 1)])
    c.conn_error(PROTOCOL_ERROR, REFUSED_STREAM)


@case("http2_5_3_priority", "http2/5.3.1/1", "Sends HEADERS frame that depends on itself")
def _(t):
    c = t.open()
    c.send(frame(HEADERS, END_STREAM | END_HEADERS | PRIO, 1, struct.pack(">IB", 1, 15) + c.block()))
    c.stream_error(PROTOCOL_ERROR)


@case("http2_5_3_priority", "http2/5.3.1/2", "Sends PRIORITY frame that depend on itself")
def _(t):
    c = t.open()
    c.send(priority(1, dep=1))
    c.stream_error(PROTOCOL_ERROR)


@case("http2_5_4_errors", "http2/5.4.1/1", "Sends an invalid PING frame for connection close")
def _(t):
    c = t.open()
    c.send(frame(PING, 0, 0, b"123456"))
    c.conn_error(FRAME_SIZE_ERROR)
    assert c.next()[0] == "closed"


@case("http2_5_4_errors", "http2/5.4.1/2", "Sends an invalid PING frame to receive GOAWAY frame")
def _(t):
    c = t.open()
    c.send(c.headers(1))
    c.stream_close(1)
    c.send(frame(PING, 0, 0, b"123456"))
    last = c.conn_error(FRAME_SIZE_ERROR)
    assert last == 1, f"GOAWAY's last stream id {last}"


@case("http2_5_5_extending", "http2/5.5/1", "Sends an unknown extension frame")
def _(t):
    c = t.open()
    c.send(frame(0x16, 0, 0, b"0123456789"))
    c.alive()


@case("http2_5_5_extending", "http2/5.5/2", "Sends an unknown extension frame in the middle of a header block")
def _(t):
    c = t.open()
    c.send(frame(HEADERS, END_STREAM, 1, c.block()), frame(0x16, 0, 1, b"0123456789"))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_1_data", "http2/6.1/1", "Sends a DATA frame with 0x0 stream identifier")
def _(t):
    c = t.open()
    c.send(frame(DATA, END_STREAM, 0, b"test"))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_1_data", "http2/6.1/2", "Sends a DATA frame on the stream that is not in \"open\" or \"half-closed (local)\" state")
def _(t):
    c = t.open()
    c.send(c.headers(1), frame(DATA, END_STREAM, 1, b"test"))
    c.stream_error(STREAM_CLOSED)


@case("http2_6_1_data", "http2/6.1/3", "Sends a DATA frame with invalid pad length")
def _(t):
    c = t.open()
    c.send(c.post(1, extra=[("content-length", "4")]),
           frame(DATA, END_STREAM | PADDED, 1, b"\x06test\0"))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_2_headers", "http2/6.2/1", "Sends a HEADERS frame without the END_HEADERS flag, and a PRIORITY frame")
def _(t):
    c = t.open()
    c.send(frame(HEADERS, END_STREAM, 1, c.block()), priority(1))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_2_headers", "http2/6.2/2", "Sends a HEADERS frame to another stream while sending a HEADERS frame")
def _(t):
    c = t.open()
    c.send(frame(HEADERS, END_STREAM, 1, c.block()), c.headers(3))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_2_headers", "http2/6.2/3", "Sends a HEADERS frame with 0x0 stream identifier")
def _(t):
    c = t.open()
    c.send(c.headers(0))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_2_headers", "http2/6.2/4", "Sends a HEADERS frame with invalid pad length")
def _(t):
    c = t.open()
    b = c.block()
    c.send(frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1, bytes([len(b) + 1]) + b))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_3_priority", "http2/6.3/1", "Sends a PRIORITY frame with 0x0 stream identifier")
def _(t):
    c = t.open()
    c.send(priority(0))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_3_priority", "http2/6.3/2", "Sends a PRIORITY frame with a length other than 5 octets")
def _(t):
    c = t.open()
    c.send(c.post(1), frame(PRIORITY, 0, 1, struct.pack(">I", 0)))
    c.stream_error(FRAME_SIZE_ERROR)


@case("http2_6_4_rst_stream", "http2/6.4/1", "Sends a RST_STREAM frame with 0x0 stream identifier")
def _(t):
    c = t.open()
    c.send(rst(0, CANCEL))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_4_rst_stream", "http2/6.4/2", "Sends a RST_STREAM frame on a idle stream")
def _(t):
    c = t.open()
    c.send(rst(1, CANCEL))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_4_rst_stream", "http2/6.4/3", "Sends a RST_STREAM frame with a length other than 4 octets")
def _(t):
    c = t.open()
    c.send(c.post(1), frame(RST_STREAM, 0, 1, b"\0\0\0"))
    c.conn_error(FRAME_SIZE_ERROR)


@case("http2_6_5_settings", "http2/6.5/1", "Sends a SETTINGS frame with ACK flag and payload")
def _(t):
    c = t.open()
    c.send(settings_frame((S_MAX_CONCURRENT_STREAMS, 10), flags=ACK))
    c.conn_error(FRAME_SIZE_ERROR)


@case("http2_6_5_settings", "http2/6.5/2", "Sends a SETTINGS frame with a stream identifier other than 0x0")
def _(t):
    c = t.open()
    c.send(settings_frame((S_MAX_CONCURRENT_STREAMS, 10), sid=1))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_5_settings", "http2/6.5/3", "Sends a SETTINGS frame with a length other than a multiple of 6 octets")
def _(t):
    c = t.open()
    c.send(frame(SETTINGS, 0, 0, b"\0\x03\0\0"))
    c.conn_error(FRAME_SIZE_ERROR)


@case("http2_6_5_settings", "http2/6.5.2/1", "SETTINGS_ENABLE_PUSH (0x2): Sends the value other than 0 or 1")
def _(t):
    c = t.open()
    c.send(settings_frame((S_ENABLE_PUSH, 2)))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_5_settings", "http2/6.5.2/2", "SETTINGS_INITIAL_WINDOW_SIZE (0x4): Sends the value above the maximum flow control window size")
def _(t):
    c = t.open()
    c.send(settings_frame((S_INITIAL_WINDOW_SIZE, 2**31)))
    c.conn_error(FLOW_CONTROL_ERROR)


@case("http2_6_5_settings", "http2/6.5.2/3", "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value below the initial value")
def _(t):
    c = t.open()
    c.send(settings_frame((S_MAX_FRAME_SIZE, 16383)))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_5_settings", "http2/6.5.2/4", "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value above the maximum allowed frame size")
def _(t):
    c = t.open()
    c.send(settings_frame((S_MAX_FRAME_SIZE, 2**24)))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_5_settings", "http2/6.5.2/5", "Sends a SETTINGS frame with unknown identifier")
def _(t):
    c = t.open()
    c.send(settings_frame((0xFF, 1)))
    c.wait_settings_ack()
    c.alive()


@case("http2_6_5_settings", "http2/6.5.3/1", "Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE")
def _(t):
    c = t.open()
    c.send(settings_frame((S_INITIAL_WINDOW_SIZE, 100), (S_INITIAL_WINDOW_SIZE, 1)))
    c.wait_settings_ack()
    c.send(c.headers(1))
    c.data_length(1, 1)


@case("http2_6_5_settings", "http2/6.5.3/2", "Sends a SETTINGS frame without ACK flag")
def _(t):
    c = t.open()
    c.send(settings_frame((S_ENABLE_PUSH, 0)))
    c.wait_settings_ack()


@case("http2_6_7_ping", "http2/6.7/1", "Sends a PING frame")
def _(t):
    t.open().alive(b"h2spec\0\0")


@case("http2_6_7_ping", "http2/6.7/2", "Sends a PING frame with ACK")
def _(t):
    c = t.open()
    c.send(ping(b"unexpect", flags=ACK), ping(b"expected"))
    c.ping_ack(b"expected")


@case("http2_6_7_ping", "http2/6.7/3", "Sends a PING frame with a stream identifier field value other than 0x0")
def _(t):
    c = t.open()
    c.send(frame(PING, 0, 1, b"h2spec\0\0"))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_7_ping", "http2/6.7/4", "Sends a PING frame with a length field value other than 8")
def _(t):
    c = t.open()
    c.send(frame(PING, 0, 0, b"h2spec"))
    c.conn_error(FRAME_SIZE_ERROR)


@case("http2_6_8_goaway", "http2/6.8/1", "Sends a GOAWAY frame with a stream identifier other than 0x0")
def _(t):
    c = t.open()
    c.send(frame(GOAWAY, 0, 1, struct.pack(">II", 0, NO_ERROR)))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_9_window_update", "http2/6.9/1", "Sends a WINDOW_UPDATE frame with a flow control window increment of 0")
def _(t):
    c = t.open()
    c.send(window_update(0, 0))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_9_window_update", "http2/6.9/2", "Sends a WINDOW_UPDATE frame with a flow control window increment of 0 on a stream")
def _(t):
    c = t.open()
    c.send(c.post(1), window_update(1, 0))
    c.stream_error(PROTOCOL_ERROR)


@case("http2_6_9_window_update", "http2/6.9/3", "Sends a WINDOW_UPDATE frame with a length other than 4 octets")
def _(t):
    c = t.open()
    c.send(frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01"))
    c.conn_error(FRAME_SIZE_ERROR)


@case("http2_6_9_window_update", "http2/6.9.1/1", "Sends SETTINGS frame to set the initial window size to 1 and sends HEADERS frame")
def _(t):
    c = t.open()
    c.send(settings_frame((S_INITIAL_WINDOW_SIZE, 1)))
    c.wait_settings_ack()
    c.send(c.headers(1))
    c.data_length(1, 1)


@case("http2_6_9_window_update", "http2/6.9.1/2", "Sends multiple WINDOW_UPDATE frames increasing the flow control window to above 2^31-1")
def _(t):
    c = t.open()
    c.send(window_update(0, 2**31 - 1), window_update(0, 2**31 - 1))
    c.conn_error(FLOW_CONTROL_ERROR)


@case("http2_6_9_window_update", "http2/6.9.1/3", "Sends multiple WINDOW_UPDATE frames increasing the flow control window to above 2^31-1 on a stream")
def _(t):
    c = t.open()
    c.send(c.post(1), window_update(1, 2**31 - 1), window_update(1, 2**31 - 1))
    c.stream_error(FLOW_CONTROL_ERROR)


@case("http2_6_9_window_update", "http2/6.9.2/1", "Changes SETTINGS_INITIAL_WINDOW_SIZE after sending HEADERS frame")
def _(t):
    c = t.open(settings=[(S_INITIAL_WINDOW_SIZE, 0)])
    c.send(c.headers(1))
    ev = c.next(0.3)  # no DATA can come: the window is 0 (HEADERS may)
    assert ev[0] == "timeout" or ev[1] != DATA, describe(ev)
    c.send(settings_frame((S_INITIAL_WINDOW_SIZE, 1)))
    c.data_length(1, 1)


@case("http2_6_9_window_update", "http2/6.9.2/2", "Sends a SETTINGS frame for window size to be negative")
def _(t):
    c = t.open(settings=[(S_INITIAL_WINDOW_SIZE, 3)])
    c.send(c.headers(1))
    c.data_length(1, 3)
    c.send(settings_frame((S_INITIAL_WINDOW_SIZE, 1)))  # the stream's window: 0 - 2 = -2
    c.wait_settings_ack()
    c.send(window_update(1, 3))  # -2 + 3 = 1
    c.data_length(1, 1)


@case("http2_6_9_window_update", "http2/6.9.2/3", "Sends a SETTINGS_INITIAL_WINDOW_SIZE settings with an exceeded maximum window size value")
def _(t):
    c = t.open()
    c.send(settings_frame((S_INITIAL_WINDOW_SIZE, 2**31)))
    c.conn_error(FLOW_CONTROL_ERROR)


@case("http2_6_10_continuation", "http2/6.10/1", "Sends multiple CONTINUATION frames preceded by a HEADERS frame")
def _(t):
    c = t.open()
    b = c.block(extra=dummy_fields(3, 100))
    c.send(frame(HEADERS, END_STREAM, 1, b[:30]), frame(CONTINUATION, 0, 1, b[30:130]),
           frame(CONTINUATION, 0, 1, b[130:230]), frame(CONTINUATION, END_HEADERS, 1, b[230:]))
    c.stream_close(1)


@case("http2_6_10_continuation", "http2/6.10/2", "Sends a CONTINUATION frame followed by any frame other than CONTINUATION")
def _(t):
    c = t.open()
    b = c.block(extra=dummy_fields(2, 100))
    c.send(frame(HEADERS, 0, 1, b[:30]), frame(CONTINUATION, 0, 1, b[30:]),
           frame(DATA, END_STREAM, 1, b"test"))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_10_continuation", "http2/6.10/3", "Sends a CONTINUATION frame with 0x0 stream identifier")
def _(t):
    c = t.open()
    b = c.block(extra=dummy_fields(2, 100))
    c.send(frame(HEADERS, END_STREAM, 1, b[:30]), frame(CONTINUATION, END_HEADERS, 0, b[30:]))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_10_continuation", "http2/6.10/4", "Sends a CONTINUATION frame preceded by a HEADERS frame with END_HEADERS flag")
def _(t):
    c = t.open()
    c.send(c.headers(1), frame(CONTINUATION, END_HEADERS, 1, c.enc.encode(dummy_fields(1, 100))))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_10_continuation", "http2/6.10/5", "Sends a CONTINUATION frame preceded by a CONTINUATION frame with END_HEADERS flag")
def _(t):
    c = t.open()
    b = c.block(extra=dummy_fields(2, 100))
    c.send(frame(HEADERS, END_STREAM, 1, b[:30]), frame(CONTINUATION, END_HEADERS, 1, b[30:]),
           frame(CONTINUATION, END_HEADERS, 1, c.enc.encode(dummy_fields(1, 100))))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_6_10_continuation", "http2/6.10/6", "Sends a CONTINUATION frame preceded by a DATA frame")
def _(t):
    c = t.open()
    c.send(c.post(1), frame(DATA, 0, 1, b"test"),
           frame(CONTINUATION, END_HEADERS, 1, c.enc.encode(dummy_fields(1, 100))))
    c.conn_error(PROTOCOL_ERROR)


@case("http2_8_1_messages", "http2/8.1/1", "Sends a second HEADERS frame without the END_STREAM flag")
def _(t):
    c = t.open()
    c.send(c.post(1), frame(DATA, 0, 1, b"test"),
           frame(HEADERS, END_HEADERS, 1, c.enc.encode([("x-trailer", "t")])))
    c.stream_error(PROTOCOL_ERROR)


def bad_request(fields):
    """A case: a request with these fields (a function of the connection) is a stream error."""
    def run(t):
        c = t.open()
        c.send(c.headers(1, c.enc.encode(fields(c))))
        c.stream_error(PROTOCOL_ERROR)
    return run


def base_fields(c, drop=(), extra=()):
    return [f for f in c.fields() if f[0] not in drop] + list(extra)


case("http2_8_1_messages", "http2/8.1.2/1", "Sends a HEADERS frame that contains the header field name in uppercase letters")(
    bad_request(lambda c: base_fields(c, extra=[("X-TEST", "ok")])))
case("http2_8_1_messages", "http2/8.1.2.1/1", "Sends a HEADERS frame that contains a unknown pseudo-header field")(
    bad_request(lambda c: base_fields(c, extra=[(":test", "ok")])))
case("http2_8_1_messages", "http2/8.1.2.1/2", "Sends a HEADERS frame that contains the pseudo-header field defined for response")(
    bad_request(lambda c: base_fields(c, extra=[(":status", "200")])))


@case("http2_8_1_messages", "http2/8.1.2.1/3", "Sends a HEADERS frame that contains a pseudo-header field as trailers")
def _(t):
    c = t.open()
    c.send(c.post(1), frame(DATA, 0, 1, b"test"),
           frame(HEADERS, END_STREAM | END_HEADERS, 1, c.enc.encode([(":method", "POST")])))
    c.stream_error(PROTOCOL_ERROR)


case("http2_8_1_messages", "http2/8.1.2.1/4", "Sends a HEADERS frame that contains a pseudo-header field that appears in a header block after a regular header field")(
    bad_request(lambda c: c.fields()[:3] + [("x-test", "ok"), c.fields()[3]]))
case("http2_8_1_messages", "http2/8.1.2.2/1", "Sends a HEADERS frame that contains the connection-specific header field")(
    bad_request(lambda c: base_fields(c, extra=[("connection", "keep-alive")])))
case("http2_8_1_messages", "http2/8.1.2.2/2", "Sends a HEADERS frame that contains the TE header field with any value other than \"trailers\"")(
    bad_request(lambda c: base_fields(c, extra=[("trailers", "test"), ("te", "trailers, deflate")])))
case("http2_8_1_messages", "http2/8.1.2.3/1", "Sends a HEADERS frame with empty \":path\" pseudo-header field")(
    bad_request(lambda c: [(k, "" if k == ":path" else v) for k, v in c.fields()]))
case("http2_8_1_messages", "http2/8.1.2.3/2", "Sends a HEADERS frame that omits \":method\" pseudo-header field")(
    bad_request(lambda c: base_fields(c, drop=(":method",))))
case("http2_8_1_messages", "http2/8.1.2.3/3", "Sends a HEADERS frame that omits \":scheme\" pseudo-header field")(
    bad_request(lambda c: base_fields(c, drop=(":scheme",))))
case("http2_8_1_messages", "http2/8.1.2.3/4", "Sends a HEADERS frame that omits \":path\" pseudo-header field")(
    bad_request(lambda c: base_fields(c, drop=(":path",))))
case("http2_8_1_messages", "http2/8.1.2.3/5", "Sends a HEADERS frame with duplicated \":method\" pseudo-header field")(
    bad_request(lambda c: [c.fields()[0]] + c.fields()))
case("http2_8_1_messages", "http2/8.1.2.3/6", "Sends a HEADERS frame with duplicated \":scheme\" pseudo-header field")(
    bad_request(lambda c: [c.fields()[1]] + c.fields()))
case("http2_8_1_messages", "http2/8.1.2.3/7", "Sends a HEADERS frame with duplicated \":path\" pseudo-header field")(
    bad_request(lambda c: [c.fields()[2]] + c.fields()))


@case("http2_8_1_messages", "http2/8.1.2.6/1", "Sends a HEADERS frame with the \"content-length\" header field which does not equal the DATA frame payload length")
def _(t):
    c = t.open()
    c.send(c.post(1, extra=[("content-length", "1")]), frame(DATA, END_STREAM, 1, b"test"))
    c.stream_error(PROTOCOL_ERROR)


@case("http2_8_1_messages", "http2/8.1.2.6/2", "Sends a HEADERS frame with the \"content-length\" header field which does not equal the sum of the multiple DATA frames payload length")
def _(t):
    c = t.open()
    c.send(c.post(1, extra=[("content-length", "1")]), frame(DATA, 0, 1, b"test"),
           frame(DATA, END_STREAM, 1, b"test"))
    c.stream_error(PROTOCOL_ERROR)


@case("http2_8_2_push", "http2/8.2/1", "Sends a PUSH_PROMISE frame")
def _(t):
    c = t.open()
    c.send(c.post(1), frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) + c.block()))
    c.conn_error(PROTOCOL_ERROR)


# hpack: RFC 7541 ----------------------------------------------------------------------------------

def bad_block(block):
    """A case: a header block (a function of the connection) is a COMPRESSION_ERROR."""
    def run(t):
        c = t.open()
        c.send(c.headers(1, block(c)))
        c.conn_error(COMPRESSION_ERROR)
    return run


case("hpack", "hpack/2.3.3/1", "Sends a indexed header field representation with invalid index")(
    bad_block(lambda c: base_block(literal(1, c.authority), c, indexed(70))))
case("hpack", "hpack/2.3.3/2", "Sends a literal header field representation with invalid index")(
    bad_block(lambda c: base_block(literal(1, c.authority), c, literal(70, "test", "incr"))))
case("hpack", "hpack/4.2/1", "Sends a dynamic table size update at the end of header block")(
    bad_block(lambda c: base_block(literal(1, c.authority), c, table_size_update(100))))
# EOS is 30 one bits: four 0xff bytes hold it
case("hpack", "hpack/5.2/1", "Sends a Huffman-encoded string literal representation with padding longer than 7 bits")(
    bad_block(lambda c: base_block(literal(1, c.authority), c,
                                   literal("x-test", b"")[:-1] + b"\x82\x1f\xff")))
case("hpack", "hpack/5.2/2", "Sends a Huffman-encoded string literal representation padded by zero")(
    bad_block(lambda c: base_block(literal(1, c.authority), c,
                                   literal("x-test", b"")[:-1] + b"\x81\x18")))
case("hpack", "hpack/5.2/3", "Sends a Huffman-encoded string literal representation containing the EOS symbol")(
    bad_block(lambda c: base_block(literal(1, c.authority), c,
                                   literal("x-test", b"")[:-1] + b"\x84\xff\xff\xff\xff")))
case("hpack", "hpack/6.1/1", "Sends a indexed header field representation with index 0")(
    bad_block(lambda c: base_block(literal(1, c.authority), c, indexed(0))))
case("hpack", "hpack/6.3/1", "Sends a dynamic table size update larger than the value of SETTINGS_HEADER_TABLE_SIZE")(
    bad_block(lambda c: table_size_update(4097) + base_block(literal(1, c.authority), c)))


# extra: what h2spec does not cover and RFC 9113 §8.5 / RFC 8441 say ------------------------------

def connect_fields(c, drop=(), extra=()):
    f = [(":method", "CONNECT"), (":authority", "golb.test:443")] + list(extra)
    return [x for x in f if x[0] not in drop]


case("extra_connect", "extra/connect/1", "CONNECT with :scheme and :path but no :protocol")(
    bad_request(lambda c: connect_fields(c, extra=[(":scheme", c.scheme), (":path", "/")])))
case("extra_connect", "extra/connect/2", "CONNECT without :authority")(
    bad_request(lambda c: connect_fields(c, drop=(":authority",))))
case("extra_connect", "extra/connect/3", ":protocol on a method other than CONNECT")(
    bad_request(lambda c: base_fields(c, extra=[(":protocol", "websocket")])))
case("extra_connect", "extra/connect/4", "extended CONNECT without :path")(
    bad_request(lambda c: connect_fields(c, extra=[(":scheme", c.scheme), (":protocol", "websocket")])))


@case("extra_connect", "extra/connect/5", "a valid plain CONNECT: golb is no forward proxy (501)")
def _(t):
    c = t.open()
    c.send(c.headers(1, c.enc.encode(connect_fields(c))))
    assert c.stream_close(1)[0] == 501


@case("extra_connect", "extra/messages/1", "te: trailers is allowed")
def _(t):
    c = t.open()
    c.send(c.headers(1, extra=[("te", "trailers")]))
    assert c.stream_close(1)[0] == 200


# ---- the tests: one per h2spec group, each case over h2c and over TLS ------------------------------

GROUPS = []
for g, *_rest in CASES:
    if g not in GROUPS:
        GROUPS.append(g)


class Tester:
    def __init__(self, testcase, port, tls):
        self.testcase, self.port, self.tls = testcase, port, tls
        self.conns = []

    def open(self, handshake=True, settings=()):
        c = Conn(self.port, self.tls, f"127.0.0.1:{self.port}", handshake, settings)
        self.conns.append(c)
        return c

    def close(self):
        for c in self.conns:
            c.close()


@plain_only("golb's own listeners are chosen per test")
class TestH2spec(GolbTestCase):
    def run_group(self, group):
        t = self.toy(0)
        cert, key = pki().leaf("golb-h2spec", ["golb.test", "IP:127.0.0.1"])
        g = self.golb(golb_config([t], http2="{cleartext: true, maxConcurrentStreams: 16}") +
                      tls_config_block([(cert, key)]))
        tls_port = https_port(g)
        self.wait_backend(g, t, "UP")
        for cid, desc, fn in [(c[1], c[2], c[3]) for c in CASES if c[0] == group]:
            for tls in (False, True):
                with self.subTest(case=cid, over="tls" if tls else "h2c", what=desc):
                    tester = Tester(self, tls_port if tls else g.port, tls)
                    try:
                        fn(tester)
                    finally:
                        tester.close()
        self.assertTrue(g.alive())


for _group in GROUPS:
    setattr(TestH2spec, "test_" + re.sub(r"\W", "_", _group),
            lambda self, group=_group: self.run_group(group))


def case_count():
    return len(CASES)

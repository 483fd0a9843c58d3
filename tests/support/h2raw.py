"""Raw HTTP/2 frames for tests that must send what a real client would not (h2spec's cases in
test_98_h2spec.py) or keep reading after a GOAWAY (python3-h2 stops there): frames built by hand
(any length, flag or stream id), HPACK blocks by hand where a representation or an error
matters, and a client (Conn) whose verifiers are h2spec's, made exact."""

import socket
import ssl
import struct
import sys
import time

try:
    import hpack
except ImportError:  # Debian's python3-hpack is pure Python: the test interpreter may be another
    sys.path.append("/usr/lib/python3/dist-packages")
    import hpack
from hpack import huffman_constants
from hpack.huffman import HuffmanEncoder

from golbtest import scaled

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
(DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE,
 CONTINUATION) = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIO = 0x4, 0x8, 0x20
(NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED,
 FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR) = range(10)
(S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS, S_INITIAL_WINDOW_SIZE,
 S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE) = range(1, 7)
ERR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
             "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
             "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM"]
TYPE_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
              "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]
MAX_FRAME = 16384
WAIT = 2  # seconds an expected frame may take (h2spec's default timeout), scaled


def frame(ftype, flags, sid, payload=b"", length=None):
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def settings_frame(*pairs, flags=0, sid=0):
    return frame(SETTINGS, flags, sid, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def window_update(sid, inc):
    return frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", inc))


def rst(sid, code):
    return frame(RST_STREAM, 0, sid, struct.pack(">I", code))


def ping(data=b"h2spec\0\0", flags=0):
    return frame(PING, flags, 0, data)


def priority(sid, dep=0, weight=15, exclusive=False):
    return frame(PRIORITY, 0, sid, struct.pack(">IB", dep | (0x80000000 if exclusive else 0), weight))


def describe(ev):
    if ev[0] != "frame":
        return ev[0]
    _, t, fl, sid, p = ev
    name = TYPE_NAMES[t] if t < len(TYPE_NAMES) else f"type {t}"
    extra = ""
    if t in (RST_STREAM, GOAWAY) and len(p) >= 4:
        code = struct.unpack(">I", p[4:8] if t == GOAWAY else p[:4])[0]
        extra = f" {ERR_NAMES[code] if code < len(ERR_NAMES) else code}"
    return f"{name} (len {len(p)}, flags 0x{fl:02x}, stream {sid}){extra}"


# ---- HPACK by hand (RFC 7541 §5, §6) -------------------------------------------------------------

HUFFMAN = HuffmanEncoder(huffman_constants.REQUEST_CODES, huffman_constants.REQUEST_CODES_LENGTH)


def hint(value, bits, first=0):
    top = (1 << bits) - 1
    if value < top:
        return bytes([first | value])
    out, value = [first | top], value - top
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    return bytes(out + [value])


def hstr(s, huffman=False):
    b = s.encode() if isinstance(s, str) else s
    if huffman:
        b = HUFFMAN.encode(b)
        return hint(len(b), 7, 0x80) + b
    return hint(len(b), 7) + b


def indexed(i):
    return hint(i, 7, 0x80)


LITERAL = {"incr": (6, 0x40), "none": (4, 0x00), "never": (4, 0x10)}


def literal(name, value, kind="none", huffman=False):
    """A literal field; name is a table index or a string."""
    bits, first = LITERAL[kind]
    if isinstance(name, int):
        return hint(name, bits, first) + hstr(value, huffman)
    return hint(0, bits, first) + hstr(name, huffman) + hstr(value, huffman)


def table_size_update(n):
    return hint(n, 5, 0x20)


# ---- a client that sends anything ----------------------------------------------------------------

class Conn:
    def __init__(self, port, tls, authority, handshake=True, settings=()):
        raw = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            raw = ctx.wrap_socket(raw, server_hostname="golb.test")
            assert raw.selected_alpn_protocol() == "h2"
        self.sock = raw
        self.scheme = "https" if tls else "http"
        self.authority = authority
        self.buf = b""
        self.closed = False
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.server_settings = {}
        self.seen = []  # what came, for failure messages
        if handshake:
            self.handshake(settings)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, *chunks):
        try:
            self.sock.sendall(b"".join(chunks))
        except OSError:  # the peer may close first: what it sent before is still read
            pass

    def next(self, timeout=WAIT):
        """The next frame as ("frame", type, flags, stream, payload), or ("closed",) or
        ("timeout",)."""
        deadline = time.monotonic() + scaled(timeout)
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            if self.closed:
                return ("closed",)
            left = deadline - time.monotonic()
            if left <= 0:
                return ("timeout",)
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return ("timeout",)
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
                d = b""
            if not d:
                self.closed = True
                if len(self.buf) < 9:
                    self.seen.append("closed")
                    return ("closed",)
                return ("closed",)
            self.buf += d
        n = int.from_bytes(self.buf[:3], "big")
        t, fl = self.buf[3], self.buf[4]
        sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
        p = self.buf[9:9 + n]
        self.buf = self.buf[9 + n:]
        ev = ("frame", t, fl, sid, p)
        self.seen.append(describe(ev))
        if t == HEADERS:
            self.decode_headers(fl, p)
        if t == SETTINGS and not fl & ACK:
            for i in range(0, len(p) - len(p) % 6, 6):
                k, v = struct.unpack(">HI", p[i:i + 6])
                self.server_settings[k] = v
        return ev

    def decode_headers(self, fl, p):
        if fl & PADDED:
            p = p[1:len(p) - p[0]]
        if fl & PRIO:
            p = p[5:]
        self.last_headers = dict(self.dec.decode(p))

    def handshake(self, settings=()):
        """As h2spec: preface and SETTINGS; the server's SETTINGS is acknowledged and ours must
        be."""
        self.send(PREFACE, settings_frame(*settings))
        got_settings = got_ack = False
        while not (got_settings and got_ack):
            ev = self.next()
            if ev[0] != "frame":
                raise AssertionError(f"handshake: {ev[0]} (seen: {self.seen})")
            if ev[1] == SETTINGS and not ev[2] & ACK:
                got_settings = True
                self.send(settings_frame(flags=ACK))
            elif ev[1] == SETTINGS:
                got_ack = True

    # ---- what a case sends

    def fields(self, path="/", method="GET", extra=()):
        return [(":method", method), (":scheme", self.scheme), (":path", path),
                (":authority", self.authority)] + list(extra)

    def block(self, fields=None, **kw):
        return self.enc.encode(fields if fields is not None else self.fields(**kw))

    def headers(self, sid, block=None, flags=END_STREAM | END_HEADERS, **kw):
        return frame(HEADERS, flags, sid, block if block is not None else self.block(**kw))

    def post(self, sid, end_headers=True, extra=()):
        """A POST head without END_STREAM (the body follows)."""
        return self.headers(sid, flags=END_HEADERS if end_headers else 0, method="POST",
                            extra=extra)

    # ---- what a case expects (h2spec's verifiers, made exact)

    def fail(self, expected, actual):
        raise AssertionError(f"expected {expected}, got {actual}; frames seen: {self.seen}")

    def conn_error(self, *codes, close_ok=False):
        names = " or ".join(ERR_NAMES[c] for c in codes)
        while True:
            ev = self.next()
            if ev[0] == "closed":
                if close_ok:
                    return
                self.fail(f"GOAWAY {names}", "a close without GOAWAY")
            if ev[0] == "timeout":
                self.fail(f"GOAWAY {names}", "nothing (timeout)")
            if ev[1] == GOAWAY:
                code = struct.unpack(">I", ev[4][4:8])[0]
                if code not in codes:
                    self.fail(f"GOAWAY {names}", describe(ev))
                return struct.unpack(">I", ev[4][:4])[0] & 0x7FFFFFFF

    def stream_error(self, *codes):
        names = " or ".join(ERR_NAMES[c] for c in codes)
        while True:
            ev = self.next()
            if ev[0] != "frame":
                self.fail(f"RST_STREAM/GOAWAY {names}", ev[0])
            if ev[1] in (GOAWAY, RST_STREAM):
                code = struct.unpack(">I", ev[4][4:8] if ev[1] == GOAWAY else ev[4][:4])[0]
                if code not in codes:
                    self.fail(f"RST_STREAM/GOAWAY {names}", describe(ev))
                return

    def stream_close(self, sid):
        """The response on sid ends (END_STREAM); returns (status, body)."""
        status, body = None, b""
        while True:
            ev = self.next()
            if ev[0] != "frame":
                self.fail(f"the end of stream {sid}", ev[0])
            _, t, fl, s, p = ev
            if t in (GOAWAY, RST_STREAM):
                self.fail(f"the end of stream {sid}", describe(ev))
            if s != sid:
                continue
            if t == HEADERS and status is None:
                status = int(self.last_headers.get(":status", 0))
            if t == DATA:
                body += p[1:len(p) - p[0]] if fl & PADDED else p
            if t in (HEADERS, DATA) and fl & END_STREAM:
                return status, body

    def data_length(self, sid, n):
        while True:
            ev = self.next()
            if ev[0] != "frame":
                self.fail(f"DATA of {n} bytes on stream {sid}", ev[0])
            if ev[1] in (GOAWAY, RST_STREAM):
                self.fail(f"DATA of {n} bytes on stream {sid}", describe(ev))
            if ev[1] == DATA and ev[3] == sid:
                if len(ev[4]) != n:
                    self.fail(f"DATA of {n} bytes on stream {sid}", describe(ev))
                return

    def alive(self, data=b"alive\0\0\0"):
        """The connection still works: a PING is acknowledged with its data."""
        self.send(ping(data))
        self.ping_ack(data)

    def ping_ack(self, data):
        while True:
            ev = self.next()
            if ev[0] != "frame":
                self.fail("a PING ACK", ev[0])
            if ev[1] == GOAWAY:
                self.fail("a PING ACK", describe(ev))
            if ev[1] == PING and ev[2] & ACK:
                if ev[4] != data:
                    self.fail(f"a PING ACK with {data!r}", describe(ev) + f" {ev[4]!r}")
                return

    def wait_settings_ack(self):
        while True:
            ev = self.next()
            if ev[0] != "frame":
                self.fail("a SETTINGS ACK", ev[0])
            if ev[1] == GOAWAY:
                self.fail("a SETTINGS ACK", describe(ev))
            if ev[1] == SETTINGS and ev[2] & ACK:
                return



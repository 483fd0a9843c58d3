#!/usr/bin/env python3
"""Memory per idle keep-alive client connection (bench scenario 5).

Reads the proxy's RSS (sum of VmRSS over --pids), opens --count client connections to the proxy,
sends one request on each and reads the whole response (so every connection is an established,
idle keep-alive connection that has already carried a request; with --h2 an HTTP/2 connection,
prior knowledge or ALPN h2 with --tls, whose stream 1 has ended), waits --settle seconds, checks
that the connections are still open, reads the RSS again, prints one JSON line and closes them
all. Python 3 standard library only; bounded by --timeout.
"""
import argparse
import errno
import json
import os
import resource
import selectors
import socket
import ssl
import sys
import time


def rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def response_complete(buf):
    """Returns (done, keepalive) for one response in buf, or (False, False) if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False, False
    head = buf[:end].decode("latin-1").split("\r\n")
    length, keepalive = 0, head[0].startswith("HTTP/1.1")
    for line in head[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            keepalive = "close" not in value if keepalive else "keep-alive" in value
        elif name == "transfer-encoding":
            return buf.endswith(b"0\r\n\r\n"), keepalive
    return len(buf) - end - 4 >= length, keepalive


def h2_request(host, port, tls):
    """Preface, empty SETTINGS, the ACK of the server's SETTINGS (sent at once, before any
    request), and GET / on stream 1, HPACK from the static table only."""
    authority = f"{host}:{port}".encode()
    block = bytes([0x82, 0x87 if tls else 0x86, 0x84, 0x01, len(authority)]) + authority
    frame = lambda t, fl, sid, p: len(p).to_bytes(3, "big") + bytes([t, fl]) + sid.to_bytes(4, "big") + p
    return (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") + frame(4, 1, 0, b"") +
            frame(1, 0x5, 1, block))


def h2_response_complete(buf):
    """Returns (done, status ok) once a frame of stream 1 ended it (END_STREAM) or reset it."""
    ok = False
    while len(buf) >= 9:
        n = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + n:
            break
        t, fl, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        if sid == 1 and t == 1:
            ok = buf[9] == 0x88  # :status 200, indexed
        if sid == 1 and (t == 3 or (t in (0, 1) and fl & 1)):
            return True, ok
        if t == 7:
            return True, False
        buf = buf[9 + n:]
    return False, ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--pids", default="", help="comma-separated PIDs whose RSS is summed")
    ap.add_argument("--window", type=int, default=200, help="connections being set up at once")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds to wait before measuring")
    ap.add_argument("--timeout", type=float, default=60.0, help="give up setting up after this")
    ap.add_argument("--tls", action="store_true", help="HTTPS: a TLS handshake before the request")
    ap.add_argument("--h2", action="store_true",
                    help="HTTP/2: prior knowledge, or ALPN h2 with --tls; one stream each")
    args = ap.parse_args()
    tls_ctx = None
    if args.tls:
        tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls_ctx.check_hostname = False
        tls_ctx.verify_mode = ssl.CERT_NONE
        if args.h2:
            tls_ctx.set_alpn_protocols(["h2"])

    pids = [int(p) for p in args.pids.split(",") if p]
    limit = raise_nofile(args.count + 64)
    if limit < args.count + 16:
        sys.exit(f"idle_conns: RLIMIT_NOFILE {limit} too low for {args.count} connections")

    req = f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n\r\n".encode()
    if args.h2:
        req = h2_request(args.host, args.port, args.tls)
    rss_before = rss_kb(pids)
    sel = selectors.DefaultSelector()
    started = failed = not_keepalive = 0
    established = []
    active = 0
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    errors = {}

    def fail(sock, why):
        nonlocal failed, active
        errors[why] = errors.get(why, 0) + 1
        failed += 1
        active -= 1
        sel.unregister(sock)
        sock.close()

    while (started < args.count or active) and time.monotonic() < deadline:
        while started < args.count and active < args.window:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex((args.host, args.port))
            started += 1
            active += 1
            if rc not in (0, errno.EINPROGRESS):
                sel.register(s, selectors.EVENT_WRITE, None)
                fail(s, errno.errorcode.get(rc, str(rc)))
                continue
            sel.register(s, selectors.EVENT_WRITE, {"phase": "connect", "buf": b""})
        for key, _ in sel.select(timeout=0.5):
            s, st = key.fileobj, key.data
            if st["phase"] == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(s, errno.errorcode.get(err, str(err)))
                    continue
                if tls_ctx:
                    sel.unregister(s)
                    s = tls_ctx.wrap_socket(s, do_handshake_on_connect=False)
                    st["phase"] = "handshake"
                    sel.register(s, selectors.EVENT_WRITE, st)
                    continue
            if st["phase"] == "handshake":
                try:
                    s.do_handshake()
                except ssl.SSLWantReadError:
                    sel.modify(s, selectors.EVENT_READ, st)
                    continue
                except ssl.SSLWantWriteError:
                    sel.modify(s, selectors.EVENT_WRITE, st)
                    continue
                except (OSError, ssl.SSLError) as e:
                    fail(s, "tls: " + str(e)[:60])
                    continue
                st["phase"] = "connect"
            if st["phase"] == "connect":
                try:
                    s.send(req)  # tiny: fits in an empty socket buffer
                except OSError as e:
                    fail(s, errno.errorcode.get(e.errno, str(e.errno)))
                    continue
                st["phase"] = "response"
                sel.modify(s, selectors.EVENT_READ, st)
            else:
                try:
                    data = s.recv(65536)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue
                except OSError as e:
                    fail(s, errno.errorcode.get(e.errno, str(e.errno)))
                    continue
                if not data:
                    fail(s, "closed before response")
                    continue
                st["buf"] += data
                if args.h2:
                    done, ok = h2_response_complete(st["buf"])
                    if done and not ok:
                        fail(s, "h2: no 200 on stream 1")
                        continue
                    keepalive = True
                else:
                    done, keepalive = response_complete(st["buf"])
                if done:
                    if not args.h2 and not st["buf"].startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                        fail(s, "status " + st["buf"][9:12].decode("latin-1"))
                        continue
                    if not keepalive:
                        not_keepalive += 1
                    sel.unregister(s)
                    active -= 1
                    established.append(s)
    open_seconds = time.monotonic() - t0
    timed_out = started - len(established) - failed

    time.sleep(args.settle)
    # A connection the proxy closed (or wrote to) in the meantime is readable now.
    for s in established:
        sel.register(s, selectors.EVENT_READ)
    closed = len(sel.select(timeout=0)) if established else 0
    rss_after = rss_kb(pids)

    print(json.dumps({
        "requested": args.count, "opened": len(established), "failed": failed,
        "timed_out": timed_out, "not_keepalive": not_keepalive, "closed_by_peer": closed,
        "alive": len(established) - closed, "errors": errors,
        "rss_before_kb": rss_before, "rss_after_kb": rss_after,
        "open_seconds": round(open_seconds, 3), "settle_seconds": args.settle,
    }), flush=True)
    for key in list(sel.get_map().values()):
        key.fileobj.close()


if __name__ == "__main__":
    main()

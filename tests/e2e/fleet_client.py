#!/usr/bin/env python3
"""The load of the fleet test (test_98_fleet.py), run inside the fleet's network namespace.

    fleet_client.py VIP PORT CLIENTS OUT STOPFILE

CLIENTS threads, each a simulated client with its own address 203.0.113.(10+i). Each sends one
request per new TCP connection to VIP:PORT (so the L4 rule spreads them over the instances), the
PROXY protocol v2 header first (as a cloud NLB does: the L4 hop tells golb the client's address),
then `GET /echo` with the sticky cookie it got last (one client in three keeps no cookie: new
users, who reach backends DNS adds). Every outcome is a JSON line in OUT: time,
client, status (or the error), the backend's id (the toy's first body line), the X-Forwarded-For
the backend saw, the cookie sent. Runs until STOPFILE exists (at most 120 s)."""

import json
import os
import socket
import struct
import sys
import threading
import time

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(src, sport, dst, dport):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def one(vip, port, client, cookie):
    s = socket.create_connection((vip, port), timeout=5)
    try:
        req = b"GET /echo HTTP/1.1\r\nHost: fleet.test\r\nConnection: close\r\n"
        if cookie:
            req += b"Cookie: " + cookie.encode() + b"\r\n"
        s.sendall(v2(client, 40000 + s.getsockname()[1] % 20000, vip, port) + req + b"\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    set_cookie = None
    for h in lines[1:]:
        k, _, v = h.partition(":")
        if k.lower() == "set-cookie":
            set_cookie = v.strip().split(";")[0]
    text = body.decode("latin-1")
    server = text.split("\n", 1)[0].replace("server ", "") if status == 200 else None
    xff = None
    for line in text.split("\n"):
        if line.lower().startswith("header: x-forwarded-for:"):
            xff = line.split(":", 2)[2].strip()
    return status, server, xff, set_cookie


def run(vip, port, i, out, lock, stopfile, deadline):
    client = f"203.0.113.{10 + i}"
    cookie = None
    while not os.path.exists(stopfile) and time.monotonic() < deadline:
        rec = {"t": time.time(), "client": client, "cookie": cookie}
        try:
            status, server, xff, set_cookie = one(vip, port, client, cookie)
            rec.update(status=status, server=server, xff=xff)
            if set_cookie and i % 3 != 2:
                cookie = set_cookie
        except OSError as e:
            rec.update(status=0, error=type(e).__name__)
        with lock:
            out.write(json.dumps(rec) + "\n")
            out.flush()
        time.sleep(0.01)


def main():
    vip, port, n, path, stopfile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    lock = threading.Lock()
    deadline = time.monotonic() + 120
    with open(path, "w") as out:
        ts = [threading.Thread(target=run, args=(vip, port, i, out, lock, stopfile, deadline))
              for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Memory per idle client connection, HTTP/1.1 against HTTP/2, plain and TLS (README Performance).

For each kind (h1, h2c, h1 over TLS, h2 over TLS) a fresh golb (one worker, one toy-backend,
loopback only) is warmed up with 50 connections of that kind, then bench/idle_conns.py opens
--count connections, carries one request on each and keeps them idle (2 s, past the
frame buffer's trim); the figure is
(RSS after - RSS before) / connections. Prints one line per kind and a JSON line.

    python3 bench/h2_idle.py [--bindir bin] [--count 2000]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bindir", default="bin")
    ap.add_argument("--count", type=int, default=2000)
    args = ap.parse_args()
    os.environ["GOLB_BINDIR"] = os.path.abspath(args.bindir)
    import golbtest  # noqa: E402 - after GOLB_BINDIR
    import tlstest  # noqa: E402
    golbtest.BINDIR = os.environ["GOLB_BINDIR"]
    cert, key = tlstest.pki().leaf("golb-bench", ["golb.test", "IP:127.0.0.1"])
    kinds = [("http/1.1", []), ("h2c", ["--h2"]), ("https/1.1", ["--tls"]),
             ("h2 (TLS)", ["--tls", "--h2"])]
    results = {}
    try:
        toy = golbtest.start_toy(verbose=False)
        for name, flags in kinds:
            text = (golbtest.golb_config([toy], workers=1, http2="{cleartext: true}",
                                         keepAliveTimeout=120, maxConnections=10000) +
                    tlstest.tls_config_block([(cert, key)]))
            g = golbtest.start_golb(config_text=text)
            port = tlstest.https_port(g) if "--tls" in flags else g.port
            run = [sys.executable, os.path.join(HERE, "idle_conns.py"), "--port", str(port),
                   "--pids", str(g.pid), "--settle", "2"] + flags
            subprocess.run(run + ["--count", "50"], capture_output=True, timeout=60, check=True)
            out = subprocess.run(run + ["--count", str(args.count)], capture_output=True,
                                 timeout=120, check=True).stdout.decode()
            r = json.loads(out)
            per = (r["rss_after_kb"] - r["rss_before_kb"]) / max(1, r["alive"])
            results[name] = {"alive": r["alive"], "rss_before_kb": r["rss_before_kb"],
                             "rss_after_kb": r["rss_after_kb"], "kib_per_conn": round(per, 2)}
            print(f"{name:10} {r['alive']} idle connections: RSS {r['rss_before_kb']} -> "
                  f"{r['rss_after_kb']} KiB, {per:.2f} KiB per connection", flush=True)
            g.stop()
    finally:
        golbtest.kill_all()
    print(json.dumps(results))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""bench/uneven.py — balancing on uneven pools: golb's strategies against HAProxy and nginx.

Three toy-backends behind each proxy (one worker each), a constant offered load from bench/ratecli
(open loop, latency from each request's due time), one proxy at a time:
  slow    one of three backends answers in 10 ms, the others in 1 ms
  stall   all answer in 1 ms; one stalls for 300 ms every 3 s
  weights weights 1, 2, 4, all 1 ms
Reported per target: mean, p50, p90, p99, p99.9 latency (ms), each backend's share, and in `stall`
the requests each stall catches (answered after ≥ 150 ms, per stall window in the run).

  flock /tmp/golb-bench.lock python3 bench/uneven.py [--rate 1000] [--seconds 20] [--scenarios slow,stall,weights]

Every server listens on 127.0.0.1; ports are ephemeral (golb and the toys bind port 0; HAProxy and
nginx get a port the kernel just handed out). Everything started is stopped by PID.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STALL_MS, STALL_PERIOD_MS = 300, 3000

SCENARIOS = {
    "slow": {"delays": [1, 1, 10], "weights": [1, 1, 1], "stall": None},
    "stall": {"delays": [1, 1, 1], "weights": [1, 1, 1], "stall": 2},
    "weights": {"delays": [1, 1, 1], "weights": [1, 2, 4], "stall": None},
}

# (label, kind, strategy)
TARGETS = [
    ("golb leastLatency", "golb", "leastLatency"),
    ("golb leastConnections", "golb", "leastConnections"),
    ("golb random", "golb", "random"),
    ("golb roundRobin", "golb", "roundRobin"),
    ("HAProxy leastconn", "haproxy", "leastconn"),
    ("HAProxy random", "haproxy", "random"),
    ("HAProxy roundrobin", "haproxy", "roundrobin"),
    ("nginx least_conn", "nginx", "least_conn;"),
    ("nginx random two least_conn", "nginx", "random two least_conn;"),
    ("nginx round-robin", "nginx", ""),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_log(path, regex, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            m = re.search(regex, f.read())
        if m:
            return m
        time.sleep(0.02)
    raise RuntimeError(f"{path}: no {regex!r} within {timeout}s")


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, argv, log):
        p = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)
        self.procs = []


def start_toys(procs, tmp, sc):
    ports = []
    for i, d in enumerate(sc["delays"]):
        args = [os.path.join(ROOT, "bin", "toy-backend"), "-id", str(i), "-listen", "127.0.0.1:0",
                "-delay", str(d)]
        if sc["stall"] == i:
            args += ["-stall", f"{STALL_MS}/{STALL_PERIOD_MS}"]
        log = os.path.join(tmp, f"toy{i}.log")
        procs.start(args, log)
        ports.append(int(wait_log(log, r"listening on 127\.0\.0\.1:(\d+)").group(1)))
    return ports


def nginx_conf(d, port, upstream, location_extra=""):
    """Writes d/nginx.conf: one worker, no access log, temp paths in d, upstream `u` (its body
    lines given: strategy, servers) with keep-alive, proxied on 127.0.0.1:port. Returns its path."""
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  upstream u {{
{upstream}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://u;
      proxy_http_version 1.1;
      proxy_set_header Connection "";{location_extra}
    }}
  }}
}}
""")
    return conf


def start_proxy(procs, tmp, kind, strategy, ports, weights):
    if kind == "golb":
        conf = os.path.join(tmp, "golb.yml")
        with open(conf, "w") as f:
            f.write(f"listen: 127.0.0.1:0\nworkers: 1\nbalance: {strategy}\nbackends:\n")
            for p, w in zip(ports, weights):
                f.write(f"  - url: http://127.0.0.1:{p}/health\n    weight: {w}\n")
        log = os.path.join(tmp, "golb.log")
        p = procs.start([os.path.join(ROOT, "bin", "golb"), "-confpath", conf], log)
        return p, int(wait_log(log, r"listening on 127\.0\.0\.1:(\d+)").group(1))
    port = free_port()
    if kind == "haproxy":
        conf = os.path.join(tmp, "haproxy.cfg")
        servers = "\n".join(f"  server s{i} 127.0.0.1:{p} weight {w}"
                            for i, (p, w) in enumerate(zip(ports, weights)))
        with open(conf, "w") as f:
            f.write(f"""global
  maxconn 4096
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend f
  bind 127.0.0.1:{port}
  default_backend b
backend b
  balance {strategy}
{servers}
""")
        p = procs.start(["haproxy", "-f", conf], os.path.join(tmp, "haproxy.log"))
    else:
        d = os.path.join(tmp, "ngx")
        servers = "\n".join(f"    server 127.0.0.1:{p} weight={w};" for p, w in zip(ports, weights))
        conf = nginx_conf(d, port, f"    {strategy}\n{servers}")
        p = procs.start(["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf],
                        os.path.join(tmp, "nginx.log"))
    wait_port(port)
    return p, port


def pct(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(q * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def run_one(ratecli, tmp, port, rate, seconds):
    out = os.path.join(tmp, "lat.txt")
    # a short warm-up so every proxy has its upstream connections and estimates
    subprocess.run([ratecli, "127.0.0.1", str(port), str(rate), "1", "256", out], check=True,
                   timeout=30, stderr=subprocess.DEVNULL)
    subprocess.run([ratecli, "127.0.0.1", str(port), str(rate), str(seconds), "256", out],
                   check=True, timeout=seconds + 30, stderr=subprocess.DEVNULL)
    rows = []
    with open(out) as f:
        for line in f:
            due, lat, sid, status = line.split()
            rows.append((int(due), int(lat), int(sid), int(status)))
    return rows


def summarize(rows, n_backends, seconds):
    lats = sorted(r[1] / 1000.0 for r in rows)
    ok = sum(1 for r in rows if r[3] == 200)
    shares = [sum(1 for r in rows if r[2] == i) / max(1, len(rows)) * 100 for i in range(n_backends)]
    caught = sum(1 for r in rows if r[1] >= 150000)
    stalls = seconds * 1000.0 / STALL_PERIOD_MS
    return {
        "n": len(rows), "ok": ok, "mean": statistics.fmean(lats) if lats else float("nan"),
        "p50": pct(lats, 0.50), "p90": pct(lats, 0.90), "p99": pct(lats, 0.99),
        "p999": pct(lats, 0.999), "shares": shares, "caught": caught / stalls,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--scenarios", default="slow,stall,weights")
    ap.add_argument("--targets", default="", help="comma-separated label substrings (default: all)")
    args = ap.parse_args()
    for tool in ("haproxy", "nginx", "cc"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"bench: {tool} not found; run 'scripts/install-deps.sh bench'")
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    tmp = tempfile.mkdtemp(prefix="golb-uneven-")
    ratecli = os.path.join(tmp, "ratecli")
    subprocess.run(["cc", "-O2", "-o", ratecli, os.path.join(ROOT, "bench", "ratecli.c")], check=True)
    procs = Procs()
    print(f"# uneven pools: {args.rate} requests/s offered, {args.seconds} s per run, one worker "
          f"per proxy, latency in ms from each request's due time")
    try:
        for name in args.scenarios.split(","):
            sc = SCENARIOS[name]
            print(f"\n## {name}\n")
            cols = "| target | mean | p50 | p90 | p99 | p99.9 | shares b0/b1/b2 % |"
            cols += " caught per stall |" if sc["stall"] is not None else ""
            print(cols)
            print("|" + " --- |" * (cols.count("|") - 1))
            for label, kind, strategy in TARGETS:
                if args.targets and not any(t in label for t in args.targets.split(",")):
                    continue
                if name != "weights" and "round" in label and kind != "golb":
                    continue  # peers' round-robin only where weights are the point
                ports = start_toys(procs, tmp, sc)
                proxy, port = start_proxy(procs, tmp, kind, strategy, ports, sc["weights"])
                try:
                    rows = run_one(ratecli, tmp, port, args.rate, args.seconds)
                finally:
                    procs.stop_all()
                s = summarize(rows, 3, args.seconds)
                line = (f"| {label} | {s['mean']:.2f} | {s['p50']:.2f} | {s['p90']:.2f} | "
                        f"{s['p99']:.2f} | {s['p999']:.2f} | "
                        + "/".join(f"{x:.1f}" for x in s["shares"]) + " |")
                if sc["stall"] is not None:
                    line += f" {s['caught']:.1f} |"
                if s["ok"] != s["n"]:
                    line += f" ({s['n'] - s['ok']} not 200)"
                print(line, flush=True)
    finally:
        procs.stop_all()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""bench/reload.py — reloads under load: golb against HAProxy (master-worker, SIGUSR2) and nginx
(SIGHUP), each reloaded the way its documentation says.

Three toy-backends; each proxy (one worker) starts with backends 0 and 1. While two open-loop
clients from bench/ratecli run (keep-alive at --rate, and one new connection per request at
--rate-new), the proxy is reloaded --reloads times at a steady cadence, alternating a config that
adds backend 2 and one that removes it again (and changes a timeout). Reported per target: requests
offered and failed (refused, reset, closed under a request, not 200) on each client, p99 latency,
requests backend 2 got after its last removal, processes left at the end (old workers still
draining), and golb's RSS before and after.

  flock /tmp/golb-bench.lock python3 bench/reload.py [--rate 2000] [--rate-new 300]
      [--seconds 12] [--reloads 20]

Every server listens on 127.0.0.1; ports are ephemeral (golb and the toys bind port 0; HAProxy and
nginx get a port the kernel just handed out). Everything started is stopped by PID.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from uneven import ROOT, Procs, free_port, nginx_conf, pct, wait_log, wait_port  # noqa: E402


def golb_conf(path, ports, timeout):
    with open(path, "w") as f:
        f.write(f"listen: 127.0.0.1:0\nworkers: 1\nupstreamTimeout: {timeout}\n"
                "healthCheckPeriod: 1\nhealthCheckTimeout: 0.5\nbackends:\n")
        for p in ports:
            f.write(f"  - http://127.0.0.1:{p}/health\n")


def haproxy_conf(path, port, ports, timeout):
    servers = "\n".join(f"  server s{p} 127.0.0.1:{p} check inter 1s" for p in ports)
    with open(path, "w") as f:
        f.write(f"""global
  maxconn 4096
  nbthread 1
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 30s
  timeout server {timeout}s
frontend f
  bind 127.0.0.1:{port}
  default_backend b
backend b
  balance roundrobin
{servers}
""")


def reload_nginx_conf(d, port, ports, timeout):
    servers = "\n".join(f"    server 127.0.0.1:{p};" for p in ports)
    return nginx_conf(d, port, servers, f"\n      proxy_read_timeout {timeout}s;")


def children(pid):
    """PIDs of pid's descendants (old workers still draining show up here)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(d))
            out += children(int(d))
    return out


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_target(kind, args, tmp, ratecli, procs):
    toys = []
    for i in range(3):
        log = os.path.join(tmp, f"{kind}-toy{i}.log")
        procs.start([os.path.join(ROOT, "bin", "toy-backend"), "-id", str(i), "-listen",
                     "127.0.0.1:0", "-delay", "1"], log)
        toys.append(int(wait_log(log, r"listening on 127\.0\.0\.1:(\d+)").group(1)))
    small, big = toys[:2], toys

    if kind == "golb":
        conf = os.path.join(tmp, "golb.yml")
        golb_conf(conf, small, 30)
        log = os.path.join(tmp, "golb.log")
        proxy = procs.start([os.path.join(ROOT, "bin", "golb"), "-confpath", conf], log)
        port = int(wait_log(log, r"listening on 127\.0\.0\.1:(\d+)").group(1))

        def reload(ports, timeout):
            golb_conf(conf, ports, timeout)
            proxy.send_signal(signal.SIGHUP)
    elif kind == "haproxy":
        port = free_port()
        conf = os.path.join(tmp, "haproxy.cfg")
        haproxy_conf(conf, port, small, 30)
        proxy = procs.start(["haproxy", "-W", "-f", conf], os.path.join(tmp, "haproxy.log"))
        wait_port(port)

        def reload(ports, timeout):
            haproxy_conf(conf, port, ports, timeout)
            proxy.send_signal(signal.SIGUSR2)
    else:
        port = free_port()
        d = os.path.join(tmp, "ngx")
        conf = reload_nginx_conf(d, port, small, 30)
        proxy = procs.start(["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf],
                            os.path.join(tmp, "nginx.log"))
        wait_port(port)

        def reload(ports, timeout):
            reload_nginx_conf(d, port, ports, timeout)
            proxy.send_signal(signal.SIGHUP)

    # warm-up: connections and pools in place
    subprocess.run([ratecli, "127.0.0.1", str(port), "500", "1", "64", os.path.join(tmp, "w.txt")],
                   check=True, timeout=30, stderr=subprocess.DEVNULL)
    rss_before = rss_kib(proxy.pid)
    outs = {"ka": os.path.join(tmp, f"{kind}-ka.txt"), "new": os.path.join(tmp, f"{kind}-new.txt")}
    clients = [
        subprocess.Popen([ratecli, "127.0.0.1", str(port), str(args.rate), str(args.seconds), "64",
                          outs["ka"]], stderr=subprocess.DEVNULL),
        subprocess.Popen([ratecli, "127.0.0.1", str(port), str(args.rate_new), str(args.seconds),
                          "32", outs["new"], "close"], stderr=subprocess.DEVNULL),
    ]
    t0 = time.monotonic()
    step = args.seconds / (args.reloads + 2)
    last_removed = None
    for i in range(args.reloads):
        time.sleep(max(0.0, t0 + step * (i + 1) - time.monotonic()))
        add = i % 2 == 0
        reload(big if add else small, 25 if add else 30)
        if not add:
            last_removed = time.monotonic() - t0
    for c in clients:
        c.wait(timeout=args.seconds + 60)
    settle = time.monotonic() + 2
    while time.monotonic() < settle and len(children(proxy.pid)) > 1:
        time.sleep(0.1)
    leftover = len(children(proxy.pid))
    rss_after = rss_kib(proxy.pid)
    res = {"rss": (rss_before, rss_after), "procs": leftover}
    for name, path in outs.items():
        rows = []
        with open(path) as f:
            for line in f:
                due, lat, sid, status = line.split()
                rows.append((int(due) / 1e6, int(lat) / 1000.0, int(sid), int(status)))
        lats = sorted(r[1] for r in rows if r[3] == 200)
        res[name] = {
            "n": len(rows),
            "failed": sum(1 for r in rows if r[3] != 200),
            "p99": pct(lats, 0.99),
            # toy 2 (X-Server-Id 2) after its last removal: a little slack for the reload itself
            "late": sum(1 for r in rows if r[2] == 2 and last_removed is not None
                        and r[0] > last_removed + 0.5),
        }
    if kind == "golb":
        with open(os.path.join(tmp, "golb.log")) as f:
            res["reloads"] = f.read().count(" running (")
    procs.stop_all()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=2000, help="keep-alive requests/s")
    ap.add_argument("--rate-new", type=int, default=300, help="new-connection requests/s")
    ap.add_argument("--seconds", type=int, default=12)
    ap.add_argument("--reloads", type=int, default=20)
    ap.add_argument("--targets", default="golb,haproxy,nginx")
    args = ap.parse_args()
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    for tool in ("haproxy", "nginx", "cc"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found; run 'scripts/install-deps.sh bench'")
    tmp = tempfile.mkdtemp(prefix="golb-reload-")
    ratecli = os.path.join(tmp, "ratecli")
    subprocess.run(["cc", "-O2", "-o", ratecli, os.path.join(ROOT, "bench", "ratecli.c")], check=True)
    procs = Procs()
    print(f"# reloads under load: {args.reloads} reloads in {args.seconds} s (add / remove a "
          f"backend, change a timeout); {args.rate} keep-alive req/s + {args.rate_new} new-connection "
          f"req/s offered; one worker per proxy\n")
    print("| target | keep-alive failed / offered | p99 ms | new-conn failed / offered | p99 ms |"
          " to the removed backend after its removal | processes at the end | RSS KiB before → after |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    try:
        for kind in args.targets.split(","):
            r = run_target(kind, args, tmp, ratecli, procs)
            ka, new = r["ka"], r["new"]
            extra = f" ({r['reloads']} reloads logged)" if "reloads" in r else ""
            print(f"| {kind}{extra} | {ka['failed']} / {ka['n']} | {ka['p99']:.2f} | "
                  f"{new['failed']} / {new['n']} | {new['p99']:.2f} | {ka['late'] + new['late']} | "
                  f"{r['procs']} | {r['rss'][0]} → {r['rss'][1]} |", flush=True)
    finally:
        procs.stop_all()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

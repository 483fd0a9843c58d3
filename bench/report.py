#!/usr/bin/env python3
"""Turns bench/run.sh's raw runs (JSON lines) into medians, a table on stdout with ratios to
HAProxy and the targets flagged met / not met, and one JSON file with every round's raw numbers.
Python 3 standard library only."""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

PROXIES = ["golb", "haproxy", "nginx"]
COLUMNS = ["golb", "haproxy", "nginx", "direct"]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def per_run_metrics(r):
    """Derived figures of one raw run (None where not applicable)."""
    m = {}
    if r["scenario"] in ("idle", "tidle"):
        i = r.get("idle")
        if not i:
            return m
        m["base_rss_mib"] = i["rss_before_kb"] / 1024
        m["idle_opened"] = i["opened"]
        m["idle_alive"] = i["alive"]
        if i["opened"]:
            m["rss_per_conn_kib"] = (i["rss_after_kb"] - i["rss_before_kb"]) / i["opened"]
        return m
    w = r.get("wrk")
    if not w or not w["requests"]:
        return m
    n, secs = w["requests"], w["duration_us"] / 1e6
    m["rps"] = n / secs
    m["p50_ms"] = w["lat_p50_us"] / 1000
    m["p99_ms"] = w["lat_p99_us"] / 1000
    m["errors"] = sum(w["errors"].values())
    mib = w["bytes"] / 2**20
    m["mib_s"] = mib / secs
    cpu_us = None if r["cpu_ticks"] is None else r["cpu_ticks"] * 1e6 / r["clk_tck"]
    if cpu_us is not None:
        m["cpu_us_req"] = cpu_us / n
        m["cpu_ms_mib"] = cpu_us / 1000 / mib
        m["cpu_pct"] = cpu_us / 1e6 / secs * 100
    # Busy time on the proxy's CPU not spent in the target proxy: other engineers' builds etc.
    if r.get("proxy_cpu_total_ticks") and r["target"] != "golb2":
        own = r["cpu_ticks"] or 0
        m["other_load_pct"] = max(0, r["proxy_cpu_busy_ticks"] - own) * 100 / r["proxy_cpu_total_ticks"]
    m["upstream_cpu_us_req"] = r["upstream_cpu_ticks"] * 1e6 / r["clk_tck"] / n
    # Upstream connections per proxied request, health checks (golb's, whichever proxy runs)
    # taken out: they are logged separately by the upstream.
    hreq, hconn = r.get("up_health_requests", 0), r.get("up_health_new_conns", 0)
    if r["target"] != "direct" and r["up_requests"] - hreq > 0:
        m["new_conns_req"] = max(0, r["up_accepts"] - hconn) / (r["up_requests"] - hreq)
        m["reuse_pct"] = 100 * (1 - m["new_conns_req"])
        m["health_checks"] = hreq
    return m


def fmt(v, digits):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def ratio(v, ref):
    if v is None or not ref:
        return "-"
    return f"{v / ref:.2f}x"


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001 - best effort metadata
        return f"unknown ({e})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--conns", type=int)
    ap.add_argument("--big-conns", type=int)
    ap.add_argument("--idle", type=int)
    ap.add_argument("--proxy-cpu")
    ap.add_argument("--load-cpu")
    ap.add_argument("--targets", default="")
    ap.add_argument("--golb", default="bin/golb")
    ap.add_argument("--start-rss", default="")
    args = ap.parse_args()

    runs = [json.loads(line) for line in open(args.raw) if line.strip()]
    for r in runs:
        r["metrics"] = per_run_metrics(r)

    # med[(scenario, target)][metric] = median over rounds
    med = {}
    keys = sorted({(r["scenario"], r["target"]) for r in runs})
    for key in keys:
        rs = [r for r in runs if (r["scenario"], r["target"]) == key]
        names = sorted({k for r in rs for k in r["metrics"]})
        med[key] = {k: median([r["metrics"].get(k) for r in rs]) for k in names}
        med[key]["rounds"] = len(rs)
        med[key]["errors_total"] = sum(r["metrics"].get("errors", 0) for r in rs)

    def g(scen, target, metric):
        return med.get((scen, target), {}).get(metric)

    start_rss = {}
    for item in args.start_rss.split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            start_rss[k] = int(v) / 1024

    rootdir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "-C", rootdir, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001
        commit = "unknown"
    cpu_model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": commit, "host": platform.node(), "kernel": platform.release(),
        "cpu": cpu_model, "online_cpus": os.cpu_count(),
        "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
        "rounds": args.rounds, "seconds": args.seconds, "conns": args.conns,
        "big_conns": args.big_conns, "idle_conns": args.idle,
        "proxy_cpu": args.proxy_cpu, "load_cpu": args.load_cpu,
        "golb2_cpus": f"{args.proxy_cpu},{args.load_cpu} (unpinned within both cores)",
        "versions": {
            "wrk": tool_version(["wrk", "-v"]),
            "haproxy": tool_version(["haproxy", "-v"]),
            "nginx": tool_version(["nginx", "-v"]),
            "golb": args.golb,
        },
        "start_rss_mib": start_rss,
    }

    # ------------------------------------------------------------ table
    cols = [c for c in COLUMNS if any(t == c for _, t in keys)]
    ref = "haproxy"
    others = [c for c in cols if c != ref]
    head = f"{'metric':38}" + "".join(f"{c:>11}" for c in cols) + "".join(
        f"{c + '/hap':>12}" for c in others)
    lines = []
    out = lines.append
    out(f"golb bench  {meta['date']}  commit {commit}  {args.rounds} round(s) x {args.seconds}s,"
        f" medians")
    out(f"proxy on CPU {args.proxy_cpu}; wrk + upstream nginx on CPU {args.load_cpu};"
        f" load avg at end {' '.join(meta['loadavg_at_end'])}")
    other = [r["metrics"]["other_load_pct"] for r in runs if "other_load_pct" in r["metrics"]]
    if other:
        meta["other_load_on_proxy_cpu_pct"] = {"median": median(other), "max": max(other)}
        out(f"other load on the proxy's CPU during runs (not the proxy): median"
            f" {median(other):.1f} %, max {max(other):.1f} %")
        if median(other) > 10:
            out("WARNING: the machine was busy: req/s and latency are not comparable with a quiet"
                " run; CPU per request, reuse and memory suffer least. Re-run when it is quiet.")
    out("")
    out(head)
    out("-" * len(head))

    def row(label, scen, metric, digits, cols_=None, scale=1, ratios=True):
        vals = {c: g(scen, c, metric) for c in cols}
        vals = {c: (None if v is None else v * scale) for c, v in vals.items()}
        if cols_ is not None:
            vals = {c: (vals[c] if c in cols_ else None) for c in cols}
        s = f"{label:38}" + "".join(f"{fmt(vals[c], digits):>11}" for c in cols)
        if ratios:
            s += "".join(f"{ratio(vals[c], vals.get(ref)):>12}" for c in others)
        errs = [f"{c}:{med[(scen, c)]['errors_total']}" for c in cols
                if (scen, c) in med and med[(scen, c)]["errors_total"]]
        if errs:
            s += "  ERRORS " + " ".join(errs)
        out(s)

    scens = {s for s, _ in keys}
    if "ka" in scens:
        out(f"1. keep-alive, small responses (wrk -c{args.conns})")
        row("   req/s", "ka", "rps", 0)
        row("   latency p50 ms", "ka", "p50_ms", 3)
        row("   latency p99 ms", "ka", "p99_ms", 3)
        out("2. CPU cost, keep-alive small responses")
        row("   proxy CPU us/request", "ka", "cpu_us_req", 2)
        row("   proxy CPU % of one core", "ka", "cpu_pct", 0)
        row("   upstream new conns per 1k requests", "ka", "new_conns_req", 3, PROXIES, 1000)
        out("     (health checks excluded; they are golb's, on whichever proxy is measured)")
        row("   upstream reuse %", "ka", "reuse_pct", 3, PROXIES)
    if "close" in scens:
        out(f"3. new connection per request (Connection: close, wrk -c{args.conns})")
        row("   req/s", "close", "rps", 0)
        row("   latency p99 ms", "close", "p99_ms", 3)
        row("   proxy CPU us/request", "close", "cpu_us_req", 2)
    if "big" in scens:
        out(f"4. 1 MiB responses (wrk -c{args.big_conns})")
        row("   MiB/s", "big", "mib_s", 0)
        row("   latency p99 ms", "big", "p99_ms", 2)
        row("   proxy CPU ms/MiB", "big", "cpu_ms_mib", 3)
    if "idle" in scens:
        out(f"5. memory, {args.idle} idle keep-alive client connections")
        row("   base RSS MiB (restarted, 1 s warm-up)", "idle", "base_rss_mib", 1)
        s = f"{'   RSS MiB right after start':38}" + "".join(
            f"{fmt(start_rss.get(c), 1):>11}" for c in cols)
        out(s)
        row("   RSS KiB per idle connection", "idle", "rss_per_conn_kib", 2)
        row("   connections still open at measure", "idle", "idle_alive", 0, ratios=False)
    if "tka" in scens:
        out(f"7. HTTPS keep-alive, small responses (TLS 1.3, ECDSA P-256, wrk -c{args.conns})")
        row("   req/s", "tka", "rps", 0)
        row("   latency p99 ms", "tka", "p99_ms", 3)
        row("   proxy CPU us/request", "tka", "cpu_us_req", 2)
    if "tfull" in scens:
        out(f"8. HTTPS full TLS 1.3 handshake + 1 request per connection (tickets off)")
        row("   connections/s", "tfull", "rps", 0)
        row("   proxy CPU us/connection", "tfull", "cpu_us_req", 1)
    if "tres" in scens:
        out(f"9. HTTPS resumed TLS 1.3 handshake (ticket) + 1 request per connection")
        row("   connections/s", "tres", "rps", 0)
        row("   proxy CPU us/connection", "tres", "cpu_us_req", 1)
    if "tbig" in scens:
        out(f"10. HTTPS 1 MiB responses (wrk -c{args.big_conns})")
        row("   MiB/s", "tbig", "mib_s", 0)
        row("   proxy CPU ms/MiB", "tbig", "cpu_ms_mib", 3)
    if "tidle" in scens:
        out(f"11. memory, {args.idle} idle HTTPS keep-alive client connections")
        row("   base RSS MiB (restarted, 1 s warm-up)", "tidle", "base_rss_mib", 1)
        row("   RSS KiB per idle TLS connection", "tidle", "rss_per_conn_kib", 2)
        row("   connections still open at measure", "tidle", "idle_alive", 0, ratios=False)
    for scen, label in (("r1", "1 route"), ("r10k", "10,000 routes (1,000 hosts x 10 prefixes)"),
                        ("rre", "100 regex routes")):
        if scen in scens:
            out(f"12. routing, keep-alive small responses, {label} (wrk -c{args.conns})")
            row("   req/s", scen, "rps", 0, PROXIES)
            row("   latency p99 ms", scen, "p99_ms", 3, PROXIES)
            row("   proxy CPU us/request", scen, "cpu_us_req", 2, PROXIES)
    if "pp" in scens:
        plain, pp = g("pp", "golbl4", "cpu_us_req"), g("pp", "golbpp", "cpu_us_req")
        out(f"13. PROXY protocol: golb behind an L4 hop (HAProxy mode tcp), a new connection per"
            f" request (wrk -c{args.conns})")
        out(f"{'   golb CPU us/connection, no header':38}{fmt(plain, 2):>11}")
        out(f"{'   golb CPU us/connection, PROXY v2':38}{fmt(pp, 2):>11}")
        if plain and pp:
            out(f"{'   cost of accepting the header':38}{fmt(100.0 * (pp / plain - 1.0), 1):>10}%"
                "  (target: at most +2 %)")
    if "scale" in scens:
        one, two = g("ka", "golb", "rps"), g("scale", "golb2", "rps")
        out(f"6. golb scaling, keep-alive small responses (2 workers: CPUs"
            f" {args.proxy_cpu},{args.load_cpu}, shared with wrk + upstream)")
        out(f"{'   req/s, 1 worker (CPU ' + str(args.proxy_cpu) + ')':38}{fmt(one, 0):>11}")
        out(f"{'   req/s, 2 workers':38}{fmt(two, 0):>11}   {ratio(two, one)} of 1 worker")
        out(f"{'   CPU us/request, 2 workers':38}{fmt(g('scale', 'golb2', 'cpu_us_req'), 2):>11}")

    # ------------------------------------------------------------ observability cost
    ref, plain, obs = (g("ka", t, "cpu_us_req") for t in ("golbref", "golb", "golbobs"))
    if obs is not None:
        out("")
        out("7. observability cost, keep-alive small responses, CPU us/request")
        if ref is not None:
            out(f"{'   golb before metrics (GOLB_REF_BIN)':38}{fmt(ref, 2):>11}")
        out(f"{'   golb, metrics on, access log off':38}{fmt(plain, 2):>11}")
        out(f"{'   golb, metrics + JSON access log':38}{fmt(obs, 2):>11}")
        base = ref if ref is not None else plain
        if base:
            out(f"{'   metrics + JSON log vs ' + ('before' if ref is not None else 'log off'):38}"
                f"{fmt(100.0 * (obs / base - 1.0), 1):>10}%  (target: at most +5 %)")

    # ------------------------------------------------------------ targets
    def best(scen, metric, lowest):
        vals = [g(scen, p, metric) for p in ("haproxy", "nginx")]
        vals = [v for v in vals if v is not None]
        if not vals:
            return None
        return min(vals) if lowest else max(vals)

    targets = []

    def target(name, value, limit, ok_if_le, note, digits=2):
        if value is None or limit is None:
            verdict = "n/a"
        else:
            verdict = "MET" if (value <= limit if ok_if_le else value >= limit) else "NOT MET"
        targets.append({"target": name, "golb": value, "limit": limit, "digits": digits,
                        "rule": ("<= " if ok_if_le else ">= ") + note, "verdict": verdict})

    hap_cpu, ngx_cpu = g("ka", "haproxy", "cpu_us_req"), g("ka", "nginx", "cpu_us_req")
    target("keep-alive CPU/request vs HAProxy", g("ka", "golb", "cpu_us_req"),
           hap_cpu and 0.7 * hap_cpu, True, "0.7x HAProxy (us)")
    target("keep-alive CPU/request vs nginx", g("ka", "golb", "cpu_us_req"),
           ngx_cpu and 0.7 * ngx_cpu, True, "0.7x nginx (us)")
    target("keep-alive req/s", g("ka", "golb", "rps"), best("ka", "rps", False), False,
           "best peer", 0)
    target("keep-alive p99 latency", g("ka", "golb", "p99_ms"), best("ka", "p99_ms", True),
           True, "best peer (ms)", 3)
    b = best("close", "cpu_us_req", True)
    target("new conn/request CPU/request", g("close", "golb", "cpu_us_req"), b and 0.8 * b,
           True, "0.8x best peer (us)")
    r1, r10k = g("r1", "golb", "cpu_us_req"), g("r10k", "golb", "cpu_us_req")
    target("10,000 routes CPU/request vs 1 route", r10k, r1 and 1.05 * r1, True,
           "1.05x golb, 1 route (us)")
    b = best("r10k", "cpu_us_req", True)
    target("10,000 routes CPU/request vs peers", r10k, b and 0.7 * b, True,
           "0.7x best peer (us)")
    plain, pp = g("pp", "golbl4", "cpu_us_req"), g("pp", "golbpp", "cpu_us_req")
    target("PROXY v2 header CPU/connection", pp, plain and 1.02 * plain, True,
           "1.02x without the header (us)")
    d = g("big", "direct", "mib_s")
    target("1 MiB MiB/s", g("big", "golb", "mib_s"), d and 0.9 * d, False, "0.9x direct", 0)
    b = best("big", "cpu_ms_mib", True)
    target("1 MiB CPU/MiB", g("big", "golb", "cpu_ms_mib"), b and 0.7 * b, True,
           "0.7x best peer (ms)", 3)
    n = g("idle", "nginx", "rss_per_conn_kib")
    target("memory per idle connection", g("idle", "golb", "rss_per_conn_kib"), n and 0.5 * n,
           True, "0.5x nginx (KiB)")
    target("upstream connection reuse", g("ka", "golb", "reuse_pct"), 99.0, False, "99 %", 3)
    b = best("tka", "cpu_us_req", True)
    target("HTTPS keep-alive CPU/request", g("tka", "golb", "cpu_us_req"), b and 0.7 * b, True,
           "0.7x best peer (us)")
    b = best("tfull", "cpu_us_req", True)
    target("full TLS handshake CPU/connection", g("tfull", "golb", "cpu_us_req"), b and 0.8 * b,
           True, "0.8x best peer (us)", 1)
    b = best("tres", "cpu_us_req", True)
    target("resumed TLS handshake CPU/connection", g("tres", "golb", "cpu_us_req"),
           b and 0.8 * b, True, "0.8x best peer (us)", 1)
    target("HTTPS 1 MiB MiB/s", g("tbig", "golb", "mib_s"), best("tbig", "mib_s", False), False,
           "best peer", 0)
    target("HTTPS 1 MiB CPU/MiB", g("tbig", "golb", "cpu_ms_mib"), best("tbig", "cpu_ms_mib", True),
           True, "best peer (ms)", 3)
    target("memory per idle TLS connection", g("tidle", "golb", "rss_per_conn_kib"), 10.0, True,
           "10 KiB")

    out("")
    out(f"{'target':38}{'golb':>11}{'limit':>11}  {'rule':36}verdict")
    out("-" * 106)
    for t in targets:
        out(f"{t['target']:38}{fmt(t['golb'], t['digits']):>11}{fmt(t['limit'], t['digits']):>11}"
            f"  {t['rule']:36}"
            f"{t['verdict']}")
    out("")
    out("Numbers from a shared or busy machine are noisy; compare ratios from the same run.")

    print("\n".join(lines))
    result = {
        "meta": meta,
        "medians": [{"scenario": s, "target": t, **med[(s, t)]} for s, t in keys],
        "targets": targets,
        "runs": runs,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())

"""The fleet (issue 18, section 5), first version: three golb instances behind an nftables rule
that hashes new connections over them, in front of backends found through DNS, under a client
load; one instance is killed and the rule updated as an L4 health checker would, backends are
added and removed through DNS.

Everything runs in a network namespace the test creates (`ip netns`) and deletes, on loopback
addresses only (127.0.0.0/8 of that namespace): the instances on 127.0.0.11-13:8080, the
virtual address 127.0.0.100:8080 (DNAT in the namespace's nat output hook, `jhash` of the
connection's source address and port over the instances), the backends on 127.0.0.2-5, dnsmasq
on 127.0.0.1:5353. nftables cannot write a PROXY header, so the client (fleet_client.py) sends
PROXY v2 itself as the L4 hop would (a cloud NLB does), with one address 203.0.113.x per
simulated client. Unlike the issue's picture the three instances share the one namespace (each
its own loopback address), so that no server listens beyond loopback.

Shows: no failed request except those between the kill and the rule update (counted, printed),
sticky clients keep their backend whichever instance answers (one stickySession.secret), every
backend sees each client's own address (X-Forwarded-For from PROXY v2). Skipped where network
namespaces or nftables are not available (not root, a container without CAP_NET_ADMIN)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

from golbtest import LISTEN_RE, GolbTestCase, Proc, scaled, wait_until
from test_59_dns import DNSMASQ, Dnsmasq

HERE = os.path.dirname(os.path.abspath(__file__))
VIP, PORT = "127.0.0.100", 8080
GOLBS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
BACKEND_PORT = 9000
SECRET = "fleet-test-shared-secret-0123456789"


def netns_usable():
    """Why the fleet cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root for ip netns"
    if not shutil.which("ip") or not shutil.which("nft"):
        return "needs ip (iproute2) and nft (nftables)"
    if not DNSMASQ:
        return "needs dnsmasq (dnsmasq-base)"
    name = f"golb-probe-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        return f"ip netns is not permitted here: {r.stderr.strip()}"
    try:
        r = subprocess.run(["ip", "netns", "exec", name, "nft", "add", "table", "ip", "probe"],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            return f"nftables is not usable in a namespace here: {r.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    return None


SKIP = netns_usable()


def rule(targets):
    """The L4 tier: new connections to VIP:PORT hashed over `targets`."""
    elems = ", ".join(f"{i} : {a}" for i, a in enumerate(targets))
    return ("table ip fleet {\n"
            "  chain out {\n"
            "    type nat hook output priority -100;\n"
            f"    ip daddr {VIP} tcp dport {PORT} dnat to jhash ip saddr . tcp sport mod "
            f"{len(targets)} map {{ {elems} }}\n"
            "  }\n}\n")


@unittest.skipIf(SKIP, SKIP or "")
class FleetCase(GolbTestCase):

    def setUp(self):
        super().setUp()
        self.ns = f"golb-fleet-{os.getpid()}"
        self.sh("ip", "netns", "add", self.ns)
        self.addCleanup(self.sh, "ip", "netns", "del", self.ns)
        self.sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        self.prefix = ["ip", "netns", "exec", self.ns]

    def sh(self, *argv, stdin=None):
        r = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, f"{' '.join(argv)}: {r.stderr}")

    def set_rule(self, targets):
        self.sh(*self.prefix, "nft", "-f", "-", stdin="flush ruleset\n" + rule(targets))

    def start(self, name, argv, ready):
        p = Proc(name, self.prefix + argv, os.path.join(self.tmp, f"{name}-{time.monotonic_ns()}.log"))
        self.procs.append(p)
        p.wait_log(ready, timeout=10)
        return p

    def records(self):
        with open(self.out) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]

    def test_fleet(self):
        dns = Dnsmasq(self.tmp, [("127.0.0.2", "api.fleet.test"), ("127.0.0.3", "api.fleet.test"),
                                 ("127.0.0.4", "api.fleet.test")],
                      prefix=self.prefix, port=5353)
        self.addCleanup(dns.close)
        for i in (2, 3, 4, 5):
            self.start(f"toy{i}", [os.path.join(self.bindir, "toy-backend"), "-id", str(i), "-listen",
                                   f"127.0.0.{i}:{BACKEND_PORT}"], r"listening on")
        golbs = []
        for k, addr in enumerate(GOLBS):
            path = os.path.join(self.tmp, f"golb{k}.yml")
            with open(path, "w") as f:
                f.write(f"listen: {addr}:{PORT}\nworkers: 1\nhealthCheckPeriod: 0.3\n"
                        "healthCheckTimeout: 0.25\n"
                        "proxyProtocol:\n  trustedNetworks: [127.0.0.0/8]\n  required: true\n"
                        f"stickySession:\n  cookie: FLEET\n  secret: {SECRET}\n"
                        f"backends:\n  - url: http://api.fleet.test:{BACKEND_PORT}/health\n"
                        "    resolve: a\n"
                        f"resolvers:\n  nameservers: [\"127.0.0.1:{dns.port}\"]\n  minTtl: 1\n"
                        "  maxTtl: 5\n  holdOnFailure: 30\n")
            golbs.append(self.start(f"golb{k}", [os.path.join(self.bindir, "golb"), "-confpath", path],
                                    LISTEN_RE.pattern))
        for g in golbs:
            g.wait_log(r"3 of 3 backends up|backend 127\.0\.0\.4:9000 is UP", timeout=scaled(5))
        self.set_rule(GOLBS)

        self.out = os.path.join(self.tmp, "client.jsonl")
        stop = os.path.join(self.tmp, "client.stop")
        client = subprocess.Popen(self.prefix + [sys.executable, os.path.join(HERE, "fleet_client.py"),
                                                 VIP, str(PORT), "12", self.out, stop],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: os.path.exists(self.out) and sum(
                r["status"] == 200 for r in self.records()) >= 300, scaled(20), "load under way")

            # the L4 tier loses an instance: killed, then its health checker drops it
            t_kill = time.time()
            golbs[2].kill()
            time.sleep(0.5)  # the L4 health checker's detection time, on purpose
            self.set_rule(GOLBS[:2])
            t_rule = time.time()
            n = len(self.records())
            wait_until(lambda: len(self.records()) >= n + 200, scaled(20), "load after the kill")

            # backends come and go through DNS
            dns.set_hosts([("127.0.0.2", "api.fleet.test"), ("127.0.0.3", "api.fleet.test"),
                           ("127.0.0.4", "api.fleet.test"), ("127.0.0.5", "api.fleet.test")])
            wait_until(lambda: any(r.get("server") == "5" for r in self.records()), scaled(10),
                       "traffic on the backend DNS added")
            t_remove = time.time()
            dns.set_hosts([("127.0.0.3", "api.fleet.test"), ("127.0.0.4", "api.fleet.test"),
                           ("127.0.0.5", "api.fleet.test")])
            for g in golbs[:2]:
                g.wait_log(r"dns: api\.fleet\.test \(a\): 3 backends \([^)]*-127\.0\.0\.2", timeout=scaled(10))
            n = len(self.records())
            wait_until(lambda: len(self.records()) >= n + 200, scaled(20), "load after the removal")
        finally:
            open(stop, "w").close()
            try:
                client.wait(timeout=scaled(15))
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait()
        recs = self.records()

        failed = [r for r in recs if r["status"] != 200]
        outside = [r for r in failed if not (t_kill - 0.05 <= r["t"] <= t_rule + 0.05)]
        print(f"\n  fleet: {len(recs)} requests, {len(failed)} failed, all between the kill and the "
              f"rule update ({t_rule - t_kill:.2f} s: in flight on the killed instance or hashed to "
              f"it): {sorted(set(r.get('error', str(r['status'])) for r in failed))}", file=sys.__stderr__)
        self.assertEqual(outside, [], "no failure outside the kill window")
        self.assertLess(len(failed), len(recs) // 10)

        # every backend saw the client's own address, through PROXY v2 and golb's X-Forwarded-For
        wrong = [r for r in recs if r["status"] == 200 and r["xff"] != r["client"]]
        self.assertEqual(wrong, [], "X-Forwarded-For is the PROXY v2 client address")

        # sticky: with a cookie, the same backend whatever instance answered, until DNS removed it
        moves = []
        last = {}
        for r in sorted(recs, key=lambda r: r["t"]):
            if r["status"] != 200:
                continue
            prev = last.get(r["client"])
            if prev and r["cookie"] and r["server"] != prev["server"]:
                if not (prev["server"] == "2" and r["t"] >= t_remove):
                    moves.append((prev, r))
            last[r["client"]] = r
        self.assertEqual(moves, [], "a sticky client stays on its backend across instances")
        served = {r["server"] for r in recs if r["status"] == 200 and r["t"] > t_remove + 2}
        self.assertNotIn("2", served, "the removed backend gets nothing new")
        counts = {g.name: g.alive() for g in golbs}
        self.assertEqual(counts, {"golb0": True, "golb1": True, "golb2": False})

"""Backends from DNS (issue 18, section 1): `resolve: a` and `resolve: srv` against a dnsmasq the
test starts on loopback, with toy-backends on 127.0.0.x. Backends appear, a DNS change moves
traffic (the time from the change to the first answer from the new backend is printed), a removed
backend drains its requests in flight, a resolver that stops answering keeps the last set for
holdOnFailure then empties it, a name that does not resolve at start is not fatal, SRV priorities
and weights, metrics and the status API. Skipped when dnsmasq (Debian dnsmasq-base) is missing."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

from golbtest import GolbTestCase, Proc, golb_config, http_request, scaled, wait_until
from test_91_observability import ADMIN_RE, parse_metrics

DNSMASQ = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.access("/usr/sbin/dnsmasq", os.X_OK)
                                      else None)


def dval(metrics, metric, name, **labels):
    """val() for the golb_dns_* series, whose label `name` clashes with val's argument."""
    labels["name"] = name
    return metrics.get((metric, frozenset(labels.items())))


def free_port(host, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_dns_port(host):
    """A port free for both TCP and UDP on host (dnsmasq binds both): a TCP port the kernel
    picked, kept only if UDP can have it too (a loaded machine's outgoing connections use the
    same range, so a port free for UDP alone is often taken for TCP)."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((host, 0))
            port = t.getsockname()[1]
            u.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise AssertionError("no port free for both TCP and UDP")


class Dnsmasq:
    """dnsmasq on 127.0.0.1:PORT answering from a hosts file (edit it with set_hosts, which
    SIGHUPs it) and from --srv-host/--host-record arguments; TTL 1 s for every local answer.
    `prefix` runs it through another command (`ip netns exec NS`), on `port` when given."""

    def __init__(self, tmp, hosts=(), extra=(), prefix=(), port=None):
        self.tmp = tmp
        self.hosts_path = os.path.join(tmp, "dns-hosts")
        os.chmod(tmp, 0o755)  # dnsmasq drops root to nobody before it reads the hosts file
        self._write(hosts)
        self.proc = None
        for _ in range(10):  # the port is picked free, then bound by dnsmasq: retry a lost race
            self.port = port or free_dns_port("127.0.0.1")
            argv = list(prefix) + [DNSMASQ, "--keep-in-foreground", f"--port={self.port}",
                    "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
                    f"--addn-hosts={self.hosts_path}", "--pid-file=", "--local-ttl=1",
                    "--log-facility=-", "--log-queries"] + list(extra)
            p = Proc("dnsmasq", argv, os.path.join(tmp, f"dnsmasq-{time.monotonic_ns()}.log"))
            try:
                wait_until(lambda: not p.alive() or "started, version" in p.log_text(), 10,
                           "dnsmasq starts")
            except AssertionError:
                p.kill()
                raise
            if p.alive():
                self.proc = p
                break
        assert self.proc, "dnsmasq did not start"
        self.stopped = False

    def _write(self, hosts):
        with open(self.hosts_path, "w") as f:
            for ip, name in hosts:
                f.write(f"{ip} {name}\n")
        os.chmod(self.hosts_path, 0o644)

    def set_hosts(self, hosts):
        start = self.proc.log_offset()
        self._write(hosts)
        self.proc.send_signal(signal.SIGHUP)
        self.proc.wait_log(r"read .*dns-hosts", timeout=5, start=start)

    def pause(self):
        """Stops answering (SIGSTOP): queries time out."""
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def close(self):
        if self.stopped:
            self.resume()
        if self.proc.alive():
            self.proc.stop(timeout=5)


@unittest.skipUnless(DNSMASQ, "dnsmasq is not installed (Debian dnsmasq-base, listed in deps.txt)")
class DNSCase(GolbTestCase):

    def dnsmasq(self, hosts=(), extra=()):
        d = Dnsmasq(self.tmp, hosts, extra)
        self.addCleanup(d.close)
        return d

    def toys_on(self, ips, port=None, base_id=2):
        """Toy-backends on ip:port for each ip, the same port (resolve: a gives one port)."""
        for _ in range(5):
            port = port or free_port(ips[0])
            try:
                return port, [self.toy(base_id + i, listen=f"{ip}:{port}") for i, ip in enumerate(ips)]
            except AssertionError:
                port = None
        raise AssertionError("no common free port for the toy-backends")

    def golb_dns(self, dns, backends, hold=300, admin=True, extra=""):
        text = golb_config([]) + backends
        text += (f"resolvers:\n  nameservers: [\"127.0.0.1:{dns.port}\"]\n  minTtl: 1\n  maxTtl: 5\n"
                 f"  holdOnFailure: {hold}\n")
        if admin:
            text += "admin:\n  listen: 127.0.0.1:0\n"
        text += extra
        g = self.golb(text)
        if admin:
            m = g.wait_log(ADMIN_RE, timeout=5)
            g.admin = (m.group(1), int(m.group(2)))
        return g

    def server_id(self, g, path="/x"):
        r = self.get(g, path)
        return r.status, r.header("X-Server-Id")

    def admin_get(self, g, path):
        r = http_request(g.admin[1], "GET", path, host=g.admin[0])
        return r

    def status_dns(self, g):
        return json.loads(self.admin_get(g, "/api/v1/status").body)["dns"]

    def wait_ids(self, g, want, what, timeout=10):
        """Waits until the ids answering cover exactly `want` over a round of requests."""
        def ok():
            seen = set()
            for _ in range(4 * len(want) + 4):
                st, sid = self.server_id(g)
                if st == 200:
                    seen.add(sid)
            return seen == set(want)
        wait_until(ok, scaled(timeout), what)

    # ------------------------------------------------------------------------------------------

    def test_a_records_appear_change_and_drain(self):
        dns = self.dnsmasq([("127.0.0.2", "api.dns.test"), ("127.0.0.3", "api.dns.test")])
        port, toys = self.toys_on(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        g = self.golb_dns(dns, f"  - url: http://api.dns.test:{port}/health\n    resolve: a\n")
        g.wait_log(rf"backend 127\.0\.0\.2:{port} is UP", timeout=5)
        g.wait_log(rf"backend 127\.0\.0\.3:{port} is UP", timeout=5)
        self.wait_ids(g, {"2", "3"}, "traffic on both addresses")
        self.assertIn("dns: api.dns.test (a): 2 backends (+127.0.0.2 +127.0.0.3)", g.log_text())

        # a request in flight on 127.0.0.2 when DNS drops it
        conn_result = {}

        def slow():
            # round robin: keep sending until one lands on 127.0.0.2 and is slow
            for _ in range(8):
                r = self.get(g, "/slow?delay=1500", timeout=10)
                if r.header("X-Server-Id") == "2":
                    conn_result["r"] = r
                    return
        t = threading.Thread(target=slow)
        t.start()
        wait_until(lambda: "/slow" in toys[0].log_text(), scaled(5), "a slow request on 127.0.0.2")

        start = g.log_offset()
        t0 = time.monotonic()
        dns.set_hosts([("127.0.0.3", "api.dns.test"), ("127.0.0.4", "api.dns.test")])
        first = None
        deadline = t0 + scaled(10)
        while time.monotonic() < deadline:
            st, sid = self.server_id(g)
            if sid == "4":
                first = time.monotonic() - t0
                break
        self.assertIsNotNone(first, "no traffic on 127.0.0.4 after the DNS change")
        # the measurement the issue asks for, shown whether the test passes or not
        sys.__stderr__.write(f"  [dns: change to first request on the new backend: {first * 1000:.0f} ms]\n")
        g.wait_log(r"dns: api\.dns\.test \(a\): 2 backends \(\+127\.0\.0\.4 -127\.0\.0\.2\)",
                   timeout=1, start=start)
        self.wait_ids(g, {"3", "4"}, "traffic moved to 127.0.0.3 and 127.0.0.4")
        t.join(timeout=scaled(10))
        self.assertIn("r", conn_result, "the request in flight on the removed backend")
        self.assertEqual(conn_result["r"].status, 200, "a removed backend drains, its request ends")

        m = parse_metrics(self.admin_get(g, "/metrics").body.decode())
        self.assertEqual(dval(m, "golb_dns_backends", "api.dns.test"), 2)
        self.assertGreaterEqual(m[("golb_config_generation", frozenset())], 2, "a DNS change is a generation")
        self.assertEqual(sum(v for (k, _), v in m.items() if k == "golb_config_reloads_total"), 0, "not a reload")
        self.assertGreaterEqual(dval(m, "golb_dns_resolutions_total", "api.dns.test", result="ok"), 2)
        st = self.status_dns(g)
        self.assertEqual(len(st), 1)
        self.assertEqual(st[0]["name"], "api.dns.test")
        self.assertEqual(st[0]["state"], "ok")
        self.assertEqual(sorted(a["address"] for a in st[0]["addresses"]), ["127.0.0.3", "127.0.0.4"])
        names = [b["name"] for b in json.loads(self.admin_get(g, "/api/v1/status").body)["backends"]]
        self.assertEqual(sorted(names), [f"127.0.0.3:{port}", f"127.0.0.4:{port}"])

    def test_resolver_failure_holds_then_empties(self):
        dns = self.dnsmasq([("127.0.0.2", "hold.dns.test")])
        port, toys = self.toys_on(["127.0.0.2"])
        g = self.golb_dns(dns, f"  - url: http://hold.dns.test:{port}/health\n    resolve: a\n",
                          hold=int(scaled(3) + 0.5))
        g.wait_log(rf"backend 127\.0\.0\.2:{port} is UP", timeout=5)
        self.assertEqual(self.admin_get(g, "/readyz").status, 200)
        start = g.log_offset()
        dns.pause()
        t0 = time.monotonic()
        g.wait_log(r"dns: hold\.dns\.test \(a\): timeout, keeping the last 1 backend for up to",
                   timeout=scaled(8), start=start)
        self.assertEqual(self.server_id(g), (200, "2"), "the last good set is kept")
        self.assertEqual(self.status_dns(g)[0]["state"], "failing")
        g.wait_log(r"dns: hold\.dns\.test \(a\): timeout for \d+s \(holdOnFailure \d+s\): 0 backends",
                   timeout=scaled(10), start=start)
        held = time.monotonic() - t0
        self.assertGreaterEqual(held, scaled(3) - 0.2, "emptied only after holdOnFailure")
        wait_until(lambda: self.admin_get(g, "/readyz").status == 503, scaled(5), "not ready")
        self.assertEqual(self.get(g, "/x").status, 503)
        m = parse_metrics(self.admin_get(g, "/metrics").body.decode())
        self.assertGreaterEqual(dval(m, "golb_dns_resolutions_total", "hold.dns.test", result="timeout"), 1)
        self.assertEqual(dval(m, "golb_dns_backends", "hold.dns.test"), 0)
        start = g.log_offset()
        dns.resume()
        g.wait_log(r"dns: hold\.dns\.test \(a\) resolves again", timeout=scaled(8), start=start)
        wait_until(lambda: self.server_id(g) == (200, "2"), scaled(5), "back on 127.0.0.2")

    def test_name_that_fails_at_start_is_not_fatal(self):
        dns = self.dnsmasq([])
        port, toys = self.toys_on(["127.0.0.2"])
        g = self.golb_dns(dns, f"  - url: http://late.dns.test:{port}/health\n    resolve: a\n"
                               f"  - url: http://nx.dns.test:{port}/health\n    resolve: a\n")
        self.assertEqual(self.admin_get(g, "/readyz").status, 503, "no backend yet: not ready")
        self.assertEqual(self.get(g, "/x").status, 503)
        self.assertRegex(g.log_text(), r"dns: late\.dns\.test \(a\): (nxdomain|servfail|empty), no backends yet")
        dns.set_hosts([("127.0.0.2", "late.dns.test")])
        g.wait_log(rf"backend 127\.0\.0\.2:{port} is UP", timeout=scaled(8))
        wait_until(lambda: self.admin_get(g, "/readyz").status == 200, scaled(5), "ready")
        self.assertEqual(self.server_id(g), (200, "2"))
        st = {d["name"]: d for d in self.status_dns(g)}
        self.assertEqual(st["nx.dns.test"]["backends"], 0)
        self.assertEqual(st["late.dns.test"]["backends"], 1)

    def test_plain_url_that_does_not_resolve_is_still_an_error(self):
        path = os.path.join(self.tmp, "bad.yml")
        with open(path, "w") as f:
            f.write("backends:\n  - http://nx.dns.invalid:80/\n")
        p = subprocess.run([os.path.join(self.bindir, "golb"), "-t", "-confpath", path],
                           capture_output=True, text=True, timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cannot resolve backend host", p.stderr + p.stdout)

    def test_srv_priority_and_weight(self):
        p1, p2 = free_port("127.0.0.2"), free_port("127.0.0.3")
        a = self.toy(2, listen=f"127.0.0.2:{p1}")
        b = self.toy(3, listen=f"127.0.0.3:{p2}")
        dns = self.dnsmasq([], extra=[
            f"--srv-host=_http._tcp.web.dns.test,w1.dns.test,{p1},10,5",
            f"--srv-host=_http._tcp.web.dns.test,w2.dns.test,{p2},20,7",
            "--host-record=w1.dns.test,127.0.0.2", "--host-record=w2.dns.test,127.0.0.3"])
        g = self.golb_dns(dns, "  - url: http://_http._tcp.web.dns.test/health\n    resolve: srv\n")
        g.wait_log(rf"backend 127\.0\.0\.2:{p1} is UP", timeout=5)
        g.wait_log(rf"backend 127\.0\.0\.3:{p2} is UP", timeout=5)
        for _ in range(10):
            self.assertEqual(self.server_id(g), (200, "2"), "priority 20 waits while 10 is UP")
        st = self.status_dns(g)[0]
        self.assertEqual(st["type"], "srv")
        self.assertEqual(sorted((x["address"], x["weight"], x["priority"]) for x in st["addresses"]),
                         [(f"127.0.0.2:{p1}", 5, 10), (f"127.0.0.3:{p2}", 7, 20)])
        backends = json.loads(self.admin_get(g, "/api/v1/status").body)["backends"]
        self.assertEqual({x["name"]: x["weight"] for x in backends}, {f"127.0.0.2:{p1}": 5, f"127.0.0.3:{p2}": 7})
        a.stop()
        g.wait_log(rf"backend 127\.0\.0\.2:{p1} is DOWN", timeout=scaled(5))
        wait_until(lambda: self.server_id(g) == (200, "3"), scaled(5), "priority 20 takes over")

    def test_reload_keeps_sets_and_adds_names(self):
        dns = self.dnsmasq([("127.0.0.2", "one.dns.test"), ("127.0.0.3", "two.dns.test")])
        port, toys = self.toys_on(["127.0.0.2", "127.0.0.3"])
        one = f"  - url: http://one.dns.test:{port}/health\n    resolve: a\n"
        two = f"  - url: http://two.dns.test:{port}/health\n    resolve: a\n"
        g = self.golb_dns(dns, one)
        g.wait_log(rf"backend 127\.0\.0\.2:{port} is UP", timeout=5)
        # a reload that changes something else: the running set stays, no backend goes away
        start = g.log_offset()
        with open(g.config_path, "a") as f:
            f.write("retries: 1\n")
        g.send_signal(signal.SIGHUP)
        g.wait_log(r"reload by .*generation \d+ running", timeout=scaled(5), start=start)
        self.assertEqual(self.server_id(g), (200, "2"))
        self.assertNotIn("is DOWN", g.log_text()[start:])
        # a reload that adds a name: its backends come with its first answer
        text = open(g.config_path).read().replace(one, one + two)
        with open(g.config_path, "w") as f:
            f.write(text)
        start = g.log_offset()
        g.send_signal(signal.SIGHUP)
        g.wait_log(rf"backend 127\.0\.0\.3:{port} is UP", timeout=scaled(8), start=start)
        self.wait_ids(g, {"2", "3"}, "both names' backends")
        # and one that removes the first: it is forgotten (status, metrics)
        with open(g.config_path, "w") as f:
            f.write(text.replace(one, ""))
        start = g.log_offset()
        g.send_signal(signal.SIGHUP)
        g.wait_log(r"reload by .*generation \d+ running", timeout=scaled(5), start=start)
        self.wait_ids(g, {"3"}, "only two.dns.test")
        self.assertEqual([d["name"] for d in self.status_dns(g)], ["two.dns.test"])

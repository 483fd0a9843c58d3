"""A long-lived HTTPS client keeps only the TLS section it was accepted under (its certificates and
settings), not its whole configuration generation (backend table, Maglev table, balancer): old
generations are freed across reloads however long HTTPS keep-alive clients stay connected, and
memory plateaus (golb_config_generations_live, issue 15)."""

import json
import re

from golbtest import GolbTestCase, golb_config, http_request, is_asan_build, rss_kib
from tlstest import TLSConn, https_port, pki, tls_config_block

ADMIN_TOKEN = "generations-test-token"
ADMIN_RE = r"admin API and status page on http://(\S+):(\d+)/"
CLIENTS = 50
RELOADS = 200


class TLSGenerationTest(GolbTestCase):
    def metric(self, g, name):
        r = http_request(g.admin, "GET", "/metrics")
        m = re.search(rf"^{name} (\d+)$", r.body.decode(), re.M)
        self.assertIsNotNone(m, f"{name} not in /metrics")
        return int(m.group(1))

    def reload(self, g):
        r = http_request(g.admin, "POST", "/api/v1/reload",
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        self.assertEqual(r.status, 200, r.body)
        return json.loads(r.body)["generation"]

    def test_https_keep_alive_clients_do_not_keep_old_generations(self):
        t = self.toy(0)
        cert = pki().leaf("gens", ["a.test"], key="ec")
        # balance: hash gives each generation a 65,537-slot Maglev table: what a pinned
        # generation would keep shows in RSS too.
        text = golb_config([t], workers=2, balance="hash", keepAliveTimeout=600)
        text += f"admin:\n  listen: 127.0.0.1:0\n  token: {ADMIN_TOKEN}\n"
        text += tls_config_block([cert])
        g = self.golb(text)
        g.tls_port = https_port(g)
        g.admin = int(g.wait_log(ADMIN_RE).group(2))
        self.wait_backend(g, t, "UP")
        # One new HTTPS client every RELOADS / CLIENTS reloads, each accepted under the
        # generation running then, all kept open (keep-alive) to the end.
        clients = []

        def connect():
            c = TLSConn("127.0.0.1", g.tls_port, server_name="a.test")
            self.addCleanup(c.close)
            self.assertEqual(c.request("GET", "/", host="a.test").status, 200)
            clients.append(c)

        connect()
        self.assertEqual(self.metric(g, "golb_config_generations_live"), 1)
        rss = {}
        gen = 1
        for i in range(1, RELOADS + 1):
            gen = self.reload(g)
            if i % (RELOADS // CLIENTS) == 0 and len(clients) < CLIENTS:
                connect()
            if i % 50 == 0:
                rss[i] = rss_kib(g.pid)
        self.assertEqual(gen, RELOADS + 1)
        self.assertEqual(len(clients), CLIENTS)
        # Every client is still served on its connection.
        for c in clients:
            self.assertEqual(c.request("GET", "/again", host="a.test").status, 200)
        live = self.metric(g, "golb_config_generations_live")
        self.assertLessEqual(live, 2, f"{live} generations kept by {CLIENTS} HTTPS clients")
        if is_asan_build(self.bindir):
            return  # ASan's quarantine keeps every freed generation's memory for a while
        grown = rss[RELOADS] - rss[100]
        # 25 more TLS connections cost about 1 MiB; 50 pinned generations took 7 MiB more.
        self.assertLess(grown, 4 * 1024, f"RSS grew by {grown} KiB over 100 reloads: {rss}")

"""A real-world client: curl through golb (skipped where curl is not installed)."""

import hashlib
import os
import shutil
import subprocess

from golbtest import GolbTestCase, assert_rotation, pattern_sha256, scaled


class CurlTest(GolbTestCase):
    def setUp(self):
        super().setUp()
        if not shutil.which("curl"):
            self.skipTest("curl not installed")

    def curl(self, *args):
        r = subprocess.run(["curl", "-sS", "--max-time", str(int(scaled(20))), *args],
                           capture_output=True, timeout=scaled(30), stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        return r.stdout

    def test_rotation_with_curl(self):
        toys = self.toys(3)
        g = self.golb_for(toys)
        url = f"http://127.0.0.1:{g.port}/"
        # One curl, nine URLs: curl reuses its connection, golb still rotates per request.
        out = self.curl(*([url] * 9)).decode()
        firsts = [line for line in out.split("\n") if line.startswith("server ")]
        self.assertEqual(len(firsts), 9, out)
        self.assertEqual(sorted(firsts), sorted(["server 0", "server 1", "server 2"] * 3))
        assert_rotation(self, [int(f.split()[1]) for f in firsts], 3)

    def test_upload_and_download_with_curl(self):
        t = self.toy(0)
        g = self.golb_for([t])
        path = os.path.join(self.tmp, "up.bin")
        data = os.urandom(3 * 1024 * 1024 + 5)  # big enough for curl to use Expect: 100-continue
        with open(path, "wb") as f:
            f.write(data)
        out = self.curl("--data-binary", f"@{path}", f"http://127.0.0.1:{g.port}/up").decode()
        self.assertIn(f"body-sha256: {hashlib.sha256(data).hexdigest()}", out)
        out = self.curl("-H", "Transfer-Encoding: chunked", "--data-binary", f"@{path}",
                        f"http://127.0.0.1:{g.port}/upc").decode()
        self.assertIn(f"body-length: {len(data)}", out)
        n = 5 * 1024 * 1024 + 3
        body = self.curl(f"http://127.0.0.1:{g.port}/?size={n}&chunked=1")
        self.assertEqual(hashlib.sha256(body).hexdigest(), pattern_sha256(n))

    def test_http10_with_curl(self):
        t = self.toy(0)
        g = self.golb_for([t])
        out = self.curl("--http1.0", "-i", f"http://127.0.0.1:{g.port}/?size=100&chunked=1")
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertNotIn(b"chunked", head.lower())
        self.assertEqual(len(body), 100)

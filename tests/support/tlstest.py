"""tlstest — TLS helpers for golb's end-to-end tests: a throwaway test CA and certificates made
with the `openssl` command, TLS clients on top of golbtest.HTTPConn, and a TLS upstream.

Nothing here is checked in: every key is generated into a temp dir when first needed and lives
only as long as the test run.
"""

import os
import socket
import ssl
import subprocess
import tempfile
import threading

import golbtest

_PKI = None
_LOCK = threading.Lock()


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


class PKI:
    """A test CA (ECDSA P-256) in a temp dir, and leaf certificates it signs on demand."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="golb-pki-")
        self.ca_cert = os.path.join(self.dir, "ca.pem")
        self.ca_key = os.path.join(self.dir, "ca.key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", self.ca_key, "-out", self.ca_cert, "-days", "30",
                 "-subj", "/CN=golb test CA", cwd=self.dir)
        self._made = {}

    def leaf(self, name, sans, key="ec", days=30, ca=None, client=False, subject=None):
        """Signs a leaf certificate for DNS names / IPs `sans` (e.g. ["a.test", "IP:127.0.0.1"]).
        key: "ec" (P-256) or "rsa" (2048). Returns (cert_path, key_path)."""
        tag = (name, tuple(sans), key, days, ca, client, subject)
        if tag in self._made:
            return self._made[tag]
        cert = os.path.join(self.dir, f"{name}.pem")
        keyf = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        ext = os.path.join(self.dir, f"{name}.ext")
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec" \
            else ["-newkey", "rsa:2048"]
        _openssl("req", *newkey, "-nodes", "-keyout", keyf, "-out", csr,
                 "-subj", subject or f"/CN={sans[0] if sans else name}", cwd=self.dir)
        alt = ",".join(s if s.startswith(("IP:", "DNS:")) else f"DNS:{s}" for s in sans)
        with open(ext, "w") as f:
            if alt:
                f.write(f"subjectAltName={alt}\n")
            f.write("extendedKeyUsage=%s\n" % ("clientAuth" if client else "serverAuth"))
        ca_cert, ca_key = ca or (self.ca_cert, self.ca_key)
        _openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
                 "-out", cert, "-days", str(days), "-extfile", ext, cwd=self.dir)
        self._made[tag] = (cert, keyf)
        return cert, keyf

    def leaf_dated(self, name, sans, start, end):
        """A leaf valid from `start` to `end` ("YYYYMMDDHHMMSSZ"), e.g. one already expired."""
        d = os.path.join(self.dir, f"dated-{name}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "index.txt"), "w"):
            pass
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(d, "ca.cnf"), "w") as f:
            f.write("[ca]\ndefault_ca = d\n[d]\ndir = .\ndatabase = index.txt\n"
                    "new_certs_dir = .\nserial = serial\ndefault_md = sha256\n"
                    "policy = any\ncopy_extensions = copy\n[any]\ncommonName = supplied\n")
        cert, key, csr = (os.path.join(d, f"{name}.{x}") for x in ("pem", "key", "csr"))
        alt = ",".join(f"DNS:{s}" for s in sans)
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", f"/CN={sans[0]}",
                 "-addext", f"subjectAltName={alt}", cwd=d)
        _openssl("ca", "-batch", "-config", "ca.cnf", "-cert", self.ca_cert, "-keyfile",
                 self.ca_key, "-in", csr, "-out", cert, "-startdate", start, "-enddate", end,
                 "-notext", cwd=d)
        return cert, key

    def other_ca(self, name):
        """A second, unrelated CA: (cert, key)."""
        cert = os.path.join(self.dir, f"{name}-ca.pem")
        key = os.path.join(self.dir, f"{name}-ca.key")
        if not os.path.exists(cert):
            _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", key, "-out", cert, "-days", "30",
                     "-subj", f"/CN={name} CA", cwd=self.dir)
        return cert, key


def pki():
    """The run's test CA, made once."""
    global _PKI
    with _LOCK:
        if _PKI is None:
            _PKI = PKI()
        return _PKI


def client_context(ca=None, verify=True, min_version=None, max_version=None, ciphers=None,
                   cert=None, key=None, alpn=("http/1.1",)):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(ca or pki().ca_cert)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    if cert:
        ctx.load_cert_chain(cert, key)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


class TLSConn(golbtest.HTTPConn):
    """HTTPConn over TLS. server_name: SNI and the name verified (None: no SNI).
    suppress_ragged_eofs=False: a TCP end without close_notify raises ssl.SSLEOFError."""

    def __init__(self, host, port, timeout=5, ctx=None, server_name="a.test", session=None,
                 suppress_ragged_eofs=True):
        self.host, self.port = host, port
        self.timeout = golbtest.scaled(timeout)
        raw = socket.create_connection((host, port), timeout=self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ctx = ctx or client_context()
        if server_name is None:
            ctx.check_hostname = False
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=server_name, session=session,
                                        suppress_ragged_eofs=suppress_ragged_eofs)
        except Exception:
            raw.close()
            raise
        self.buf = bytearray()
        self.eof = False

    def peer_cert(self):
        return self.sock.getpeercert(binary_form=True)

    def peer_names(self):
        """subjectAltName DNS entries of the certificate golb served (parsed by the client)."""
        d = self.sock.getpeercert()
        return sorted(v for k, v in d.get("subjectAltName", ()) if k == "DNS") if d else []

    def wait_closed(self, timeout=2):
        self.sock.settimeout(golbtest.scaled(timeout))
        try:
            d = self.sock.recv(65536)
            if d:
                raise AssertionError(f"unexpected bytes: {d[:200]!r}")
            return True
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def tls_config_block(certs, listen="127.0.0.1:0", **extra):
    """A `tls:` section: certs = [(cert, key)], extra = more keys of the section."""
    lines = ["tls:", f"  listen: {listen}", "  certificates:"]
    for c, k in certs:
        lines += [f"    - certFile: {c}", f"      keyFile: {k}"]
    for k, v in extra.items():
        lines.append(f"  {k}: {v}")
    return "\n".join(lines) + "\n"


def https_port(golb):
    """The HTTPS listener's port from golb's "listening on ... https://ADDR:PORT" line."""
    m = golb.wait_log(r"listening on [^\n]*https://\S+:(\d+)", timeout=10)
    return int(m.group(1))


class TLSUpstream:
    """A threaded TLS loopback server speaking a little HTTP/1.1: GET /health answers 200; other
    requests are answered by respond(head, body) -> (status, headers, body) with Content-Length and
    keep-alive. Counts handshakes and resumed ones. cert/key may be swapped while running."""

    def __init__(self, cert, key, client_ca=None):
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self.handshakes = 0
        self.resumed = 0
        self.requests = []  # (head bytes, body bytes), health checks excluded
        self.peer_certs = []
        self.lsock = golbtest.loopback_listener(64)
        self.host, self.port = self.lsock.getsockname()
        self._stop = False
        self._conns = []
        self._mu = threading.Lock()
        self._make_ctx()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _make_ctx(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        if self.client_ca:
            ctx.load_verify_locations(self.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx = ctx

    def swap_cert(self, cert, key):
        self.cert, self.key = cert, key
        self._make_ctx()

    def respond(self, head, body):
        return 200, [("Content-Type", "text/plain")], b"tls upstream\n"

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, raw):
        try:
            raw.settimeout(golbtest.scaled(30))
            s = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        with self._mu:
            self.handshakes += 1
            self.resumed += 1 if s.session_reused else 0
            self._conns.append(s)
            if self.client_ca:
                self.peer_certs.append(s.getpeercert())
        buf = b""
        try:
            while not self._stop:
                while b"\r\n\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                path = lines[0].split(b" ")[1].decode("latin-1")
                n = 0
                for line in lines[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        n = int(v)
                while len(buf) < n:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                body, buf = buf[:n], buf[n:]
                if path == "/health":
                    status, hdrs, rbody = 200, [], b"ok\n"
                else:
                    with self._mu:
                        self.requests.append((head, body))
                    status, hdrs, rbody = self.respond(head, body)
                out = [f"HTTP/1.1 {status} X".encode()]
                out += [f"{k}: {v}".encode() for k, v in hdrs]
                out.append(f"Content-Length: {len(rbody)}".encode())
                s.sendall(b"\r\n".join(out) + b"\r\n\r\n" + rbody)
        except (OSError, ssl.SSLError, ValueError, IndexError):
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        self._stop = True
        golbtest.stop_listening(self.lsock, self._thread)
        with self._mu:
            for c in self._conns:
                try:
                    c.close()
                except OSError:
                    pass

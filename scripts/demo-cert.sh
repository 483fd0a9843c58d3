#!/usr/bin/env bash
# Makes the demo's self-signed certificate (ECDSA P-256, for localhost and 127.0.0.1) in DIR
# (default examples/certs) unless it is already there. Never used outside the demo: a real
# deployment brings its own certificates.
set -eu
cd "$(dirname "$0")/.."
dir=${1:-examples/certs}
[ -s "$dir/demo.pem" ] && [ -s "$dir/demo.key" ] && exit 0
mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -keyout "$dir/demo.key" -out "$dir/demo.pem" -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
chmod 600 "$dir/demo.key"
echo "made a self-signed demo certificate: $dir/demo.pem"

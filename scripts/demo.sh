#!/usr/bin/env bash
# `make run`: three toy backends (ids 1-3 on 127.0.0.1:8081-8083) and golb on examples/config.yaml
# (http://127.0.0.1:8080, https://localhost:8443 with a self-signed certificate made on first
# run, admin listener and status page on 127.0.0.1:9901, JSON access log on stdout).
# Ctrl-C stops all of them.
set -u
cd "$(dirname "$0")/.."
pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    echo "demo stopped"
}
trap cleanup INT TERM EXIT
scripts/demo-cert.sh || exit 1
for id in 1 2 3; do
    ./bin/toy-backend -id "$id" &
    pids+=($!)
done
# Let the backends bind before golb's first health check, so the demo starts with all three.
for port in 8081 8082 8083; do
    for _ in $(seq 1 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
done
./bin/golb -confpath examples/config.yaml &
golb=$!
pids+=("$golb")
cat <<'MSG'

golb is starting on http://127.0.0.1:8080 and https://localhost:8443 in front of toy backends
1, 2 and 3.

    Status page:  http://127.0.0.1:9901/
    Metrics:      http://127.0.0.1:9901/metrics

Try:

    for i in {1..9}; do curl -s http://127.0.0.1:8080 | head -n1; done
    curl --cacert examples/certs/demo.pem https://localhost:8443/hello
    curl -s -X PUT -H 'Authorization: Bearer demo-token' -d '{"state":"drain"}' \
        http://127.0.0.1:9901/api/v1/backends/127.0.0.1:8082

Stop a backend (kill the toy-backend with id 2) and watch it leave the rotation within one
health-check period; start it again (./bin/toy-backend -id 2) and it rejoins after its next
check. Edit examples/config.yaml (e.g. remove a backend) and reload without dropping anything:

    curl -s -X POST -H 'Authorization: Bearer demo-token' http://127.0.0.1:9901/api/v1/reload
    # or: kill -HUP <golb's pid>

Ctrl-C here stops everything.

MSG
# Toy backends may be stopped and restarted by hand (that is the point of the demo); only golb
# exiting ends it.
wait "$golb"
echo "golb exited; stopping the toy backends"

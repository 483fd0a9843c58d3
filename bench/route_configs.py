#!/usr/bin/env python3
"""Writes golb, nginx and HAProxy configurations with the same route table, for bench/run.sh's
routing scenarios, and prints the request that takes the table's last route ("HOST PATH").

  r1    1 route: host h0.example.com, pathPrefix /p0
  r10k  10,000 routes: 1,000 hosts hK.example.com x 10 prefixes /pJ (the request takes the last)
  rre   100 regex routes ^/rN/[0-9]+$ (the request takes the last)

Every route goes to one pool of the three upstreams. Each proxy is configured the way its users
configure many routes: golb `routes`; nginx `server_name` + `location` (regexes: `location ~`);
HAProxy one `use_backend` fed by a `map_beg` lookup of host + path (regexes: `map_reg` of the
path), so that none of them pays for a list of ACLs.

usage: route_configs.py SCENARIO DIR UPSTREAM_PORTS(comma) GOLB_PORT NGINX_PORT HAPROXY_PORT MAXCONN
"""
import os
import sys


def table(scen):
    """[(host or None, prefix or None, regex or None)] in file order, and the request."""
    if scen == "r1":
        return [("h0.example.com", "/p0", None)], ("h0.example.com", "/p0/x")
    if scen == "r10k":
        rows = [(f"h{h}.example.com", f"/p{p}", None) for h in range(1000) for p in range(10)]
        return rows, ("h999.example.com", "/p9/x")
    if scen == "rre":
        rows = [(None, None, f"^/r{i}/[0-9]+$") for i in range(100)]
        return rows, ("bench.test", "/r99/123")
    sys.exit(f"route_configs.py: unknown scenario {scen}")


def golb(rows, ups, port):
    out = [f'listen: "127.0.0.1:{port}"', "workers: 1", "keepAliveTimeout: 300", "pools:",
           "  api:", "    backends:"]
    out += [f"      - http://127.0.0.1:{u}/health" for u in ups]
    out.append("routes:")
    for host, prefix, regex in rows:
        m = []
        if host:
            m.append(f"host: {host}")
        if prefix:
            m.append(f"pathPrefix: {prefix}")
        if regex:
            m.append(f'pathRegex: "{regex}"')
        out.append("  - {match: {" + ", ".join(m) + "}, pool: api}")
    return "\n".join(out) + "\n"


def nginx(rows, ups, port, d, maxconn):
    loc_body = ("proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; "
                "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; "
                "proxy_set_header X-Forwarded-Proto $scheme; "
                "proxy_set_header X-Forwarded-Host $host;")
    servers = {}
    for host, prefix, regex in rows:
        servers.setdefault(host, []).append(f"~ {regex}" if regex else f"{prefix}/")
    upstream = "".join(f"        server 127.0.0.1:{u};\n" for u in ups)
    blocks = []
    for host, locs in servers.items():
        name = f"server_name {host};" if host else "server_name _;"
        body = "".join(f"            location {l} {{ {loc_body} }}\n" for l in locs)
        opts = "" if blocks else " backlog=4096"  # listen options go on one server block only
        blocks.append(f"    server {{\n        listen 127.0.0.1:{port}{opts};\n"
                      f"        {name}\n{body}        location / {{ return 404; }}\n    }}\n")
    tmp = os.path.join(d, "tmp")
    return f"""daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {maxconn * 2};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections {maxconn * 2}; }}
http {{
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    server_names_hash_max_size 8192;
    server_names_hash_bucket_size 64;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream up {{
{upstream}        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }}
{''.join(blocks)}}}
"""


def haproxy(rows, ups, port, d, maxconn):
    regex = any(r for _, _, r in rows)
    with open(os.path.join(d, "routes.map"), "w") as f:
        for host, prefix, rx in rows:
            f.write(f"{rx} be\n" if regex else f"{host}{prefix}/ be\n")
    lookup = (f"%[path,map_reg({d}/routes.map,be_none)]" if regex
              else f"%[base,map_beg({d}/routes.map,be_none)]")
    servers = "".join(f"    server s{i} 127.0.0.1:{u}\n" for i, u in enumerate(ups))
    return f"""global
    nbthread 1
    maxconn {maxconn}
defaults
    mode http
    option http-keep-alive
    option forwardfor
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 10s
    timeout http-keep-alive 300s
    maxconn {maxconn}
frontend fe
    bind 127.0.0.1:{port}
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    use_backend {lookup}
backend be
    balance roundrobin
    http-reuse always
{servers}backend be_none
    http-request return status 404
"""


def main():
    scen, d, ups, gport, nport, hport, maxconn = sys.argv[1:8]
    ups = ups.split(",")
    maxconn = int(maxconn)
    rows, (host, path) = table(scen)
    for sub in ("ngx", "hap"):
        os.makedirs(os.path.join(d, sub, "tmp"), exist_ok=True)
    with open(os.path.join(d, "golb.yaml"), "w") as f:
        f.write(golb(rows, ups, gport))
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(nginx(rows, ups, nport, os.path.join(d, "ngx"), maxconn))
    with open(os.path.join(d, "haproxy.cfg"), "w") as f:
        f.write(haproxy(rows, ups, hport, os.path.join(d, "hap"), maxconn))
    print(host, path)


if __name__ == "__main__":
    main()

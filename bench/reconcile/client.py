#!/usr/bin/env python3
"""The plain clients of bench/reconcile/run.sh (standard library only).

  push     REGISTRY ARTIFACTS TREE               push ARTIFACTS distinct Flux artifacts (the tree
                                                 plus a file naming the index) to
                                                 bench/app<i>:v1, 16 threads
  create   DATA N ARTIFACTS REGISTRY INTERVAL    POST N OCIRepositories app-<i> over
                                                 bench/app<i % ARTIFACTS>:v1, 16 threads;
                                                 prints the seconds the creates took
  ready    DATA N                                waits until N objects are Ready (lists in
                                                 pages of 500 every 0.2 s)
  writes   DATA N COUNT                          the durable-write floor: COUNT merge patches of an
                                                 annotation spread over app-0..N-1, 16 threads
  registry REGISTRY N ARTIFACTS                  the registry floor: one HEAD per object and one
                                                 manifest GET + blob GET per artifact, 16 threads

DATA is the server's data directory (pki/ca.crt, pki/admin.{crt,key}); API_ADDR in the
environment is host:port of the server. Timed commands print seconds on stdout.
"""
import gzip
import hashlib
import http.client
import io
import json
import os
import ssl
import sys
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

THREADS = 16
_local = threading.local()


def api(data):
    """A per-thread HTTPS connection to the server, authenticated as the admin."""
    conn = getattr(_local, "api", None)
    if conn is None:
        ctx = ssl.create_default_context(cafile=f"{data}/pki/ca.crt")
        ctx.load_cert_chain(f"{data}/pki/admin.crt", f"{data}/pki/admin.key")
        host, port = os.environ["API_ADDR"].rsplit(":", 1)
        conn = http.client.HTTPSConnection(host, int(port), context=ctx)
        _local.api = conn
    return conn


def registry(addr):
    conn = getattr(_local, "registry", None)
    if conn is None:
        host, port = addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port))
        _local.registry = conn
    return conn


def call(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp, data


BASE = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories"


def create(data, n, artifacts, reg, interval):
    def one(i):
        obj = {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "OCIRepository",
            "metadata": {"name": f"app-{i}", "namespace": "default"},
            "spec": {
                "interval": f"{interval}s",
                "url": f"oci://{reg}/bench/app{i % artifacts}",
                "insecure": True,
                "ref": {"tag": "v1"},
            },
        }
        resp, body = call(api(data), "POST", BASE, json.dumps(obj), {"Content-Type": "application/json"})
        if resp.status != 201:
            raise SystemExit(f"create app-{i}: {resp.status} {body[:200]!r}")

    start = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(n)))
    print(f"{time.monotonic() - start:.3f}")


def ready_count(data):
    count, cont = 0, ""
    while True:
        path = f"{BASE}?limit=500" + (f"&continue={cont}" if cont else "")
        resp, body = call(api(data), "GET", path)
        page = json.loads(body)
        for item in page.get("items", []):
            for c in item.get("status", {}).get("conditions", []):
                if c.get("type") == "Ready" and c.get("status") == "True":
                    count += 1
        cont = page.get("metadata", {}).get("continue", "")
        if not cont:
            return count


def ready(data, n):
    while ready_count(data) < n:
        time.sleep(0.2)


def writes(data, n, count):
    def one(k):
        patch = {"metadata": {"annotations": {"bench.floor/write": str(k)}}}
        resp, body = call(api(data), "PATCH", f"{BASE}/app-{k % n}", json.dumps(patch),
                          {"Content-Type": "application/merge-patch+json"})
        if resp.status != 200:
            raise SystemExit(f"patch app-{k % n}: {resp.status} {body[:200]!r}")

    start = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(count)))
    print(f"{time.monotonic() - start:.3f}")


MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def registry_floor(reg, n, artifacts):
    def head(i):
        resp, _ = call(registry(reg), "HEAD", f"/v2/bench/app{i % artifacts}/manifests/v1",
                       headers={"Accept": MANIFEST, "User-Agent": "bench-floor"})
        if resp.status != 200:
            raise SystemExit(f"HEAD app{i % artifacts}: {resp.status}")
        return resp.getheader("Docker-Content-Digest")

    def pull(a, digest):
        _, body = call(registry(reg), "GET", f"/v2/bench/app{a}/manifests/{digest}",
                       headers={"Accept": MANIFEST, "User-Agent": "bench-floor"})
        layer = json.loads(body)["layers"][0]["digest"]
        resp, blob = call(registry(reg), "GET", f"/v2/bench/app{a}/blobs/{layer}",
                          headers={"User-Agent": "bench-floor"})
        if resp.status != 200 or "sha256:" + hashlib.sha256(blob).hexdigest() != layer:
            raise SystemExit(f"blob app{a}: {resp.status}")

    start = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        digests = list(pool.map(head, range(n)))
        list(pool.map(lambda a: pull(a, digests[a]), range(artifacts)))
    print(f"{time.monotonic() - start:.3f}")


def tar_gz(tree, extra):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for root, dirs, files in os.walk(tree):
            dirs.sort()
            for f in sorted(files):
                path = os.path.join(root, f)
                info = tar.gettarinfo(path, os.path.relpath(path, tree))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
        data = extra.encode()
        info = tarfile.TarInfo("bench-index.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def push(reg, artifacts, tree):
    def blob(repo, content):
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        resp, _ = call(registry(reg), "POST", f"/v2/{repo}/blobs/uploads/")
        location = resp.getheader("Location")
        sep = "&" if "?" in location else "?"
        path = location.split(reg, 1)[-1] + f"{sep}digest={digest}"
        resp, body = call(registry(reg), "PUT", path, content,
                          {"Content-Type": "application/octet-stream"})
        if resp.status != 201:
            raise SystemExit(f"blob upload {repo}: {resp.status} {body[:200]!r}")
        return {"digest": digest, "size": len(content)}

    def one(a):
        repo = f"bench/app{a}"
        layer = tar_gz(tree, f"artifact {a}\n")
        config = blob(repo, b"{}")
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.cncf.flux.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.cncf.flux.content.v1.tar+gzip",
                        **blob(repo, layer)}],
            "annotations": {"org.opencontainers.image.source": "bench",
                            "org.opencontainers.image.revision": f"v1@sha1:{a:040d}"},
        }
        resp, body = call(registry(reg), "PUT", f"/v2/{repo}/manifests/v1",
                          json.dumps(manifest), {"Content-Type": MANIFEST})
        if resp.status != 201:
            raise SystemExit(f"manifest {repo}: {resp.status} {body[:200]!r}")

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(artifacts)))


def main(argv):
    cmd, rest = argv[1], argv[2:]
    if cmd == "push":
        push(rest[0], int(rest[1]), rest[2])
    elif cmd == "create":
        create(rest[0], int(rest[1]), int(rest[2]), rest[3], rest[4])
    elif cmd == "ready":
        ready(rest[0], int(rest[1]))
    elif cmd == "writes":
        writes(rest[0], int(rest[1]), int(rest[2]))
    elif cmd == "registry":
        registry_floor(rest[0], int(rest[1]), int(rest[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

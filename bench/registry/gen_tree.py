"""Generates a tree of Kubernetes-like YAML manifests of about the given size (MB).

Values are pseudo-random (seeded) so the tree compresses like real manifests do, not like
repeated text. usage: gen_tree.py <dir> <megabytes>
"""
import os
import random
import sys


def manifest(rng: random.Random, i: int) -> str:
    env = "\n".join(
        f"            - name: VAR_{k}\n              value: \"{rng.getrandbits(128):032x}\""
        for k in range(40)
    )
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: team-{i % 17}
  labels:
    app.kubernetes.io/name: app-{i}
    app.kubernetes.io/version: "{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}"
spec:
  replicas: {rng.randint(1, 5)}
  selector:
    matchLabels:
      app.kubernetes.io/name: app-{i}
  template:
    spec:
      containers:
        - name: app
          image: ghcr.io/example/app-{i}@sha256:{rng.getrandbits(256):064x}
          env:
{env}
---
"""


def main() -> None:
    root, megabytes = sys.argv[1], float(sys.argv[2])
    target = int(megabytes * 1024 * 1024)
    rng = random.Random(42)
    written, i = 0, 0
    while written < target:
        d = os.path.join(root, f"cluster-{i // 500:02d}", f"ns-{(i // 50) % 10:02d}")
        os.makedirs(d, exist_ok=True)
        text = "".join(manifest(rng, i * 20 + k) for k in range(20))
        with open(os.path.join(d, f"app-{i:05d}.yaml"), "w") as f:
            f.write(text)
        written += len(text)
        i += 1
    print(f"{i} files, {written / 1048576:.1f} MiB in {root}")


if __name__ == "__main__":
    main()

"""Push or pull a directory with oras-py (the peer client in bench/registry/run.sh).

usage: oras_client.py push <host/repo:tag> <dir>
       oras_client.py pull <host/repo:tag> <outdir>
"""
import os
import sys

import oras.client


def main() -> None:
    op, ref, path = sys.argv[1:4]
    client = oras.client.OrasClient(insecure=True)
    if op == "push":
        parent, name = os.path.split(os.path.abspath(path))
        os.chdir(parent)
        client.push(target=ref, files=[name], quiet=True)
    elif op == "pull":
        client.pull(target=ref, outdir=path)
    else:
        sys.exit(f"unknown operation {op}")


if __name__ == "__main__":
    main()

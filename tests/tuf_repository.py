#!/usr/bin/env python3
"""A TUF repository for the Sigstore trusted-root refresh tests, written with python-tuf (the
reference implementation's Metadata API), independent of the Rust client under test.

    tuf_repository.py STATE init FILE      root v1, targets, snapshot, timestamp; target
                                           `trusted_root.json` = FILE
    tuf_repository.py STATE set-target FILE a new `trusted_root.json` (targets, snapshot and
                                           timestamp re-signed)
    tuf_repository.py STATE tamper-target  changes one byte of the current target file after
                                           signing (its hash no longer matches targets.json)
    tuf_repository.py STATE expire-timestamp  a new timestamp that expired a day ago
    tuf_repository.py STATE rotate-root    root v+1 with new root and timestamp keys, signed by
                                           the old and the new root keys; timestamp re-signed
                                           with the new key (a client that does not follow the
                                           rotation cannot verify it)

STATE holds `keys/` (Ed25519 PEM keys and which key each role uses) and `repository/`, the
directory to serve: `N.root.json`, `timestamp.json`, `N.snapshot.json`, `N.targets.json` and
`targets/<sha256>.trusted_root.json` (consistent snapshots, as the public-good repository).
Metadata expires in 7 days unless said otherwise.
"""

import datetime
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import (
    MetaFile,
    Metadata,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

TARGET = "trusted_root.json"
ROLES = ("root", "targets", "snapshot", "timestamp")


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


class Repository:
    def __init__(self, state):
        self.keys = os.path.join(state, "keys")
        self.dir = os.path.join(state, "repository")
        os.makedirs(self.keys, exist_ok=True)
        os.makedirs(os.path.join(self.dir, "targets"), exist_ok=True)

    # keys

    def new_key(self, name):
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with open(os.path.join(self.keys, name + ".pem"), "wb") as f:
            f.write(pem)
        return self.signer(name)

    def signer(self, name):
        with open(os.path.join(self.keys, name + ".pem"), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        return CryptoSigner(key, SSlibKey.from_crypto(key.public_key()))

    def role_keys(self):
        with open(os.path.join(self.keys, "roles.json")) as f:
            return json.load(f)

    def set_role_keys(self, roles):
        with open(os.path.join(self.keys, "roles.json"), "w") as f:
            json.dump(roles, f)

    def role_signer(self, role):
        return self.signer(self.role_keys()[role])

    # metadata

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, md, name, *signers):
        md.signatures.clear()
        for signer in signers:
            md.sign(signer, append=True)
        md.to_file(self.path(name), JSONSerializer(compact=False))

    def root(self):
        versions = [int(n.split(".")[0]) for n in os.listdir(self.dir) if n.endswith(".root.json")]
        return Metadata.from_file(self.path(f"{max(versions)}.root.json"))

    def timestamp(self):
        return Metadata.from_file(self.path("timestamp.json"))

    def snapshot(self):
        version = self.timestamp().signed.snapshot_meta.version
        return Metadata.from_file(self.path(f"{version}.snapshot.json"))

    def targets(self):
        version = self.snapshot().signed.meta["targets.json"].version
        return Metadata.from_file(self.path(f"{version}.targets.json"))

    def write_timestamp(self, snapshot_version, expires=None):
        if os.path.exists(self.path("timestamp.json")):
            timestamp = self.timestamp()
            timestamp.signed.version += 1
        else:
            timestamp = Metadata(Timestamp())
        timestamp.signed.snapshot_meta = MetaFile(version=snapshot_version)
        timestamp.signed.expires = expires or now() + datetime.timedelta(days=7)
        self.write(timestamp, "timestamp.json", self.role_signer("timestamp"))

    def publish_target(self, data, version):
        """targets v`version` listing `data` as the target, then snapshot and timestamp."""
        targets = Metadata(Targets(version=version))
        targets.signed.targets[TARGET] = TargetFile.from_data(TARGET, data, ["sha256"])
        targets.signed.expires = now() + datetime.timedelta(days=7)
        self.write(targets, f"{version}.targets.json", self.role_signer("targets"))
        digest = hashlib.sha256(data).hexdigest()
        with open(self.path(f"targets/{digest}.{TARGET}"), "wb") as f:
            f.write(data)
        snapshot = Metadata(Snapshot(version=version))
        snapshot.signed.meta["targets.json"] = MetaFile(version=version)
        snapshot.signed.expires = now() + datetime.timedelta(days=7)
        self.write(snapshot, f"{version}.snapshot.json", self.role_signer("snapshot"))
        self.write_timestamp(version)

    # commands

    def init(self, target):
        signers = {role: self.new_key(role) for role in ROLES}
        self.set_role_keys({role: role for role in ROLES})
        root = Metadata(Root(consistent_snapshot=True))
        for role, signer in signers.items():
            root.signed.add_key(signer.public_key, role)
        root.signed.expires = now() + datetime.timedelta(days=7)
        self.write(root, "1.root.json", signers["root"])
        with open(target, "rb") as f:
            self.publish_target(f.read(), 1)

    def set_target(self, target):
        with open(target, "rb") as f:
            self.publish_target(f.read(), self.targets().signed.version + 1)

    def tamper_target(self):
        digest = self.targets().signed.targets[TARGET].hashes["sha256"]
        path = self.path(f"targets/{digest}.{TARGET}")
        with open(path, "rb") as f:
            data = bytearray(f.read())
        data[len(data) // 2] ^= 0x01
        with open(path, "wb") as f:
            f.write(data)

    def expire_timestamp(self):
        self.write_timestamp(
            self.snapshot().signed.version, expires=now() - datetime.timedelta(days=1)
        )

    def rotate_root(self):
        root = self.root()
        old = self.role_keys()
        version = root.signed.version + 1
        new_root, new_timestamp = self.new_key(f"root{version}"), self.new_key(f"timestamp{version}")
        for role, signer in (("root", new_root), ("timestamp", new_timestamp)):
            for keyid in list(root.signed.roles[role].keyids):
                root.signed.revoke_key(keyid, role)
            root.signed.add_key(signer.public_key, role)
        root.signed.version = version
        root.signed.expires = now() + datetime.timedelta(days=7)
        self.write(root, f"{version}.root.json", self.signer(old["root"]), new_root)
        self.set_role_keys(dict(old, root=f"root{version}", timestamp=f"timestamp{version}"))
        self.write_timestamp(self.snapshot().signed.version)


def main(state, command, *args):
    repository = Repository(state)
    {
        "init": repository.init,
        "set-target": repository.set_target,
        "tamper-target": repository.tamper_target,
        "expire-timestamp": repository.expire_timestamp,
        "rotate-root": repository.rotate_root,
    }[command](*args)


if __name__ == "__main__":
    main(*sys.argv[1:])

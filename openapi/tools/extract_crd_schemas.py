#!/usr/bin/env python3
"""Regenerate openapi/src/schema/crd/*.json from Flux source-controller's CRDs.

Usage: extract_crd_schemas.py <path to a fluxcd/source-controller git checkout>

v1 schemas come from HEAD (commit 39b711b1, v1.9.x), v1beta2 schemas from tag v1.7.4, the last
release that served v1beta2. The v1beta2 OCIRepository `spec.verify` gains v1's
`trustedRootSecretRef` because both versions share `apiv1.OCIRepositoryVerification` upstream.
Only the `openAPIV3Schema` blocks are kept (Apache-2.0, (c) The Flux authors).
"""
import json, subprocess, sys, yaml, pathlib

repo = sys.argv[1]
out = pathlib.Path(__file__).resolve().parent.parent / "src" / "schema" / "crd"
kinds = {"ocirepositories": "OCIRepository", "helmrepositories": "HelmRepository", "helmcharts": "HelmChart"}

def crd(rev, plural):
    text = subprocess.check_output(["git", "-C", repo, "show", f"{rev}:config/crd/bases/source.toolkit.fluxcd.io_{plural}.yaml"])
    doc = yaml.safe_load(text)
    return {v["name"]: v["schema"]["openAPIV3Schema"] for v in doc["spec"]["versions"]}

for plural, kind in kinds.items():
    head = crd("HEAD", plural)
    old = crd("v1.7.4", plural)
    v1 = head["v1"]
    v1beta2 = old["v1beta2"]
    if kind == "OCIRepository":
        v1beta2["properties"]["spec"]["properties"]["verify"]["properties"]["trustedRootSecretRef"] = \
            v1["properties"]["spec"]["properties"]["verify"]["properties"]["trustedRootSecretRef"]
    for version, schema in (("v1", v1), ("v1beta2", v1beta2)):
        path = out / f"{kind.lower()}.{version}.json"
        path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print("wrote", path)

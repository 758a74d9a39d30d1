#!/usr/bin/env python3
"""Renders deploy/kubernetes overlays without a kustomize binary, for tests/integration/deploy_kubernetes.rs.

Debian 12 has no kustomize (its kubernetes-client is 1.20, whose built-in kustomize predates
the overlays' syntax) and neither PyPI nor npm ships a usable binary, so this implements the
subset of kustomize the manifests use, and refuses anything else:

  resources          files (multi-document YAML) and directories with a kustomization.yaml
  namespace          set on every namespaced object of the overlay (bases included)
  configMapGenerator name + files, behavior create (default) / merge / replace
  generatorOptions   disableNameSuffixHash: true (required), labels

When `kubectl` (with its built-in kustomize) is on PATH, `render` also renders with it and
reports whether both agree, so the subset is checked against the real thing where it exists.

  kustomize_lite.py render DIR        JSON: {"docs": [...], "kubectl": "agrees" | "absent" | diff}
  kustomize_lite.py yaml DIR          the rendered documents as YAML (plain manifests)
  kustomize_lite.py load FILE...      JSON: the documents of YAML files, in order

Needs PyYAML (in the venv of scripts/install-deps.sh, a dependency of kubernetes-validate).
"""
import json
import os
import shutil
import subprocess
import sys

import yaml

KNOWN = {"apiVersion", "kind", "resources", "namespace", "configMapGenerator", "generatorOptions"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PriorityClass", "StorageClass", "PersistentVolume"}


class Unsupported(Exception):
    pass


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def key(doc):
    m = doc.get("metadata", {})
    return (doc.get("kind"), m.get("namespace", ""), m.get("name"))


def render(directory):
    with open(os.path.join(directory, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    extra = set(k) - KNOWN
    if extra:
        raise Unsupported(f"{directory}: kustomization fields outside the subset: {sorted(extra)}")
    opts = k.get("generatorOptions", {})
    if k.get("configMapGenerator") and opts.get("disableNameSuffixHash") is not True:
        raise Unsupported(f"{directory}: name suffix hashes are not implemented")
    if set(opts) - {"disableNameSuffixHash", "labels"}:
        raise Unsupported(f"{directory}: generatorOptions outside the subset: {sorted(opts)}")

    docs = []
    for r in k.get("resources", []):
        p = os.path.normpath(os.path.join(directory, r))
        docs.extend(render(p) if os.path.isdir(p) else load_docs(p))

    for gen in k.get("configMapGenerator", []):
        if set(gen) - {"name", "files", "behavior"}:
            raise Unsupported(f"{directory}: configMapGenerator fields outside the subset: {sorted(gen)}")
        data = {}
        for f in gen.get("files", []):
            name, _, src = f.partition("=") if "=" in f else (os.path.basename(f), "", f)
            with open(os.path.join(directory, src)) as fh:
                data[name] = fh.read()
        behavior = gen.get("behavior", "create")
        existing = [d for d in docs if d.get("kind") == "ConfigMap"
                    and d["metadata"]["name"] == gen["name"]]
        if behavior == "create":
            if existing:
                raise Unsupported(f"{directory}: ConfigMap {gen['name']} already exists")
            cm = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": gen["name"]}, "data": data}
            if opts.get("labels"):
                cm["metadata"]["labels"] = dict(opts["labels"])
            docs.append(cm)
        elif behavior in ("merge", "replace"):
            if len(existing) != 1:
                raise Unsupported(f"{directory}: {behavior} needs exactly one ConfigMap {gen['name']}")
            cm = existing[0]
            cm["data"] = {**cm.get("data", {}), **data} if behavior == "merge" else data
            if opts.get("labels"):
                cm["metadata"].setdefault("labels", {}).update(opts["labels"])
        else:
            raise Unsupported(f"{directory}: behavior {behavior!r}")

    ns = k.get("namespace")
    if ns:
        for d in docs:
            if d.get("kind") not in CLUSTER_SCOPED:
                d.setdefault("metadata", {})["namespace"] = ns
    return docs


def by_key(docs):
    return {json.dumps(key(d)): d for d in docs}


def kubectl_verdict(directory, docs):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return "absent"
    out = subprocess.run([kubectl, "kustomize", directory], capture_output=True, text=True)
    if out.returncode != 0:
        return f"kubectl kustomize failed: {out.stderr.strip()}"
    theirs = by_key([d for d in yaml.safe_load_all(out.stdout) if d is not None])
    ours = by_key(docs)
    if theirs == ours:
        return "agrees"
    diff = [k for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
    return f"differs on {diff}"


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "load":
        json.dump([d for f in sys.argv[2:] for d in load_docs(f)], sys.stdout)
        return
    if len(sys.argv) != 3 or sys.argv[1] not in ("render", "yaml"):
        sys.exit(__doc__)
    directory = sys.argv[2]
    try:
        docs = render(directory)
    except Unsupported as e:
        sys.exit(f"kustomize_lite: {e}")
    if sys.argv[1] == "yaml":
        yaml.safe_dump_all(docs, sys.stdout, sort_keys=False, default_flow_style=False)
    else:
        json.dump({"docs": docs, "kubectl": kubectl_verdict(directory, docs)}, sys.stdout)


if __name__ == "__main__":
    main()

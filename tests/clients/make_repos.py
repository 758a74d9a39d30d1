#!/usr/bin/env python3
"""Lays out, in DIR, what tests/integration/clients.rs serves with `python3 -m http.server`:

  simple/waypost-probe/index.html + files/waypost_probe-1.0-py3-none-any.whl
      a PEP 503 "simple" index with one tiny wheel (pip install --index-url BASE/simple/)
  npm/waypost-probe + npm/waypost-probe-1.0.0.tgz
      an npm registry document and its tarball (npm install --registry BASE/npm/)
  ws.html
      a page whose script opens a WebSocket to WS_URL, sends a message and writes the echo
      into the page (headless chromium dumps the DOM)

  make_repos.py DIR BASE_URL WS_URL
"""
import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import zipfile

out, base, ws_url = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]

# --- the wheel ---
name, version = "waypost_probe", "1.0"
files = {
    f"{name}/__init__.py": b"GREETING = 'installed through waypost'\n",
    f"{name}-{version}.dist-info/METADATA":
        b"Metadata-Version: 2.1\nName: waypost-probe\nVersion: 1.0\n",
    f"{name}-{version}.dist-info/WHEEL":
        b"Wheel-Version: 1.0\nGenerator: waypost-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for path, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{path},sha256={digest},{len(data)}")
record.append(f"{name}-{version}.dist-info/RECORD,,")
files[f"{name}-{version}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
wheel = f"{name}-{version}-py3-none-any.whl"
os.makedirs(f"{out}/files", exist_ok=True)
with zipfile.ZipFile(f"{out}/files/{wheel}", "w") as z:
    for path, data in files.items():
        z.writestr(path, data)
sha = hashlib.sha256(open(f"{out}/files/{wheel}", "rb").read()).hexdigest()
os.makedirs(f"{out}/simple/waypost-probe", exist_ok=True)
with open(f"{out}/simple/waypost-probe/index.html", "w") as f:
    f.write(f'<html><body><a href="../../files/{wheel}#sha256={sha}">{wheel}</a></body></html>\n')

# --- the npm package ---
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as t:
    for path, data in {
        "package/package.json": json.dumps({"name": "waypost-probe", "version": "1.0.0",
                                            "main": "index.js"}).encode(),
        "package/index.js": b"module.exports = 'installed through waypost';\n",
    }.items():
        info = tarfile.TarInfo(path)
        info.size = len(data)
        info.mode = 0o644
        t.addfile(info, io.BytesIO(data))
tgz = buf.getvalue()
os.makedirs(f"{out}/npm", exist_ok=True)
open(f"{out}/npm/waypost-probe-1.0.0.tgz", "wb").write(tgz)
doc = {
    "name": "waypost-probe",
    "dist-tags": {"latest": "1.0.0"},
    "versions": {"1.0.0": {
        "name": "waypost-probe", "version": "1.0.0", "main": "index.js",
        "dist": {
            "tarball": f"{base}/npm/waypost-probe-1.0.0.tgz",
            "shasum": hashlib.sha1(tgz).hexdigest(),
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode(),
        },
    }},
}
open(f"{out}/npm/waypost-probe", "w").write(json.dumps(doc))

# --- the WebSocket page ---
# The image from the origin's /slow/ endpoint holds the page's load event (and headless
# Chromium's virtual time, which does not wait for WebSockets) for 3 s of real time, in
# which the echo arrives; it loads through the proxy too.
slow = ws_url.replace("ws://", "http://", 1).rsplit("/", 1)[0] + "/slow/3000"
open(f"{out}/ws.html", "w").write(f"""<!doctype html><html><body><p id="r">pending</p>
<img src={json.dumps(slow)} alt=""><script>
const ws = new WebSocket({json.dumps(ws_url)});
ws.onopen = () => ws.send("ping through waypost");
ws.onmessage = (e) => {{ document.getElementById("r").textContent = "echo:" + e.data; }};
ws.onerror = () => {{ document.getElementById("r").textContent = "ws-error"; }};
</script></body></html>
""")

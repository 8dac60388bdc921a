#!/usr/bin/env python3
"""copytraderd --check-config: the commented example config (with secret files made for it) is
valid and exits 0; a broken copy exits 1 and names file, line and key for every problem, without
starting anything or printing a secret."""

import argparse
import os
import re
import subprocess
import sys
import tempfile


def run(exe, path):
    return subprocess.run([exe, "--check-config", path], capture_output=True, text=True, timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    a = ap.parse_args()
    exe = os.path.join(a.build_dir, "daemon", "copytraderd")
    example = os.path.join(a.source_dir, "config", "copytrader.example.yaml")
    text = open(example).read()
    secrets = re.findall(r"^\s*secret_file:\s*(\S+)", text, re.M)
    if not secrets:
        print("FAIL: the example config names no secret files")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "copytrader.yaml")
        with open(cfg, "w") as f:
            f.write(text)
        for s in secrets:
            p = os.path.join(tmp, s)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, b"api_key: AKIAEXAMPLEKEY\napi_secret: TOPSECRETVALUE123\n")
            os.close(fd)
        env_free = dict(os.environ)
        env_free.pop("CREDENTIALS_DIRECTORY", None)
        r = run(exe, cfg)
        if r.returncode != 0 or "is ok" not in r.stdout:
            print(f"FAIL: example config rejected (rc {r.returncode}):\n{r.stdout}{r.stderr}")
            return 1

        # Break it three ways: a wrong type, an unknown key, a bad reference.
        lines = text.splitlines()
        broken = []
        want = []
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)multiplier:\s*\S+", line)
            if m and not any("multiplier" in w for w in want):
                broken.append(f"{m.group(1)}multiplier: lots")
                want.append((i + 1, "multiplier"))
                continue
            m = re.match(r"^(\s*)leader:\s*\S+", line)
            if m and not any("leader" in w for w in want):
                broken.append(f"{m.group(1)}leader: nobody-here")
                want.append((i + 1, "leader"))
                continue
            broken.append(line)
        broken.append("surprise: 1")
        want.append((len(broken), "surprise"))
        with open(cfg, "w") as f:
            f.write("\n".join(broken) + "\n")
        r = run(exe, cfg)
        out = r.stdout + r.stderr
        if r.returncode == 0:
            print(f"FAIL: broken config accepted:\n{out}")
            return 1
        for line_no, key in want:
            if not re.search(rf"{re.escape(cfg)}:{line_no}:\d+: \S*{key}\S*: ", out):
                print(f"FAIL: no error naming {cfg}:{line_no} and key {key}:\n{out}")
                return 1
        if "TOPSECRETVALUE123" in out or "AKIAEXAMPLEKEY" in out:
            print("FAIL: a secret appeared in the output")
            return 1
    print("ok: example config valid; 3 errors each named by file, line and key")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""copytraderd --check-config: the commented example config and its example trader file
(traders.d/alice.yaml, with secret files made for both) are valid and exit 0; a broken copy of
either exits 1 and names file, line and key for every problem, without starting anything or
printing a secret; a configured traders_dir that does not exist is an error naming it."""

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
    trader_example = os.path.join(a.source_dir, "config", "traders.d", "alice.yaml")
    trader_text = open(trader_example).read()
    if not re.findall(r"^\s*secret_file:\s*(\S+)", text, re.M):
        print("FAIL: the example config names no secret files")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "copytrader.yaml")
        tdir = os.path.join(tmp, "traders.d")
        alice = os.path.join(tdir, "alice.yaml")
        os.makedirs(tdir)
        with open(cfg, "w") as f:
            f.write(text)
        with open(alice, "w") as f:
            f.write(trader_text)
        # Relative secret files sit next to the file that names them.
        for base, body in ((tmp, text), (tdir, trader_text)):
            for s in re.findall(r"^\s*secret_file:\s*(\S+)", body, re.M):
                p = os.path.join(base, s)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
                os.write(fd, b"api_key: AKIAEXAMPLEKEY\napi_secret: TOPSECRETVALUE123\n")
                os.close(fd)
        os.environ.pop("CREDENTIALS_DIRECTORY", None)
        r = run(exe, cfg)
        if r.returncode != 0 or "is ok" not in r.stdout or "1 trader files" not in r.stdout:
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

        # The main file restored, the trader file broken: a wrong type and a bad reference in
        # alice.yaml, and a second trader file reusing alice's rule id. Files that are not *.yaml
        # (or start with a dot) are not read, whatever they hold.
        with open(cfg, "w") as f:
            f.write(text)
        tlines = trader_text.splitlines()
        want = []
        for i, line in enumerate(tlines):
            m = re.match(r"^(\s*)multiplier:\s*\S+", line)
            if m:
                tlines[i] = f"{m.group(1)}multiplier: lots"
                want.append((alice, i + 1, "multiplier"))
            m = re.match(r"^(\s*)leader:\s*\S+", line)
            if m:
                tlines[i] = f"{m.group(1)}leader: nobody-here"
                want.append((alice, i + 1, "leader"))
        if len(want) != 2:
            print("FAIL: traders.d/alice.yaml has no multiplier or leader line to break")
            return 1
        with open(alice, "w") as f:
            f.write("\n".join(tlines) + "\n")
        rid = re.search(r"^\s*id:\s*(\S+)", trader_text, re.M).group(1)
        bob = os.path.join(tdir, "bob.yaml")
        with open(bob, "w") as f:
            f.write("copy_rules:\n"
                    f"  - id: {rid}\n"
                    "    leader: leader-main\n"
                    "    follower: follower-1\n"
                    "    sizing: multiplier\n"
                    "    multiplier: 1\n")
        want.append((bob, 2, "id"))
        for junk in ("notes.txt", ".alice.yaml.swp", "old.yml", "alice.yaml~"):
            with open(os.path.join(tdir, junk), "w") as f:
                f.write("daemon: [\n")
        r = run(exe, cfg)
        out = r.stdout + r.stderr
        if r.returncode != 1 or "is invalid" not in out:
            print(f"FAIL: broken trader file accepted (rc {r.returncode}):\n{out}")
            return 1
        for path, line_no, key in want:
            if not re.search(rf"^{re.escape(path)}:{line_no}:\d+: \S*{key}\S*: ", out, re.M):
                print(f"FAIL: no error naming {path}:{line_no} and key {key}:\n{out}")
                return 1
        if f"first defined at {alice}:" not in out:
            print(f"FAIL: the duplicate rule id error does not name the first file:\n{out}")
            return 1
        if re.search(r"notes\.txt|\.swp|old\.yml|yaml~", out):
            print(f"FAIL: a file that is not a trader file was read:\n{out}")
            return 1
        if "TOPSECRETVALUE123" in out or "AKIAEXAMPLEKEY" in out:
            print("FAIL: a secret appeared in the output")
            return 1

        # A configured traders_dir that does not exist: an error at that key of the main file.
        os.remove(bob)
        with open(alice, "w") as f:
            f.write(trader_text)
        lines = text.splitlines()
        at = next((i for i, l in enumerate(lines) if re.match(r"^\s*#\s*traders_dir:", l)), None)
        if at is None:
            print("FAIL: the example config does not mention traders_dir")
            return 1
        lines[at] = "  traders_dir: nowhere.d"
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = run(exe, cfg)
        out = r.stdout + r.stderr
        missing = os.path.join(tmp, "nowhere.d")
        if r.returncode != 1 or not re.search(
                rf"^{re.escape(cfg)}:{at + 1}:\d+: daemon\.traders_dir: .*\"{re.escape(missing)}\"", out, re.M):
            print(f"FAIL: a missing traders_dir was not reported at {cfg}:{at + 1} (rc {r.returncode}):\n{out}")
            return 1
    print("ok: example config and trader file valid; errors in the main file, in trader files and for "
          "a missing traders_dir each named by file, line and key")
    return 0


if __name__ == "__main__":
    sys.exit(main())

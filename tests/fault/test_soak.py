#!/usr/bin/env python3
"""The CI soak: tests/fault/soak.py for 2 minutes (with-services), a fault every 5 s on average so
that every fault kind comes up once. The seed is fixed (CT_SOAK_SEED overrides it) and printed with
every fault, so a failure replays with scripts/soak --minutes 2 --seed N --fault-every 5."""

import argparse
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    seed = os.environ.get("CT_SOAK_SEED", "20261122")
    soak = os.path.join(os.path.dirname(os.path.abspath(__file__)), "soak.py")
    return subprocess.run([sys.executable, soak, "--build-dir", args.build_dir, "--source-dir", args.source_dir,
                           "--minutes", "2", "--seed", seed, "--rate", "4", "--fault-every", "5"]).returncode


if __name__ == "__main__":
    sys.exit(main())

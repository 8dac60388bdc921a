#!/usr/bin/env python3
"""A leader fill's journal write commits in PostgreSQL but its answer never arrives (no spool):
the follower orders must still go out, once (DESIGN.md invariants 2 and 3; sql/011).

Without a spool the daemon writes each fill straight to PostgreSQL (journal_durability fsync) and
sends nothing until the commit is confirmed. Here the daemon reaches PostgreSQL through a TCP proxy
of the test's that, for one leader fill, forwards the daemon's bytes but drops every byte coming
back. The transaction commits; the daemon's statement deadline (10 s) resets the connection; the
fill, held in memory, is written again on the next connection and finds itself already there. The
journal must recognise its own committed attempt (the attempt token) and report its intents as
new, so they are sent now, and exactly once; before sql/011 they stayed 'intent' until a restart.

Asserted:
  - the scenario happened: the fill's row was in PostgreSQL (read directly, not through the proxy)
    while the daemon had sent no follower order for it, the proxy dropped answer bytes, and the
    daemon logged the lost write and its resubmission;
  - every follower order of every leader fill reached the simulator once, and the journal agrees
    (harness.check_exactly_once), with no fill dropped by the copier.
The shared PostgreSQL of with-services, in a fresh database; the proxy listens on 127.0.0.1 and
forwards to the server's unix socket."""

import argparse
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from harness import (BTC_SYMBOL, Daemon, Sim, TestFailure, check_exactly_once, cleanup, daemon_config,  # noqa: E402
                     fetch_metrics, free_port, fresh_database, make_accounts, metric, multiplier_rules, psql,
                     require_env, stop_clean, wait_for, wait_http_ok)

LEADER = "plr-lead"
FOLLOWERS = ["plr-f1", "plr-f2"]


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def unix_socket_of(conninfo):
    """The server's unix socket path from a libpq conninfo with host=<dir> port=<n>."""
    kv = dict(p.split("=", 1) for p in conninfo.split() if "=" in p)
    return os.path.join(kv["host"], f".s.PGSQL.{kv.get('port', '5432')}"), kv


class Proxy(threading.Thread):
    """TCP 127.0.0.1:port -> the server's unix socket. drop_replies: bytes from the server are read
    and thrown away (counted in dropped)."""

    def __init__(self, upstream):
        super().__init__(daemon=True)
        self.upstream, self.drop_replies, self.dropped = upstream, False, 0
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.halt = False

    def run(self):
        while not self.halt:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                u.connect(self.upstream)
            except OSError:
                c.close()
                continue
            threading.Thread(target=self.pump, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self.pump, args=(u, c, True), daemon=True).start()

    def pump(self, src, dst, reply):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                if reply and self.drop_replies:
                    self.dropped += len(b)
                    continue
                dst.sendall(b)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def stop(self):
        self.halt = True
        self.ls.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    pg, redis, tmp = require_env("CT_TEST_PG"), require_env("CT_TEST_REDIS"), require_env("CT_TEST_TMP")
    work = os.path.join(tmp, "pg_lost_reply")
    secrets = os.path.join(work, "secrets")
    os.makedirs(secrets, exist_ok=True)
    accounts = make_accounts(secrets, [LEADER, *FOLLOWERS], "0123456789", "9876543210", balance="10000000")
    direct = fresh_database(pg, "lostreply")
    path, kv = unix_socket_of(direct)
    proxy = Proxy(path)
    proxy.start()
    via_proxy = f"host=127.0.0.1 port={proxy.port} dbname={kv['dbname']} user={kv.get('user', 'copytrader')}"
    os.environ.pop("STATE_DIRECTORY", None)  # no spool: the write goes to PostgreSQL alone

    sim = daemon = None
    fills = {LEADER: []}
    try:
        sim = Sim(args.build_dir, work, accounts, [BTC_SYMBOL])
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cfg = daemon_config(port, via_proxy, redis, sim, [LEADER, *FOLLOWERS], multiplier_rules(LEADER, FOLLOWERS),
                            daemon_extra="  journal_durability: fsync\n")
        daemon = Daemon(args.build_dir, work, cfg)
        wait_http_ok("daemon ready", base, timeout=40)

        def trade(side):
            sim.leader_order(LEADER, "BTCUSDT", side, "0.002")
            fills[LEADER].append(("BTCUSDT", side, "0.002"))

        def copied(n):
            return all(len(sim.orders(f)) >= n for f in FOLLOWERS)

        trade("BUY")
        wait_for("the first fill copied", lambda: copied(1), timeout=20, interval=0.05)

        # The second fill: committed, its answer dropped.
        proxy.drop_replies = True
        trade("BUY")
        wait_for("the second fill committed in PostgreSQL",
                 lambda: psql(direct, "select count(*) from leader_fills")[0][0] == "2", timeout=20, interval=0.05)
        committed_intents = psql(direct, "select count(*) from follower_orders where status = 'intent'")[0][0]
        check(committed_intents == str(len(FOLLOWERS)),
              f"{committed_intents} intents committed for the second fill, want {len(FOLLOWERS)}")
        check(all(len(sim.orders(f)) == 1 for f in FOLLOWERS),
              "a follower order for the second fill left before its commit was confirmed")
        time.sleep(0.3)  # whatever PostgreSQL answers to the commit arrives, and is dropped
        check(proxy.dropped > 0, "the proxy dropped no answer bytes")
        proxy.drop_replies = False  # the next connection works (the stuck one is reset by the deadline)

        wait_for("the second fill copied after the journal's reconnect", lambda: copied(2), timeout=40,
                 interval=0.1)
        trade("SELL")
        wait_for("the third fill copied", lambda: copied(3), timeout=20, interval=0.05)

        log = open(daemon.p.log_path).read()
        check("journal connection lost mid-write" in log, "the daemon never saw its write lost")
        check("resubmitting" in log, "the daemon never resubmitted the fill")
        check_exactly_once(direct, sim, [(f"{f}-r", LEADER, f, 1) for f in FOLLOWERS], fills)
        m = fetch_metrics(base)
        # The journal counts the lost write as failed (ct_journal_fill_failures_total 1); the copier
        # dropped no fill.
        check(metric(m, "ct_journal_fill_failures_total") == 1,
              f"ct_journal_fill_failures_total = {metric(m, 'ct_journal_fill_failures_total')}, want 1")
        check(metric(m, "ct_copy_journal_failures_total") == 0,
              f"ct_copy_journal_failures_total = {metric(m, 'ct_copy_journal_failures_total')}")
        stop_clean(daemon)
        daemon = None
        print(f"ok test_pg_lost_reply: the fill whose commit answer was lost ({proxy.dropped} bytes dropped) "
              f"was copied once after the reconnect; {len(fills[LEADER])} leader fills x {len(FOLLOWERS)} "
              "followers exactly once")
    except Exception:
        if daemon:
            print("--- daemon log tail:\n" + daemon.p.tail(60), file=sys.stderr)
        if sim:
            print("--- exsim log tail:\n" + sim.p.tail(15), file=sys.stderr)
        raise
    finally:
        cleanup(lambda: daemon and daemon.p.alive() and daemon.p.stop(timeout=5), lambda: sim and sim.stop(),
                proxy.stop)


if __name__ == "__main__":
    try:
        main()
    except TestFailure as e:
        print(f"FAIL test_pg_lost_reply: {e}", file=sys.stderr)
        sys.exit(1)

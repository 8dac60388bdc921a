"""Raw clients for copytrader-exsim's smoke tests (sim_smoke.py, sim_bybit_smoke.py,
sim_faults_smoke.py, sim_bybit_faults_smoke.py; Python 3 standard library only): checks that fail
with Fail, a keep-alive HTTP connection, a minimal websocket client, and the simulator as a
process that must exit cleanly with no error in its log."""
import base64
import hashlib
import http.client
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def wait_for(pred, what, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise Fail(f"timed out waiting for {what}")


class Http:
    """One keep-alive connection; call() returns (status, JSON body or None) and keeps the
    answer's headers in self.headers (lower-case names)."""

    def __init__(self, hostport):
        self.hostport = hostport
        host, port = hostport.split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        self.headers = {}

    def call(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        data = r.read()
        self.headers = {k.lower(): v for k, v in r.getheaders()}
        return r.status, json.loads(data) if data else None


class Ws:
    """Minimal websocket client: handshake, masked text frames and pings out, server frames in."""

    def __init__(self, hostport, path):
        host, port = hostport.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.sock.recv(4096)
            check(d, "websocket handshake: connection closed")
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status_line = head.split(b"\r\n")[0].decode()
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.accepted = self.status_line.startswith("HTTP/1.1 101") and want in head

    def send(self, obj):
        """obj as JSON in one masked text frame."""
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def ping(self, payload=b"hi"):
        """A masked websocket ping."""
        mask = os.urandom(4)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x89, 0x80 | len(payload)]) + mask + data)

    def frame(self, timeout=5.0):
        """(opcode, payload bytes) of the next frame, ("EOF", b"") when the server closed the
        connection, or None on timeout."""
        deadline = time.time() + timeout
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                n, off = b1 & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    n, off = struct.unpack(">H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
                if (b1 & 0x7F) < 126 or off > 2:
                    check(not (b1 & 0x80), "server frames must not be masked")
                    if len(self.buf) >= off + n:
                        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
                        return b0 & 0x0F, payload
            left = deadline - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                d = self.sock.recv(65536)
                if not d:
                    return ("EOF", b"")
                self.buf += d

    def text(self, timeout=5.0):
        """Next text frame's payload (pings skipped)."""
        while True:
            f = self.frame(timeout)
            check(f is not None, "timed out waiting for a websocket message")
            if f[0] == 9:  # ping
                continue
            check(f[0] == 1, f"expected a text frame, got opcode {f[0]}")
            return f[1]

    def msg(self, timeout=5.0):
        """Next text frame, parsed as JSON (pings skipped)."""
        return json.loads(self.text(timeout))

    def topic(self, name, timeout=5.0):
        """Next message of a topic (other topics are skipped)."""
        while True:
            m = self.msg(timeout)
            if m.get("topic") == name:
                return m


class SimProcess:
    """copytrader-exsim started with the config cfg (a dict): self.rest is the REST host:port of
    its READY line, self.adm an http_cls connection to its admin interface. close()
    stops it: it must exit 0 with no error in its log."""

    def __init__(self, binary, cfg, http_cls=Http):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(cfg, f)
            self.cfg = f.name
        # stderr to a file: a pipe nobody reads could fill and stall the simulator.
        self.err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([binary, "--config", self.cfg], stdout=subprocess.PIPE, stderr=self.err,
                                     text=True)
        line = self.proc.stdout.readline()
        check(line.startswith("READY rest=127.0.0.1:"), f"READY line: {line!r}")
        self.rest = line.split()[1].split("=")[1]
        self.adm = http_cls(line.split()[2].split("=")[1])

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = -9
        else:
            rc = self.proc.returncode
        self.err.seek(0)
        err = self.err.read()
        if "ERROR" in err or "AddressSanitizer" in err or "runtime error" in err:
            print(err, file=sys.stderr)
            raise Fail("the simulator logged errors (above)")
        os.unlink(self.cfg)
        check(rc == 0, f"simulator exit code {rc}")


def reap(proc, cfg):
    """After a smoke test's simulator proc (stderr a pipe): kills it if it still runs, prints its
    log if that holds an error or a sanitizer report, and removes its config file cfg."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    err = proc.stderr.read()
    if "ERROR" in err or "AddressSanitizer" in err or "runtime error" in err:
        print(err, file=sys.stderr)
    os.unlink(cfg)

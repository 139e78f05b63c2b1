#!/usr/bin/env python3
"""How fast honest requests are answered while slow or idle clients hold connections.

Starts `meetwire serve` as `ulimit -n 1024` would, opens 5,000 connections that either never
finish their headers (`headers`) or send one request and then sit idle (`idle`), and times 20
`GET /healthz` on fresh connections right after the burst (50 ms apart), then counts how many
attacking connections the server still holds after the header or idle timeout.

    cargo build --release
    python3 bench/slow_clients.py ./target/release/meetwire headers
    python3 bench/slow_clients.py ./target/release/meetwire idle

Loopback only; the test process raises its own open-files limit. Standard library only.
"""
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ATTACKERS = 5000
TIMEOUT_S = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(port):
    started = time.perf_counter()
    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
    return (time.perf_counter() - started) * 1000


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("headers", "idle"):
        raise SystemExit(__doc__)
    binary, mode = sys.argv[1], sys.argv[2]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20000), hard))
    data_dir = tempfile.mkdtemp(prefix="meetwire-slow-clients-")
    subprocess.run([binary, "admin", "create-project", "--name", "bench", "--json",
                    "--data-dir", data_dir], capture_output=True, check=True)
    port = free_port()
    server = subprocess.Popen(
        ["sh", "-c", 'ulimit -n 1024 && exec "$0" "$@"', binary, "serve", "--data-dir", data_dir,
         "--listen", f"127.0.0.1:{port}", "--header-read-timeout", str(TIMEOUT_S),
         "--idle-timeout", str(TIMEOUT_S)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                probe(port)
                break
            except OSError:
                time.sleep(0.1)
        request = b"POST /api/v1/bots HTTP/1.1\r\nHost: x\r\n" if mode == "headers" \
            else b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        attackers = []
        started = time.perf_counter()
        for _ in range(ATTACKERS):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            attackers.append(s)
        time.sleep(0.05)
        for s in attackers:
            try:
                s.send(request)
            except OSError:
                pass
        print(f"{mode}: {ATTACKERS} connections opened in {(time.perf_counter() - started) * 1000:.0f} ms")
        took = []
        for _ in range(20):
            took.append(probe(port))
            time.sleep(0.05)
        print("  /healthz right after the burst, ms:", " ".join(f"{t:.1f}" for t in took))
        time.sleep(TIMEOUT_S + 1.5)
        held = 0
        for s in attackers:
            s.setblocking(False)
            try:
                data = s.recv(4096)
                while data and mode == "idle" and data.startswith(b"HTTP/1.1 200"):
                    data = s.recv(4096)
                if data:
                    held += 1
            except BlockingIOError:
                held += 1
            except OSError:
                pass
        print(f"  still open {TIMEOUT_S + 1.5:.1f} s later (timeout {TIMEOUT_S} s): {held}")
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", data_dir], check=False)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""How fast the UI's heaviest pages answer on a large database.

Builds a data directory with a project of 1,000,000 deliveries, 100,000 of them for one bot
(each with its attempt), starts `meetwire serve` on it, signs in like a browser and times the
bot's Webhooks tab (first page), the dashboard and the project's Deliveries page: each asked
for 30 times in a row, reported as min / median / p90 / max in milliseconds, measured from
the client on loopback (whole request and answer).

    cargo build --release
    python3 bench/ui_speed.py ./target/release/meetwire

The deliveries are written with Python's sqlite3 while the server is stopped (making a million
through the API would take many minutes and measure something else); the server reads them as
its own. Standard library only.
"""
import http.cookiejar
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

TOTAL = 1_000_000
FOR_ONE_BOT = 100_000
REPEAT = 30
EMAIL = "bench@example.com"
PASSWORD = "correct horse battery staple"


def run(binary, *args, stdin=None):
    out = subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, data_dir):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [binary, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{self.port}",
             "--sandbox-runner", "false"],
            stdout=subprocess.DEVNULL, env={**os.environ, "MEETWIRE_LOG": "warn"})
        for _ in range(300):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the server did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def api(server, key, method, path, body=None):
    request = urllib.request.Request(
        server.base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Token {key}", "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))


def seed(db_path, project, subscription, busy_bot, other_bot):
    db = sqlite3.connect(db_path)
    now = int(time.time() * 1e6)
    body = json.dumps({"bot_id": busy_bot, "data": {"message": "x" * 150}, "trigger": "bot_logs.update"})

    def rows():
        for i in range(TOTAL):
            bot = busy_bot if i % (TOTAL // FOR_ONE_BOT) == 0 else other_bot
            created = now - (TOTAL - i) * 3_000
            yield (str(uuid.uuid4()), project, subscription, bot, 9, body, "success", 1, 1, 4,
                   created, created + 20_000, created + 20_000, 200)

    with db:
        db.executemany(
            "INSERT INTO deliveries (idempotency_key, project_id, subscription_id, bot_id, "
            "trigger, body, status, attempts, total_attempts, max_attempts, created_at, "
            "last_attempt_at, succeeded_at, last_status_code) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
        db.execute(
            "INSERT INTO delivery_attempts (delivery_seq, attempted_at, duration_ms, "
            "status_code, response_body) SELECT seq, last_attempt_at, 20, 200, 'ok' "
            "FROM deliveries")
        minute = now // 60_000_000
        db.executemany(
            "INSERT OR REPLACE INTO delivery_minutes (project_id, minute, successes, retries, "
            "failures, latency) VALUES (?, ?, ?, 0, 0, ?)",
            [(project, minute - m, 20_000, ",".join(["0"] * 5 + ["20000"] + ["0"] * 18))
             for m in range(60)])
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def sign_in(server):
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(server.base + "/login").read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf": csrf, "email": EMAIL, "password": PASSWORD}).encode()
    opener.open(server.base + "/login", data=form).read()
    return opener


def timed(opener, url):
    took = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        answer = opener.open(url)
        answer.read()
        took.append((time.perf_counter() - started) * 1000)
        if answer.status != 200:
            raise SystemExit(f"{url}: {answer.status}")
    took.sort()
    return (took[0], statistics.median(took), took[int(len(took) * 0.9)], took[-1])


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    data_dir = tempfile.mkdtemp(prefix="meetwire-ui-speed-")
    created = run(binary, "admin", "create-project", "--name", "bench", "--json", "--data-dir", data_dir)
    project, key = created["project_id"], created["api_key"]
    run(binary, "admin", "create-user", "--email", EMAIL, "--project", project,
        "--password-stdin", "--json", "--data-dir", data_dir, stdin=PASSWORD + "\n")
    server = Server(binary, data_dir)
    subscription = api(server, key, "POST", "/api/v1/webhooks",
                       {"url": "https://example.com/hook", "triggers": ["bot_logs.update"]})["id"]
    busy = api(server, key, "POST", "/api/v1/bots", {"meeting_url": "https://zoom.us/j/1"})["id"]
    other = api(server, key, "POST", "/api/v1/bots", {"meeting_url": "https://zoom.us/j/2"})["id"]
    server.stop()
    started = time.time()
    seed(os.path.join(data_dir, "meetwire.sqlite3"), project, subscription, busy, other)
    print(f"seeded {TOTAL} deliveries ({FOR_ONE_BOT} for bot {busy}) in {time.time() - started:.0f} s")
    server = Server(binary, data_dir)
    try:
        opener = sign_in(server)
        pages = {
            "bot Webhooks tab, first page": f"/projects/{project}/bots/{busy}?tab=webhooks",
            "dashboard": f"/projects/{project}/dashboard",
            "deliveries, first page": f"/projects/{project}/deliveries",
        }
        for name, path in pages.items():
            timed(opener, server.base + path)  # warm the cache once
            low, median, p90, high = timed(opener, server.base + path)
            print(f"{name:32} min {low:6.1f}  median {median:6.1f}  p90 {p90:6.1f}  max {high:6.1f} ms")
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", data_dir], check=False)


if __name__ == "__main__":
    main()

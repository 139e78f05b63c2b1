//! `meetwire bench`: the end-to-end benchmark anyone can run. It starts the real server as a
//! child process on a fresh SQLite data dir (every acknowledged event fsynced), a fast
//! loopback receiver and a load generator in this process, and measures what users feel:
//! events acknowledged per second, deliveries per second end to end, event→receipt latency,
//! and the server's peak memory.
//!
//! Each event is a chat message posted by a runner with its sequence number in the text, so
//! the receiver can match every receipt to the moment its event was sent.
//!
//! Targets are ratios measured within one run, so they hold on fast and slow days of a shared
//! machine alike: `loopback` measures a bare HTTP hop with the same generator (the ceiling),
//! `ingest` what taking events costs with no webhook, `throughput` the same with one webhook
//! per event (shown as a share of the hop when `loopback` ran first), and `growth` whether the
//! rate holds as the database grows and what each delivered event costs on disk.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Scenarios to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "throughput,batched,latency,failures,isolation"
    )]
    pub scenarios: Vec<Scenario>,
    /// Events sent in the throughput, batched, failures, ingest, loopback and growth scenarios.
    #[arg(long, default_value_t = 30_000)]
    pub events: usize,
    /// HTTP connections of the load generator (the latency and isolation scenarios spread their
    /// paced events over them).
    #[arg(long, alias = "connections", default_value_t = 64)]
    pub concurrency: usize,
    /// Bots the events are spread over (each is one ordered stream).
    #[arg(long, default_value_t = 64)]
    pub bots: usize,
    /// Events per second in the latency scenario.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds the latency and isolation scenarios last.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Pending deliveries to build up in the backlog scenario.
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog: usize,
    /// Deliver each bot's events in order (the server's default); `false` measures without.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub ordering: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// One event per request, as fast as the generator goes.
    Throughput,
    /// Runner batches of 100 events per request.
    Batched,
    /// A fixed event rate: latency percentiles from event to receipt.
    Latency,
    /// 10 % of attempts fail and are retried.
    Failures,
    /// One endpoint hangs until the timeout on every request beside a healthy one.
    Isolation,
    /// Memory with a large backlog of pending deliveries.
    Backlog,
    /// One event per request with no webhook subscribed: what ingest alone costs.
    Ingest,
    /// A bare HTTP hop on loopback (a server that only answers 200), with the same generator
    /// and connections: the ceiling the throughput scenario is read against.
    Loopback,
    /// `--events` delivered one per request: the rate in each fifth of the run and the bytes
    /// on disk per delivered event, to show whether the rate holds as the database grows.
    Growth,
    /// `--events` delivered, then the server restarted with a retention that has them all
    /// expired: latency at `--rate` while the cleanup of those deliveries runs.
    Retention,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, BenchError>;

fn setup_err(what: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(what.to_string())
}

pub async fn run(args: BenchArgs) -> Result<()> {
    println!(
        "meetwire bench: {} cores; server = this binary on a fresh SQLite dir (WAL, synchronous=FULL); ordering {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if args.ordering { "on" } else { "off" }
    );
    let mut hop_rate = None;
    for scenario in &args.scenarios {
        let report = match scenario {
            Scenario::Throughput => throughput(&args, Load::single(), hop_rate).await?,
            Scenario::Batched => throughput(&args, Load::batched(), hop_rate).await?,
            Scenario::Failures => throughput(&args, Load::failing(), hop_rate).await?,
            Scenario::Ingest => throughput(&args, Load::unsubscribed(), hop_rate).await?,
            Scenario::Latency => latency(&args).await?,
            Scenario::Isolation => isolation(&args).await?,
            Scenario::Backlog => backlog(&args).await?,
            Scenario::Loopback => {
                let (rate, report) = loopback(&args).await?;
                hop_rate = Some(rate);
                report
            }
            Scenario::Growth => growth(&args).await?,
            Scenario::Retention => retention(&args).await?,
        };
        println!("\n## {scenario:?}\n{report}");
    }
    Ok(())
}

/// The server under test: this binary's `serve`, in its own process.
struct ServerProcess {
    child: Child,
    base: String,
    data_dir: tempfile::TempDir,
}

impl ServerProcess {
    async fn start(args: &BenchArgs, extra: &[&str]) -> Result<Self> {
        Self::start_in(tempfile::tempdir()?, args, extra).await
    }

    /// Stops the server (SIGKILL) and starts it again on the same data with `extra` flags.
    async fn restart(mut self, args: &BenchArgs, extra: &[&str]) -> Result<Self> {
        self.child.kill().await?;
        Self::start_in(self.data_dir, args, extra).await
    }

    async fn start_in(
        data_dir: tempfile::TempDir,
        args: &BenchArgs,
        extra: &[&str],
    ) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .args([
                "--allow-http-webhooks",
                "--allow-webhook-cidr",
                "127.0.0.0/8",
                "--sandbox-runner",
                "false",
                "--max-webhooks-per-project",
                "100",
                // The load generator reports records but no heartbeats.
                "--heartbeat-timeout",
                "86400",
            ])
            .args([
                "--webhook-ordering",
                if args.ordering { "true" } else { "false" },
            ])
            .args(extra)
            // MEETWIRE_BENCH_SERVER_LOG sets the server's log filter, for profiling.
            .env(
                "MEETWIRE_LOG",
                std::env::var("MEETWIRE_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| setup_err("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next_line()
                .await?
                .ok_or_else(|| setup_err("server exited before listening"))?;
            if let Some(url) = line.split("listening on ").nth(1) {
                break url.trim().to_owned();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(ServerProcess {
            child,
            base,
            data_dir,
        })
    }

    /// The server's peak resident memory (VmHWM), in MiB.
    fn peak_rss_mib(&self) -> Option<f64> {
        self.memory_mib("VmHWM:")
    }

    /// The server's current resident memory (VmRSS), in MiB.
    fn rss_mib(&self) -> Option<f64> {
        self.memory_mib("VmRSS:")
    }

    /// CPU time the server has used so far.
    fn cpu_time(&self) -> Option<Duration> {
        process_cpu_time(&self.child.id()?.to_string())
    }

    /// A memory figure of `/proc/PID/status` (given in KiB there), in MiB.
    fn memory_mib(&self, field: &str) -> Option<f64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    fn admin(&self, args: &[&str]) -> Result<Value> {
        let exe = std::env::current_exe()?;
        let out = std::process::Command::new(exe)
            .arg("admin")
            .args(args)
            .args(["--json", "--data-dir"])
            .arg(self.data_dir.path())
            .env("MEETWIRE_LOG", "warn")
            .output()?;
        if !out.status.success() {
            return Err(setup_err(String::from_utf8_lossy(&out.stderr)));
        }
        serde_json::from_slice(&out.stdout).map_err(setup_err)
    }
}

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Ok,
    /// Fails this share of attempts with a 500.
    Flaky(f64),
    /// Never answers (the sender times out).
    Hang,
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`; `pid` may be
/// `self` for the benchmark itself (load generator and receiver).
fn process_cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) — utime and stime are the
    // 14th and 15th fields of the line, in clock ticks (100 per second on Linux).
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Receipt times, indexed by event sequence number.
struct Receipts {
    start: Instant,
    first_seen_ns: Vec<AtomicU64>,
    delivered: AtomicUsize,
    attempts: AtomicUsize,
    /// Bytes of the first receipt of each event, summed.
    body_bytes: AtomicUsize,
    behaviour: Behaviour,
}

impl Receipts {
    fn new(start: Instant, events: usize, behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Receipts {
            start,
            first_seen_ns: (0..events).map(|_| AtomicU64::new(0)).collect(),
            delivered: AtomicUsize::new(0),
            attempts: AtomicUsize::new(0),
            body_bytes: AtomicUsize::new(0),
            behaviour,
        })
    }
}

/// The event number in a chat webhook's body (`"text":"n123"`).
fn event_number(body: &[u8]) -> Option<usize> {
    let marker = b"\"text\":\"n";
    let at = body.windows(marker.len()).position(|w| w == marker)? + marker.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

async fn receive(State(receipts): State<Arc<Receipts>>, body: Bytes) -> StatusCode {
    receipts.attempts.fetch_add(1, Ordering::Relaxed);
    match receipts.behaviour {
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::OK;
        }
        Behaviour::Flaky(share) if rand::thread_rng().gen::<f64>() < share => {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        _ => {}
    }
    let now = receipts.start.elapsed().as_nanos() as u64;
    if let Some(slot) = event_number(&body).and_then(|n| receipts.first_seen_ns.get(n)) {
        if slot
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            receipts.delivered.fetch_add(1, Ordering::Relaxed);
            receipts.body_bytes.fetch_add(body.len(), Ordering::Relaxed);
        }
    }
    StatusCode::OK
}

async fn start_receiver(receipts: Arc<Receipts>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(receipts);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// A project with webhooks to the receivers and claimed bots ready for chat messages.
struct Fixture {
    client: reqwest::Client,
    base: String,
    runner_token: String,
    bots: Vec<String>,
}

async fn fixture(server: &ServerProcess, receivers: &[SocketAddr], bots: usize) -> Result<Fixture> {
    let project = server.admin(&["create-project", "--name", "bench"])?;
    let api_key = project["api_key"]
        .as_str()
        .ok_or_else(|| setup_err("no api key"))?
        .to_owned();
    let runner = server.admin(&["create-runner-token", "--name", "bench"])?;
    let runner_token = runner["runner_token"]
        .as_str()
        .ok_or_else(|| setup_err("no runner token"))?
        .to_owned();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let user = format!("Token {api_key}");
    for addr in receivers {
        let body =
            json!({"url": format!("http://{addr}/hook"), "triggers": ["chat_messages.update"]});
        let resp = client
            .post(format!("{}/api/v1/webhooks", server.base))
            .header("Authorization", &user)
            .json(&body)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(setup_err(format!("webhook: {}", resp.text().await?)));
        }
    }
    let mut ids = Vec::with_capacity(bots);
    for i in 0..bots {
        let body = json!({"meeting_url": format!("https://meet.example.com/bench-{i}")});
        client
            .post(format!("{}/api/v1/bots", server.base))
            .header("Authorization", &user)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        let claimed: Value = client
            .post(format!("{}/runner/v1/bots/claim", server.base))
            .header("Authorization", format!("Token {runner_token}"))
            .send()
            .await?
            .json()
            .await?;
        let id = claimed["bot"]["id"]
            .as_str()
            .ok_or_else(|| setup_err(format!("claim: {claimed}")))?;
        ids.push(id.to_owned());
    }
    Ok(Fixture {
        client,
        base: server.base.clone(),
        runner_token,
        bots: ids,
    })
}

fn chat(n: usize) -> Value {
    json!({"kind": "chat_message", "id": format!("c{n}"), "to": "everyone", "text": format!("n{n}"),
           "timestamp_ms": 0, "sender_name": "Bench", "sender_uuid": "1"})
}

impl Fixture {
    /// A keep-alive connection of its own for one flood worker.
    async fn connection(&self) -> Result<LoadConnection> {
        let authority = self
            .base
            .strip_prefix("http://")
            .ok_or_else(|| setup_err(format!("not an http URL: {}", self.base)))?
            .trim_end_matches('/')
            .to_owned();
        let stream = tokio::net::TcpStream::connect(&authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(setup_err)?;
        tokio::spawn(connection);
        Ok(LoadConnection {
            sender,
            authority,
            authorization: format!("Token {}", self.runner_token),
        })
    }
}

/// The body of a runner post carrying events `first..first + count`.
fn records_body(first: usize, count: usize) -> Vec<u8> {
    let records: Vec<Value> = (first..first + count).map(chat).collect();
    json!({ "records": records }).to_string().into_bytes()
}

/// One HTTP/1.1 keep-alive connection of the flood generator. Requests go straight onto it
/// (no client pool, no per-request URL parsing), so the generator takes as little as it can
/// of the two cores the server is measured on.
struct LoadConnection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    authority: String,
    authorization: String,
}

impl LoadConnection {
    /// Posts events `first..first + count` for `bot` in one request.
    async fn post(&mut self, bot: &str, first: usize, count: usize) -> Result<()> {
        let request = hyper::Request::post(format!("/runner/v1/bots/{bot}/records"))
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::AUTHORIZATION, &self.authorization)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(records_body(first, count))))
            .map_err(setup_err)?;
        self.sender.ready().await.map_err(setup_err)?;
        let response = self.sender.send_request(request).await.map_err(setup_err)?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(setup_err)?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
            return Err(setup_err(format!("records: {status}: {text}")));
        }
        Ok(())
    }
}

/// Send and acknowledgement times of every event, in ns since the run's start.
struct Sends {
    sent_ns: Vec<AtomicU64>,
}

impl Sends {
    fn new(events: usize) -> Arc<Sends> {
        Arc::new(Sends {
            sent_ns: (0..events).map(|_| AtomicU64::new(0)).collect(),
        })
    }
}

/// Sends `events` events as fast as `concurrency` connections allow, `batch` per request; the
/// requests go to the fixture's bots in turn, so every bot (one ordered stream each) gets its
/// share whatever the number of connections.
async fn flood(
    fixture: &Arc<Fixture>,
    sends: &Arc<Sends>,
    start: Instant,
    events: usize,
    concurrency: usize,
    batch: usize,
) -> Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (fixture, sends, next) = (fixture.clone(), sends.clone(), next.clone());
        workers.spawn(async move {
            let mut connection = fixture.connection().await?;
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= events {
                    return Ok::<(), BenchError>(());
                }
                let bot = &fixture.bots[(first / batch) % fixture.bots.len()];
                let count = batch.min(events - first);
                let at = start.elapsed().as_nanos() as u64;
                for n in first..first + count {
                    sends.sent_ns[n].store(at, Ordering::Relaxed);
                }
                connection.post(bot, first, count).await?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.map_err(setup_err)??;
    }
    Ok(start.elapsed())
}

/// Waits until `receipts` has every event, or `limit` passes.
async fn await_receipts(receipts: &Receipts, events: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while receipts.delivered.load(Ordering::Relaxed) < events {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Latency percentiles (ms) from send to first receipt, over events that arrived.
fn percentiles(sends: &Sends, receipts: &Receipts) -> (f64, f64, f64) {
    let mut ms: Vec<f64> = sends
        .sent_ns
        .iter()
        .zip(&receipts.first_seen_ns)
        .filter_map(|(s, r)| {
            let (s, r) = (s.load(Ordering::Relaxed), r.load(Ordering::Relaxed));
            (r > 0).then(|| r.saturating_sub(s) as f64 / 1e6)
        })
        .collect();
    if ms.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), at(1.0))
}

fn last_receipt(receipts: &Receipts) -> Duration {
    let max = receipts
        .first_seen_ns
        .iter()
        .map(|r| r.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    Duration::from_nanos(max)
}

/// How many events arrived by `until` (time since the bench started).
fn delivered_by(receipts: &Receipts, until: Duration) -> usize {
    let until = until.as_nanos() as u64;
    receipts
        .first_seen_ns
        .iter()
        .map(|r| r.load(Ordering::Relaxed))
        .filter(|&seen| seen != 0 && seen <= until)
        .count()
}

/// The retry schedule of runs with failing attempts: short, so a run ends in seconds.
const FAILURES_RETRY_SCHEDULE: &str = "0.5,1,2,4,8";
const FAILURES_FIRST_RETRY_S: f64 = 0.5;

/// With ordering on, a failed attempt holds its stream until its retry, so each stream moves
/// at most 1 / (failing × first retry) events/s: the bound a failures run is read against.
fn ordering_bound(args: &BenchArgs, failing: f64) -> String {
    if failing <= 0.0 || !args.ordering {
        return String::new();
    }
    let per_stream = 1.0 / (failing * FAILURES_FIRST_RETRY_S);
    format!(
        "ordering bound: a failed attempt holds its (bot, subscription) stream until its retry, \
         so in steady state {bots} streams move at most {bots} × 1 / ({pct:.0} % × {FAILURES_FIRST_RETRY_S} s) \
         = {bound:.0} deliveries/s (`--bots` or `--ordering false` lift it)\n",
        bots = args.bots,
        pct = failing * 100.0,
        bound = args.bots as f64 * per_stream,
    )
}

/// What a throughput run sends, and how its receiver answers.
#[derive(Clone, Copy)]
struct Load {
    /// Events per request.
    batch: usize,
    /// Share of attempts the receiver fails.
    failing: f64,
    /// Whether a webhook is subscribed at all (without, the run measures ingest alone).
    subscribed: bool,
}

impl Load {
    fn single() -> Load {
        Load {
            batch: 1,
            failing: 0.0,
            subscribed: true,
        }
    }

    fn batched() -> Load {
        Load {
            batch: 100,
            ..Load::single()
        }
    }

    fn failing() -> Load {
        Load {
            failing: 0.1,
            ..Load::single()
        }
    }

    fn unsubscribed() -> Load {
        Load {
            subscribed: false,
            ..Load::single()
        }
    }
}

/// Server CPU per event over a run, and in all.
fn cpu_per_event(before: Option<Duration>, after: Option<Duration>, events: usize) -> String {
    match (before, after) {
        (Some(before), Some(after)) => format!(
            "{:.0} µs per event ({:.2} s in all)",
            (after - before).as_secs_f64() * 1e6 / events as f64,
            (after - before).as_secs_f64()
        ),
        _ => "unknown".to_owned(),
    }
}

async fn throughput(args: &BenchArgs, load: Load, hop_rate: Option<f64>) -> Result<String> {
    let Load {
        batch,
        failing,
        subscribed,
    } = load;
    let mut extra = vec![];
    if failing > 0.0 {
        extra.extend(["--retry-schedule", FAILURES_RETRY_SCHEDULE]);
    }
    let server = ServerProcess::start(args, &extra).await?;
    let start = Instant::now();
    let behaviour = if failing > 0.0 {
        Behaviour::Flaky(failing)
    } else {
        Behaviour::Ok
    };
    let receipts = Receipts::new(start, args.events, behaviour);
    let addr = start_receiver(receipts.clone()).await?;
    let receivers = if subscribed { vec![addr] } else { vec![] };
    let fixture = Arc::new(fixture(&server, &receivers, args.bots).await?);
    let sends = Sends::new(args.events);
    let run_start = start.elapsed();
    let cpu_before = server.cpu_time();
    let own_cpu_before = process_cpu_time("self");
    let ingest = flood(
        &fixture,
        &sends,
        start,
        args.events,
        args.concurrency,
        batch,
    )
    .await?
        - run_start;
    if !subscribed {
        return Ok(format!(
            "events: {events} (one per request, {conc} connections, {bots} bots), no webhook subscribed\n\
             ingest: {rate:.0} events/s acknowledged ({secs:.2} s){hop}\n\
             server CPU: {cpu}\n\
             server peak RSS: {rss:.1} MiB",
            events = args.events,
            conc = args.concurrency,
            bots = args.bots,
            rate = args.events as f64 / ingest.as_secs_f64(),
            secs = ingest.as_secs_f64(),
            hop = hop_share(args.events as f64 / ingest.as_secs_f64(), hop_rate),
            cpu = cpu_per_event(cpu_before, server.cpu_time(), args.events),
            rss = server.peak_rss_mib().unwrap_or(0.0),
        ));
    }
    let during_load = delivered_by(&receipts, run_start + ingest);
    let complete = await_receipts(&receipts, args.events, Duration::from_secs(300)).await;
    let end_to_end = last_receipt(&receipts).saturating_sub(run_start);
    let delivered = receipts.delivered.load(Ordering::Relaxed);
    let (p50, p99, max) = percentiles(&sends, &receipts);
    let server_cpu = cpu_per_event(cpu_before, server.cpu_time(), args.events);
    let own_cpu = match (own_cpu_before, process_cpu_time("self")) {
        (Some(before), Some(after)) => format!(
            "{:.0} µs per event",
            (after - before).as_secs_f64() * 1e6 / args.events as f64
        ),
        _ => "unknown".to_owned(),
    };
    Ok(format!(
        "events: {events} ({batch} per request, {conc} connections, {bots} bots){failing}\n\
         ingest: {ingest_rate:.0} events/s acknowledged ({ingest:.2} s)\n\
         end to end: {e2e_rate:.0} deliveries/s ({delivered}/{events} delivered{incomplete}, last at {e2e:.2} s){hop}\n\
         {while_loaded}\
         {bound}\
         attempts: {attempts}\n\
         event→receipt latency: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms\n\
         server CPU: {server_cpu}\n\
         load generator + receiver CPU: {own_cpu}\n\
         server peak RSS: {rss:.1} MiB",
        events = args.events,
        conc = args.concurrency,
        bots = args.bots,
        failing = if failing > 0.0 {
            format!(", {:.0} % of attempts fail", failing * 100.0)
        } else {
            String::new()
        },
        ingest_rate = args.events as f64 / ingest.as_secs_f64(),
        ingest = ingest.as_secs_f64(),
        e2e_rate = delivered as f64 / end_to_end.as_secs_f64().max(1e-9),
        hop = if batch == 1 {
            hop_share(
                delivered as f64 / end_to_end.as_secs_f64().max(1e-9),
                hop_rate,
            )
        } else {
            String::new()
        },
        // Batches are taken in far faster than they are delivered; the figure says nothing there.
        while_loaded = if batch == 1 {
            format!(
                "while the load lasted: {:.0} deliveries/s ({during_load} delivered)\n",
                during_load as f64 / ingest.as_secs_f64().max(1e-9)
            )
        } else {
            String::new()
        },
        bound = ordering_bound(args, failing),
        incomplete = if complete { "" } else { ", INCOMPLETE" },
        e2e = end_to_end.as_secs_f64(),
        attempts = receipts.attempts.load(Ordering::Relaxed),
        rss = server.peak_rss_mib().unwrap_or(0.0),
    ))
}

/// Sends events at a fixed rate over `connections` keep-alive connections, event `n` on
/// connection `n % connections` (open loop: an event is due at its time whether or not the
/// connection is free, and waits there if it is not — the wait counts in its latency).
async fn paced_on_connections(
    fixture: &Arc<Fixture>,
    sends: &Arc<Sends>,
    start: Instant,
    events: usize,
    rate: f64,
    connections: usize,
) -> Result<()> {
    let mut queues = Vec::with_capacity(connections);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (queue, mut due) = tokio::sync::mpsc::unbounded_channel::<usize>();
        queues.push(queue);
        let mut connection = fixture.connection().await?;
        let fixture = fixture.clone();
        workers.spawn(async move {
            while let Some(n) = due.recv().await {
                let bot = &fixture.bots[n % fixture.bots.len()];
                connection.post(bot, n, 1).await?;
            }
            Ok::<(), BenchError>(())
        });
    }
    let run_start = tokio::time::Instant::now();
    for n in 0..events {
        tokio::time::sleep_until(run_start + Duration::from_secs_f64(n as f64 / rate)).await;
        sends.sent_ns[n].store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        queues[n % connections]
            .send(n)
            .map_err(|_| setup_err("a load connection ended early"))?;
    }
    drop(queues);
    while let Some(done) = workers.join_next().await {
        done.map_err(setup_err)??;
    }
    Ok(())
}

/// What one open-loop phase (`--rate` events for `--seconds`) saw.
struct Paced {
    fixture: Arc<Fixture>,
    events: usize,
    delivered: usize,
    complete: bool,
    /// p50, p99 and max latency, in ms.
    latency: (f64, f64, f64),
    cpu: String,
}

/// Paces `--rate` events for `--seconds` over `--concurrency` connections to a new project on
/// `server` with a receiver of its own, and waits for their receipts.
async fn paced(server: &ServerProcess, args: &BenchArgs) -> Result<Paced> {
    let events = (args.rate * args.seconds) as usize;
    let start = Instant::now();
    let receipts = Receipts::new(start, events, Behaviour::Ok);
    let addr = start_receiver(receipts.clone()).await?;
    let fixture = Arc::new(fixture(server, &[addr], args.bots).await?);
    let sends = Sends::new(events);
    let cpu_before = server.cpu_time();
    let connections = args.concurrency;
    paced_on_connections(&fixture, &sends, start, events, args.rate, connections).await?;
    let complete = await_receipts(&receipts, events, Duration::from_secs(60)).await;
    Ok(Paced {
        fixture,
        events,
        delivered: receipts.delivered.load(Ordering::Relaxed),
        complete,
        latency: percentiles(&sends, &receipts),
        cpu: cpu_per_event(cpu_before, server.cpu_time(), events),
    })
}

async fn latency(args: &BenchArgs) -> Result<String> {
    let server = ServerProcess::start(args, &[]).await?;
    let Paced {
        events,
        delivered,
        complete,
        latency: (p50, p99, max),
        cpu,
        ..
    } = paced(&server, args).await?;
    Ok(format!(
        "{events} events at {rate:.0}/s, one per request, open loop over {connections} connections\n\
         delivered: {delivered}/{events}{incomplete}\n\
         event→receipt latency: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.1} ms\n\
         server CPU: {cpu}\n\
         server peak RSS: {rss:.1} MiB",
        rate = args.rate,
        connections = args.concurrency,
        incomplete = if complete { "" } else { " (INCOMPLETE)" },
        rss = server.peak_rss_mib().unwrap_or(0.0),
    ))
}

/// Healthy-endpoint throughput alone, then beside an endpoint that hangs on every request.
async fn isolation(args: &BenchArgs) -> Result<String> {
    let events = (args.rate * args.seconds) as usize;
    let mut lines = Vec::new();
    let mut rates = Vec::new();
    for with_hanging in [false, true] {
        let server = ServerProcess::start(args, &[]).await?;
        let start = Instant::now();
        let healthy = Receipts::new(start, events, Behaviour::Ok);
        let mut addrs = vec![start_receiver(healthy.clone()).await?];
        if with_hanging {
            let hanging = Receipts::new(start, events, Behaviour::Hang);
            addrs.push(start_receiver(hanging).await?);
        }
        let fixture = Arc::new(fixture(&server, &addrs, args.bots).await?);
        let sends = Sends::new(events);
        let run_start = start.elapsed();
        paced_on_connections(&fixture, &sends, start, events, args.rate, args.concurrency).await?;
        await_receipts(&healthy, events, Duration::from_secs(60)).await;
        let took = last_receipt(&healthy).saturating_sub(run_start);
        let delivered = healthy.delivered.load(Ordering::Relaxed);
        let rate = delivered as f64 / took.as_secs_f64().max(1e-9);
        let (p50, p99, _) = percentiles(&sends, &healthy);
        rates.push(rate);
        lines.push(format!(
            "{label}: healthy endpoint {rate:.0} deliveries/s ({delivered}/{events}), p50 {p50:.1} ms, p99 {p99:.1} ms",
            label = if with_hanging {
                "beside a hanging endpoint"
            } else {
                "alone"
            },
        ));
    }
    lines.push(format!(
        "healthy throughput beside the hanging endpoint: {:.1} % of alone (offered {:.0} events/s)",
        100.0 * rates[1] / rates[0].max(1e-9),
        args.rate
    ));
    Ok(lines.join("\n"))
}

/// Builds up a backlog of pending deliveries (the receiver refuses connections and the retry
/// schedule waits an hour), then reports the server's memory.
async fn backlog(args: &BenchArgs) -> Result<String> {
    let server = ServerProcess::start(args, &["--retry-schedule", "3600"]).await?;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?
    };
    let fixture = Arc::new(fixture(&server, &[closed], args.bots).await?);
    let start = Instant::now();
    let sends = Sends::new(args.backlog);
    let took = flood(&fixture, &sends, start, args.backlog, args.concurrency, 100).await?;
    let pending = metric(&server, &fixture.client, "meetwire_deliveries_pending").await?;
    Ok(format!(
        "{events} events ingested in batches of 100 in {secs:.1} s; pending deliveries: {pending}\n\
         server RSS now: {rss:.1} MiB, peak: {peak:.1} MiB",
        events = args.backlog,
        secs = took.as_secs_f64(),
        rss = server.rss_mib().unwrap_or(0.0),
        peak = server.peak_rss_mib().unwrap_or(0.0),
    ))
}

/// `, N % of the loopback hop` when the hop was measured earlier in the run.
fn hop_share(rate: f64, hop_rate: Option<f64>) -> String {
    hop_rate.map_or_else(String::new, |hop| {
        format!(
            ", {:.1} % of the loopback hop's {hop:.0}/s",
            100.0 * rate / hop.max(1e-9)
        )
    })
}

/// Floods a server that answers every request 200 and does nothing else, run on a two-thread
/// runtime of its own (as the server under test has a process of its own): the rate a bare
/// HTTP hop reaches on this machine today, with the same generator and connections.
async fn loopback(args: &BenchArgs) -> Result<(f64, String)> {
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
                return;
            };
            let Ok(addr) = listener.local_addr() else {
                return;
            };
            let _ = addr_tx.send(addr);
            let app = Router::new().fallback(|_body: Bytes| async { StatusCode::OK });
            let _ = axum::serve(listener, app).await;
        });
    });
    let addr = addr_rx
        .await
        .map_err(|_| setup_err("the loopback server did not start"))?;
    let fixture = Arc::new(Fixture {
        client: reqwest::Client::new(),
        base: format!("http://{addr}"),
        runner_token: "none".into(),
        bots: vec!["bot_loopback".into()],
    });
    let sends = Sends::new(args.events);
    let start = Instant::now();
    let took = flood(&fixture, &sends, start, args.events, args.concurrency, 1).await?;
    let rate = args.events as f64 / took.as_secs_f64().max(1e-9);
    Ok((
        rate,
        format!(
            "{events} requests ({conc} connections) to a server that only answers 200: {rate:.0} requests/s",
            events = args.events,
            conc = args.concurrency,
        ),
    ))
}

/// The bytes of the SQLite database and its WAL in `data_dir`.
fn database_bytes(data_dir: &std::path::Path) -> (u64, u64) {
    let size = |suffix: &str| {
        let name = format!("{}{suffix}", meetwire_store::sqlite::DATABASE_FILE);
        std::fs::metadata(data_dir.join(name)).map_or(0, |m| m.len())
    };
    (size(""), size("-wal"))
}

/// The deliveries per second in each fifth of a run, from the receipt times.
fn rate_per_fifth(receipts: &Receipts, run_start: Duration) -> Vec<f64> {
    let mut seen: Vec<u64> = receipts
        .first_seen_ns
        .iter()
        .map(|r| r.load(Ordering::Relaxed))
        .filter(|&t| t > 0)
        .collect();
    seen.sort_unstable();
    (0..5)
        .map(|i| {
            let (from, to) = (seen.len() * i / 5, seen.len() * (i + 1) / 5);
            let began = match from {
                0 => run_start.as_nanos() as u64,
                n => seen[n - 1],
            };
            let ended = to.checked_sub(1).map_or(began, |n| seen[n]);
            (to - from) as f64 / (ended.saturating_sub(began) as f64 / 1e9).max(1e-9)
        })
        .collect()
}

/// `--events` chat messages, one per request, all delivered: the rate in each fifth of the
/// run (does it fall as the database grows?) and the bytes on disk per delivered event beside
/// the webhook's own size.
async fn growth(args: &BenchArgs) -> Result<String> {
    let server = ServerProcess::start(args, &[]).await?;
    let start = Instant::now();
    let receipts = Receipts::new(start, args.events, Behaviour::Ok);
    let addr = start_receiver(receipts.clone()).await?;
    let fixture = Arc::new(fixture(&server, &[addr], args.bots).await?);
    let sends = Sends::new(args.events);
    let run_start = start.elapsed();
    let cpu_before = server.cpu_time();
    flood(&fixture, &sends, start, args.events, args.concurrency, 1).await?;
    let complete = await_receipts(&receipts, args.events, Duration::from_secs(1800)).await;
    let cpu = cpu_per_event(cpu_before, server.cpu_time(), args.events);
    let fifths = rate_per_fifth(&receipts, run_start);
    let delivered = receipts.delivered.load(Ordering::Relaxed);
    let body = receipts.body_bytes.load(Ordering::Relaxed) as f64 / delivered.max(1) as f64;
    let (database, wal) = database_bytes(server.data_dir.path());
    let per_event = (database + wal) as f64 / delivered.max(1) as f64;
    Ok(format!(
        "events: {events} (one per request, {conc} connections, {bots} bots), {delivered} delivered{incomplete}\n\
         deliveries/s by fifth: {fifths}\n\
         last fifth against the first: {change:+.1} %\n\
         on disk: {database} bytes of database + {wal} of WAL = {per_event:.0} bytes per delivered event, \
         {ratio:.1}× the webhook body ({body:.0} bytes)\n\
         server CPU: {cpu}\n\
         server peak RSS: {rss:.1} MiB",
        events = args.events,
        conc = args.concurrency,
        bots = args.bots,
        incomplete = if complete { "" } else { " (INCOMPLETE)" },
        fifths = fifths
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        change = 100.0 * (fifths[4] / fifths[0].max(1e-9) - 1.0),
        ratio = per_event / body.max(1.0),
        rss = server.peak_rss_mib().unwrap_or(0.0),
    ))
}

/// A sample of the server's `/metrics` (0 if absent).
async fn metric(server: &ServerProcess, client: &reqwest::Client, name: &str) -> Result<f64> {
    let text = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0))
}

async fn retention(args: &BenchArgs) -> Result<String> {
    let server = ServerProcess::start(args, &[]).await?;
    let start = Instant::now();
    let filled = Receipts::new(start, args.events, Behaviour::Ok);
    let addr = start_receiver(filled.clone()).await?;
    let filling = Arc::new(fixture(&server, &[addr], args.bots).await?);
    let sends = Sends::new(args.events);
    flood(&filling, &sends, start, args.events, args.concurrency, 1).await?;
    await_receipts(&filled, args.events, Duration::from_secs(1800)).await;
    let fill_took = start.elapsed();
    // A window of about 1 s: every delivery made so far has expired when the server is back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server = server
        .restart(args, &["--retention-days", "0.00001"])
        .await?;
    let phase_start = Instant::now();
    let Paced {
        fixture,
        events,
        delivered,
        complete,
        latency: (p50, p99, max),
        ..
    } = paced(&server, args).await?;
    let connections = args.concurrency;
    let deleted = metric(
        &server,
        &fixture.client,
        "meetwire_deliveries_deleted_total",
    )
    .await?;
    Ok(format!(
        "{filled_events} events delivered in {fill:.1} s, then the server restarted with a \
         0.86 s retention\n\
         while it deleted them: {events} events at {rate:.0}/s over {connections} connections, \
         delivered {delivered}/{events}{incomplete}\n\
         event→receipt latency: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.1} ms\n\
         finished deliveries deleted meanwhile: {deleted:.0} ({per_second:.0}/s)",
        filled_events = args.events,
        fill = fill_took.as_secs_f64(),
        rate = args.rate,
        incomplete = if complete { "" } else { " (INCOMPLETE)" },
        per_second = deleted / phase_start.elapsed().as_secs_f64().max(1e-9),
    ))
}

#[cfg(test)]
mod tests {
    use super::event_number;

    #[test]
    fn finds_the_event_number_in_a_body() {
        assert_eq!(
            event_number(br#"{"data":{"text":"n1234","x":1}}"#),
            Some(1234)
        );
        assert_eq!(event_number(br#"{"data":{"text":"hello"}}"#), None);
    }
}

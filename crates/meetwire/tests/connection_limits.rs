//! Slow and idle clients cannot take the server down. The real binary runs under
//! `ulimit -n 1024` while 5,000 connections either never finish their headers or sit idle
//! after one request, each reopened one to three seconds after the server closes it so the
//! attack goes on: `/healthz` and an authenticated API call still answer within 100 ms,
//! webhooks are still delivered, and every attacking connection is closed within its timeout.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::receiver::{log_record, sandbox_script, Receiver, FAST_LOOPBACK};
use common::{create_project, Server};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ATTACKERS: usize = 5_000;
const SERVER_OPEN_FILES: u64 = 1_024;
const HEADER_TIMEOUT_S: u64 = 2;
const IDLE_TIMEOUT_S: u64 = 3;
/// How long past its timeout a connection may stay open (the server checks a few times a second).
const CLOSE_SLACK: Duration = Duration::from_millis(1_500);
const REOPEN_AFTER: Duration = Duration::from_secs(1);
const REOPEN_JITTER: Duration = Duration::from_secs(2);
const QUEUE_DRAIN: Duration = Duration::from_millis(500);
const PROBES: usize = 10;
const ANSWER_WITHIN: Duration = Duration::from_millis(100);

/// What an attacking connection does after connecting.
#[derive(Clone, Copy)]
enum Attack {
    /// Starts a request and never finishes its headers.
    SlowHeaders,
    /// Sends one whole request, reads the answer, then sits idle (keep-alive).
    IdleKeepAlive,
}

impl Attack {
    async fn open(self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let mut stream = TcpStream::connect(addr).await?;
        match self {
            Attack::SlowHeaders => {
                stream
                    .write_all(b"POST /api/v1/bots HTTP/1.1\r\nHost: meetwire\r\n")
                    .await?;
            }
            Attack::IdleKeepAlive => {
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: meetwire\r\n\r\n")
                    .await?;
                let mut answer = [0u8; 1024];
                let n = stream.read(&mut answer).await?;
                if !answer[..n].starts_with(b"HTTP/1.1 200") {
                    return Err(std::io::Error::other(
                        "no 200 for the idle connection's request",
                    ));
                }
            }
        }
        Ok(stream)
    }
}

/// 5,000 attacking connections, each reopened one to three seconds after the server closes it,
/// until stopped.
/// Records how long each connection the server closed had stayed open.
struct Attacker {
    stop: Arc<AtomicBool>,
    /// Attacking connections that have been made (or refused) at least once.
    started: Arc<AtomicUsize>,
    lifetimes: Arc<Mutex<Vec<Duration>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Attacker {
    fn start(addr: SocketAddr, attack: Attack) -> Attacker {
        let stop = Arc::new(AtomicBool::new(false));
        let lifetimes = Arc::new(Mutex::new(Vec::new()));
        let started = Arc::new(AtomicUsize::new(0));
        let tasks = (0..ATTACKERS)
            .map(|_| {
                let (stop, lifetimes, started) = (stop.clone(), lifetimes.clone(), started.clone());
                tokio::spawn(async move {
                    let mut first = true;
                    while !stop.load(Ordering::Relaxed) {
                        let opened = Instant::now();
                        let attacking = attack.open(addr).await;
                        if std::mem::take(&mut first) {
                            started.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Ok(mut stream) = attacking {
                            let mut buf = [0u8; 256];
                            // Anything but data means the server closed it.
                            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                            lifetimes.lock().unwrap().push(opened.elapsed());
                        }
                        let jitter = rand::random::<f64>() * REOPEN_JITTER.as_secs_f64();
                        tokio::time::sleep(REOPEN_AFTER + Duration::from_secs_f64(jitter)).await;
                    }
                })
            })
            .collect();
        Attacker {
            stop,
            started,
            lifetimes,
            tasks,
        }
    }

    /// Waits until every attacking connection has been tried once.
    async fn all_started(&self) {
        let since = Instant::now();
        while self.started.load(Ordering::Relaxed) < ATTACKERS {
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "the attack did not get going"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops reopening and waits until the server has closed every connection still open;
    /// returns the longest any connection stayed open.
    async fn stop_and_wait_for_all_closed(self, within: Duration) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        let all_closed = async {
            for task in self.tasks {
                task.await.unwrap();
            }
        };
        tokio::time::timeout(within, all_closed)
            .await
            .expect("the server left attacking connections open past their timeout");
        let lifetimes = self.lifetimes.lock().unwrap();
        assert!(
            lifetimes.len() >= ATTACKERS,
            "only {} connections were closed",
            lifetimes.len()
        );
        lifetimes.iter().copied().max().unwrap()
    }
}

/// The test process itself needs more than 5,000 descriptors.
fn raise_own_open_files_limit() {
    let raised = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        raised > ATTACKERS as u64 + 1_000,
        "this test needs an open-files limit above {} (hard limit is {raised})",
        ATTACKERS + 1_000
    );
}

/// Each probe opens a new connection, as a client arriving during the attack would.
async fn answers_quickly(server: &Server, api_key: &str) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut slowest = Duration::ZERO;
    for _ in 0..PROBES {
        let started = Instant::now();
        let health = client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .expect("/healthz during the attack");
        assert_eq!(health.status(), StatusCode::OK);
        slowest = slowest.max(started.elapsed());
        let started = Instant::now();
        let bots = client
            .get(format!("{}/api/v1/bots", server.base))
            .header("Authorization", format!("Token {api_key}"))
            .send()
            .await
            .expect("an API call during the attack");
        assert_eq!(bots.status(), StatusCode::OK);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        slowest <= ANSWER_WITHIN,
        "slowest answer during the attack took {slowest:?}"
    );
}

/// One attack at a time: two at once would measure the machine, not the server.
static ONE_ATTACK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn survives(attack: Attack, timeout_s: u64) {
    let _alone = ONE_ATTACK_AT_A_TIME.lock().await;
    raise_own_open_files_limit();
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "attacked");
    let header = HEADER_TIMEOUT_S.to_string();
    let idle = IDLE_TIMEOUT_S.to_string();
    let mut flags = FAST_LOOPBACK.to_vec();
    flags.extend(["--header-read-timeout", &header, "--idle-timeout", &idle]);
    let server = Server::start_with_open_files_limit(dir.path(), &flags, SERVER_OPEN_FILES);
    let addr: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let api = server.api(&project.api_key);
    let receiver = Receiver::ok().await;
    api.subscribe(&receiver.url(), &["bot_logs.update"]).await;

    let attacker = Attacker::start(addr, attack);
    attacker.all_started().await;
    // The kernel queued the burst for the server to accept; honest clients wait behind it.
    tokio::time::sleep(QUEUE_DRAIN).await;

    answers_quickly(&server, &project.api_key).await;
    let logs: Vec<_> = (0..20).map(|i| log_record(&format!("n={i}"))).collect();
    api.create_bot(json!({
        "meeting_url": "sandbox://custom",
        "sandbox_script": sandbox_script(10, &logs),
    }))
    .await;
    receiver.wait_for(20, Duration::from_secs(20)).await;
    answers_quickly(&server, &project.api_key).await;

    let timeout = Duration::from_secs(timeout_s);
    let longest = attacker
        .stop_and_wait_for_all_closed(timeout + CLOSE_SLACK + Duration::from_secs(2))
        .await;
    assert!(
        longest <= timeout + CLOSE_SLACK,
        "a connection stayed open {longest:?} (timeout {timeout:?})"
    );
    let (status, _) = api.get("/api/v1/bots").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_their_headers_do_not_take_the_server_down() {
    survives(Attack::SlowHeaders, HEADER_TIMEOUT_S).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_do_not_take_the_server_down() {
    survives(Attack::IdleKeepAlive, IDLE_TIMEOUT_S).await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_answered_408_and_the_connection_closed() {
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "slow body");
    let server = Server::start(dir.path(), &["--body-read-timeout", "0.5"]);
    let addr: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/bots HTTP/1.1\r\nHost: meetwire\r\nAuthorization: Token {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"meeting_url\"",
        project.api_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the connection was closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive in time"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    let bots = server.api(&project.api_key).all_bots().await;
    assert!(bots.is_empty(), "nothing was created: {bots:?}");
}

#[tokio::test]
async fn connection_limits_refuse_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--max-connections", "0"),
        ("--header-read-timeout", "0"),
        ("--idle-timeout", "-1"),
        ("--body-read-timeout", "nan"),
    ] {
        let out = std::process::Command::new(common::BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .arg(format!("{flag}={value}"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let key = flag.trim_start_matches("--").replace('-', "_");
        assert!(stderr.contains(&key), "{flag} {value}: {stderr}");
    }
}

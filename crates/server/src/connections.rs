//! Client connections: how long each may take and how many may be open at once.
//!
//! Without limits, a client that opens connections and never finishes a request keeps each one
//! open for ever: a thousand of them exhaust a process's 1,024 file descriptors, after which the
//! server can accept nothing and open nothing — no API call, no delivery attempt, no database
//! file. So every connection is tracked from accept to close:
//!
//! - waiting for a request's headers (a new connection, or bytes of a next request arrived)
//!   for longer than the header-read timeout, it is closed;
//! - idle between requests for longer than the keep-alive timeout, it is closed;
//! - a request's body is bounded by the body-read timeout in the router (`app::read_body_first`);
//! - at the connection cap, a new connection closes the one that has waited longest without a
//!   request being served (idle or still sending headers); if every open connection is serving
//!   a request, the new one gets a 503 at once and is closed, rather than left hanging.
//!
//! A connection in the middle of a request is never closed by the cap. One task scans the
//! connections a few times a second; the per-request cost is two atomic writes and one clock
//! read.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Notify};
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::metrics::Metrics;

/// The limits on client connections, resolved by the binary (the cap's default depends on the
/// process's open-files limit).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Longest time from a connection's start, or a next request's first byte, to the end of
    /// that request's headers.
    pub header_read_timeout: Duration,
    /// Longest time to receive a request's body once its headers are in.
    pub body_read_timeout: Duration,
    /// Longest time a kept-alive connection may sit between requests.
    pub idle_timeout: Duration,
    /// Most client connections open at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: body_read_timeout_for(1024 * 1024),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

/// The default body-read timeout for a body limit: 10 s, plus 1 s for each 64 KiB the largest
/// body may hold, so a client sending at 64 KiB/s still gets its largest body in.
pub fn body_read_timeout_for(body_limit_bytes: usize) -> Duration {
    let per_64k = u64::try_from(body_limit_bytes / (64 * 1024)).unwrap_or(u64::MAX);
    Duration::from_secs(10u64.saturating_add(per_64k))
}

/// Milliseconds on a monotonic clock, from 1 (0 means "not set" in the atomics below).
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }
}

/// One open connection, as the cap and the timeouts see it.
struct Tracked {
    /// Requests being served (their response not yet fully written).
    serving: AtomicU32,
    /// When a request began to arrive and has not yet been handed to the router: the
    /// connection's start, or the first byte after the last response (0: none).
    request_started: AtomicU64,
    /// When the last response finished, or the connection started.
    idle_since: AtomicU64,
    /// Told to close; its socket is still open until its task ends.
    closing: AtomicBool,
    close: Notify,
}

impl Tracked {
    /// When this connection began waiting without a request being served, if it is.
    fn waiting_since(&self) -> Option<u64> {
        if self.serving.load(Ordering::Acquire) > 0 || self.closing.load(Ordering::Acquire) {
            return None;
        }
        match self.request_started.load(Ordering::Acquire) {
            0 => Some(self.idle_since.load(Ordering::Acquire)),
            started => Some(started),
        }
    }
}

/// Why a connection was closed by the server.
#[derive(Clone, Copy)]
enum Closed {
    HeaderTimeout,
    IdleTimeout,
    Evicted,
}

impl Closed {
    fn label(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::Evicted => "evicted",
        }
    }
}

/// Every open connection, by id.
struct Registry {
    limits: ConnectionLimits,
    clock: Clock,
    metrics: Arc<Metrics>,
    open: Mutex<Open>,
    /// Signalled when a socket told to close has closed.
    closed: Notify,
}

/// The open sockets: those told to close stay counted until their task has closed them, so
/// the count is the descriptors in use.
#[derive(Default)]
struct Open {
    next_id: u64,
    by_id: HashMap<u64, Arc<Tracked>>,
    closing: usize,
}

/// How many sockets told to close may still be open beyond the cap before new connections are
/// refused instead: each eviction lets one new connection in before the evicted one's task has
/// run, and this bounds how far that lets descriptors run ahead of the cap.
const CLOSING_ALLOWANCE: usize = 128;

/// Longest the accept loop waits for sockets told to close to be closed.
const ROOM_WAIT: Duration = Duration::from_millis(100);

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Open> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a slot for a new connection, closing the longest-waiting one at the cap; `None`
    /// when every open connection is serving a request.
    fn admit(&self) -> Option<(u64, Arc<Tracked>)> {
        let now = self.clock.now();
        let mut open = self.lock();
        if open.by_id.len() >= self.limits.max_connections
            && (open.closing >= CLOSING_ALLOWANCE || !self.evict_longest_waiting(&mut open))
        {
            return None;
        }
        let tracked = Arc::new(Tracked {
            serving: AtomicU32::new(0),
            request_started: AtomicU64::new(now),
            idle_since: AtomicU64::new(now),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        open.next_id += 1;
        let id = open.next_id;
        open.by_id.insert(id, tracked.clone());
        self.metrics
            .http_connections
            .set(gauge(open.by_id.len() - open.closing));
        Some((id, tracked))
    }

    /// Waits (at most [`ROOM_WAIT`]) while the sockets told to close use up the allowance, so
    /// that the next connection waits in the kernel's queue for their tasks to close them
    /// rather than being refused.
    async fn wait_for_room(&self) {
        let deadline = tokio::time::Instant::now() + ROOM_WAIT;
        while self.lock().closing >= CLOSING_ALLOWANCE {
            if tokio::time::timeout_at(deadline, self.closed.notified())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    fn evict_longest_waiting(&self, open: &mut Open) -> bool {
        let longest = open
            .by_id
            .iter()
            .filter_map(|(id, tracked)| tracked.waiting_since().map(|since| (since, *id)))
            .min();
        match longest {
            Some((_, id)) => {
                self.close(open, id, Closed::Evicted);
                true
            }
            None => false,
        }
    }

    /// Closes the longest-waiting connection, if one is waiting (the process ran out of file
    /// descriptors despite the reserve, so something must give).
    fn shed_one(&self) {
        let mut open = self.lock();
        self.evict_longest_waiting(&mut open);
    }

    fn close(&self, open: &mut Open, id: u64, why: Closed) {
        let Some(tracked) = open.by_id.get(&id) else {
            return;
        };
        if tracked.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        tracked.close.notify_one();
        open.closing += 1;
        self.metrics
            .http_connections_closed
            .get_or_create(&Metrics::reason(why.label()))
            .inc();
        self.metrics
            .http_connections
            .set(gauge(open.by_id.len() - open.closing));
    }

    /// Forgets a connection whose socket is closed.
    fn remove(&self, id: u64) {
        let mut open = self.lock();
        if let Some(tracked) = open.by_id.remove(&id) {
            if tracked.closing.load(Ordering::Acquire) {
                open.closing -= 1;
                self.closed.notify_one();
            }
            self.metrics
                .http_connections
                .set(gauge(open.by_id.len() - open.closing));
        }
    }

    /// Closes the connections past their header-read or keep-alive timeout.
    fn close_timed_out(&self) {
        let now = self.clock.now();
        let header_ms = millis(self.limits.header_read_timeout);
        let idle_ms = millis(self.limits.idle_timeout);
        let mut open = self.lock();
        let late: Vec<(u64, Closed)> = open
            .by_id
            .iter()
            .filter(|(_, tracked)| {
                tracked.serving.load(Ordering::Acquire) == 0
                    && !tracked.closing.load(Ordering::Acquire)
            })
            .filter_map(
                |(id, tracked)| match tracked.request_started.load(Ordering::Acquire) {
                    0 => {
                        let idle = now.saturating_sub(tracked.idle_since.load(Ordering::Acquire));
                        (idle > idle_ms).then_some((*id, Closed::IdleTimeout))
                    }
                    started => (now.saturating_sub(started) > header_ms)
                        .then_some((*id, Closed::HeaderTimeout)),
                },
            )
            .collect();
        for (id, why) in late {
            self.close(&mut open, id, why);
        }
    }

    /// How often the timeouts are checked: a quarter of the shortest, between 20 ms and 1 s.
    fn scan_interval(&self) -> Duration {
        (self
            .limits
            .header_read_timeout
            .min(self.limits.idle_timeout)
            / 4)
        .clamp(Duration::from_millis(20), Duration::from_secs(1))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn gauge(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Marks its connection as serving a request until the response is fully written (it lives in
/// the response body, which hyper drops once the last byte is out).
struct Serving {
    tracked: Arc<Tracked>,
    clock: Clock,
}

impl Serving {
    fn begin(tracked: Arc<Tracked>, clock: Clock) -> Self {
        tracked.serving.fetch_add(1, Ordering::AcqRel);
        tracked.request_started.store(0, Ordering::Release);
        Serving { tracked, clock }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.tracked
            .idle_since
            .store(self.clock.now(), Ordering::Release);
        self.tracked.serving.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection marked as serving while it is written.
struct ServingBody {
    inner: Body,
    _serving: Serving,
}

impl http_body::Body for ServingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting when the first byte of a next request arrives.
struct TrackedIo {
    stream: TcpStream,
    tracked: Arc<Tracked>,
    clock: Clock,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before
            && self.tracked.serving.load(Ordering::Acquire) == 0
            && self.tracked.request_started.load(Ordering::Acquire) == 0
        {
            self.tracked
                .request_started
                .store(self.clock.now(), Ordering::Release);
        }
        result
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Connections the kernel may hold for us to accept (Linux caps it at `net.core.somaxconn`,
/// 4096 by default). A burst larger than the queue has its SYNs dropped, and a client whose
/// SYN is dropped waits a whole second to retry: the default of 1,024 let a burst of
/// attacking connections delay honest ones by that second.
const ACCEPT_BACKLOG: u32 = 4096;

/// Binds a listening socket for [`serve`], with a deep accept queue.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server may bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// What a connection refused at the cap is told before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
content-type: application/json\r\ncontent-length: 38\r\n\r\n\
{\"error\": \"Too many open connections\"}";

/// Serves HTTP/1.1 on `listener` within `limits` until `shutdown` resolves, then lets the
/// requests in flight finish within `grace` (closing idle connections at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let registry = Arc::new(Registry {
        limits,
        clock: Clock(Instant::now()),
        metrics,
        open: Mutex::default(),
        closed: Notify::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks = TaskTracker::new();
    tasks.spawn(watch_timeouts(registry.clone(), stop_rx.clone()));
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = registry.wait_for_room() => {}
        }
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => match registry.admit() {
                    Some((id, tracked)) => {
                        let connection = Connection {
                            id,
                            tracked,
                            registry: registry.clone(),
                            router: router.clone(),
                            remote,
                        };
                        tasks.spawn(connection.run(stream, stop_rx.clone()));
                    }
                    None => {
                        registry
                            .metrics
                            .http_connections_closed
                            .get_or_create(&Metrics::reason("refused"))
                            .inc();
                        // Best effort: the socket's send buffer takes this at once or never.
                        let _ = stream.try_write(REFUSAL);
                    }
                },
                Err(e) => on_accept_error(&registry, &e).await,
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!("requests still in flight at shutdown were cut off");
    }
}

/// Accept fails for the whole listener only when the process or system is out of file
/// descriptors; everything else concerns one connection that is already gone.
async fn on_accept_error(registry: &Registry, error: &io::Error) {
    let out_of_descriptors =
        matches!(error.raw_os_error(), Some(code) if code == EMFILE || code == ENFILE);
    if out_of_descriptors {
        tracing::warn!(error = %error, "out of file descriptors: closing the longest-waiting connection");
        registry.shed_one();
        tokio::time::sleep(Duration::from_millis(10)).await;
    } else {
        tracing::debug!(error = %error, "accept failed");
    }
}

const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

async fn watch_timeouts(registry: Arc<Registry>, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(registry.scan_interval());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => registry.close_timed_out(),
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
    }
}

/// One accepted connection and what it needs to serve requests.
struct Connection {
    id: u64,
    tracked: Arc<Tracked>,
    registry: Arc<Registry>,
    router: Router,
    remote: SocketAddr,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut stop: watch::Receiver<bool>) {
        let _ = stream.set_nodelay(true);
        let clock = self.registry.clock;
        let io = TokioIo::new(TrackedIo {
            stream,
            tracked: self.tracked.clone(),
            clock,
        });
        let (router, remote, tracked) = (self.router, self.remote, self.tracked.clone());
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let serving = Serving::begin(tracked.clone(), clock);
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(remote));
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
                Ok::<_, Infallible>(response.map(|inner| {
                    Body::new(ServingBody {
                        inner,
                        _serving: serving,
                    })
                }))
            }
        });
        let mut builder = http1::Builder::new();
        // Our own clock enforces the header timeout (hyper's would also cut idle keep-alive
        // connections at the header timeout).
        builder.header_read_timeout(None);
        {
            let mut connection = pin!(builder.serve_connection(io, service));
            let mut draining = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = self.tracked.close.notified() => break,
                    _ = stop.wait_for(|stopping| *stopping), if !draining => {
                        draining = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        }
        // The socket is closed (dropped with the connection above): its slot is free.
        self.registry.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max_connections: usize) -> Registry {
        Registry {
            limits: ConnectionLimits {
                max_connections,
                ..ConnectionLimits::default()
            },
            clock: Clock(Instant::now()),
            metrics: Arc::default(),
            open: Mutex::default(),
            closed: Notify::new(),
        }
    }

    /// Open and not told to close.
    fn is_open(registry: &Registry, id: u64) -> bool {
        registry
            .lock()
            .by_id
            .get(&id)
            .is_some_and(|tracked| !tracked.closing.load(Ordering::Acquire))
    }

    #[test]
    fn sockets_told_to_close_count_until_closed_and_bound_how_far_admission_runs_ahead() {
        let registry = registry(1);
        let mut evicted = Vec::new();
        let (mut last, _) = registry.admit().expect("first");
        for _ in 0..CLOSING_ALLOWANCE {
            evicted.push(last);
            last = registry.admit().expect("evicts the last one").0;
        }
        assert!(
            registry.admit().is_none(),
            "{CLOSING_ALLOWANCE} sockets still closing: refused"
        );
        registry.remove(evicted[0]);
        assert!(registry.admit().is_some(), "one closed: room again");
    }

    #[test]
    fn at_the_cap_the_longest_waiting_connection_makes_room_and_serving_ones_never_do() {
        let registry = registry(2);
        let (a, _) = registry.admit().expect("a");
        std::thread::sleep(Duration::from_millis(5));
        let (b, b_tracked) = registry.admit().expect("b");
        let serving_b = Serving::begin(b_tracked, registry.clock);
        let (c, c_tracked) = registry.admit().expect("c: a, waiting, makes room");
        assert!(!is_open(&registry, a));
        let serving_c = Serving::begin(c_tracked, registry.clock);
        assert!(
            registry.admit().is_none(),
            "every connection is serving: a new one is refused"
        );
        drop(serving_c);
        assert!(registry.admit().is_some(), "c, idle again, makes room");
        assert!(is_open(&registry, b) && !is_open(&registry, c));
        drop(serving_b);
    }

    #[test]
    fn connections_past_their_header_or_idle_timeout_are_closed() {
        let registry = Registry {
            limits: ConnectionLimits {
                header_read_timeout: Duration::from_millis(20),
                idle_timeout: Duration::from_millis(200),
                ..ConnectionLimits::default()
            },
            ..registry(10)
        };
        let (silent, _) = registry.admit().expect("silent");
        let (served, served_tracked) = registry.admit().expect("served");
        drop(Serving::begin(served_tracked, registry.clock));
        std::thread::sleep(Duration::from_millis(40));
        registry.close_timed_out();
        assert!(!is_open(&registry, silent), "no headers within 20 ms");
        assert!(is_open(&registry, served), "idle, but not for 200 ms yet");
        std::thread::sleep(Duration::from_millis(200));
        registry.close_timed_out();
        assert!(!is_open(&registry, served));
        registry.remove(silent);
        registry.remove(served);
        let open = registry.lock();
        assert!(open.by_id.is_empty() && open.closing == 0);
    }

    #[test]
    fn body_read_timeout_grows_with_the_body_limit() {
        assert_eq!(body_read_timeout_for(1024), Duration::from_secs(10));
        assert_eq!(body_read_timeout_for(1024 * 1024), Duration::from_secs(26));
        assert!(body_read_timeout_for(usize::MAX) > Duration::from_secs(10));
    }
}

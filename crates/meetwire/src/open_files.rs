//! The process's open-files limit: raised to its ceiling at start, and the source of the
//! default connection cap. Every client connection, webhook connection and database file
//! takes a descriptor; the common default soft limit of 1,024 is far below what a server needs,
//! while the hard limit is usually much higher and ours to take.

use rlimit::Resource;

/// Descriptors kept for everything but client connections, before the delivery client's share:
/// the database and its write-ahead log, the log files, the runtime's own, standard streams.
const BASE_RESERVE: u64 = 64;

/// The cap is never set below this, however low the limit: a server that can take a handful
/// of connections is still more use than one that refuses to start.
const MIN_CONNECTIONS: u64 = 16;

/// Above this the cap adds nothing but memory per connection.
const MAX_CONNECTIONS: u64 = 1 << 20;

/// The open-files limit in force after [`raise`].
#[derive(Debug, Clone, Copy)]
pub struct OpenFiles {
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft open-files limit to the hard one and reports both (the soft one as it was,
/// if raising failed).
pub fn raise() -> OpenFiles {
    let (soft, hard) = match Resource::NOFILE.get() {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-files limit");
            return OpenFiles {
                soft: 1024,
                hard: 1024,
            };
        }
    };
    let soft = match rlimit::increase_nofile_limit(hard) {
        Ok(raised) => raised,
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "cannot raise the open-files limit");
            soft
        }
    };
    OpenFiles { soft, hard }
}

impl OpenFiles {
    /// The default connection cap: the soft limit less a reserve for the database, the runtime
    /// and the webhook connections in flight (at most a quarter of the limit).
    pub fn default_max_connections(self, deliveries_in_flight: usize) -> usize {
        let deliveries = u64::try_from(deliveries_in_flight)
            .unwrap_or(u64::MAX)
            .min(self.soft / 4);
        let cap = self
            .soft
            .saturating_sub(BASE_RESERVE + deliveries)
            .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS);
        usize::try_from(cap).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_keeps_a_reserve_below_the_limit() {
        let limit = |soft| OpenFiles { soft, hard: soft };
        assert_eq!(limit(1024).default_max_connections(1024), 1024 - 64 - 256);
        assert_eq!(
            limit(65_536).default_max_connections(1024),
            65_536 - 64 - 1024
        );
        assert_eq!(limit(20).default_max_connections(1024), 16);
        assert_eq!(limit(u64::MAX).default_max_connections(1024), 1 << 20);
    }
}

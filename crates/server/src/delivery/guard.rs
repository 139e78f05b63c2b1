//! The SSRF guard. A webhook URL is the user's, so without a guard it could point meetwire at
//! its own network. Addresses are vetted at delivery time, after DNS resolution, and the
//! connection is made only to the vetted addresses (the resolver hands the HTTP client nothing
//! else), so a DNS answer that changes between check and connect cannot slip through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which destinations webhooks may reach.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Networks allowed even though they are private, loopback or otherwise internal.
    pub allowed: Vec<IpNet>,
    /// Whether `http://` URLs are accepted (otherwise only `https://`).
    pub allow_http: bool,
}

impl AddressPolicy {
    /// Whether a connection to `ip` is allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allowed.iter().any(|net| net.contains(&ip)) || is_public(ip)
    }

    /// A URL about to be stored as a subscription's: `check_url`'s rules, and no ASCII
    /// whitespace or control characters. The parser quietly drops those, so a URL stored with
    /// them would dodge the duplicate check while reaching the same endpoint. (Only new URLs:
    /// one stored before this rule still delivers.)
    pub fn check_new_url(&self, url: &str) -> Result<url::Url, String> {
        self.check_new_url_as(url, "webhook URL")
    }

    /// [`AddressPolicy::check_new_url`] for another kind of URL (a calendar feed), named so
    /// in its messages.
    pub fn check_new_url_as(&self, url: &str, noun: &str) -> Result<url::Url, String> {
        let parsed = self.check_url_as(url, noun)?;
        if url
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return Err(format!("Invalid {noun}: {url}"));
        }
        Ok(parsed)
    }

    /// Checks a webhook URL's form (scheme, host), at creation and before each send. The scheme
    /// is checked as Attendee does, on the text as written (`url.startswith("https://")`),
    /// before parsing: `HTTPS://…`, `https:host` and text that is no URL at all get the scheme
    /// message.
    pub fn check_url(&self, url: &str) -> Result<url::Url, String> {
        self.check_url_as(url, "webhook URL")
    }

    /// [`AddressPolicy::check_url`] for another kind of URL, named so in its messages.
    pub fn check_url_as(&self, url: &str, noun: &str) -> Result<url::Url, String> {
        let allowed_prefix =
            url.starts_with("https://") || (self.allow_http && url.starts_with("http://"));
        if !allowed_prefix {
            return Err(format!("{noun} must start with https://"));
        }
        let parsed = url::Url::parse(url).map_err(|_| format!("Invalid {noun}: {url}"))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!("Invalid {noun}: {url}"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(format!("{noun} must not contain credentials"));
        }
        if url.len() > 2048 {
            return Err(format!("{noun} must be at most 2048 characters"));
        }
        Ok(parsed)
    }

    /// The host of `url` when it is an IP literal the policy refuses. A literal is never
    /// resolved, so the guarded resolver never sees it: its check is made with this.
    pub fn refused_literal(&self, url: &url::Url) -> Option<IpAddr> {
        let literal = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return None,
        };
        (!self.permits(literal)).then_some(literal)
    }
}

/// IPv4 addresses carried inside IPv6 forms (mapped, compatible, 6to4, NAT64) are judged as
/// the IPv4 address they reach.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (translated) and ::a.b.c.d (compatible,
        // but not :: and ::1).
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(tail),
        // 64:ff9b::/96 (NAT64).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // 2002:AABB:CCDD::/48 (6to4).
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Globally routable unicast: not loopback, private, link-local, CGNAT, multicast, reserved,
/// documentation or benchmarking space.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                || (first == 0x2001 && v6.segments()[1] == 0)
                // 64:ff9b:1::/48, NAT64 for local use (RFC 8215): may reach anything inside.
                || v6.segments()[..3] == [0x64, 0xff9b, 1]
                || v6.segments()[..6] == [0; 6])
        }
    }
}

/// DNS for the webhook client: resolves, then keeps only the addresses the policy permits.
pub struct GuardedResolver {
    pub policy: Arc<AddressPolicy>,
}

/// Marks a resolution refused by the policy, so the sender can name the failure.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to addresses that are not allowed ({addresses})")]
pub struct BlockedAddress {
    pub host: String,
    pub addresses: String,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if permitted.is_empty() {
                let addresses = found
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Box::new(BlockedAddress { host, addresses }) as _);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_by_default() {
        let policy = AddressPolicy::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "::127.0.0.1",
            "::ffff:0:127.0.0.1",
            "::ffff:0:a9fe:a9fe",
            "64:ff9b:1::7f00:1",
            "64:ff9b:1:808:8:800::",
        ] {
            assert!(!policy.permits(ip(bad)), "{bad} should be refused");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
            "::ffff:0:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(policy.permits(ip(good)), "{good} should be allowed");
        }
    }

    #[test]
    fn allow_list_opens_chosen_networks_including_mapped_forms() {
        let policy = AddressPolicy {
            allowed: vec!["127.0.0.0/8".parse().unwrap()],
            allow_http: true,
        };
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::ffff:127.0.0.2")));
        assert!(!policy.permits(ip("10.0.0.1")));
        assert!(!policy.permits(ip("::1")));
    }

    #[test]
    fn urls_must_be_https_unless_http_is_allowed() {
        let strict = AddressPolicy::default();
        assert_eq!(
            strict.check_url("http://example.com/hook").unwrap_err(),
            "webhook URL must start with https://"
        );
        assert!(strict.check_url("https://example.com/hook").is_ok());
        assert!(strict.check_url("https://user:pw@example.com/").is_err());
        for unprefixed in ["not a url", "HTTPS://example.com/", "https:example.com", ""] {
            assert_eq!(
                strict.check_url(unprefixed).unwrap_err(),
                "webhook URL must start with https://",
                "{unprefixed:?}"
            );
        }
        assert_eq!(
            strict.check_url("https://").unwrap_err(),
            "Invalid webhook URL: https://"
        );
        for stray in [
            "https://example.com/dup\n",
            "https://example.com/3 ",
            "https://exa\tmple.com/",
            "https://example.com/\u{7f}",
            "https://example.com/a\rb",
        ] {
            assert_eq!(
                strict.check_new_url(stray).unwrap_err(),
                format!("Invalid webhook URL: {stray}"),
                "{stray:?}"
            );
            assert!(strict.check_url(stray).is_ok(), "stored ones still deliver");
        }
        // A non-ASCII space is percent-encoded, not dropped: a URL of its own.
        assert!(strict.check_new_url("https://example.com/a\u{a0}b").is_ok());
        let lax = AddressPolicy {
            allow_http: true,
            ..AddressPolicy::default()
        };
        assert!(lax.check_url("http://127.0.0.1:9/hook").is_ok());
        assert!(lax.check_url("ftp://example.com/").is_err());
    }
}

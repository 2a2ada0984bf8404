//! The SSRF guard: registry hosts and token realms are user or registry input, so every
//! address berth connects to is checked after DNS resolution (and IP literals before it).
//! Link-local and cloud metadata addresses are always refused; private ranges and loopback are
//! configurable (a self-hosted registry is often on one of them).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which destinations registry traffic may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsrfPolicy {
    /// 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7.
    pub allow_private: bool,
    /// 127/8 and ::1.
    pub allow_loopback: bool,
}

impl Default for SsrfPolicy {
    fn default() -> Self {
        Self {
            allow_private: true,
            allow_loopback: true,
        }
    }
}

/// Host names of cloud metadata services.
const METADATA_NAMES: [&str; 5] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Why `name` may not be contacted, if it may not.
pub fn check_name(name: &str) -> Result<(), String> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    if METADATA_NAMES.contains(&lower.as_str()) {
        return Err(format!("{name} is a cloud metadata service"));
    }
    Ok(())
}

/// Why `ip` may not be contacted under `policy`, if it may not.
pub fn check_ip(ip: IpAddr, policy: SsrfPolicy) -> Result<(), String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let refuse = |what: &str| Err(format!("{ip} is {what}"));
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_link_local() {
                return refuse("link-local (169.254.0.0/16, where cloud metadata services live)");
            }
            if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() {
                return refuse("not a unicast address");
            }
            if v4 == Ipv4Addr::new(100, 100, 100, 200) {
                return refuse("a cloud metadata service");
            }
            if v4.is_loopback() && !policy.allow_loopback {
                return refuse("loopback, which this server does not allow for registries");
            }
            let cgnat = v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64;
            if (v4.is_private() || cgnat) && !policy.allow_private {
                return refuse(
                    "in a private range, which this server does not allow for registries",
                );
            }
        }
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            if (seg0 & 0xffc0) == 0xfe80 {
                return refuse("link-local (fe80::/10)");
            }
            if v6.is_unspecified() || v6.is_multicast() {
                return refuse("not a unicast address");
            }
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                return refuse("a cloud metadata service");
            }
            if v6.is_loopback() && !policy.allow_loopback {
                return refuse("loopback, which this server does not allow for registries");
            }
            if (seg0 & 0xfe00) == 0xfc00 && !policy.allow_private {
                return refuse(
                    "in a private range, which this server does not allow for registries",
                );
            }
        }
    }
    Ok(())
}

/// A resolver that drops refused addresses and fails when none is left.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    pub policy: SsrfPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            check_name(&host)?;
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = Vec::new();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match check_ip(a.ip(), policy) {
                    Ok(()) => true,
                    Err(why) => {
                        refused.push(why);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = if refused.is_empty() {
                    format!("{host} has no addresses")
                } else {
                    format!("blocked: {}", refused.join("; "))
                };
                return Err(why.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

impl GuardedResolver {
    pub fn into_arc(self) -> Arc<Self> {
        Arc::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals() {
        let default = SsrfPolicy::default();
        let strict = SsrfPolicy {
            allow_private: false,
            allow_loopback: false,
        };
        let table: [(&str, bool, bool); 14] = [
            // ip, allowed by default, allowed by strict
            ("169.254.169.254", false, false),
            ("169.254.1.1", false, false),
            ("100.100.100.200", false, false),
            ("fe80::1", false, false),
            ("fd00:ec2::254", false, false),
            ("::ffff:169.254.169.254", false, false),
            ("0.0.0.0", false, false),
            ("127.0.0.1", true, false),
            ("::1", true, false),
            ("10.1.2.3", true, false),
            ("192.168.1.1", true, false),
            ("100.64.0.1", true, false),
            ("fd12::1", true, false),
            ("140.82.112.3", true, true),
        ];
        for (ip, by_default, by_strict) in table {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(check_ip(ip, default).is_ok(), by_default, "{ip} default");
            assert_eq!(check_ip(ip, strict).is_ok(), by_strict, "{ip} strict");
        }
        assert!(check_name("metadata.google.internal.").is_err());
        assert!(check_name("ghcr.io").is_ok());
    }

    #[tokio::test]
    async fn resolver_blocks_after_dns() {
        let r = GuardedResolver {
            policy: SsrfPolicy {
                allow_private: true,
                allow_loopback: false,
            },
        };
        let err = match r.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost must be refused without allow_loopback"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("loopback"), "{err}");
        let ok = GuardedResolver {
            policy: SsrfPolicy::default(),
        };
        assert!(ok.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}

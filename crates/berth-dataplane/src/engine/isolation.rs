//! IP-level isolation between berth networks on a local engine.
//!
//! Projects must not reach each other's containers. Docker isolates its bridge networks from
//! each other by itself; Podman's netavark (1.4, Debian bookworm) accepts `isolate=true` but
//! its per-subnet ACCEPT rules in FORWARD come first, so a container of project B still reaches
//! project A's container by IP. berth therefore keeps its own chains, jumped to first from
//! FORWARD, that drop traffic between any two different berth subnets. Traffic to the host (the
//! internal gateway), to the internet and within one network is untouched.
//!
//! The rules grow linearly with the networks (3 per network) and are replaced in one
//! `iptables-restore --noflush` transaction, so there is never a moment without them:
//! - `BERTH_ISOLATION`: for each subnet S, `-s S -d S -j RETURN` (same network: allowed); then
//!   for each subnet D, `-d D -j BERTH_ISOLATION_SRC` (towards a berth network: check the
//!   source);
//! - `BERTH_ISOLATION_SRC`: for each subnet S, `-s S -j DROP` (from another berth network).
//!
//! Only possible when the engine runs on this host (a unix socket) and berth may run
//! `iptables` (root): otherwise [`sync`] says why and changes nothing.

use std::io::Write;
use std::process::{Command, Stdio};

const CHAIN: &str = "BERTH_ISOLATION";
const SRC_CHAIN: &str = "BERTH_ISOLATION_SRC";

/// The `iptables-restore` input that sets both chains for `subnets` (IPv4 `a.b.c.d/n`).
pub(crate) fn ruleset(subnets: &[String]) -> String {
    let mut out = format!("*filter\n:{CHAIN} - [0:0]\n:{SRC_CHAIN} - [0:0]\n");
    for s in subnets {
        out.push_str(&format!("-A {CHAIN} -s {s} -d {s} -j RETURN\n"));
    }
    for d in subnets {
        out.push_str(&format!("-A {CHAIN} -d {d} -j {SRC_CHAIN}\n"));
    }
    for s in subnets {
        out.push_str(&format!("-A {SRC_CHAIN} -s {s} -j DROP\n"));
    }
    out.push_str("COMMIT\n");
    out
}

/// Makes the chains drop traffic between every two of `subnets`, and FORWARD jump to them
/// first. Idempotent.
pub(crate) fn sync(subnets: &[String]) -> Result<(), String> {
    let mut v4: Vec<String> = subnets
        .iter()
        .filter(|s| s.contains('.') && s.contains('/'))
        .cloned()
        .collect();
    v4.sort();
    v4.dedup();
    // With --noflush, only the chains named in the input are replaced (created if missing).
    let mut child = Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running iptables-restore failed: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("iptables-restore has no stdin")?
        .write_all(ruleset(&v4).as_bytes())
        .map_err(|e| format!("writing to iptables-restore failed: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("iptables-restore failed: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "iptables-restore: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let jump = |op: &str| {
        Command::new("iptables")
            .args(["-w", op, "FORWARD"])
            .args(if op == "-I" { vec!["1"] } else { vec![] })
            .args(["-j", CHAIN])
            .output()
            .map_err(|e| format!("running iptables failed: {e}"))
    };
    if !jump("-C")?.status.success() {
        let out = jump("-I")?;
        if !out.status.success() {
            return Err(format!(
                "iptables -I FORWARD: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_rules_per_network() {
        let r = ruleset(&["10.89.0.0/24".into(), "10.89.1.0/24".into()]);
        assert_eq!(
            r,
            "*filter\n:BERTH_ISOLATION - [0:0]\n:BERTH_ISOLATION_SRC - [0:0]\n\
             -A BERTH_ISOLATION -s 10.89.0.0/24 -d 10.89.0.0/24 -j RETURN\n\
             -A BERTH_ISOLATION -s 10.89.1.0/24 -d 10.89.1.0/24 -j RETURN\n\
             -A BERTH_ISOLATION -d 10.89.0.0/24 -j BERTH_ISOLATION_SRC\n\
             -A BERTH_ISOLATION -d 10.89.1.0/24 -j BERTH_ISOLATION_SRC\n\
             -A BERTH_ISOLATION_SRC -s 10.89.0.0/24 -j DROP\n\
             -A BERTH_ISOLATION_SRC -s 10.89.1.0/24 -j DROP\n\
             COMMIT\n"
        );
        assert_eq!(ruleset(&[]).lines().count(), 4);
    }
}

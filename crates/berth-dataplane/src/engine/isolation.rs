//! IP-level isolation between berth networks on a local engine.
//!
//! Projects must not reach each other's containers. Docker isolates its bridge networks from
//! each other by itself; Podman's netavark (1.4, Debian bookworm) accepts `isolate=true` but
//! its per-subnet ACCEPT rules in FORWARD come first, so a container of project B still reaches
//! project A's container by IP. berth therefore keeps its own chain, `BERTH_ISOLATION`, jumped
//! to first from FORWARD, dropping traffic between any two berth subnets. Traffic to the host
//! (the internal gateway), to the internet and within one network is untouched.
//!
//! Only possible when the engine runs on this host (a unix socket) and berth may run
//! `iptables` (root): otherwise [`sync`] says why and changes nothing.

use std::process::Command;

const CHAIN: &str = "BERTH_ISOLATION";

fn iptables(args: &[&str]) -> Result<std::process::Output, String> {
    Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| format!("running iptables failed: {e}"))
}

fn ok(args: &[&str]) -> Result<(), String> {
    let out = iptables(args)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The rules for `subnets`: one DROP per ordered pair of different subnets.
pub(crate) fn rules(subnets: &[String]) -> Vec<[String; 2]> {
    let mut out = Vec::new();
    for a in subnets {
        for b in subnets {
            if a != b {
                out.push([a.clone(), b.clone()]);
            }
        }
    }
    out
}

/// Makes `BERTH_ISOLATION` drop traffic between every two of `subnets` (IPv4 `a.b.c.d/n`),
/// and FORWARD jump to it first. Idempotent.
pub(crate) fn sync(subnets: &[String]) -> Result<(), String> {
    let v4: Vec<String> = subnets
        .iter()
        .filter(|s| s.contains('.') && s.contains('/'))
        .cloned()
        .collect();
    // The chain may exist already; creating it again fails harmlessly.
    let _ = iptables(&["-N", CHAIN]);
    if iptables(&["-C", "FORWARD", "-j", CHAIN])
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        ok(&["-I", "FORWARD", "1", "-j", CHAIN])?;
    }
    // Replace the rules: add the new ones first, then delete stale ones, so there is no
    // moment without isolation between networks that stay.
    let listed = iptables(&["-S", CHAIN])?;
    let current: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|l| l.starts_with("-A "))
        .map(str::to_owned)
        .collect();
    let wanted = rules(&v4);
    for [src, dst] in &wanted {
        let rule = format!("-A {CHAIN} -s {src} -d {dst} -j DROP");
        if !current.contains(&rule) {
            ok(&["-A", CHAIN, "-s", src, "-d", dst, "-j", "DROP"])?;
        }
    }
    for line in current {
        let keep = wanted
            .iter()
            .any(|[s, d]| line == format!("-A {CHAIN} -s {s} -d {d} -j DROP"));
        if !keep {
            let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
            let mut args = vec!["-D"];
            args.extend(parts);
            ok(&args)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_both_ways() {
        let r = rules(&[
            "10.89.0.0/24".into(),
            "10.89.1.0/24".into(),
            "10.89.2.0/24".into(),
        ]);
        assert_eq!(r.len(), 6);
        assert!(r.contains(&["10.89.0.0/24".into(), "10.89.2.0/24".into()]));
        assert!(r.contains(&["10.89.2.0/24".into(), "10.89.0.0/24".into()]));
        assert!(rules(&["10.89.0.0/24".into()]).is_empty());
    }
}

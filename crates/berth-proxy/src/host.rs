//! The host side: runs `nft`, `ip` and `sysctl` (optionally inside a named network namespace,
//! which tests use) to apply rulesets, the blackhole route and `route_localnet`.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::config::{BlackholeRoute, Ipv4Cidr, RouteLocalnet};
use crate::{Error, ruleset};

/// Where commands run: the host's namespaces, or a named network namespace (`ip netns exec`).
#[derive(Debug, Clone, Default)]
pub struct Host {
    netns: Option<String>,
}

impl Host {
    /// The host's own network namespace.
    pub fn new() -> Self {
        Host { netns: None }
    }

    /// A network namespace created with `ip netns add NAME`.
    pub fn in_netns(name: impl Into<String>) -> Self {
        Host { netns: Some(name.into()) }
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        };
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        cmd
    }

    /// Runs `program args`, returning stdout; a non-zero exit is an error with its stderr.
    async fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, Error> {
        let line = format!("{program} {}", args.join(" "));
        let mut cmd = self.command(program);
        cmd.args(args);
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().map_err(|source| Error::Spawn { command: line.clone(), source })?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).await.map_err(|source| Error::Spawn { command: line.clone(), source })?;
            drop(pipe);
        }
        let out = child.wait_with_output().await.map_err(|source| Error::Spawn { command: line.clone(), source })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(Error::Command { command: line, status: out.status.to_string(), stderr });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Feeds `script` to `nft -f -` (one atomic transaction).
    pub async fn nft(&self, script: &str) -> Result<(), Error> {
        self.run("nft", &["-f", "-"], Some(script)).await.map(drop)
    }

    /// Checks `script` with `nft -c -f -`: the kernel validates it, nothing changes.
    pub async fn nft_check(&self, script: &str) -> Result<(), Error> {
        self.run("nft", &["-c", "-f", "-"], Some(script)).await.map(drop)
    }

    /// Replaces table `table` with `ruleset` atomically.
    pub async fn apply_table(&self, table: &str, ruleset: &str) -> Result<(), Error> {
        self.nft(&ruleset::batch(table, ruleset)).await
    }

    /// Whether table `inet <table>` exists.
    pub async fn table_exists(&self, table: &str) -> Result<bool, Error> {
        let out = self.run("nft", &["list", "tables", "inet"], None).await?;
        Ok(out.lines().any(|l| l.trim() == format!("table inet {table}")))
    }

    /// The table as nft prints it.
    pub async fn list_table(&self, table: &str) -> Result<String, Error> {
        self.run("nft", &["list", "table", "inet", table], None).await
    }

    /// Deletes table `inet <table>` if present.
    pub async fn delete_table(&self, table: &str) -> Result<(), Error> {
        self.nft(&ruleset::delete_batch(table)).await
    }

    /// Installs the blackhole route for `cidr` and its policy rules; idempotent.
    pub async fn add_blackhole(&self, cidr: Ipv4Cidr, route: &BlackholeRoute) -> Result<(), Error> {
        let (cidr, table) = (cidr.to_string(), route.table.to_string());
        self.run("ip", &["-4", "route", "replace", "blackhole", &cidr, "table", &table], None).await?;
        for (pref, rule) in rules(&cidr, route) {
            let spec: Vec<&str> = rule.iter().map(String::as_str).collect();
            let shown = self.run("ip", &["-4", "rule", "show", "pref", &pref], None).await?;
            if !shown.lines().any(|l| rule_matches(l, &spec)) {
                let mut args = vec!["-4", "rule", "add", "pref", &pref];
                args.extend(&spec);
                self.run("ip", &args, None).await?;
            }
        }
        Ok(())
    }

    /// Removes what `add_blackhole` installed (what is absent is skipped).
    pub async fn delete_blackhole(&self, cidr: Ipv4Cidr, route: &BlackholeRoute) -> Result<(), Error> {
        let (cidr_s, table) = (cidr.to_string(), route.table.to_string());
        for (pref, rule) in rules(&cidr_s, route) {
            let mut args = vec!["-4", "rule", "del", "pref", &pref];
            args.extend(rule.iter().map(String::as_str));
            // Removes duplicates too, until the kernel reports there is none left.
            for _ in 0..8 {
                if self.run("ip", &args, None).await.is_err() {
                    break;
                }
            }
        }
        let _ = self.run("ip", &["-4", "route", "del", "blackhole", &cidr_s, "table", &table], None).await;
        Ok(())
    }

    /// Sets `route_localnet=1` where `setting` says.
    pub async fn enable_route_localnet(&self, setting: &RouteLocalnet) -> Result<(), Error> {
        let interfaces = match setting {
            RouteLocalnet::All => vec!["all".to_string()],
            RouteLocalnet::Interfaces(list) => list.clone(),
            RouteLocalnet::Off => Vec::new(),
        };
        for iface in interfaces {
            let key = format!("net.ipv4.conf.{iface}.route_localnet=1");
            self.run("sysctl", &["-q", "-w", &key], None).await?;
        }
        Ok(())
    }
}

/// The two policy rules: local traffic to the service CIDR uses the main table (where the
/// output hook DNATs it), everything else to the service CIDR meets the blackhole.
fn rules(cidr: &str, route: &BlackholeRoute) -> [(String, Vec<String>); 2] {
    [
        (
            route.priority.to_string(),
            vec!["to".into(), cidr.into(), "iif".into(), "lo".into(), "lookup".into(), "main".into()],
        ),
        ((route.priority + 1).to_string(), vec!["to".into(), cidr.into(), "lookup".into(), route.table.to_string()]),
    ]
}

/// Whether a line of `ip rule show` (`9000:\tfrom all to 10.43.0.0/16 iif lo lookup main`)
/// is the rule `spec`.
fn rule_matches(line: &str, spec: &[&str]) -> bool {
    let Some((_, rest)) = line.split_once(':') else { return false };
    let words: Vec<&str> = rest.split_whitespace().filter(|w| *w != "from" && *w != "all").collect();
    words.len() == spec.len() && words.iter().zip(spec).all(|(a, b)| table_alias(a) == table_alias(b))
}

fn table_alias(word: &str) -> &str {
    if word == "254" { "main" } else { word }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_rule_lines_match_their_spec() {
        let cidr = "10.43.0.0/16";
        let [(_, local), (_, other)] = rules(cidr, &BlackholeRoute::default());
        let local: Vec<&str> = local.iter().map(String::as_str).collect();
        let other: Vec<&str> = other.iter().map(String::as_str).collect();
        assert!(rule_matches("9000:\tfrom all to 10.43.0.0/16 iif lo lookup main", &local));
        assert!(rule_matches("9001:\tfrom all to 10.43.0.0/16 lookup 4043", &other));
        assert!(!rule_matches("9001:\tfrom all to 10.44.0.0/16 lookup 4043", &other));
        assert!(!rule_matches("9000:\tfrom all to 10.43.0.0/16 lookup main", &local));
    }
}

//! The `berth` binary: `berth server`, `berth agent` and the kubectl-style CLI verbs. Glue only:
//! flags, wiring and exit codes; the work lives in the library crates and in the modules below.
#![forbid(unsafe_code)]

mod api;
mod cli;
mod cmd;
mod discovery;
mod errors;
mod kubeconfig;
mod manifest;
mod printer;
mod threeway;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::errors::{PlainError, ServerStatusError};

fn main() -> ExitCode {
    // Exactly one rustls crypto provider (ring) for the whole process; installing it twice is
    // harmless (the second call reports the first is already there).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_tracing(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error as kubectl does: a server `Status` as `Error from server (Reason): message`,
/// anything else as `error: ...` on one line.
fn report(err: &anyhow::Error) {
    if let Some(plain) = err.chain().find_map(|e| e.downcast_ref::<PlainError>()) {
        eprintln!("{plain}");
        return;
    }
    if let Some(status) = err.chain().find_map(|e| e.downcast_ref::<ServerStatusError>()) {
        eprintln!("{status}");
        return;
    }
    eprintln!("error: {err:#}");
}

/// Logs go to stderr; `-v/--log-level` takes a level name or a kubectl-style number, RUST_LOG wins.
fn init_tracing(cli: &Cli) {
    let default = match cli.global.log_level.as_deref() {
        Some(level) => cli::log_filter(level),
        // hickory's server logs every DNS query at info.
        None if matches!(cli.command, cli::Command::Server(_) | cli::Command::Agent(_)) => {
            "info,hickory_server=warn".to_string()
        }
        // kube's client logs connection failures itself; the CLI reports them once.
        None => "warn,kube_client::client::builder=off".to_string(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

//! `berth version`: `Client Version:` and `Server Version:` lines as kubectl prints them.

use std::process::ExitCode;

use super::Ctx;
use crate::errors::from_kube;

pub fn client_line() -> String {
    format!("Client Version: v{}", env!("CARGO_PKG_VERSION"))
}

pub fn print_client() -> anyhow::Result<ExitCode> {
    println!("{}", client_line());
    Ok(ExitCode::SUCCESS)
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    println!("{}", client_line());
    let info = ctx.api.client.apiserver_version().await.map_err(from_kube)?;
    println!("Server Version: {}", info.git_version);
    Ok(ExitCode::SUCCESS)
}

mod migrate;
mod up;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up(args) => up::run(&cli.global, &args).await,
        Command::Migrate(command) => migrate::run(&cli.global, command).await,
    }
}

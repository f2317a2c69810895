mod bench;
mod check;
mod database;
mod did;
mod keys;
mod listen;
pub(crate) mod migrate;
mod nonce;
mod ops;
pub(crate) mod schema;
mod serve;
pub(crate) mod session;
mod up;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub async fn run(mut cli: Cli) -> anyhow::Result<ExitCode> {
    // `seed --env NAME` named the seed environment before --env meant a variables file
    // everywhere; a NAME that is no file is still read that way, with a note.
    if let Command::Seed { environment: environment @ None, .. } = &mut cli.command {
        if let Some(name) = cli.global.env.take_if(|path| !path.exists()) {
            let name = name.to_string_lossy().into_owned();
            crate::output::note(&format!(
                "--env names a variables file, and there is no file {name:?}; read as --environment {name} (write that instead)"
            ));
            *environment = Some(name);
        }
    }
    crate::context::wait_for_server(&cli.global).await?;
    match cli.command {
        Command::Up(args) => up::run(&cli.global, &crate::cli::MigrationArgs::from(&args)).await,
        Command::Migrate(command) => migrate::run(&cli.global, command).await,
        Command::Session(command) => session::run(&cli.global, command).await,
        Command::Nonce(command) => nonce::run(&cli.global, command).await,
        Command::Did(command) => did::run(&cli.global, command).await,
        Command::Keys(command) => keys::run(&cli.global, command).await,
        Command::Schema(command) => schema::run(&cli.global, command).await,
        Command::Check { args, snapshot, ignore } => {
            check::run(&cli.global, &crate::cli::MigrationArgs::from(&args), snapshot, &ignore).await
        }
        Command::Completions { shell } => {
            let mut command = <crate::cli::Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "sage-db", &mut script);
            say_raw!("{}", String::from_utf8_lossy(&script));
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Man => {
            let command = <crate::cli::Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page)?;
            say_raw!("{}", String::from_utf8_lossy(&page));
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Backup(args) => ops::backup(&cli.global, args).await,
        Command::Restore { file, identity, replace_schema, yes } => {
            ops::restore(&cli.global, &file, identity, replace_schema, yes).await
        }
        Command::Seed { environment, seeds } => ops::seed(&cli.global, environment, seeds).await,
        Command::Cleanup { config, dry_run } => ops::cleanup(&cli.global, config, dry_run).await,
        Command::Monitor { watch } => ops::monitor(&cli.global, watch).await,
        Command::Serve { bind, port, cleanup_every, migrate } => {
            serve::run(&cli.global, bind, port, &cleanup_every, migrate).await
        }
        Command::Provision { args, recreate, yes } => {
            migrate::provision(&cli.global, &crate::cli::MigrationArgs::from(&args).answering(yes), recreate).await
        }
        Command::Database(command) => database::run(&cli.global, command).await,
        Command::Roles(crate::cli::RolesCommand::Apply { config, dry_run }) => {
            ops::roles_apply(&cli.global, &config, dry_run).await
        }
        Command::Listen { channel, count } => listen::run(&cli.global, &channel, count).await,
        Command::Bench { workload, clients, duration, operations, keys, ttl, cleanup_every, sample_every, threads } => {
            let args = bench::Args {
                workload,
                clients,
                duration,
                operations,
                keys,
                ttl,
                cleanup_every,
                sample_every,
                threads,
            };
            bench::run(&cli.global, args).await
        }
    }
}

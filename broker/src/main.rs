//! The `sluice` binary: `sluice serve` runs the broker.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_broker::config::BrokerConfig;

#[global_allocator]
static ALLOCATOR: sluice_broker::alloc::GuardedAllocator = sluice_broker::alloc::GuardedAllocator;

/// sluice: a Kafka-compatible broker with an embedded stream processor.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Print the effective configuration (defaults, file, SLUICE_* variables and flags).
    Config(ServeArgs),
}

/// Flags override `SLUICE_*` variables, which override the config file.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Config file (default: config/sluice.toml if it exists).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:9092.
    #[arg(long)]
    listen: Option<String>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log filter, e.g. info or debug.
    #[arg(long)]
    log_level: Option<String>,
}

impl ServeArgs {
    fn resolve(&self) -> anyhow::Result<BrokerConfig> {
        let mut config = BrokerConfig::load(self.config.as_deref(), std::env::vars())?;
        if let Some(listen) = &self.listen {
            config.listen = listen.clone();
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(level) = &self.log_level {
            config.log_level = level.clone();
        }
        config.validate()?;
        Ok(config)
    }
}

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("log_level = {filter:?} is not a valid filter"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Config(args) => {
            print!("{}", args.resolve()?.to_toml());
            Ok(())
        }
        Command::Serve(args) => {
            let config = args.resolve()?;
            init_logging(&config.log_level)?;
            sluice_broker::sigbus::report_on_sigbus();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("sluice-worker")
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(sluice_broker::server::serve(config))
        }
    }
}

use std::process::ExitCode;

use clap::Parser;
use miracolix_operator::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Crds(args) => cli::crds::run(args).map_err(|e| e.to_string()),
        Command::Reference => {
            print!("{}", cli::reference::markdown());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

use std::process::ExitCode;

use clap::Parser;
use miracolix_operator::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands return their own exit status when "success" and "failure" are not the only
    // answers (`release verify`); an error is always EXIT_ERROR.
    let result = match &cli.command {
        Command::Crds(args) => cli::crds::run(args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| e.to_string()),
        Command::Reference => {
            print!("{}", cli::reference::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Components => {
            print!("{}", miracolix_operator::catalog::docs::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Contracts(args) => cli::contracts::run(args)
            .map(|json| {
                println!("{json}");
                ExitCode::SUCCESS
            })
            .map_err(|e| e.to_string()),
        Command::Docs(args) => {
            print!("{}", cli::docs::markdown(args.page));
            Ok(ExitCode::SUCCESS)
        }
        Command::Release(args) => cli::release::run(args).map_err(|e| e.to_string()),
        Command::Render(args) => cli::render::run(args)
            .map(|yaml| {
                print!("{yaml}");
                ExitCode::SUCCESS
            })
            .map_err(|e| e.to_string()),
        // The gate owns its exit status and logging (JSON lines, as the operator's).
        Command::Gate(args) => return miracolix_gate::cli::main(args.clone()),
        Command::Hub(args) => return cli::hub::main(args.clone()),
        // The inbox owns its exit status and logging too.
        Command::Inbox(args) => return miracolix_inbox::cli::main(args.clone()),
        Command::Report(args) => return cli::report::main(args),
        Command::Run(args) => cli::run::run(args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| e.to_string()),
    };
    result.unwrap_or_else(|message| {
        eprintln!("error: {message}");
        ExitCode::from(cli::EXIT_ERROR)
    })
}

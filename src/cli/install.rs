//! What a package installs beside the binary: shell completions and manual pages, both
//! made from the same clap definition as the flags, so they never fall behind them.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::args::{Cli, CompletionsArgs, ManArgs};

pub fn completions(args: CompletionsArgs) -> Result<ExitCode> {
    // clap_complete panics when its writer fails: render in memory, then write (a closed
    // pipe is then an error `main` handles, not a panic).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "flowlens", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}

pub fn man(args: ManArgs) -> Result<ExitCode> {
    let command = Cli::command();
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("--dir {}: cannot create it", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .with_context(|| format!("--dir {}: cannot write the pages", dir.display()))?;
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page)?;
            std::io::stdout().lock().write_all(&page)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

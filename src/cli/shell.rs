//! The interactive shell: `flowlens sql --source …` with no SQL. Statements end with `;`
//! and may span lines; history is kept in ~/.flowlens_history.

use std::path::PathBuf;

use anyhow::Result;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use flowlens::{CONTEXT_FUNCTION_DOCS, FUNCTION_DOCS, FlowsSession, OutputOptions, write_stream};

const HELP: &str = "\
Type SQL over the `flows` table and end it with `;` (it may span lines).
  \\d        columns of flows        \\f   flowlens functions
  \\q        quit (or Ctrl-D)        \\?   this help
Example: SELECT action, count(*) FROM flows GROUP BY action;";

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".flowlens_history"))
}

pub async fn run(session: &FlowsSession, output: &OutputOptions) -> Result<()> {
    let mut editor = DefaultEditor::new()?;
    let history = history_path();
    if let Some(path) = &history {
        // No history yet is normal.
        let _ = editor.load_history(path);
    }
    eprintln!("flowlens shell: \\? for help, \\q to quit");
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            "flowlens> "
        } else {
            "      -> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        if pending.is_empty() {
            match trimmed {
                "" => continue,
                "\\q" | "quit" | "exit" => break,
                "\\?" | "help" => {
                    outln!("{HELP}")?;
                    continue;
                }
                "\\d" => {
                    pending = "DESCRIBE flows;".to_string();
                }
                "\\f" => {
                    for (signature, doc) in FUNCTION_DOCS.iter().chain(CONTEXT_FUNCTION_DOCS) {
                        outln!("{signature}\n    {doc}")?;
                    }
                    continue;
                }
                _ => {}
            }
        }
        if trimmed != "\\d" {
            if !pending.is_empty() {
                pending.push('\n');
            }
            pending.push_str(&line);
        }
        if !pending.trim_end().ends_with(';') {
            continue;
        }
        let sql = std::mem::take(&mut pending);
        let _ = editor.add_history_entry(sql.trim());
        if let Err(e) = run_statements(session, &sql, output).await {
            eprintln!("error: {e}");
        }
    }
    if let Some(path) = &history
        && let Err(e) = editor.save_history(path)
    {
        tracing::debug!("could not save history to {}: {e}", path.display());
    }
    Ok(())
}

async fn run_statements(session: &FlowsSession, sql: &str, output: &OutputOptions) -> Result<()> {
    for statement in session.parse(sql)? {
        let stream = session.execute(statement).await?;
        write_stream(stream, output).await?;
    }
    Ok(())
}

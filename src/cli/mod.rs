//! Runs a parsed command line: flags become validated configs once, then the library does
//! the work. Human reports go to stderr; results alone go to stdout or `--out`.

/// `println!` that returns an error on a closed pipe (`flowlens … | head`) instead of
/// panicking; `main` exits quietly on it.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod args;
#[cfg(feature = "cluster")]
mod cluster;
mod convert;
mod detect;
mod install;
mod report;
mod scheduled;
mod shell;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use chrono::Utc;

pub use args::Cli;
use args::{Command, GenerateArgs, OutputArgs, QueryArgs, SchemaArgs, SourceArgs, SqlArgs};
use flowlens::{
    FIELDS, FlowFormat, FlowsConfig, FlowsSession, GenerateOptions, OutputOptions, QueryLibrary,
    QueryOrigin, S3Options, TimeRange, flows_schema, generate, parse_time, write_batches,
    write_stream,
};

/// The least `--memory-mb` honoured: below it a sort cannot hold the batches it merges (at
/// 64 MB convert of a 15-day, 20-interface archive failed 3 runs in 3 while merging its
/// spills; at 128 MB it passed 5 in 5).
const MIN_MEMORY_MB: usize = 128;

/// Exit code for a run where some objects could not be read (DESIGN.md).
pub const EXIT_PARTIAL: u8 = 3;

/// A mistake in how flowlens was called: exit code 2, like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(error: impl std::fmt::Display) -> anyhow::Error {
    UsageError(error.to_string()).into()
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Sql(args) => runtime()?.block_on(sql(args, quiet)),
        Command::Query(args) => runtime()?.block_on(named_query(args, quiet)),
        Command::Run(args) => runtime()?.block_on(scheduled::run(args, quiet)),
        Command::Convert(args) => runtime()?.block_on(convert::run(args, quiet)),
        Command::Baseline(args) => runtime()?.block_on(detect::baseline(args, quiet)),
        Command::Detect(args) => runtime()?.block_on(detect::run_detect(args, quiet)),
        Command::Inventory(args) => runtime()?.block_on(inventory(args, quiet)),
        Command::ExplainRejects(args) => runtime()?.block_on(explain_rejects(args, quiet)),
        Command::Report(args) => runtime()?.block_on(detect::run_report(args, quiet)),
        Command::Evaluate(args) => runtime()?.block_on(detect::run_evaluate(args, quiet)),
        Command::Schema(args) => schema(args),
        Command::Generate(args) => generate_archive(args, quiet),
        Command::Completions(args) => install::completions(args),
        Command::Man(args) => install::man(args),
        #[cfg(feature = "cluster")]
        Command::Scheduler(args) => runtime()?.block_on(cluster::scheduler(args)),
        #[cfg(feature = "cluster")]
        Command::Executor(args) => runtime()?.block_on(cluster::executor(args)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn flows_config(args: &SourceArgs) -> Result<FlowsConfig> {
    if args.sources.is_empty() {
        return Err(usage(
            "no --source given: name a file, folder, glob or - (or set FLOWLENS_SOURCE)",
        ));
    }
    let now = Utc::now();
    let format = match &args.format {
        Some(text) => {
            Some(FlowFormat::parse(text).map_err(|problem| usage(format!("--format: {problem}")))?)
        }
        None => None,
    };
    let time = |flag: &str, value: &Option<String>| -> Result<Option<i64>> {
        value
            .as_deref()
            .map(|v| parse_time(flag, v, now).map_err(usage))
            .transpose()
    };
    let time_range = TimeRange {
        since: time("--since", &args.since)?,
        until: time("--until", &args.until)?,
    };
    if let (Some(since), Some(until)) = (time_range.since, time_range.until)
        && since >= until
    {
        return Err(usage("--since must be before --until"));
    }
    if args.s3_concurrency == Some(0) {
        return Err(usage("--s3-concurrency must be at least 1"));
    }
    let memory_limit = match args.memory_mb {
        Some(mb) if mb < MIN_MEMORY_MB => {
            return Err(usage(format!(
                "--memory-mb {mb}: at least {MIN_MEMORY_MB} (sorts need room to merge what \
                 they spill)"
            )));
        }
        Some(mb) => mb << 20,
        None => flowlens::default_memory_limit(),
    };
    Ok(FlowsConfig {
        sources: args.sources.clone(),
        format,
        time_range,
        strict: args.strict,
        accounts: args.accounts.clone(),
        regions: args.regions.clone(),
        s3: S3Options {
            endpoint_url: args.endpoint_url.clone(),
            concurrency: args.s3_concurrency,
        },
        shard: None,
        memory_limit: Some(memory_limit),
        reads_twice: false,
        cluster: None,
        context: args.context.options(),
        reads_s3: false,
    })
}

/// `--cluster`, checked (a malformed address is a usage error).
fn cluster_of(args: &args::ClusterArgs) -> Result<Option<String>> {
    let Some(url) = &args.cluster else {
        return Ok(None);
    };
    #[cfg(feature = "cluster")]
    flowlens::ClusterAddress::parse(url).map_err(usage)?;
    #[cfg(not(feature = "cluster"))]
    return Err(usage(format!(
        "--cluster {url}: this flowlens was built without the `cluster` feature"
    )));
    #[cfg(feature = "cluster")]
    Ok(Some(url.clone()))
}

/// Listing errors from flags (a missing folder, a bad glob) are usage errors; S3 errors
/// (denied, no such bucket) are errors.
async fn open_session(config: &FlowsConfig) -> Result<FlowsSession> {
    FlowsSession::open(config).await.map_err(|e| match e {
        flowlens::Error::Invalid { .. } => usage(e),
        flowlens::Error::Io { ref location, .. } if location.starts_with("--source") => usage(e),
        other => other.into(),
    })
}

fn output_options(args: &OutputArgs, source: &SourceArgs) -> Result<OutputOptions> {
    let options = OutputOptions {
        format: args.output,
        out: args.out.clone(),
        max_rows: args.max_rows,
        s3: S3Options {
            endpoint_url: source.endpoint_url.clone(),
            concurrency: None,
        },
    };
    options.validate().map_err(usage)?;
    Ok(options)
}

async fn sql(args: SqlArgs, quiet: bool) -> Result<ExitCode> {
    let mut config = flows_config(&args.source)?;
    config.cluster = cluster_of(&args.cluster)?;
    let output = output_options(&args.output, &args.source)?;
    let statements = match &args.sql {
        Some(sql) => Some(FlowsSession::split(sql)?),
        None => None,
    };
    if let Some(statements) = &statements {
        check_one_result(statements, &output)?;
        // Each statement scans the sources again: a pipe must be kept for the second.
        config.reads_twice = statements.len() > 1;
    }
    let started = Instant::now();
    let session = open_session(&config).await?;
    report::selected(&session, quiet);
    match statements {
        Some(statements) => run_statements(&session, statements, &output).await?,
        None => shell::run(&session, &output).await?,
    }
    Ok(report::finished(&session, started, quiet))
}

/// `--out` holds one result: several statements that return rows would overwrite each
/// other's, so they are refused (statements that only set up, like CREATE VIEW, are fine).
fn check_one_result(statements: &[flowlens::Statement], output: &OutputOptions) -> Result<()> {
    let results = statements
        .iter()
        .filter(|s| FlowsSession::returns_rows(s))
        .count();
    if output.out.is_some() && results > 1 {
        return Err(usage(format!(
            "--out holds one result, but {results} statements return rows: run them one at a \
             time, or leave out --out"
        )));
    }
    Ok(())
}

async fn run_statements(
    session: &FlowsSession,
    statements: Vec<flowlens::Statement>,
    output: &OutputOptions,
) -> Result<()> {
    for statement in statements {
        let rows = FlowsSession::returns_rows(&statement);
        let stream = session.execute(statement).await?;
        // What a set-up statement returns is not a result for `--out`.
        match (rows, &output.out) {
            (false, Some(_)) => {
                use futures::StreamExt;
                let mut stream = stream;
                while let Some(batch) = stream.next().await {
                    batch?;
                }
            }
            _ => {
                write_stream(stream, output).await?;
            }
        }
    }
    Ok(())
}

fn library(dir: &Option<std::path::PathBuf>) -> Result<QueryLibrary> {
    let library = QueryLibrary::builtin()?;
    Ok(match dir {
        Some(dir) => library.with_dir(dir).map_err(usage)?,
        None => library,
    })
}

async fn named_query(args: QueryArgs, quiet: bool) -> Result<ExitCode> {
    let library = library(&args.queries_dir)?;
    let Some(name) = args.name.as_deref().filter(|_| !args.list) else {
        for query in library.queries() {
            let origin = match &query.origin {
                QueryOrigin::Builtin => String::new(),
                QueryOrigin::File(path) => format!("  [{}]", path.display()),
            };
            outln!(
                "{}{origin}
    {}",
                query.name,
                query.description
            )?;
            for param in &query.params {
                outln!("    --param {param}")?;
            }
            for uses in &query.uses {
                outln!("    uses {uses}")?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let query = library.get(name).map_err(usage)?;
    let sql = query.render(&args.params).map_err(usage)?;
    let mut config = flows_config(&args.source)?;
    config.cluster = cluster_of(&args.cluster)?;
    let output = output_options(&args.output, &args.source)?;
    let statements = FlowsSession::split(&sql)?;
    check_one_result(&statements, &output)?;
    config.reads_twice = statements.len() > 1;
    let started = Instant::now();
    let session = open_session(&config).await?;
    report::selected(&session, quiet);
    run_statements(&session, statements, &output).await?;
    Ok(report::finished(&session, started, quiet))
}

/// `flowlens inventory`: one snapshot of each region (and account), written as tables.
async fn inventory(args: args::InventoryArgs, quiet: bool) -> Result<ExitCode> {
    let taken_at = flowlens::format_time(chrono::Utc::now().timestamp());
    let options = flowlens::InventoryOptions {
        regions: args.regions.clone(),
        role_arns: args.role_arns.clone(),
        endpoint_url: args.endpoint_url.clone(),
    };
    let snapshot = flowlens::snapshot_inventory(&options, &taken_at)
        .await
        .map_err(|e| match e {
            flowlens::Error::Invalid { .. } => usage(e),
            e => e.into(),
        })?;
    let written =
        flowlens::write_inventory(&snapshot, &args.out, &taken_at, &S3Options::default()).await?;
    for problem in &snapshot.problems {
        eprintln!("flowlens: {problem}");
    }
    if !quiet {
        let tables: Vec<String> = written
            .iter()
            .map(|(n, rows)| format!("{rows} {n}"))
            .collect();
        eprintln!(
            "flowlens: inventory taken at {taken_at} written to {}: {}",
            args.out,
            tables.join(", ")
        );
    }
    Ok(match snapshot.problems.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(EXIT_PARTIAL),
    })
}

/// `flowlens explain-rejects`: the named query `explain_rejects` over the given inventory.
async fn explain_rejects(args: args::ExplainRejectsArgs, quiet: bool) -> Result<ExitCode> {
    if args.source.context.inventory.is_none() {
        return Err(usage(
            "explain-rejects needs --inventory DIR (take one with `flowlens inventory --out DIR`)",
        ));
    }
    let mut params = Vec::new();
    if let Some(eni) = &args.interface {
        params.push(("interface".to_string(), eni.clone()));
    }
    named_query(
        QueryArgs {
            name: Some("explain_rejects".to_string()),
            list: false,
            params,
            queries_dir: None,
            source: args.source,
            cluster: args.cluster,
            output: args.output,
        },
        quiet,
    )
    .await
}

fn schema(args: SchemaArgs) -> Result<ExitCode> {
    use arrow::array::{StringArray, UInt8Array};
    use std::sync::Arc;
    let schema = flows_schema();
    let column: StringArray = schema
        .fields()
        .iter()
        .map(|f| Some(f.name().clone()))
        .collect();
    let ty: StringArray = schema
        .fields()
        .iter()
        .map(|f| Some(f.data_type().to_string()))
        .collect();
    let field: StringArray = FIELDS.iter().map(|d| Some(d.name)).collect();
    let version: UInt8Array = FIELDS.iter().map(|d| Some(d.version)).collect();
    let doc: StringArray = FIELDS.iter().map(|d| Some(d.doc)).collect();
    let batch = arrow::array::RecordBatch::try_from_iter(vec![
        ("column", Arc::new(column) as _),
        ("type", Arc::new(ty) as _),
        ("aws_field", Arc::new(field) as _),
        ("version", Arc::new(version) as _),
        ("description", Arc::new(doc) as _),
    ])?;
    let options = OutputOptions {
        format: args.output,
        out: None,
        max_rows: usize::MAX,
        s3: S3Options::default(),
    };
    options.validate().map_err(usage)?;
    write_batches(std::slice::from_ref(&batch), batch.schema(), &options)?;
    Ok(ExitCode::SUCCESS)
}

fn generate_archive(args: GenerateArgs, quiet: bool) -> Result<ExitCode> {
    let end = match &args.end {
        Some(text) => parse_time("--end", text, Utc::now()).map_err(usage)?,
        None => Utc::now().timestamp(),
    };
    let options = GenerateOptions {
        out: args.out.clone(),
        end,
        days: args.days,
        enis: args.enis,
        seed: args.seed,
        rate: args.rate,
        object_minutes: args.object_minutes,
        gzip: !args.plain,
        layout: args.layout,
        mixed_formats: !args.default_format_only,
        incidents: args.incidents,
    };
    let started = Instant::now();
    let summary = generate(&options).map_err(|e| match e {
        flowlens::Error::Invalid { .. } => usage(e),
        other => other.into(),
    })?;
    if !quiet {
        eprintln!(
            "wrote {} objects, {} records, {} to {} in {:.1} s",
            summary.objects,
            summary.records,
            report::human_bytes(summary.bytes),
            args.out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

//! The command line, as clap parses it. Turned into validated configs once, in `cli::run`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use flowlens::{KeyLayout, OutputFormat};

#[derive(Parser, Debug)]
#[command(
    name = "flowlens",
    version,
    about = "SQL, per-ENI baselines and findings over AWS VPC flow logs",
    after_help = "Exit codes: 0 ok, 1 error, 2 bad usage, 3 partial (some objects could not be read)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More logging on stderr (-v info, -vv debug with each detect step's time, -vvv also
    /// each detect step's plan with row counts and times). FLOWLENS_LOG_FORMAT=json for JSON
    /// lines.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr: no summary line, no bad-line report.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run SQL over the `flows` table; with no SQL, an interactive shell.
    Sql(SqlArgs),
    /// Run a named query from the library (`--list` shows them).
    Query(QueryArgs),
    /// Convert an archive to partitioned, sorted Parquet (local folder or S3).
    Convert(ConvertArgs),
    /// The scheduled task: process what arrived since the checkpoint (see --config).
    Run(RunArgs),
    /// Learn per-interface baselines of normal traffic and store them as Parquet.
    Baseline(BaselineArgs),
    /// Find rejected and anomalous traffic: findings as JSON lines, OCSF or a table.
    Detect(DetectArgs),
    /// Detect, then write an HTML report: incidents, findings against their baselines, traffic per interface.
    Report(ReportArgs),
    /// Snapshot the EC2 inventory (interfaces, security groups, network ACLs, subnets, VPCs)
    /// as Parquet tables for --inventory.
    Inventory(InventoryArgs),
    /// Which security group or network ACL rule rejected each group of rejected flows.
    ExplainRejects(ExplainRejectsArgs),
    /// Score detection on an archive with labelled incidents (generate --incidents).
    Evaluate(EvaluateArgs),
    /// Print the `flows` table's columns and types.
    Schema(SchemaArgs),
    /// Write a synthetic flow log archive in AWS's S3 key layout.
    Generate(GenerateArgs),
    /// Print a completion script for a shell, e.g. `flowlens completions bash >
    /// ~/.local/share/bash-completion/completions/flowlens`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one per command into a folder.
    Man(ManArgs),
    /// Run a cluster scheduler (Apache DataFusion Ballista) that `--cluster` sends queries to.
    #[cfg(feature = "cluster")]
    Scheduler(SchedulerArgs),
    /// Run a cluster executor that takes its tasks from a `flowlens scheduler`.
    #[cfg(feature = "cluster")]
    Executor(ExecutorArgs),
}

/// Where queries run: here, or on a cluster.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Run the queries that read flow logs on this `flowlens scheduler`'s cluster, e.g.
    /// df://scheduler:50050. Every executor must reach the sources (S3, or a path every node
    /// sees).
    #[arg(long, value_name = "df://HOST:PORT", env = "FLOWLENS_CLUSTER")]
    pub cluster: Option<String>,
}

#[cfg(feature = "cluster")]
#[derive(Args, Debug)]
pub struct SchedulerArgs {
    /// Address to listen on for clients and executors.
    #[arg(long, value_name = "HOST:PORT", default_value = "0.0.0.0:50050")]
    pub bind: std::net::SocketAddr,

    /// The host name executors reach this scheduler by, when not the bind address.
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,

    /// Seconds without a heartbeat before an executor is taken for lost and its tasks run
    /// again elsewhere.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub executor_timeout: u64,
}

#[cfg(feature = "cluster")]
#[derive(Args, Debug)]
pub struct ExecutorArgs {
    /// The scheduler to take tasks from.
    #[arg(long, value_name = "HOST:PORT", env = "FLOWLENS_SCHEDULER")]
    pub scheduler: String,

    /// Tasks run at once (default: the machine's cores).
    #[arg(long, value_name = "N")]
    pub concurrent_tasks: Option<usize>,

    /// Address to listen on.
    #[arg(long, value_name = "HOST", default_value = "0.0.0.0")]
    pub bind_host: String,

    /// Port that serves shuffle data to other executors and to clients (Arrow Flight).
    #[arg(long, value_name = "PORT", default_value_t = 50051)]
    pub port: u16,

    /// Port the scheduler sends tasks to.
    #[arg(long, value_name = "PORT", default_value_t = 50052)]
    pub grpc_port: u16,

    /// The host name the scheduler, other executors and clients reach this one by (default:
    /// this machine's name as the scheduler sees it).
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,

    /// Folder for shuffle files (default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<String>,

    /// Seconds between heartbeats to the scheduler.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub heartbeat: u64,
}

#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// Flow logs to read: a file, a folder (recursive), a glob, or - for stdin. Repeatable.
    #[arg(
        short,
        long = "source",
        value_name = "LOC",
        env = "FLOWLENS_SOURCE",
        value_delimiter = ','
    )]
    pub sources: Vec<String>,

    /// Format of files without a header, e.g. "version account-id interface-id …" or
    /// "${version} ${account-id} …" (default: the version 2 format).
    #[arg(long, value_name = "FIELDS")]
    pub format: Option<String>,

    /// Only records that end at or after this time: RFC 3339, a date, Unix seconds, or a
    /// duration before now (24h, 7d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only records that start before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Stop at the first bad line or unreadable object instead of counting and going on.
    #[arg(long)]
    pub strict: bool,

    /// Only these accounts (from the key layout). Repeatable or comma-separated.
    #[arg(long = "account", value_name = "ID", value_delimiter = ',')]
    pub accounts: Vec<String>,

    /// Only these regions (from the key layout). Repeatable or comma-separated.
    #[arg(long = "region", value_name = "REGION", value_delimiter = ',')]
    pub regions: Vec<String>,

    /// S3-compatible endpoint, e.g. http://127.0.0.1:9000 (also AWS_ENDPOINT_URL_S3 /
    /// AWS_ENDPOINT_URL). Custom endpoints use path-style addressing.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// S3 objects read at once (default: 64, and more for small objects, up to 512 for
    /// objects of 64 KB or less: each is a round trip).
    #[arg(long, value_name = "N")]
    pub s3_concurrency: Option<usize>,

    /// Memory for sorts, joins and aggregations before they spill to disk, in megabytes
    /// (default: half of the machine's or the container's memory).
    #[arg(long, value_name = "MB", env = "FLOWLENS_MEMORY_MB")]
    pub memory_mb: Option<usize>,

    #[command(flatten)]
    pub context: ContextArgs,
}

/// Who the interfaces and remotes are: tables and functions in SQL, context in findings.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Context")]
pub struct ContextArgs {
    /// An inventory from `flowlens inventory` (folder or s3:// prefix): the tables enis,
    /// security_groups, network_acls, subnets, vpcs; explain_reject(); findings name the
    /// interface's instance, subnet, groups and tags.
    #[arg(long, value_name = "DIR", env = "FLOWLENS_INVENTORY")]
    pub inventory: Option<String>,

    /// AWS's ip-ranges.json, a file or URL (downloads are cached a day): aws_service(addr).
    #[arg(long, value_name = "FILE|URL", env = "FLOWLENS_IP_RANGES")]
    pub ip_ranges: Option<String>,

    /// A MaxMind DB file (GeoLite2/GeoIP2 Country, City or ASN; DB-IP): geo_country(addr),
    /// asn(addr), as_org(addr). Repeatable (a country and an ASN database).
    #[arg(long, value_name = "FILE.mmdb")]
    pub geoip: Vec<String>,

    /// Addresses and CIDR blocks, one per line, that never raise a finding. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub allow_list: Vec<String>,

    /// Addresses and CIDR blocks of known threats: a finding with one as its remote is raised
    /// one severity. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub threat_list: Vec<String>,
}

impl ContextArgs {
    pub fn options(&self) -> flowlens::ContextOptions {
        flowlens::ContextOptions {
            inventory: self.inventory.clone(),
            ip_ranges: self.ip_ranges.clone(),
            geoip: self.geoip.clone(),
            allow_lists: self.allow_list.clone(),
            threat_lists: self.threat_list.clone(),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Result format. Tables are for people; the others stream every row.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Write results to this file (or s3://bucket/key) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Rows a table shows (the rest are counted).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_rows: usize,
}

#[derive(Args, Debug)]
pub struct SqlArgs {
    /// SQL to run (several statements separated by `;`). Omit it for the interactive shell.
    pub sql: Option<String>,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The query's name, e.g. rejected_traffic.
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,

    /// List every query with its description and parameters.
    #[arg(long)]
    pub list: bool,

    /// A parameter, as NAME=VALUE. Repeatable.
    #[arg(short, long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// A folder of *.sql files (same header format) that add to or override the library.
    #[arg(long, value_name = "DIR", env = "FLOWLENS_QUERIES_DIR")]
    pub queries_dir: Option<PathBuf>,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Folder or s3://bucket/prefix to write the Parquet archive into.
    #[arg(long, value_name = "DIR")]
    pub out: String,

    /// Convert only shard I of N (0-based), e.g. 3/16 for AWS Batch array or Kubernetes
    /// indexed jobs (AWS_BATCH_JOB_ARRAY_INDEX / JOB_COMPLETION_INDEX give I).
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,

    /// Start a new file once one reaches this many megabytes.
    #[arg(long, value_name = "MB", default_value_t = 128)]
    pub file_mb: usize,

    /// Print the Athena CREATE TABLE for the output and exit.
    #[arg(long)]
    pub athena_ddl: bool,
}

fn parse_shard(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("`{text}` is not I/N with 0 <= I < N");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A TOML file of settings; every setting can also come from FLOWLENS_<NAME> (e.g.
    /// FLOWLENS_STATE), which wins over the file.
    #[arg(long, value_name = "FILE", env = "FLOWLENS_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BaselineArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Folder or s3:// prefix to write a new baseline into (replacing any there).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "update",
        conflicts_with = "update"
    )]
    pub out: Option<String>,

    /// Extend the baseline in this folder or s3:// prefix with the days it does not cover
    /// yet (by default, from where it ends to the latest data); days it covers are never
    /// folded twice.
    #[arg(long, value_name = "DIR")]
    pub update: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FindingsFormat {
    /// For people (the default on a terminal).
    Table,
    /// One CONTRACT finding per line (the default otherwise).
    Jsonl,
    /// OCSF 1.3 Detection Findings (class 2004), one per line.
    Ocsf,
    /// One incident per line (JSON): its findings, first and last time, remotes and highest
    /// severity.
    Incidents,
}

#[derive(Args, Debug, Clone)]
pub struct ThresholdArgs {
    /// Override a threshold, as DETECTOR.PARAM=VALUE (see --list-params). Repeatable.
    #[arg(short, long = "param", value_name = "DETECTOR.PARAM=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// A TOML file of threshold overrides: `[port_scan]` then `min_ports = 20`.
    #[arg(long, value_name = "FILE", env = "FLOWLENS_DETECT_CONFIG")]
    pub config: Option<PathBuf>,

    /// Days of history before the detection window to learn from (without --baseline).
    #[arg(long, value_name = "DAYS", default_value_t = 14)]
    pub baseline_days: i64,
}

/// What a detection reads and compares with (`detect` and `report`).
#[derive(Args, Debug)]
pub struct DetectionArgs {
    /// The detection window is --since .. --until (default: the last 24 hours of data).
    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// A stored baseline (from `flowlens baseline`), a folder or s3:// prefix; without it
    /// one is learnt from the days before the window.
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<String>,

    #[command(flatten)]
    pub thresholds: ThresholdArgs,
}

#[derive(Args, Debug)]
pub struct DetectArgs {
    #[command(flatten)]
    pub detection: DetectionArgs,

    /// Findings format (default: table on a terminal, jsonl otherwise).
    #[arg(short, long, value_enum)]
    pub output: Option<FindingsFormat>,

    /// Write findings to this file (or s3://bucket/key) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Exit with code 4 when a finding at or above this severity exists.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<flowlens::Severity>,

    /// Print incidents (findings of one interface that tell one story) instead of findings:
    /// one per line with its findings under it (table), or one JSON object per incident.
    #[arg(long)]
    pub group: bool,

    /// Also write the run's HTML report to this file (or s3://bucket/key): see `flowlens report`.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    #[command(flatten)]
    pub deliver: DeliverArgs,

    /// List every detector threshold with its value and meaning, and exit.
    #[arg(long)]
    pub list_params: bool,
}

/// Where findings go besides the output: Security Hub, alerts.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Delivery")]
pub struct DeliverArgs {
    /// Also send the findings to this service: `securityhub` (BatchImportFindings, ASFF,
    /// stable ids so a rerun updates rather than duplicates).
    #[arg(long, value_enum, value_name = "SERVICE")]
    pub export: Vec<ExportTarget>,

    /// Alert on each incident at or above --notify-min-severity: `sns:TOPIC-ARN` or
    /// `webhook:URL` (JSON; Slack's text format for hooks.slack.com). Repeatable.
    #[arg(long, value_name = "TARGET")]
    pub notify: Vec<String>,

    /// The least severity that alerts.
    #[arg(long, value_enum, value_name = "SEVERITY", default_value = "high")]
    pub notify_min_severity: flowlens::Severity,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportTarget {
    Securityhub,
}

#[derive(Args, Debug)]
pub struct InventoryArgs {
    /// Folder or s3:// prefix to write the tables to (one Parquet file each, and
    /// inventory.json saying when and what could not be described).
    #[arg(long, value_name = "DIR")]
    pub out: String,

    /// Regions to describe (default: AWS_REGION or the profile's). Repeatable or
    /// comma-separated.
    #[arg(long, value_name = "REGION", value_delimiter = ',')]
    pub regions: Vec<String>,

    /// A role to assume for each account of an organisation (its interfaces, groups and
    /// ACLs are snapshot through it). Repeatable.
    #[arg(long = "role-arn", value_name = "ARN")]
    pub role_arns: Vec<String>,

    /// An EC2-compatible endpoint (also AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL); the S3
    /// output takes AWS_ENDPOINT_URL_S3.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExplainRejectsArgs {
    /// Needs --inventory DIR (from `flowlens inventory`).
    #[command(flatten)]
    pub source: SourceArgs,

    /// Only this interface's rejected flows.
    #[arg(long, value_name = "ENI")]
    pub interface: Option<String>,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub detection: DetectionArgs,

    /// The HTML file to write (or s3://bucket/key): one self-contained page.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// The labels file (default: labels.jsonl in the first --source folder).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,

    /// Days to run detection over, each against the days before it.
    #[arg(long, default_value_t = 1)]
    pub days: i64,

    #[command(flatten)]
    pub thresholds: ThresholdArgs,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write flowlens.1 and a page per command (flowlens-sql.1, …) into this folder instead
    /// of printing flowlens.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SchemaArgs {
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Folder to write the archive into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Days of traffic.
    #[arg(long, default_value_t = 7)]
    pub days: u32,

    /// Network interfaces (roles cycle: web, app, db, bastion, batch, nat, task).
    #[arg(long, default_value_t = 7)]
    pub enis: usize,

    /// The archive ends at the start of this day (default: today, UTC).
    #[arg(long, value_name = "DATE")]
    pub end: Option<String>,

    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Traffic multiplier (2.0 doubles every interface's flows).
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,

    /// Minutes of records per object; AWS delivers every 5.
    #[arg(long, default_value_t = 5)]
    pub object_minutes: u32,

    /// Plain text objects instead of gzip.
    #[arg(long)]
    pub plain: bool,

    #[arg(long, value_enum, default_value_t = KeyLayout::Plain)]
    pub layout: KeyLayout,

    /// One flow log in the default format instead of three in different formats.
    #[arg(long)]
    pub default_format_only: bool,

    /// Lay labelled incidents of every finding kind over the last day (labels in
    /// DIR/labels.jsonl).
    #[arg(long)]
    pub incidents: bool,
}

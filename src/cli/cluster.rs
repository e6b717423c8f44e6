//! `flowlens scheduler` and `flowlens executor`: a cluster is the flowlens binary run with
//! these two commands.

use std::process::ExitCode;

use anyhow::Result;

use super::args::{ExecutorArgs, SchedulerArgs};
use super::usage;

pub async fn scheduler(args: SchedulerArgs) -> Result<ExitCode> {
    flowlens::run_scheduler(flowlens::SchedulerSettings {
        bind: args.bind,
        external_host: args.external_host,
        executor_timeout_secs: args.executor_timeout.max(1),
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn executor(args: ExecutorArgs) -> Result<ExitCode> {
    let (host, port) = match args.scheduler.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>().map_err(|_| {
                usage(format!(
                    "--scheduler {}: the port is not a number",
                    args.scheduler
                ))
            })?,
        ),
        None => (args.scheduler.as_str(), flowlens::DEFAULT_SCHEDULER_PORT),
    };
    let host = host
        .trim_start_matches("df://")
        .trim_start_matches("http://");
    if host.is_empty() {
        return Err(usage(format!(
            "--scheduler {}: expected HOST:PORT",
            args.scheduler
        )));
    }
    if args.concurrent_tasks == Some(0) {
        return Err(usage("--concurrent-tasks must be at least 1"));
    }
    flowlens::run_executor(flowlens::ExecutorSettings {
        scheduler_host: host.to_string(),
        scheduler_port: port,
        bind_host: args.bind_host,
        port: args.port,
        grpc_port: args.grpc_port,
        external_host: args.external_host,
        concurrent_tasks: args.concurrent_tasks,
        work_dir: args.work_dir,
        heartbeat_secs: args.heartbeat.max(1),
        connect_timeout_secs: 60,
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

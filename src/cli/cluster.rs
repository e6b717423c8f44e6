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
    // The same HOST[:PORT] a client's --cluster takes, with or without its df://.
    let bare = args.scheduler.trim_start_matches("df://");
    let scheduler = flowlens::ClusterAddress::parse(&format!("df://{bare}")).map_err(|_| {
        usage(format!(
            "--scheduler {}: expected HOST:PORT",
            args.scheduler
        ))
    })?;
    if args.concurrent_tasks == Some(0) {
        return Err(usage("--concurrent-tasks must be at least 1"));
    }
    flowlens::run_executor(flowlens::ExecutorSettings {
        scheduler_host: scheduler.host,
        scheduler_port: scheduler.port,
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

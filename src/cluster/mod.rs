//! `flowlens scheduler` and `flowlens executor`: Apache DataFusion Ballista's own scheduler
//! and executor, started from the flowlens binary with flowlens's codecs and functions, so a
//! cluster is the flowlens image run with two commands. Clients reach it with
//! `--cluster df://HOST:PORT` (`query::ClusterSession`).

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::prelude::SessionConfig;

use crate::error::{Error, Result};
use crate::query::{flowlens_state, with_codecs};
use crate::table::{FlowsLogicalCodec, FlowsPhysicalCodec};

/// How the scheduler runs.
#[derive(Clone, Debug)]
pub struct SchedulerSettings {
    /// Address to listen on for clients and executors.
    pub bind: SocketAddr,
    /// The host name executors and clients reach this scheduler by, when not the bind
    /// address (a Kubernetes Service name).
    pub external_host: Option<String>,
    /// Seconds without a heartbeat after which an executor is taken for lost and its tasks
    /// run again elsewhere.
    pub executor_timeout_secs: u64,
}

/// How an executor runs.
#[derive(Clone, Debug)]
pub struct ExecutorSettings {
    /// The scheduler, `HOST:PORT`.
    pub scheduler_host: String,
    pub scheduler_port: u16,
    /// Address to listen on; `port` serves shuffle data (Arrow Flight), `grpc_port` takes
    /// tasks from the scheduler.
    pub bind_host: String,
    pub port: u16,
    pub grpc_port: u16,
    /// The host name the scheduler and other executors reach this one by.
    pub external_host: Option<String>,
    /// Tasks run at once (default: the machine's cores).
    pub concurrent_tasks: Option<usize>,
    /// Where shuffle files go (default: a temporary folder).
    pub work_dir: Option<String>,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat_secs: u64,
    /// Seconds to keep trying to reach the scheduler at start (pods start in any order).
    pub connect_timeout_secs: u16,
}

fn cluster_error(address: &str, e: impl std::fmt::Display) -> Error {
    Error::Cluster {
        address: address.to_string(),
        message: e.to_string(),
    }
}

/// The config a query runs with when no client sent one: DataFusion's and Ballista's
/// defaults with flowlens's codecs.
fn default_config() -> SessionConfig {
    with_codecs(ballista_core::utils::default_config_producer())
}

/// Runs Ballista's scheduler until the process is stopped.
pub async fn run_scheduler(settings: SchedulerSettings) -> Result<()> {
    let address = settings.bind.to_string();
    let config = SchedulerConfig {
        bind_host: settings.bind.ip().to_string(),
        bind_port: settings.bind.port(),
        external_host: settings
            .external_host
            .clone()
            .unwrap_or_else(|| settings.bind.ip().to_string()),
        executor_timeout_seconds: settings.executor_timeout_secs,
        override_logical_codec: Some(Arc::new(FlowsLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(FlowsPhysicalCodec::default())),
        override_session_builder: Some(Arc::new(|config: SessionConfig| {
            Ok(flowlens_state(config))
        })),
        override_config_producer: Some(Arc::new(default_config)),
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| cluster_error(&address, e))?;
    tracing::info!("scheduler listening on {address}");
    start_server(cluster, settings.bind, Arc::new(config))
        .await
        .map_err(|e| cluster_error(&address, e))
}

/// Runs a Ballista executor until the process is stopped or the scheduler lets it go.
pub async fn run_executor(settings: ExecutorSettings) -> Result<()> {
    let scheduler = format!("{}:{}", settings.scheduler_host, settings.scheduler_port);
    let state = flowlens_state(default_config());
    let mut config = ExecutorProcessConfig {
        bind_host: settings.bind_host.clone(),
        external_host: settings.external_host.clone(),
        port: settings.port,
        grpc_port: settings.grpc_port,
        scheduler_host: settings.scheduler_host.clone(),
        scheduler_port: settings.scheduler_port,
        scheduler_connect_timeout_seconds: settings.connect_timeout_secs,
        work_dir: settings.work_dir.clone(),
        executor_heartbeat_interval_seconds: settings.heartbeat_secs.max(1),
        print_thread_info: false,
        override_logical_codec: Some(Arc::new(FlowsLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(FlowsPhysicalCodec::default())),
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(&state))),
        override_config_producer: Some(Arc::new(default_config)),
        ..ExecutorProcessConfig::default()
    };
    if let Some(tasks) = settings.concurrent_tasks {
        config.vcores = tasks.max(1);
    }
    tracing::info!(
        "executor of scheduler {scheduler}, serving on {}:{}",
        settings.bind_host,
        settings.port
    );
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| cluster_error(&scheduler, e))
}

#[cfg(test)]
mod tests {
    use crate::detect::{DetectCatalog, DetectPlan, detect};
    use crate::query::{FlowsConfig, FlowsSession, QueryLibrary, standalone};

    /// A result's rows as sorted text lines: the engines may order ties differently.
    fn rows(batches: &[arrow::array::RecordBatch]) -> Vec<String> {
        let text = arrow::util::pretty::pretty_format_batches(batches)
            .unwrap()
            .to_string();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn standalone_cluster_gives_the_local_answers_for_sql_named_queries_and_detect() {
        let address = standalone(2).await.unwrap();
        let local_config = FlowsConfig {
            sources: vec![format!("{}/sample-logs", env!("CARGO_MANIFEST_DIR"))],
            reads_twice: true,
            ..FlowsConfig::default()
        };
        let cluster_config = FlowsConfig {
            cluster: Some(address.url()),
            ..local_config.clone()
        };
        let local = FlowsSession::open(&local_config).await.unwrap();
        let remote = FlowsSession::open(&cluster_config).await.unwrap();

        let mut queries: Vec<(String, String)> = [
            "SELECT action, count(*), sum(bytes), count(DISTINCT interface_id) FROM flows \
             GROUP BY 1",
            "SELECT interface_id, ip_network(srcaddr, 24, 48), count(*) FROM flows \
             WHERE NOT is_private_ip(srcaddr) GROUP BY 1, 2",
            "SELECT srcaddr, dstaddr, dstport, bytes FROM flows WHERE action = 'REJECT' \
             AND dstport IN (22, 3389)",
        ]
        .iter()
        .map(|sql| (sql.to_string(), sql.to_string()))
        .collect();
        let library = QueryLibrary::builtin().unwrap();
        // explain_rejects needs an inventory (tested against the EC2 emulator).
        for query in library
            .queries()
            .filter(|q| !q.uses.iter().any(|u| u.contains("--inventory")))
        {
            // Required parameters get a value the sample archive has.
            let values: Vec<(String, String)> = query
                .params
                .iter()
                .filter(|p| p.default.is_none())
                .map(|p| (p.name.clone(), "10.0.1.10".to_string()))
                .collect();
            queries.push((query.name.clone(), query.render(&values).unwrap()));
        }
        assert!(queries.len() > 20, "{}", queries.len());
        for (name, sql) in &queries {
            let here = local.sql(sql).await.unwrap();
            let there = remote.sql(sql).await.unwrap();
            assert_eq!(rows(&there), rows(&here), "{name}");
        }
        assert_eq!(remote.stats().objects(), local.stats().objects());
        assert!(local.stats().objects() > 0);

        let catalog = DetectCatalog::builtin().unwrap();
        let mut findings = Vec::new();
        for config in [&local_config, &cluster_config] {
            let session = FlowsSession::open(config).await.unwrap();
            let plan = DetectPlan::new(config, None, 14, false).await.unwrap();
            let report = detect(&session, &plan, None, &catalog).await.unwrap();
            let mut found: Vec<String> = report.findings.iter().map(|f| format!("{f:?}")).collect();
            found.sort();
            findings.push(found);
        }
        assert!(!findings[0].is_empty());
        assert_eq!(findings[1], findings[0]);
    }
}

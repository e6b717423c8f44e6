//! Sessions that plan on a cluster (`--cluster df://HOST:PORT`, Apache DataFusion Ballista):
//! the address, a quick check that a scheduler answers there, a context whose queries run
//! on it, and the scan reports its executors send back through the job's metrics.

use std::sync::Arc;
use std::time::Duration;

use ballista::prelude::SessionContextExt;
use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::protobuf::operator_metric::Metric;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::{GetJobMetricsParams, GetJobStatusParams};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::protobuf::LogicalPlanNode;

use super::functions::flowlens_functions;
use crate::error::{Error, Result};
use crate::source::ScanStats;
use crate::table::{FlowsLogicalCodec, FlowsPhysicalCodec, report_in_metric};

/// Ballista's default scheduler port.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// How long the scheduler may take to answer the first call before `--cluster` gives up.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Partitions a cluster plan is cut into at least: more than the cores of a small cluster,
/// so every executor gets work and a lost task is a small part to redo.
const MIN_CLUSTER_PARTITIONS: usize = 16;

/// A scheduler's address, from `df://HOST[:PORT]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterAddress {
    pub host: String,
    pub port: u16,
}

impl ClusterAddress {
    /// Parses `df://HOST[:PORT]` (port 50050 when left out).
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |why: &str| Error::invalid("--cluster", format!("{text:?}: {why}"));
        let rest = text
            .trim()
            .strip_prefix("df://")
            .ok_or_else(|| invalid("expected df://HOST:PORT, e.g. df://scheduler:50050"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') => (
                host,
                port.parse::<u16>()
                    .map_err(|_| invalid("the port is not a number from 1 to 65535"))?,
            ),
            _ => (rest, DEFAULT_SCHEDULER_PORT),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(invalid(
                "expected df://HOST:PORT, e.g. df://scheduler:50050",
            ));
        }
        Ok(ClusterAddress {
            host: host.to_string(),
            port,
        })
    }

    /// The `df://` form, as Ballista's client takes it.
    pub fn url(&self) -> String {
        match self.host.contains(':') {
            true => format!("df://[{}]:{}", self.host, self.port),
            false => format!("df://{}:{}", self.host, self.port),
        }
    }

    /// The gRPC endpoint.
    fn http(&self) -> String {
        match self.host.contains(':') {
            true => format!("http://[{}]:{}", self.host, self.port),
            false => format!("http://{}:{}", self.host, self.port),
        }
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::Cluster {
            address: self.url(),
            message: message.into(),
        }
    }

    /// A connection to the scheduler, within seconds or an error naming the address.
    async fn scheduler(&self) -> Result<SchedulerGrpcClient<tonic::transport::Channel>> {
        let endpoint = ballista_core::utils::create_grpc_client_endpoint(self.http(), None)
            .map_err(|e| self.error(e.to_string()))?
            .connect_timeout(PROBE_TIMEOUT)
            .timeout(PROBE_TIMEOUT);
        let channel = endpoint.connect().await.map_err(|e| {
            self.error(format!(
                "no scheduler answers there ({}); start one with `flowlens scheduler`",
                root_message(&e)
            ))
        })?;
        Ok(SchedulerGrpcClient::new(channel))
    }

    /// Checks that a Ballista scheduler of our major version answers at the address.
    pub async fn probe(&self) -> Result<()> {
        let mut scheduler = self.scheduler().await?;
        let answer = scheduler
            .get_job_status(GetJobStatusParams {
                job_id: "flowlens-probe".to_string(),
            })
            .await;
        let metadata = match &answer {
            Ok(response) => response.metadata().clone(),
            Err(status) if status.code() == tonic::Code::NotFound => status.metadata().clone(),
            Err(status) => {
                return Err(self.error(format!(
                    "the server there is not a Ballista scheduler flowlens can use: {} ({:?})",
                    status.message(),
                    status.code()
                )));
            }
        };
        // A scheduler states its version when a job is submitted (and Ballista refuses a
        // different major version then); one that states it here already is checked now.
        match ballista_core::version::version_from_metadata(&metadata) {
            Some(theirs) => ballista_core::version::check_compatibility(
                Some(ballista_core::BALLISTA_VERSION),
                Some(theirs),
            )
            .map_err(|message| self.error(message)),
            None => Ok(()),
        }
    }
}

/// The deepest message of an error chain: what actually went wrong.
fn root_message(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// The config every role (client, scheduler, executor) runs plans with: flowlens's codecs.
pub(crate) fn with_codecs(config: SessionConfig) -> SessionConfig {
    config
        .with_ballista_logical_extension_codec(Arc::new(FlowsLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(FlowsPhysicalCodec::default()))
}

/// The state a scheduler plans a client's query in and an executor runs it with:
/// DataFusion's defaults, the settings that came with the query, flowlens's functions.
pub fn flowlens_state(config: SessionConfig) -> SessionState {
    let mut state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(with_codecs(config))
        .build();
    add_functions(&mut state);
    state
}

/// Adds flowlens's functions to `state`'s (a builder's list would replace the defaults).
fn add_functions(state: &mut SessionState) {
    use datafusion::execution::FunctionRegistry;
    for function in flowlens_functions() {
        // Registering only replaces a function of the same name: it cannot fail.
        let _ = state.register_udf(Arc::new(function));
    }
}

/// A context whose queries run on the cluster, over the same tables (one catalog) as the
/// local session it was made from, and the scheduler it talks to.
#[derive(Clone)]
pub struct ClusterSession {
    pub address: ClusterAddress,
    pub ctx: SessionContext,
}

impl ClusterSession {
    /// A cluster context sharing `local`'s tables and functions.
    pub async fn connect(address: &ClusterAddress, local: &SessionState) -> Result<Self> {
        let partitions = local
            .config()
            .target_partitions()
            .max(MIN_CLUSTER_PARTITIONS);
        let mut config = with_codecs(local.config().clone()).with_target_partitions(partitions);
        // The catalog is the local session's (shared): making a default one would replace
        // it, and its tables, for both.
        config
            .options_mut()
            .catalog
            .create_default_catalog_and_schema = false;
        let state = SessionStateBuilder::new_from_existing(local.clone())
            .with_config(config)
            .build();
        let ctx = SessionContext::remote_with_state(&address.url(), state)
            .await
            .map_err(|e| address.error(e.to_string()))?;
        // Ballista's upgrade sets its own function list: ours go back in.
        for function in flowlens_functions() {
            ctx.register_udf(function);
        }
        Ok(ClusterSession {
            address: address.clone(),
            ctx,
        })
    }

    /// Adds what the cluster's scans of `plan` saw (objects, rows, bad lines, failed
    /// objects) to `stats`, from the finished job's metrics.
    pub async fn absorb_reports(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        stats: &ScanStats,
    ) -> Result<()> {
        let mut jobs = Vec::new();
        collect_jobs(plan, &mut jobs);
        if jobs.is_empty() {
            return Ok(());
        }
        let mut scheduler = self.address.scheduler().await?;
        for job in jobs {
            let metrics = scheduler
                .get_job_metrics(GetJobMetricsParams {
                    job_id: job.clone(),
                })
                .await
                .map_err(|status| {
                    self.address.error(format!(
                        "job {job}: what its scans read could not be fetched: {}",
                        status.message()
                    ))
                })?
                .into_inner();
            for stage in metrics.stages {
                for operator in stage.operators {
                    for metric in operator.metrics {
                        if let Some(Metric::Count(count)) = metric.metric
                            && let Some(report) = report_in_metric(&count.name)
                        {
                            stats.absorb_report(&report);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The cluster jobs a plan ran (its distributed query nodes' job ids).
fn collect_jobs(plan: &Arc<dyn ExecutionPlan>, jobs: &mut Vec<String>) {
    if let Some(query) = plan.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>()
        && let Some(job) = query.job_id()
    {
        jobs.push(job.to_string());
    }
    for child in plan.children() {
        collect_jobs(child, jobs);
    }
}

/// A scheduler and an executor of `tasks` slots in this process: Ballista's standalone
/// mode, with flowlens's codecs and functions. For tests.
#[cfg(test)]
pub(crate) async fn standalone(tasks: usize) -> Result<ClusterAddress> {
    let state = flowlens_state(ballista_core::utils::default_config_producer());
    let fail = |e: &dyn std::fmt::Display| Error::Cluster {
        address: "standalone".to_string(),
        message: e.to_string(),
    };
    let bound = ballista_scheduler::standalone::new_standalone_scheduler_from_state(&state)
        .await
        .map_err(|e| fail(&e))?;
    let address = ClusterAddress {
        host: "localhost".to_string(),
        port: bound.port(),
    };
    let started = std::time::Instant::now();
    let scheduler = loop {
        match SchedulerGrpcClient::connect(address.http()).await {
            Ok(client) => break client,
            Err(e) if started.elapsed() > PROBE_TIMEOUT => return Err(fail(&e)),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    ballista_executor::new_standalone_executor_from_state(scheduler, tasks, &state)
        .await
        .map_err(|e| fail(&e))?;
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn addresses_parse_with_and_without_a_port() {
        let a = ClusterAddress::parse("df://sched.internal:50051").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("sched.internal", 50051));
        let b = ClusterAddress::parse("df://10.0.0.5").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port),
            ("10.0.0.5", DEFAULT_SCHEDULER_PORT)
        );
        assert_eq!(b.url(), "df://10.0.0.5:50050");
        let c = ClusterAddress::parse("df://[::1]:6000/").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 6000));
        for bad in [
            "sched:50050",
            "http://sched:50050",
            "df://",
            "df://host:port",
            "df://h:70000",
        ] {
            assert!(ClusterAddress::parse(bad).is_err(), "{bad}");
        }
    }
}

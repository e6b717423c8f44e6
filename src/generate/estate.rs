//! The synthetic estate: one VPC with network interfaces of different roles, and the flow
//! logs (in different formats) that cover them.

use crate::format::FlowFormat;

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
pub const VPC: &str = "vpc-0a1b2c3d4e5f60718";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Public web server: clients from the internet on 443/80, background probes rejected.
    Web,
    /// Private application server: called by web servers, calls the database and S3.
    App,
    /// Private database: called by application servers on 5432.
    Db,
    /// Public SSH bastion: a few office addresses on 22 by day; probes rejected.
    Bastion,
    /// Nightly batch worker: a burst of uploads to S3 every night, idle otherwise.
    Batch,
    /// NAT gateway interface: private instances' egress to the internet.
    Nat,
    /// ECS task interface: a container service calling SaaS APIs.
    Task,
    /// Kubernetes node: pods whose addresses change every day, a gRPC service on 50051 and a
    /// metrics exporter on 61001 (above Linux's ephemeral ports), image pulls in a burst at
    /// any hour.
    K8sNode,
    /// CI runner: bursts of package downloads, git over SSH and artifact uploads at any hour.
    CiRunner,
    /// A job that runs once a week, on the weekday the archive ends on, and sends a few
    /// gigabytes to a partner.
    WeeklyJob,
    /// An application server that autoscaling starts on the archive's last day: no history.
    Autoscaled,
}

const ROLES: [Role; 11] = [
    Role::Web,
    Role::App,
    Role::Db,
    Role::Bastion,
    Role::Batch,
    Role::Nat,
    Role::Task,
    Role::K8sNode,
    Role::CiRunner,
    Role::WeeklyJob,
    Role::Autoscaled,
];

impl Role {
    /// Which of the three flow logs (formats) covers this role's interfaces.
    fn flow_log(self) -> usize {
        match self {
            Role::Web | Role::Bastion => 0,
            Role::App | Role::Db | Role::Batch | Role::K8sNode | Role::Autoscaled => 1,
            Role::Nat | Role::Task | Role::CiRunner | Role::WeeklyJob => 2,
        }
    }

    pub fn is_public(self) -> bool {
        matches!(self, Role::Web | Role::Bastion | Role::Nat)
    }

    /// Roles that call out to SaaS: a fleet-wide deployment reaches all of them at once.
    pub fn calls_out(self) -> bool {
        matches!(
            self,
            Role::App
                | Role::Batch
                | Role::Task
                | Role::K8sNode
                | Role::CiRunner
                | Role::WeeklyJob
                | Role::Autoscaled
        )
    }
}

#[derive(Clone, Debug)]
pub struct Eni {
    pub index: usize,
    pub role: Role,
    pub id: String,
    pub instance_id: Option<String>,
    pub addr: String,
    pub subnet_id: String,
    pub az_id: &'static str,
    /// Which flow log covers it (index into `Estate::flow_logs`).
    pub flow_log: usize,
}

#[derive(Clone, Debug)]
pub struct FlowLog {
    pub id: String,
    pub format: FlowFormat,
}

#[derive(Clone, Debug)]
pub struct Estate {
    pub enis: Vec<Eni>,
    pub flow_logs: Vec<FlowLog>,
}

/// The formats the estate's flow logs use: the default, a version 5 custom format, and a
/// reordered format with ECS and version 8-10 fields, as AWS's API writes them.
pub const FORMATS: [&str; 3] = [
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes \
     start end action log-status",
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes \
     start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr \
     pkt-dstaddr region az-id flow-direction traffic-path pkt-src-aws-service \
     pkt-dst-aws-service",
    "${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} \
     ${bytes} ${start} ${end} ${action} ${log-status} ${account-id} ${version} \
     ${flow-direction} ${tcp-flags} ${type} ${pkt-srcaddr} ${pkt-dstaddr} ${reject-reason} \
     ${resource-id} ${encryption-status} ${ecs-cluster-name} ${ecs-task-id}",
];

fn hex_id(seed: u64, salt: u64, len: usize) -> String {
    let mut rng = fastrand::Rng::with_seed(seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    (0..len)
        .map(|_| char::from(b"0123456789abcdef"[rng.usize(..16)]))
        .collect()
}

impl Estate {
    /// `count` interfaces cycling through the roles; `mixed_formats` spreads them over three
    /// flow logs of different formats, otherwise one default-format flow log covers all.
    pub fn new(count: usize, seed: u64, mixed_formats: bool) -> Self {
        let flow_logs: Vec<FlowLog> = (0..if mixed_formats { 3 } else { 1 })
            .map(|i| FlowLog {
                id: format!("fl-{}", hex_id(seed, 1000 + i as u64, 17)),
                format: FlowFormat::parse(FORMATS[i]).unwrap_or_else(|_| FlowFormat::default_v2()),
            })
            .collect();
        let enis = (0..count)
            .map(|index| {
                let role = ROLES[index % ROLES.len()];
                let az = index % 2;
                let subnet = if role.is_public() { az } else { 10 + az };
                Eni {
                    index,
                    role,
                    id: format!("eni-{}", hex_id(seed, index as u64, 17)),
                    instance_id: (role != Role::Nat)
                        .then(|| format!("i-{}", hex_id(seed, 500 + index as u64, 17))),
                    addr: format!("10.0.{subnet}.{}", 10 + index / 2),
                    subnet_id: format!("subnet-{}", hex_id(seed, 900 + subnet as u64, 17)),
                    az_id: ["use1-az1", "use1-az2"][az],
                    flow_log: if mixed_formats { role.flow_log() } else { 0 },
                }
            })
            .collect();
        Estate { enis, flow_logs }
    }

    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &Eni> {
        self.enis.iter().filter(move |e| e.role == role)
    }
}

//! The traffic of one interface in one aggregation window: who talks to it, on which
//! ports, how much, shaped by time of day and day of week.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Timelike};

use super::estate::{ACCOUNT, Eni, Estate, REGION, Role, VPC};
use crate::format::{FIELDS, FlowFormat};

/// AWS's default aggregation interval.
pub const WINDOW: i64 = 600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    NoData,
    SkipData,
}

/// One flow log record before it is written in a flow log's format.
#[derive(Clone, Debug)]
pub struct Record {
    pub srcaddr: String,
    pub dstaddr: String,
    pub srcport: u16,
    pub dstport: u16,
    pub protocol: u8,
    pub packets: u64,
    pub bytes: u64,
    pub start: i64,
    pub end: i64,
    pub accept: bool,
    pub status: Status,
    pub tcp_flags: u8,
    pub ingress: bool,
    pub pkt_srcaddr: Option<String>,
    pub pkt_dst_aws_service: Option<&'static str>,
}

/// First octets of public IPv4 space the generator draws internet addresses from.
const PUBLIC_FIRST_OCTETS: [u8; 20] = [
    3, 13, 18, 23, 34, 44, 52, 54, 63, 66, 73, 81, 88, 91, 98, 104, 142, 151, 176, 185,
];

/// The `i`th address of a deterministic pool of public addresses.
pub fn public_addr(i: u64) -> String {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    let first = PUBLIC_FIRST_OCTETS[(h % PUBLIC_FIRST_OCTETS.len() as u64) as usize];
    format!(
        "{first}.{}.{}.{}",
        (h >> 8) & 0xff,
        (h >> 16) & 0xff,
        1 + (h >> 24) % 254
    )
}

fn public_v6(i: u64) -> String {
    let addr = std::net::Ipv6Addr::new(
        0x2a02,
        0xcf40,
        (i >> 8) as u16,
        0,
        0,
        0,
        0,
        (i & 0xff) as u16,
    );
    addr.to_string()
}

/// A pool index drawn with a heavy head: a few peers are seen often, most rarely.
fn skewed(rng: &mut fastrand::Rng, pool: u64) -> u64 {
    let u = rng.f64();
    ((u * u * u) * pool as f64) as u64
}

/// A Poisson-ish count around `mean` (cheap, good enough for volumes).
fn count(rng: &mut fastrand::Rng, mean: f64) -> usize {
    if mean <= 0.0 {
        return 0;
    }
    let whole = mean.floor();
    let extra = if rng.f64() < mean - whole { 1.0 } else { 0.0 };
    let jitter = 0.75 + 0.5 * rng.f64();
    ((whole + extra) * jitter).round() as usize
}

/// Business-hours shape: quiet at night, a peak mid-afternoon UTC, lower at weekends.
pub fn activity(t: i64) -> f64 {
    let Some(dt) = DateTime::from_timestamp(t, 0) else {
        return 1.0;
    };
    let hour = dt.hour() as f64 + dt.minute() as f64 / 60.0;
    let daily = 0.2 + 0.8 * (-((hour - 14.0) * (hour - 14.0)) / (2.0 * 16.0)).exp();
    let weekend = matches!(dt.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
    daily * if weekend { 0.5 } else { 1.0 }
}

fn hour_of(t: i64) -> u32 {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.hour())
        .unwrap_or(0)
}

pub struct TrafficGen<'a> {
    pub estate: &'a Estate,
    pub rate: f64,
    /// The day being generated and the archive's last day (Unix seconds at 00:00).
    pub day: i64,
    pub last_day: i64,
    pub seed: u64,
}

/// A deterministic number from a few integers (which hour a burst comes in, say).
fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x243f_6a88_85a3_08d3, |h, p| {
        (h ^ p).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
    })
}

impl TrafficGen<'_> {
    /// Appends the records of `eni` for the window starting at `window`.
    pub fn window(&self, eni: &Eni, window: i64, rng: &mut fastrand::Rng, out: &mut Vec<Record>) {
        // An autoscaled interface does not exist before its day: not even NODATA records.
        if eni.role == Role::Autoscaled && window < self.last_day + 8 * 3600 {
            return;
        }
        let before = out.len();
        let busy = activity(window) * self.rate;
        let peers = |role| {
            self.estate
                .with_role(role)
                .map(|e| e.addr.clone())
                .collect::<Vec<_>>()
        };
        match eni.role {
            Role::Web => {
                for _ in 0..count(rng, 40.0 * busy) {
                    let i = skewed(rng, 3000);
                    let v6 = i.is_multiple_of(10);
                    let client = if v6 { public_v6(i) } else { public_addr(i) };
                    let port = if rng.u8(..10) == 0 { 80 } else { 443 };
                    self.conversation(eni, window, rng, &client, port, true, out);
                }
                self.probes(eni, window, rng, 4.0, out);
            }
            // An autoscaled server is an application server without the S3 uploads.
            Role::App | Role::Autoscaled => {
                for web in peers(Role::Web) {
                    for _ in 0..count(rng, 15.0 * busy) {
                        self.conversation(eni, window, rng, &web, 8080, true, out);
                    }
                }
                for db in peers(Role::Db) {
                    for _ in 0..count(rng, 10.0 * busy) {
                        self.conversation(eni, window, rng, &db, 5432, false, out);
                    }
                }
                if eni.role == Role::App {
                    for _ in 0..count(rng, 2.0 * busy) {
                        self.s3(eni, window, rng, 200_000, out);
                    }
                }
            }
            Role::Db => {
                for app in peers(Role::App) {
                    for _ in 0..count(rng, 10.0 * busy) {
                        self.conversation(eni, window, rng, &app, 5432, true, out);
                    }
                }
            }
            Role::Bastion => {
                let weekday_daytime = activity(window) > 0.6;
                if weekday_daytime {
                    for _ in 0..count(rng, 1.5 * self.rate) {
                        let office = format!("81.2.69.{}", 140 + rng.u8(..3));
                        self.conversation(eni, window, rng, &office, 22, true, out);
                    }
                }
                self.probes(eni, window, rng, 6.0, out);
            }
            Role::Batch => {
                let nightly = (1..3).contains(&hour_of(window));
                let mean = if nightly { 30.0 * self.rate } else { 0.15 };
                for _ in 0..count(rng, mean) {
                    self.s3(eni, window, rng, 40_000_000, out);
                }
            }
            Role::Nat => {
                for _ in 0..count(rng, 25.0 * busy) {
                    let saas = public_addr(100_000 + skewed(rng, 40));
                    let app = peers(Role::App);
                    let inner = app.get(rng.usize(..app.len().max(1))).cloned();
                    let first = out.len();
                    self.conversation(eni, window, rng, &saas, 443, false, out);
                    for r in &mut out[first..] {
                        r.pkt_srcaddr = inner.clone().filter(|_| !r.ingress);
                    }
                }
                self.probes(eni, window, rng, 3.0, out);
            }
            Role::Task => {
                for _ in 0..count(rng, 10.0 * busy) {
                    let saas = public_addr(100_000 + skewed(rng, 40));
                    self.conversation(eni, window, rng, &saas, 443, false, out);
                }
            }
            Role::K8sNode => self.k8s_node(eni, window, rng, busy, out),
            Role::CiRunner => self.ci_runner(eni, window, rng, out),
            Role::WeeklyJob => {
                let weekday = |t: i64| t.div_euclid(86400) % 7;
                if weekday(window) == weekday(self.last_day) && hour_of(window) == 3 {
                    for _ in 0..count(rng, 30.0 * self.rate) {
                        let partner = format!("185.199.108.{}", 1 + rng.u8(..4));
                        let first = out.len();
                        self.conversation(eni, window, rng, &partner, 443, false, out);
                        if let Some(r) = out.get_mut(first) {
                            r.bytes = 15_000_000 + rng.u64(..10_000_000);
                            r.packets = r.bytes / 1400 + 1;
                        }
                    }
                } else {
                    for _ in 0..count(rng, 0.2) {
                        self.s3(eni, window, rng, 20_000, out);
                    }
                }
            }
        }
        self.fleet_deployment(eni, window, rng, out);
        if out.len() == before {
            out.push(self.status_record(window, Status::NoData));
        } else if rng.u32(..1000) < 2 {
            out.push(self.status_record(window, Status::SkipData));
        }
    }

    /// A Kubernetes node: calls to pods whose addresses change every day, the API server,
    /// a gRPC service on 50051 and a metrics exporter on 61001 for other hosts, and one burst
    /// of image pulls a day at an hour that changes every day.
    fn k8s_node(
        &self,
        eni: &Eni,
        window: i64,
        rng: &mut fastrand::Rng,
        busy: f64,
        out: &mut Vec<Record>,
    ) {
        let day = self.day.div_euclid(86400) as u64;
        let salt = self.seed ^ eni.index as u64;
        for _ in 0..count(rng, 8.0 * busy) {
            let pod = rng.u64(..8);
            let h = mix(&[salt, day, pod]);
            let addr = format!("10.0.{}.{}", 64 + h % 60, 1 + (h >> 8) % 250);
            let port = if pod < 6 { 8080 } else { 9090 };
            self.conversation(eni, window, rng, &addr, port, false, out);
        }
        for _ in 0..count(rng, 3.0) {
            self.conversation(eni, window, rng, "10.0.0.5", 443, false, out);
        }
        let clients: Vec<String> = self
            .estate
            .enis
            .iter()
            .filter(|e| {
                matches!(e.role, Role::Web | Role::App | Role::K8sNode) && e.index != eni.index
            })
            .map(|e| e.addr.clone())
            .collect();
        for _ in 0..count(rng, 10.0 * busy) {
            if let Some(client) = clients.get(rng.usize(..clients.len().max(1))) {
                self.conversation(eni, window, rng, client, 50051, true, out);
            }
        }
        for _ in 0..count(rng, 4.0) {
            self.conversation(eni, window, rng, "10.0.0.9", 61001, true, out);
        }
        if hour_of(window) as u64 == mix(&[salt, day, 99]) % 24 {
            for _ in 0..count(rng, 12.0 * self.rate) {
                let first = out.len();
                let registry = format!("52.216.{}.{}", rng.u8(..8), 1 + rng.u8(..250));
                self.conversation(eni, window, rng, &registry, 443, false, out);
                if let Some(r) = out.get_mut(first + 1) {
                    r.bytes = 5_000_000 + rng.u64(..10_000_000);
                    r.packets = r.bytes / 1400 + 1;
                }
            }
        }
    }

    /// A CI runner: polls for jobs all day; a job (in a quarter of the hours, which ones
    /// changing every day) downloads packages, clones over SSH and uploads an artifact.
    fn ci_runner(&self, eni: &Eni, window: i64, rng: &mut fastrand::Rng, out: &mut Vec<Record>) {
        self.conversation(eni, window, rng, "140.82.112.5", 443, false, out);
        let hour = (window.div_euclid(3600)) as u64;
        if !mix(&[self.seed ^ eni.index as u64, hour]).is_multiple_of(4) {
            return;
        }
        for _ in 0..count(rng, 12.0 * self.rate) {
            let mirror = format!("151.101.{}.{}", rng.u8(..4), 1 + rng.u8(..250));
            let first = out.len();
            self.conversation(eni, window, rng, &mirror, 443, false, out);
            if let Some(r) = out.get_mut(first + 1) {
                r.bytes = 1_000_000 + rng.u64(..9_000_000);
                r.packets = r.bytes / 1400 + 1;
            }
        }
        for _ in 0..count(rng, 3.0) {
            let git = format!("140.82.{}.3", 112 + rng.u8(..3));
            self.conversation(eni, window, rng, &git, 22, false, out);
        }
        if rng.u8(..3) == 0 {
            self.s3(eni, window, rng, 80_000_000, out);
        }
    }

    /// A deployment across the fleet on the archive's last day: from 09:00 every interface
    /// that calls out sends telemetry to a new service once a minute. A change, not an attack.
    fn fleet_deployment(
        &self,
        eni: &Eni,
        window: i64,
        rng: &mut fastrand::Rng,
        out: &mut Vec<Record>,
    ) {
        if !eni.role.calls_out() || window < self.last_day + 9 * 3600 {
            return;
        }
        let collector = format!("199.232.46.{}", 1 + eni.index % 4);
        for k in 0..WINDOW / 60 {
            let start = window + 60 * k + rng.i64(0..20);
            let end = (start + 1).min(window + WINDOW - 1);
            let ephemeral = rng.u16(32768..61000);
            for (src, dst, sport, dport, ingress, bytes) in [
                (
                    eni.addr.as_str(),
                    collector.as_str(),
                    ephemeral,
                    443,
                    false,
                    900,
                ),
                (
                    collector.as_str(),
                    eni.addr.as_str(),
                    443,
                    ephemeral,
                    true,
                    300,
                ),
            ] {
                out.push(Record {
                    srcaddr: src.to_string(),
                    dstaddr: dst.to_string(),
                    srcport: sport,
                    dstport: dport,
                    protocol: 6,
                    packets: 3,
                    bytes,
                    start,
                    end,
                    accept: true,
                    status: Status::Ok,
                    tcp_flags: 19,
                    ingress,
                    pkt_srcaddr: None,
                    pkt_dst_aws_service: None,
                });
            }
        }
    }

    fn times(&self, window: i64, rng: &mut fastrand::Rng) -> (i64, i64) {
        let start = window + rng.i64(0..WINDOW - 60);
        let end = (start + rng.i64(1..90)).min(window + WINDOW - 1);
        (start, end)
    }

    /// An accepted TCP conversation: the request record and the response record.
    /// `inbound`: the remote side opened it to `port` on this interface.
    #[allow(clippy::too_many_arguments)]
    fn conversation(
        &self,
        eni: &Eni,
        window: i64,
        rng: &mut fastrand::Rng,
        remote: &str,
        port: u16,
        inbound: bool,
        out: &mut Vec<Record>,
    ) {
        let (start, end) = self.times(window, rng);
        let ephemeral = rng.u16(32768..61000);
        let req_bytes = rng.u64(200..3000);
        let resp_bytes = (1000.0 * (1.0 / (1.0 - rng.f64() * 0.999))).round() as u64;
        let (client, server) = if inbound {
            (remote.to_string(), eni.addr.clone())
        } else {
            (eni.addr.clone(), remote.to_string())
        };
        let closed = rng.u8(..4) != 0;
        out.push(Record {
            srcaddr: client.clone(),
            dstaddr: server.clone(),
            srcport: ephemeral,
            dstport: port,
            protocol: 6,
            packets: req_bytes / 500 + 3,
            bytes: req_bytes,
            start,
            end,
            accept: true,
            status: Status::Ok,
            tcp_flags: if closed { 3 } else { 2 },
            ingress: inbound,
            pkt_srcaddr: None,
            pkt_dst_aws_service: None,
        });
        out.push(Record {
            srcaddr: server,
            dstaddr: client,
            srcport: port,
            dstport: ephemeral,
            protocol: 6,
            packets: resp_bytes / 1200 + 2,
            bytes: resp_bytes,
            start,
            end,
            accept: true,
            status: Status::Ok,
            tcp_flags: if closed { 19 } else { 18 },
            ingress: !inbound,
            pkt_srcaddr: None,
            pkt_dst_aws_service: None,
        });
    }

    fn s3(
        &self,
        eni: &Eni,
        window: i64,
        rng: &mut fastrand::Rng,
        scale: u64,
        out: &mut Vec<Record>,
    ) {
        let first = out.len();
        let endpoint = format!("52.216.{}.{}", rng.u8(..8), 1 + rng.u8(..250));
        self.conversation(eni, window, rng, &endpoint, 443, false, out);
        // Uploads: the request side carries the bytes.
        let bytes = scale / 2 + rng.u64(0..scale);
        if let Some(r) = out.get_mut(first) {
            r.bytes = bytes;
            r.packets = bytes / 1400 + 1;
            r.pkt_dst_aws_service = Some("S3");
        }
    }

    /// Background internet scanning that security groups reject.
    fn probes(
        &self,
        eni: &Eni,
        window: i64,
        rng: &mut fastrand::Rng,
        mean: f64,
        out: &mut Vec<Record>,
    ) {
        const PORTS: [u16; 12] = [
            22, 23, 445, 3389, 1433, 3306, 5900, 6379, 8080, 8443, 9200, 2375,
        ];
        for _ in 0..count(rng, mean) {
            let (start, end) = self.times(window, rng);
            let icmp = rng.u8(..10) == 0;
            let dstport = match (icmp, eni.role) {
                (true, _) => 0,
                (false, Role::Bastion) if rng.bool() => 22,
                (false, _) if rng.u8(..4) == 0 => rng.u16(1..65535),
                (false, _) => PORTS[rng.usize(..PORTS.len())],
            };
            out.push(Record {
                srcaddr: public_addr(1_000_000 + rng.u64(..200_000)),
                dstaddr: eni.addr.clone(),
                srcport: if icmp { 0 } else { rng.u16(1024..65535) },
                dstport,
                protocol: if icmp { 1 } else { 6 },
                packets: 1,
                bytes: if icmp { 84 } else { 40 + 4 * rng.u64(..6) },
                start,
                end,
                accept: false,
                status: Status::Ok,
                tcp_flags: if icmp { 0 } else { 2 },
                ingress: true,
                pkt_srcaddr: None,
                pkt_dst_aws_service: None,
            });
        }
    }

    fn status_record(&self, window: i64, status: Status) -> Record {
        Record {
            srcaddr: String::new(),
            dstaddr: String::new(),
            srcport: 0,
            dstport: 0,
            protocol: 0,
            packets: 0,
            bytes: 0,
            start: window,
            end: window + WINDOW - 1,
            accept: false,
            status,
            tcp_flags: 0,
            ingress: true,
            pkt_srcaddr: None,
            pkt_dst_aws_service: None,
        }
    }
}

/// Writes `record` as one line of `format`, `-` where a field does not apply.
pub fn write_line(out: &mut String, record: &Record, eni: &Eni, format: &FlowFormat) {
    let traffic = record.status == Status::Ok;
    for (i, field) in format.positions().iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let Some(idx) = field else {
            out.push('-');
            continue;
        };
        let name = FIELDS[*idx].name;
        let before = out.len();
        let _ = match name {
            "version" => write!(out, "{}", if format.len() == 14 { 2 } else { 5 }),
            "account-id" => write!(out, "{ACCOUNT}"),
            "interface-id" => write!(out, "{}", eni.id),
            "start" => write!(out, "{}", record.start),
            "end" => write!(out, "{}", record.end),
            "log-status" => write!(
                out,
                "{}",
                match record.status {
                    Status::Ok => "OK",
                    Status::NoData => "NODATA",
                    Status::SkipData => "SKIPDATA",
                }
            ),
            "vpc-id" => write!(out, "{VPC}"),
            "subnet-id" => write!(out, "{}", eni.subnet_id),
            "instance-id" => match &eni.instance_id {
                Some(id) => write!(out, "{id}"),
                None => Ok(()),
            },
            "region" => write!(out, "{REGION}"),
            "az-id" => write!(out, "{}", eni.az_id),
            "resource-id" if eni.role == Role::Nat => write!(out, "nat-0a1b2c3d4e5f67890"),
            "ecs-cluster-name" if eni.role == Role::Task => write!(out, "payments"),
            "ecs-task-id" if eni.role == Role::Task => {
                write!(out, "4f2c9e1d7a6b4c3e8f9a0b1c2d3e4f5{}", eni.index % 10)
            }
            _ if !traffic => Ok(()),
            "srcaddr" => write!(out, "{}", record.srcaddr),
            "dstaddr" => write!(out, "{}", record.dstaddr),
            "srcport" => write!(out, "{}", record.srcport),
            "dstport" => write!(out, "{}", record.dstport),
            "protocol" => write!(out, "{}", record.protocol),
            "packets" => write!(out, "{}", record.packets),
            "bytes" => write!(out, "{}", record.bytes),
            "action" => write!(out, "{}", if record.accept { "ACCEPT" } else { "REJECT" }),
            "tcp-flags" if record.protocol == 6 => write!(out, "{}", record.tcp_flags),
            "type" => write!(
                out,
                "{}",
                if record.srcaddr.contains(':') {
                    "IPv6"
                } else {
                    "IPv4"
                }
            ),
            "pkt-srcaddr" => write!(
                out,
                "{}",
                record.pkt_srcaddr.as_deref().unwrap_or(&record.srcaddr)
            ),
            "pkt-dstaddr" => write!(out, "{}", record.dstaddr),
            "flow-direction" => {
                write!(out, "{}", if record.ingress { "ingress" } else { "egress" })
            }
            "traffic-path" if !record.ingress => {
                write!(
                    out,
                    "{}",
                    if record.dstaddr.starts_with("10.") {
                        1
                    } else {
                        2
                    }
                )
            }
            "pkt-dst-aws-service" => match record.pkt_dst_aws_service {
                Some(s) => write!(out, "{s}"),
                None => Ok(()),
            },
            "encryption-status" => write!(
                out,
                "{}",
                u8::from(record.dstport == 443 || record.srcport == 443) * 2
            ),
            _ => Ok(()),
        };
        if out.len() == before {
            out.push('-');
        }
    }
    out.push('\n');
}

//! Labelled incidents of every finding kind, laid over the normal traffic of the archive's
//! last day, so detection can be measured: found or missed, and what else it raised.

use super::estate::{Eni, Estate, Role};
use super::traffic::{Record, Status, WINDOW};

/// One labelled incident: the kind a detector should report, where and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    pub kind: &'static str,
    pub eni: usize,
    pub start: i64,
    pub end: i64,
}

const HOUR: i64 = 3600;

/// The incidents of the day starting at `day`, on interfaces of the roles they suit.
/// Kinds whose role is missing from a small estate are left out.
pub fn plan(estate: &Estate, day: i64) -> Vec<Incident> {
    let first = |role| estate.with_role(role).next().map(|e| e.index);
    let at = |kind, role, from: i64, to: i64| {
        first(role).map(|eni| Incident {
            kind,
            eni,
            start: day + from,
            end: day + to,
        })
    };
    [
        at("port_scan", Role::Web, 3 * HOUR + 600, 3 * HOUR + 900),
        at("brute_force", Role::Bastion, 4 * HOUR, 5 * HOUR),
        at("dos", Role::Web, 13 * HOUR, 14 * HOUR),
        at("exfiltration", Role::Db, 2 * HOUR, 3 * HOUR),
        at("volume_spike", Role::App, 15 * HOUR, 16 * HOUR),
        at("unusual_port", Role::Task, 10 * HOUR, 11 * HOUR),
        at("new_peer", Role::Nat, 6 * HOUR, 10 * HOUR),
        at("beaconing", Role::Batch, 8 * HOUR, 16 * HOUR),
        at("nacl_return_reject", Role::App, 11 * HOUR, 12 * HOUR),
        at("reject_spike", Role::Db, 18 * HOUR, 20 * HOUR),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn record(src: &str, dst: &str, sport: u16, dport: u16, start: i64, ingress: bool) -> Record {
    Record {
        srcaddr: src.to_string(),
        dstaddr: dst.to_string(),
        srcport: sport,
        dstport: dport,
        protocol: 6,
        packets: 4,
        bytes: 240,
        start,
        end: start + 2,
        accept: true,
        status: Status::Ok,
        tcp_flags: 3,
        ingress,
        pkt_srcaddr: None,
        pkt_dst_aws_service: None,
    }
}

/// Appends the records `incident` adds to `eni`'s aggregation window starting at `window`.
pub fn records(
    incident: &Incident,
    estate: &Estate,
    eni: &Eni,
    window: i64,
    rng: &mut fastrand::Rng,
    out: &mut Vec<Record>,
) {
    let from = incident.start.max(window);
    let to = incident.end.min(window + WINDOW);
    if incident.eni != eni.index || from >= to {
        return;
    }
    let me = eni.addr.as_str();
    let at = |rng: &mut fastrand::Rng| rng.i64(from..to).min(window + WINDOW - 3);
    let peer = |role| estate.with_role(role).next().map(|e| e.addr.clone());
    match incident.kind {
        "port_scan" => {
            // 5.188.10.41 walks 400 ports in five minutes; the security group rejects them.
            for i in 0..((to - from) * 400 / (incident.end - incident.start)) as u16 {
                let port = 1 + (i * 163) % 10_000;
                let mut r = record("5.188.10.41", me, 41_000 + i, port, at(rng), true);
                r.accept = port == 443 || port == 80;
                r.packets = 1;
                r.bytes = 44;
                r.tcp_flags = 2;
                out.push(r);
            }
        }
        "brute_force" => {
            // 45.155.205.233 tries SSH logins: hundreds of short accepted sessions.
            for _ in 0..70 {
                let t = at(rng);
                let port = rng.u16(32768..61000);
                out.push(record("45.155.205.233", me, port, 22, t, true));
                out.push(record(me, "45.155.205.233", 22, port, t, false));
            }
        }
        "dos" => {
            // A flood from thousands of addresses.
            for _ in 0..5000 {
                let src = format!(
                    "49.{}.{}.{}",
                    128 + rng.u8(..60),
                    rng.u8(..),
                    1 + rng.u8(..250)
                );
                let mut r = record(&src, me, rng.u16(1024..65535), 443, at(rng), true);
                r.packets = 2;
                r.bytes = 120;
                r.tcp_flags = 2;
                out.push(r);
            }
        }
        "exfiltration" => {
            // Gigabytes to an address the database never talked to.
            for _ in 0..20 {
                let mut r = record(
                    me,
                    "198.51.100.77",
                    rng.u16(32768..61000),
                    443,
                    at(rng),
                    false,
                );
                r.bytes = 25_000_000 + rng.u64(..5_000_000);
                r.packets = r.bytes / 1400;
                out.push(r);
            }
        }
        "volume_spike" => {
            // Internal bulk reads from the database, far above the usual hour.
            if let Some(db) = peer(Role::Db) {
                for _ in 0..40 {
                    let port = rng.u16(32768..61000);
                    let t = at(rng);
                    out.push(record(me, &db, port, 5432, t, false));
                    let mut r = record(&db, me, 5432, port, t, true);
                    r.bytes = 20_000_000 + rng.u64(..10_000_000);
                    r.packets = r.bytes / 1400;
                    out.push(r);
                }
            }
        }
        "unusual_port" => {
            // Accepted traffic to a port the task never used (4444: a common shell port).
            for _ in 0..6 {
                let port = rng.u16(32768..61000);
                let t = at(rng);
                out.push(record(me, "203.0.113.50", port, 4444, t, false));
                out.push(record("203.0.113.50", me, 4444, port, t, true));
            }
        }
        "new_peer" => {
            // Hours of steady traffic with a network never seen before.
            for _ in 0..12 {
                let dst = format!("93.184.216.{}", 10 + rng.u8(..4));
                let port = rng.u16(32768..61000);
                let t = at(rng);
                let mut r = record(me, &dst, port, 443, t, false);
                r.bytes = 200_000;
                out.push(r);
                out.push(record(&dst, me, 443, port, t, true));
            }
        }
        "beaconing" => {
            // A call home every two minutes, to the second, with tiny payloads.
            let mut t = incident.start + 17;
            while t < incident.end {
                if t >= window && t < window + WINDOW - 3 {
                    let port = 40_000 + ((t / 120) % 20_000) as u16;
                    out.push(record(me, "45.77.12.34", port, 8443, t, false));
                    out.push(record("45.77.12.34", me, 8443, port, t, true));
                }
                t += 120;
            }
        }
        "nacl_return_reject" => {
            // Requests out are accepted; the network ACL drops the replies.
            for _ in 0..10 {
                let port = rng.u16(32768..61000);
                let t = at(rng);
                out.push(record(me, "104.16.1.1", port, 443, t, false));
                let mut reply = record("104.16.1.1", me, 443, port, t, true);
                reply.accept = false;
                out.push(reply);
            }
        }
        "reject_spike" => {
            // A security group change: the application's connections are now rejected.
            if let Some(app) = peer(Role::App) {
                for _ in 0..120 {
                    let mut r = record(&app, me, rng.u16(32768..61000), 5432, at(rng), true);
                    r.accept = false;
                    r.packets = 1;
                    r.bytes = 60;
                    r.tcp_flags = 2;
                    out.push(r);
                }
            }
        }
        _ => {}
    }
}

/// The labels file: one JSON object per line.
pub fn labels_jsonl(estate: &Estate, incidents: &[Incident]) -> String {
    let mut out = String::new();
    for i in incidents {
        let line = serde_json::json!({
            "kind": i.kind,
            "interface_id": estate.enis[i.eni].id,
            "window_start": crate::time_range::format_time(i.start),
            "window_end": crate::time_range::format_time(i.end),
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

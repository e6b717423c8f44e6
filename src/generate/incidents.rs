//! Labelled incidents of every finding kind, laid over the normal traffic of the archive's
//! last day, so detection can be measured: found or missed, and what else it raised.

use super::estate::{Eni, Estate, Role};
use super::traffic::{Record, Status, WINDOW};

/// One labelled incident: the kind a detector should report, where and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    /// The finding kind that should report it (its label).
    pub kind: &'static str,
    /// Which story the generator tells: the kind, or a variant of it (`slow_port_scan`).
    pub story: &'static str,
    pub eni: usize,
    pub start: i64,
    pub end: i64,
}

const HOUR: i64 = 3600;

/// The incidents of the day starting at `day`, on interfaces of the roles they suit.
/// Kinds whose role is missing from a small estate are left out.
pub fn plan(estate: &Estate, day: i64) -> Vec<Incident> {
    // The second wave goes to each role's second interface where the estate has one, so
    // two stories on one interface (which may well be one incident) are the small estate's
    // exception, not the rule.
    let pick = |role, nth| {
        let mut of_role = estate.with_role(role).map(|e| e.index);
        let first = of_role.next();
        if nth == 0 {
            first
        } else {
            of_role.next().or(first)
        }
    };
    let at = |story: &'static str, role, from: i64, to: i64| {
        let second_wave = !matches!(
            story,
            "port_scan"
                | "brute_force"
                | "dos"
                | "exfiltration"
                | "volume_spike"
                | "unusual_port"
                | "new_peer"
                | "beaconing"
                | "nacl_return_reject"
                | "reject_spike"
        );
        pick(role, usize::from(second_wave)).map(|eni| Incident {
            kind: story
                .strip_prefix("slow_")
                .or_else(|| story.strip_prefix("jittered_"))
                .unwrap_or(story),
            story,
            eni,
            start: day + from,
            end: day + to,
        })
    };
    [
        at("port_scan", Role::Web, 3 * HOUR + 600, 3 * HOUR + 900),
        at("brute_force", Role::Bastion, 4 * HOUR, 6 * HOUR),
        at("dos", Role::Web, 13 * HOUR, 14 * HOUR),
        at("exfiltration", Role::Db, 2 * HOUR, 3 * HOUR),
        at("volume_spike", Role::App, 15 * HOUR, 16 * HOUR),
        at("unusual_port", Role::Task, 10 * HOUR, 11 * HOUR),
        at("new_peer", Role::Nat, 6 * HOUR, 10 * HOUR),
        at("beaconing", Role::Batch, 8 * HOUR, 16 * HOUR),
        at("nacl_return_reject", Role::App, 11 * HOUR, 12 * HOUR),
        at("reject_spike", Role::Db, 18 * HOUR, 20 * HOUR),
        // The second wave: what a taken-over interface does, and slow attacks.
        at("outbound_scan", Role::App, 20 * HOUR, 20 * HOUR + 1200),
        at("outbound_brute_force", Role::Task, 16 * HOUR, 17 * HOUR),
        at("outbound_dos", Role::Batch, 12 * HOUR, 13 * HOUR),
        at("dns_anomaly", Role::Bastion, 7 * HOUR, 10 * HOUR),
        at("slow_port_scan", Role::Nat, 12 * HOUR, 20 * HOUR),
        at("slow_exfiltration", Role::Task, 4 * HOUR, 16 * HOUR),
        at("jittered_beaconing", Role::Db, 6 * HOUR, 16 * HOUR),
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
    match incident.story {
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
            // Three addresses of one botnet try SSH logins over two hours: hundreds of short
            // accepted sessions (one incident, not six findings).
            for _ in 0..70 {
                let attacker =
                    ["45.155.205.233", "45.155.205.234", "45.155.205.240"][rng.usize(..3)];
                let t = at(rng);
                let port = rng.u16(32768..61000);
                out.push(record(attacker, me, port, 22, t, true));
                out.push(record(me, attacker, 22, port, t, false));
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
            // Requests out are accepted; the network ACL drops the replies, from every one of
            // twelve peers (one mistake, one incident).
            for i in 0..120u8 {
                let peer = format!("104.16.{}.1", 1 + i % 12);
                let port = rng.u16(32768..61000);
                let t = at(rng);
                out.push(record(me, &peer, port, 443, t, false));
                let mut reply = record(&peer, me, 443, port, t, true);
                reply.accept = false;
                out.push(reply);
            }
        }
        "outbound_scan" => {
            // A taken-over application server sweeps its network for SMB: 600 addresses in
            // twenty minutes, a few of which answer.
            for i in 0..((to - from) * 600 / (incident.end - incident.start)) {
                let target = format!("10.0.{}.{}", (i / 250) % 4, 1 + i % 250);
                let port = rng.u16(32768..61000);
                let t = at(rng);
                let mut r = record(me, &target, port, 445, t, false);
                r.packets = 2;
                r.bytes = 120;
                r.tcp_flags = 2;
                out.push(r);
                if i % 10 == 0 {
                    let mut reply = record(&target, me, 445, port, t, true);
                    reply.tcp_flags = 4;
                    out.push(reply);
                }
            }
        }
        "outbound_brute_force" => {
            // The task guesses SSH passwords on three hosts elsewhere: short sessions.
            for _ in 0..(3 * 80 * (to - from) / (incident.end - incident.start)) {
                let target = ["159.89.14.20", "159.89.14.21", "167.71.3.9"][rng.usize(..3)];
                let port = rng.u16(32768..61000);
                let t = at(rng);
                out.push(record(me, target, port, 22, t, false));
                out.push(record(target, me, 22, port, t, true));
            }
        }
        "outbound_dos" => {
            // The batch worker floods one address with UDP.
            for _ in 0..(300 * (to - from) / (incident.end - incident.start)) {
                let mut r = record(me, "62.210.33.7", rng.u16(1024..65535), 80, at(rng), false);
                r.protocol = 17;
                r.packets = 4000 + rng.u64(..2000);
                r.bytes = r.packets * 512;
                out.push(r);
            }
        }
        "dns_anomaly" => {
            // DNS tunnelling: hundreds of queries an hour straight to an outside resolver.
            for _ in 0..(900 * (to - from) / HOUR) {
                let port = rng.u16(32768..61000);
                let t = at(rng);
                let mut q = record(me, "185.220.101.4", port, 53, t, false);
                q.protocol = 17;
                q.packets = 1;
                q.bytes = 180 + rng.u64(..60);
                out.push(q);
                let mut a = record("185.220.101.4", me, 53, port, t, true);
                a.protocol = 17;
                a.packets = 1;
                a.bytes = 120 + rng.u64(..300);
                out.push(a);
            }
        }
        "slow_port_scan" => {
            // One port every three minutes for eight hours: no five minutes see more than two.
            let mut t = incident.start + 29;
            let mut i = 0u16;
            while t < incident.end {
                if t >= window && t < window + WINDOW - 3 {
                    let port = 1 + (i * 211) % 20_000;
                    let mut r = record("5.101.44.9", me, 50_000 + i, port, t, true);
                    r.accept = false;
                    r.packets = 1;
                    r.bytes = 44;
                    r.tcp_flags = 2;
                    out.push(r);
                }
                t += 180;
                i += 1;
            }
        }
        "slow_exfiltration" => {
            // Uploads to a new network all day, each hour below what an hour would flag.
            for _ in 0..(8 * (to - from) / HOUR).max(1) {
                let port = rng.u16(32768..61000);
                let mut r = record(me, "92.63.197.12", port, 443, at(rng), false);
                r.bytes = 5_000_000 + rng.u64(..2_000_000);
                r.packets = r.bytes / 1400;
                out.push(r);
                out.push(record("92.63.197.12", me, 443, port, at(rng), true));
            }
        }
        "jittered_beaconing" => {
            // A call home every five minutes, each sleep 30% shorter or longer at random (how
            // implants' jitter works).
            let mut t = incident.start + 41;
            let mut k = 0i64;
            while t < incident.end {
                if t >= window && t < window + WINDOW - 3 {
                    let port = 40_000 + (k % 20_000) as u16;
                    out.push(record(me, "45.33.32.156", port, 443, t, false));
                    out.push(record("45.33.32.156", me, 443, port, t, true));
                }
                k += 1;
                t += 300 + (k * 7919 + eni.index as i64 * 31) % 181 - 90;
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

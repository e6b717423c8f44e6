//! Incidents: the findings of one interface that tell one story. A NACL mistake rejects the
//! replies of a dozen peers (a dozen findings), a botnet tries SSH from three addresses over
//! two hours (six); a person should see one incident for each, with its findings under it.
//!
//! Two findings of one interface belong together when their windows overlap or come within
//! [`GAP`] of each other and they share a cause (the same kind) or a remote address; an
//! incident is what those links join, transitively.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::finding::{Finding, Severity};
use crate::time_range::format_time;

/// Findings this close in time can be one story (an attack that pauses, hourly windows
/// that touch).
const GAP: i64 = 3600;

/// Remote addresses an incident lists at most.
const MAX_REMOTES: usize = 20;

/// One incident: its findings and what they add up to.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    pub incident_id: String,
    pub interface_id: String,
    pub account_id: Option<String>,
    pub severity: Severity,
    pub first: i64,
    pub last: i64,
    /// Kinds, most severe first.
    pub kinds: Vec<String>,
    pub remote_addrs: Vec<String>,
    pub finding_ids: Vec<String>,
}

fn remotes(finding: &Finding) -> impl Iterator<Item = &str> {
    finding
        .evidence
        .get("remote_addrs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn linked(a: &Finding, b: &Finding) -> bool {
    if a.interface_id != b.interface_id
        || a.window_start > b.window_end.saturating_add(GAP)
        || b.window_start > a.window_end.saturating_add(GAP)
    {
        return false;
    }
    a.kind == b.kind || remotes(a).any(|r| remotes(b).any(|s| s == r))
}

fn root(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Sets every finding's `incident_id` and returns the incidents, in the findings' order of
/// first appearance. An incident's id is a stable hash of its earliest finding's id, so a
/// rerun over the same data gives the same ids.
pub fn assign_incidents(findings: &mut [Finding]) -> Vec<Incident> {
    let n = findings.len();
    let mut parent: Vec<usize> = (0..n).collect();
    // Findings of one interface only ever link: compare within each interface.
    let mut by_interface: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, f) in findings.iter().enumerate() {
        by_interface.entry(&f.interface_id).or_default().push(i);
    }
    for members in by_interface.values() {
        for (x, &i) in members.iter().enumerate() {
            for &j in &members[x + 1..] {
                if linked(&findings[i], &findings[j]) {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    if a != b {
                        parent[a.max(b)] = a.min(b);
                    }
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    let mut incidents: Vec<(usize, Incident)> = groups
        .into_values()
        .map(|members| {
            let earliest = members
                .iter()
                .copied()
                .min_by(|&a, &b| {
                    let (fa, fb) = (&findings[a], &findings[b]);
                    fa.window_start
                        .cmp(&fb.window_start)
                        .then(fa.finding_id.cmp(&fb.finding_id))
                })
                .unwrap_or(members[0]);
            let id = crate::stable_hash::stable_hash(&format!(
                "incident|{}",
                findings[earliest].finding_id
            ))
            .hex();
            let mut kinds: Vec<(Severity, String)> = Vec::new();
            let mut seen_remotes = BTreeSet::new();
            let mut remote_addrs = Vec::new();
            for &i in &members {
                let f = &findings[i];
                match kinds.iter_mut().find(|(_, k)| *k == f.kind) {
                    Some(entry) => entry.0 = entry.0.max(f.severity),
                    None => kinds.push((f.severity, f.kind.clone())),
                }
                for r in remotes(f) {
                    if remote_addrs.len() < MAX_REMOTES && seen_remotes.insert(r.to_string()) {
                        remote_addrs.push(r.to_string());
                    }
                }
            }
            kinds.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let first_index = members.iter().copied().min().unwrap_or(0);
            let f0 = &findings[earliest];
            let incident = Incident {
                incident_id: id,
                interface_id: f0.interface_id.clone(),
                account_id: f0.account_id.clone(),
                severity: members
                    .iter()
                    .map(|&i| findings[i].severity)
                    .max()
                    .unwrap_or(Severity::Low),
                first: members
                    .iter()
                    .map(|&i| findings[i].window_start)
                    .min()
                    .unwrap_or(0),
                last: members
                    .iter()
                    .map(|&i| findings[i].window_end)
                    .max()
                    .unwrap_or(0),
                kinds: kinds.into_iter().map(|(_, k)| k).collect(),
                remote_addrs,
                finding_ids: members
                    .iter()
                    .map(|&i| findings[i].finding_id.clone())
                    .collect(),
            };
            for &i in &members {
                findings[i].incident_id = Some(incident.incident_id.clone());
            }
            (first_index, incident)
        })
        .collect();
    incidents.sort_by_key(|(first, _)| *first);
    incidents.into_iter().map(|(_, i)| i).collect()
}

impl Incident {
    /// One sentence: what happened, on which interface, with whom.
    pub fn summary(&self) -> String {
        let n = self.finding_ids.len();
        let remotes = match self.remote_addrs.len() {
            0 => String::new(),
            k if k <= 3 => format!(" with {}", self.remote_addrs.join(", ")),
            k => format!(
                " with {} and {} more",
                self.remote_addrs[..3].join(", "),
                k - 3
            ),
        };
        format!(
            "{}: {} on {}{} ({} finding{})",
            self.severity,
            self.kinds.join(", "),
            self.interface_id,
            remotes,
            n,
            if n == 1 { "" } else { "s" }
        )
    }

    pub fn to_json(&self) -> Value {
        json!({
            "incident_id": self.incident_id,
            "interface_id": self.interface_id,
            "account_id": self.account_id,
            "severity": self.severity.as_str(),
            "first": format_time(self.first),
            "last": format_time(self.last),
            "kinds": self.kinds,
            "remote_addrs": self.remote_addrs,
            "finding_ids": self.finding_ids,
            "summary": self.summary(),
        })
    }
}

/// Incidents as one JSON object per line, or for people: one line per incident and its
/// findings under it.
pub fn render_incidents(incidents: &[Incident], findings: &[Finding], json: bool) -> String {
    if json {
        return incidents
            .iter()
            .map(|i| format!("{}\n", i.to_json()))
            .collect();
    }
    if incidents.is_empty() {
        return "no incidents\n".to_string();
    }
    let mut out = String::new();
    for incident in incidents {
        out.push_str(&format!(
            "{:<8} {} .. {} {}  incident {}\n         {}\n",
            incident.severity.as_str().to_uppercase(),
            format_time(incident.first),
            format_time(incident.last),
            incident.interface_id,
            incident.incident_id,
            incident.summary()
        ));
        for f in findings
            .iter()
            .filter(|f| f.incident_id.as_deref() == Some(incident.incident_id.as_str()))
        {
            out.push_str(&format!(
                "         - {:<6} {:<20} {}  {}\n",
                f.severity.as_str(),
                f.kind,
                format_time(f.window_start),
                f.summary
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn finding(kind: &str, eni: &str, start: i64, end: i64, remote: &str) -> Finding {
        let mut evidence = Map::new();
        evidence.insert("remote_addrs".into(), json!([remote]));
        Finding {
            finding_id: format!("{kind}-{eni}-{start}-{remote}"),
            incident_id: None,
            kind: kind.into(),
            severity: Severity::Medium,
            interface_id: eni.into(),
            account_id: None,
            vpc_id: None,
            window_start: start,
            window_end: end,
            score: 1.0,
            summary: String::new(),
            evidence,
        }
    }

    #[test]
    fn one_mistake_or_one_botnet_is_one_incident() {
        let mut findings: Vec<Finding> = (0..12)
            .map(|i| {
                finding(
                    "nacl_return_reject",
                    "eni-a",
                    100,
                    3600,
                    &format!("104.16.{i}.1"),
                )
            })
            .collect();
        // Three addresses over two hours: hourly windows that touch.
        for (h, addr) in [
            (0, "45.1.1.1"),
            (1, "45.1.1.2"),
            (1, "45.1.1.3"),
            (0, "45.1.1.3"),
        ] {
            findings.push(finding(
                "brute_force",
                "eni-b",
                h * 3600,
                h * 3600 + 3600,
                addr,
            ));
        }
        let incidents = assign_incidents(&mut findings);
        assert_eq!(incidents.len(), 2, "{incidents:#?}");
        assert_eq!(incidents[0].finding_ids.len(), 12);
        assert_eq!(incidents[0].remote_addrs.len(), 12);
        assert_eq!(incidents[1].finding_ids.len(), 4);
        assert!(findings.iter().all(|f| f.incident_id.is_some()));
        // Stable: the same findings in another order give the same ids.
        let mut again = findings.clone();
        again.reverse();
        let ids: BTreeSet<String> = assign_incidents(&mut again)
            .into_iter()
            .map(|i| i.incident_id)
            .collect();
        assert_eq!(
            ids,
            incidents.iter().map(|i| i.incident_id.clone()).collect()
        );
    }

    #[test]
    fn other_interfaces_times_and_stories_stay_apart() {
        let mut findings = vec![
            finding("port_scan", "eni-a", 0, 300, "5.5.5.5"),
            // Same kind, other interface.
            finding("port_scan", "eni-b", 0, 300, "5.5.5.5"),
            // Same interface and kind, but hours later.
            finding("port_scan", "eni-a", 5 * 3600, 5 * 3600 + 300, "6.6.6.6"),
            // Same interface and time, other kind and remote: another story.
            finding("new_peer", "eni-a", 0, 3600, "7.7.7.7"),
            // Other kind, shared remote: the same story.
            finding("unusual_port", "eni-a", 200, 3600, "7.7.7.7"),
        ];
        let incidents = assign_incidents(&mut findings);
        assert_eq!(incidents.len(), 4, "{incidents:#?}");
        assert_eq!(findings[3].incident_id, findings[4].incident_id);
        assert_ne!(findings[0].incident_id, findings[3].incident_id);
        assert_ne!(findings[0].incident_id, findings[2].incident_id);
    }
}

//! Findings with their context: who the interface is (inventory), who each remote is (AWS
//! range, country, network owner, lists), why an ACL finding's replies were rejected. A
//! finding whose remotes are all on an allow list is left out; one with a remote on a
//! threat list is raised a severity and says so.

use std::net::IpAddr;

use serde_json::{Map, Value, json};

use super::finding::{Finding, Severity};
use crate::context::{Context, FlowKey, ListKind};

/// Adds the context to `findings`; returns them and what a person should know (findings
/// left out by the allow lists).
pub(crate) fn enrich(findings: Vec<Finding>, context: &Context) -> (Vec<Finding>, Vec<String>) {
    let mut kept = Vec::with_capacity(findings.len());
    let mut allowed = Vec::new();
    for mut finding in findings {
        let remotes: Vec<String> = finding
            .evidence
            .get("remote_addrs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut shown = Vec::new();
        let mut remote_context = Vec::new();
        let mut threats = Vec::new();
        for remote in &remotes {
            let Ok(addr) = remote.parse::<IpAddr>() else {
                shown.push(remote.clone());
                continue;
            };
            let info = context.remote(addr);
            if info.lists.iter().any(|(_, kind)| *kind == ListKind::Allow) {
                continue;
            }
            shown.push(remote.clone());
            let mut about = Map::new();
            if let Some(aws) = &info.aws {
                about.insert("aws_service".into(), json!(aws.service));
                about.insert("aws_region".into(), json!(aws.region));
            }
            if let Some(country) = &info.geo.country {
                about.insert("country".into(), json!(country));
            }
            if let Some(asn) = info.geo.asn {
                about.insert("asn".into(), json!(asn));
            }
            if let Some(org) = &info.geo.as_org {
                about.insert("as_org".into(), json!(org));
            }
            let lists: Vec<&str> = info
                .lists
                .iter()
                .filter(|(_, kind)| *kind == ListKind::Threat)
                .map(|(name, _)| name.as_str())
                .collect();
            if !lists.is_empty() {
                about.insert("threat_lists".into(), json!(lists));
                threats.push(format!("{remote} is on threat list {}", lists.join(", ")));
            }
            if !about.is_empty() {
                about.insert("addr".into(), json!(remote));
                remote_context.push(Value::Object(about));
            }
        }
        if !remotes.is_empty() && shown.is_empty() {
            allowed.push(format!("{} {}", finding.kind, finding.interface_id));
            continue;
        }
        if shown.len() < remotes.len() {
            finding.evidence.insert("remote_addrs".into(), json!(shown));
            finding
                .evidence
                .insert("allow_listed".into(), json!(remotes.len() - shown.len()));
        }
        if !remote_context.is_empty() {
            finding
                .evidence
                .insert("remote_context".into(), Value::Array(remote_context));
        }
        if !threats.is_empty() {
            let raised = match finding.severity {
                Severity::Low => Severity::Medium,
                Severity::Medium => Severity::High,
                Severity::High | Severity::Critical => Severity::Critical,
            };
            finding.evidence.insert(
                "severity_raised_from".into(),
                json!(finding.severity.as_str()),
            );
            finding.severity = raised;
            finding.summary = format!(
                "{} Raised to {} because {}.",
                finding.summary.trim_end(),
                raised.as_str(),
                threats.join("; ")
            );
        }
        if let Some(eni) = context.interface(&finding.interface_id) {
            let mut about = Map::new();
            for (key, value) in [
                ("instance_id", &eni.instance_id),
                ("name", &eni.name),
                ("description", &eni.description),
                ("subnet_id", &eni.subnet_id),
                ("interface_type", &eni.interface_type),
            ] {
                if let Some(v) = value {
                    about.insert(key.into(), json!(v));
                }
            }
            about.insert("security_groups".into(), json!(eni.security_groups));
            if let Some(tags) = eni
                .tags
                .as_deref()
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
            {
                about.insert("tags".into(), tags);
            }
            finding
                .evidence
                .insert("interface".into(), Value::Object(about));
            if finding.kind == "nacl_return_reject" {
                explain_return_reject(&mut finding, context, eni.private_ips.first());
            }
        }
        kept.push(finding);
    }
    let mut notes = Vec::new();
    if !allowed.is_empty() {
        notes.push(format!(
            "{} finding(s) left out: their remotes are all on an allow list ({})",
            allowed.len(),
            allowed.join(", ")
        ));
    }
    (kept, notes)
}

/// A rejected reply: from the remote's service port back to an ephemeral port of the
/// interface's address, as the ACL saw it.
fn explain_return_reject(finding: &mut Finding, context: &Context, local: Option<&String>) {
    let remote = finding
        .evidence
        .get("remote_addrs")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .and_then(|r| r.parse::<IpAddr>().ok());
    let port = finding
        .evidence
        .get("ports")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_i64)
        .and_then(|p| i32::try_from(p).ok());
    let (Some(remote), Some(local)) = (remote, local.and_then(|l| l.parse::<IpAddr>().ok())) else {
        return;
    };
    let flow = FlowKey {
        interface_id: &finding.interface_id,
        src: remote,
        dst: local,
        srcport: port,
        // Any port of the ephemeral range: the rule that decides covers it or not.
        dstport: Some(49152),
        protocol: Some(6),
    };
    if let Some(explanation) = context.explain(flow) {
        finding
            .evidence
            .insert("reject_cause".into(), json!(explanation.cause));
        finding
            .evidence
            .insert("explanation".into(), json!(explanation.text));
    }
}

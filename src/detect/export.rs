//! Findings in other systems' terms: Security Hub's ASFF and the alerts people are paged
//! with (one per incident at or above a severity, with a cooldown per interface and kind).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::finding::{Finding, Severity};
use super::incident::Incident;
use crate::source::AsffFinding;
use crate::time_range::format_time;

/// ASFF finding types by kind (Security Hub's namespace/category taxonomy).
fn asff_type(kind: &str) -> &'static str {
    match kind {
        "port_scan" | "outbound_scan" => "TTPs/Discovery",
        "brute_force" | "outbound_brute_force" => "TTPs/Credential Access",
        "dos" | "outbound_dos" => "Effects/Denial of Service",
        "exfiltration" => "Effects/Data Exfiltration",
        "beaconing" | "dns_anomaly" => "TTPs/Command and Control",
        "nacl_return_reject" => "Software and Configuration Checks/AWS Security Best Practices",
        _ => "Unusual Behaviors/Network Flow",
    }
}

/// The findings as ASFF. `account` is used where a finding names none; `now` is the
/// import's time (RFC 3339).
pub fn to_asff(findings: &[Finding], account: &str, region: &str, now: &str) -> Vec<AsffFinding> {
    findings
        .iter()
        .map(|f| {
            let mut fields = vec![
                ("flowlens/kind".to_string(), f.kind.clone()),
                ("flowlens/score".to_string(), format!("{:.2}", f.score)),
            ];
            if let Some(incident) = &f.incident_id {
                fields.push(("flowlens/incident_id".to_string(), incident.clone()));
            }
            if let Some(remotes) = f.evidence.get("remote_addrs").and_then(Value::as_array) {
                let remotes: Vec<&str> =
                    remotes.iter().filter_map(Value::as_str).take(20).collect();
                fields.push(("flowlens/remote_addrs".to_string(), remotes.join(" ")));
            }
            AsffFinding {
                id: format!("flowlens/{}", f.finding_id),
                generator_id: format!("flowlens/{}", f.kind),
                account_id: f.account_id.clone().unwrap_or_else(|| account.to_string()),
                region: region.to_string(),
                types: vec![asff_type(&f.kind).to_string()],
                first_observed_at: format_time(f.window_start),
                last_observed_at: format_time(f.window_end),
                created_at: format_time(f.window_end),
                updated_at: now.to_string(),
                severity: f.severity.as_str().to_uppercase(),
                // Security Hub: titles up to 256 characters, descriptions up to 1024.
                title: truncate(&format!("{} on {}", f.kind, f.interface_id), 256),
                description: truncate(&f.summary, 1024),
                resource_id: f.interface_id.clone(),
                product_fields: fields,
            }
        })
        .collect()
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => text[..at].to_string(),
        None => text.to_string(),
    }
}

/// One alert: what pages a person about an incident.
#[derive(Clone, Debug)]
pub struct Alert {
    /// `interface|kind` for each kind of the incident: the cooldown's keys.
    pub keys: Vec<String>,
    pub subject: String,
    /// The JSON body (SNS, webhooks).
    pub json: String,
    /// Slack's `{"text": …}` body.
    pub slack: String,
}

/// An alert for each incident at or above `min`, most severe first.
pub fn alerts(findings: &[Finding], incidents: &[Incident], min: Severity) -> Vec<Alert> {
    let by_id: BTreeMap<&str, &Finding> = findings
        .iter()
        .map(|f| (f.finding_id.as_str(), f))
        .collect();
    let mut chosen: Vec<&Incident> = incidents.iter().filter(|i| i.severity >= min).collect();
    chosen.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.first.cmp(&b.first)));
    chosen
        .into_iter()
        .map(|incident| {
            let members: Vec<&Finding> = incident
                .finding_ids
                .iter()
                .filter_map(|id| by_id.get(id.as_str()).copied())
                .collect();
            let who = members
                .iter()
                .find_map(|f| f.evidence.get("interface"))
                .and_then(|i| i.get("name").and_then(Value::as_str))
                .map(|name| format!(" ({name})"))
                .unwrap_or_default();
            let subject = format!(
                "flowlens {}: {} on {}{who}",
                incident.severity.as_str().to_uppercase(),
                incident.kinds.join(", "),
                incident.interface_id
            );
            let summaries: Vec<&str> = members.iter().map(|f| f.summary.as_str()).collect();
            let json = json!({
                "source": "flowlens",
                "incident_id": incident.incident_id,
                "severity": incident.severity.as_str(),
                "interface_id": incident.interface_id,
                "account_id": incident.account_id,
                "first": format_time(incident.first),
                "last": format_time(incident.last),
                "kinds": incident.kinds,
                "remote_addrs": incident.remote_addrs,
                "finding_ids": incident.finding_ids,
                "summaries": summaries,
                "interface": members.iter().find_map(|f| f.evidence.get("interface")),
            })
            .to_string();
            let mut text = format!(
                "*{subject}*\n{} to {}",
                format_time(incident.first),
                format_time(incident.last)
            );
            for s in &summaries {
                text.push_str(&format!("\n• {s}"));
            }
            let slack = json!({ "text": text }).to_string();
            Alert {
                keys: incident
                    .kinds
                    .iter()
                    .map(|k| format!("{}|{k}", incident.interface_id))
                    .collect(),
                subject,
                json,
                slack,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn finding(kind: &str, severity: Severity, id: &str) -> Finding {
        let mut evidence = Map::new();
        evidence.insert("remote_addrs".into(), json!(["45.1.2.3"]));
        Finding {
            finding_id: id.into(),
            incident_id: Some("inc-1".into()),
            kind: kind.into(),
            severity,
            interface_id: "eni-1".into(),
            account_id: None,
            vpc_id: None,
            window_start: 1_764_892_800,
            window_end: 1_764_893_400,
            score: 12.5,
            summary: "45.1.2.3 probed 400 ports".into(),
            evidence,
        }
    }

    #[test]
    fn asff_carries_stable_ids_mapped_severity_and_the_interface() {
        let asff = to_asff(
            &[finding("port_scan", Severity::High, "abc")],
            "123456789012",
            "eu-west-1",
            "2026-12-05T20:00:00Z",
        );
        let a = &asff[0];
        assert_eq!(a.id, "flowlens/abc");
        assert_eq!(a.severity, "HIGH");
        assert_eq!(a.account_id, "123456789012");
        assert_eq!(a.resource_id, "eni-1");
        assert_eq!(a.types, vec!["TTPs/Discovery"]);
        assert_eq!(a.first_observed_at, "2025-12-05T00:00:00Z");
        assert!(
            a.product_fields
                .contains(&("flowlens/remote_addrs".into(), "45.1.2.3".into()))
        );
        assert_eq!(truncate("ééé", 2), "éé");
    }

    #[test]
    fn alerts_are_per_incident_at_or_above_the_severity() {
        let findings = vec![
            finding("port_scan", Severity::High, "a"),
            finding("new_peer", Severity::Low, "b"),
        ];
        let incident = |id: &str, severity, kind: &str, finding: &str| Incident {
            incident_id: id.into(),
            interface_id: "eni-1".into(),
            account_id: None,
            severity,
            first: 1_764_892_800,
            last: 1_764_893_400,
            kinds: vec![kind.into()],
            remote_addrs: vec!["45.1.2.3".into()],
            finding_ids: vec![finding.into()],
        };
        let incidents = vec![
            incident("i-low", Severity::Low, "new_peer", "b"),
            incident("i-high", Severity::High, "port_scan", "a"),
        ];
        let sent = alerts(&findings, &incidents, Severity::Medium);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].keys, vec!["eni-1|port_scan"]);
        assert_eq!(sent[0].subject, "flowlens HIGH: port_scan on eni-1");
        let body: Value = serde_json::from_str(&sent[0].json).unwrap();
        assert_eq!(body["incident_id"], "i-high");
        let slack: Value = serde_json::from_str(&sent[0].slack).unwrap();
        assert!(
            slack["text"]
                .as_str()
                .unwrap()
                .contains("• 45.1.2.3 probed 400 ports")
        );
        assert_eq!(alerts(&findings, &incidents, Severity::Low).len(), 2);
    }
}

/// When each `interface|kind` was last alerted (Unix seconds): the scheduled task keeps it in
/// its state so one incident does not page twice within the cooldown.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cooldown {
    pub last: BTreeMap<String, i64>,
}

/// What alerting did.
#[derive(Clone, Debug, Default)]
pub struct Delivery {
    pub sent: usize,
    /// Alerts every key of which was alerted within the cooldown.
    pub suppressed: usize,
    /// "TARGET: why", one per alert a target did not take.
    pub failures: Vec<String>,
}

/// Sends each alert to every target, unless a cooldown (state, seconds) says all its keys
/// were alerted recently. A target that fails is reported and the others still get it.
pub async fn deliver(
    alerts: &[Alert],
    targets: &[crate::source::NotifyTarget],
    mut cooldown: Option<(&mut Cooldown, i64)>,
    now: i64,
) -> Delivery {
    let mut delivery = Delivery::default();
    for alert in alerts {
        if let Some((state, seconds)) = &cooldown
            && alert.keys.iter().all(|k| {
                state
                    .last
                    .get(k)
                    .is_some_and(|&at| now.saturating_sub(at) < *seconds)
            })
        {
            delivery.suppressed += 1;
            continue;
        }
        let mut reached = false;
        for target in targets {
            let body = if target.is_slack() {
                &alert.slack
            } else {
                &alert.json
            };
            let message = crate::source::Message {
                subject: alert.subject.clone(),
                body: body.clone(),
            };
            match crate::source::send(target, &message).await {
                Ok(()) => reached = true,
                Err(e) => delivery.failures.push(format!("{target}: {e}")),
            }
        }
        if reached {
            delivery.sent += 1;
            if let Some((state, _)) = &mut cooldown {
                for key in &alert.keys {
                    state.last.insert(key.clone(), now);
                }
            }
        }
    }
    delivery
}

/// Imports findings into Security Hub under the caller's account, in the configured region.
pub async fn export_to_security_hub(
    findings: &[Finding],
) -> crate::error::Result<crate::source::ImportSummary> {
    if findings.is_empty() {
        return Ok(crate::source::ImportSummary::default());
    }
    let account = crate::source::caller_account().await?;
    let region = crate::source::configured_region()
        .await
        .unwrap_or_else(|| "us-east-1".to_string());
    let now = format_time(chrono::Utc::now().timestamp());
    crate::source::import_findings(&to_asff(findings, &account, &region, &now), &account).await
}

/// Findings as an Amazon Security Lake custom source: OCSF Detection Findings (class 2004)
/// in Parquet, one object per account and day under Security Lake's partition layout
/// `region=REGION/accountId=ACCOUNT/eventDay=YYYYMMDD/`. Returns (path, bytes) for each.
/// Evidence goes into `unmapped` as JSON text (its shape differs from kind to kind).
pub fn security_lake_objects(
    findings: &[Finding],
    region: &str,
    default_account: &str,
    now_ms: i64,
) -> crate::error::Result<Vec<(String, Vec<u8>)>> {
    use crate::error::Error;
    let mut groups: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for f in findings {
        let mut value = f.to_ocsf(now_ms);
        value["unmapped"] = json!({
            "evidence": Value::Object(f.evidence.clone()).to_string(),
            "incident_id": f.incident_id.clone().unwrap_or_default(),
        });
        let account = f
            .account_id
            .clone()
            .unwrap_or_else(|| default_account.to_string());
        value["cloud"]["account"]["uid"] = json!(account);
        value["cloud"]["region"] = json!(region);
        let day: String = format_time(f.window_start)
            .chars()
            .filter(char::is_ascii_digit)
            .take(8)
            .collect();
        groups.entry((account, day)).or_default().push(value);
    }
    let error = |source| Error::Arrow {
        location: "security lake findings".to_string(),
        source,
    };
    let mut objects = Vec::new();
    for ((account, day), values) in groups {
        let schema = arrow::json::reader::infer_json_schema_from_iterator(values.iter().map(Ok))
            .map_err(error)?;
        let schema = std::sync::Arc::new(schema);
        let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
            .build_decoder()
            .map_err(error)?;
        decoder.serialize(&values).map_err(error)?;
        let table = crate::table::Table {
            schema,
            batches: decoder.flush().map_err(error)?.into_iter().collect(),
        };
        let ids: Vec<String> = values
            .iter()
            .filter_map(|v| v.pointer("/finding_info/uid").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        let name = format!(
            "region={region}/accountId={account}/eventDay={day}/flowlens-{}.parquet",
            crate::stable_hash::StableHash::default()
                .update(ids.join(",").as_bytes())
                .hex()
        );
        let bytes = crate::table::to_parquet(&table, &name)?;
        objects.push((name, bytes));
    }
    Ok(objects)
}

/// Writes [`security_lake_objects`] under `location` (a folder or s3:// prefix: the custom
/// source's location), in the configured region (us-east-1 when none is). Returns where.
pub async fn write_security_lake(
    findings: &[Finding],
    location: &str,
    s3: &crate::source::S3Options,
) -> crate::error::Result<Vec<String>> {
    let region = crate::source::configured_region()
        .await
        .unwrap_or_else(|| "us-east-1".to_string());
    let account = findings
        .iter()
        .find_map(|f| f.account_id.clone())
        .unwrap_or_else(|| "unknown".to_string());
    let now = chrono::Utc::now().timestamp_millis();
    let store = crate::source::Store::open(location, "--out", s3).await?;
    let mut written = Vec::new();
    for (name, bytes) in security_lake_objects(findings, &region, &account, now)? {
        store.put(&name, &bytes).await?;
        written.push(store.location(&name));
    }
    Ok(written)
}

//! The HTML report of a detection: what ran, the incidents and findings each beside the
//! interface's metric and its baseline band, and each interface's traffic. The numbers come
//! from the tables the detection left registered in the session (`history`, `hour_metrics`,
//! `base_hours`, `traffic`); `chart` draws them, `page` lays them out as one self-contained
//! file (no scripts or styles from the network, so it opens from file:// and from S3 alike).

mod chart;
mod columns;
mod page;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::catalog::DetectCatalog;
use super::finding::Finding;
use super::pipeline::{DAY, DetectReport};
use super::tables::run;
use crate::error::Result;
use crate::query::FlowsSession;
use columns::Rows;

const HOUR: i64 = 3600;
/// Days before the window a chart shows, so a spike is seen against the days it departs from.
const DAYS_BEFORE: i64 = 3;
/// Interfaces given a section of their own: every one with findings, then the busiest.
const MAX_INTERFACES: usize = 40;
/// Remotes and ports listed per interface.
const TOP: usize = 5;

/// One hour of a metric beside the baseline for that hour of day and day type.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct BandPoint {
    pub hour: i64,
    pub value: f64,
    /// Median, median less and plus three MADs, largest: None where the baseline has no slot.
    pub band: Option<Band>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Band {
    pub median: f64,
    pub mad: f64,
    pub max: f64,
}

/// A finding with the series drawn beside it.
pub(crate) struct FindingView<'a> {
    pub finding: &'a Finding,
    pub metric: Option<&'a str>,
    pub series: Vec<BandPoint>,
}

/// One interface's section.
pub(crate) struct InterfaceView {
    pub interface_id: String,
    /// Who it is, from the inventory: name, instance, description, subnet, groups, tags.
    pub about: Vec<(&'static str, String)>,
    pub baseline_hours: i64,
    pub findings: usize,
    /// Hour, accepted records, rejected records.
    pub traffic: Vec<(i64, f64, f64)>,
    pub remotes: Vec<Vec<String>>,
    pub ports: Vec<Vec<String>>,
}

/// Everything the page shows.
pub(crate) struct ReportData<'a> {
    pub report: &'a DetectReport,
    pub objects: u64,
    pub bad_lines: u64,
    pub records: u64,
    pub findings: Vec<FindingView<'a>>,
    pub interfaces: Vec<InterfaceView>,
    /// Interfaces seen but left without a section.
    pub more_interfaces: usize,
}

/// The report of `report` as one HTML page. Call it on the session the detection ran in,
/// before anything else runs there: it reads the tables the detection left registered.
pub async fn render_report(
    session: &FlowsSession,
    catalog: &DetectCatalog,
    report: &DetectReport,
) -> Result<String> {
    let data = gather(session, catalog, report).await?;
    page::render(&data)
}

async fn gather<'a>(
    session: &FlowsSession,
    catalog: &'a DetectCatalog,
    report: &'a DetectReport,
) -> Result<ReportData<'a>> {
    let (start, end) = report.window;
    let stats = session.stats();
    let mut data = ReportData {
        report,
        objects: stats.objects(),
        bad_lines: stats.bad_lines().total(),
        records: 0,
        findings: Vec::new(),
        interfaces: Vec::new(),
        more_interfaces: 0,
    };
    if report.interfaces.is_empty() {
        return Ok(data);
    }
    let from = start - DAYS_BEFORE * DAY;

    // Which interfaces get a section: those with findings, then the busiest.
    let mut with_findings: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &report.findings {
        *with_findings.entry(f.interface_id.as_str()).or_default() += 1;
    }
    let volumes = Rows::of(
        &run(
            session,
            "report volumes",
            "SELECT interface_id, CAST(sum(records) AS BIGINT) AS records, \
                    CAST(sum(bytes) AS BIGINT) AS bytes \
             FROM traffic WHERE log_status = 'OK' GROUP BY interface_id",
        )
        .await?,
    )?;
    let mut busiest: Vec<(String, i64)> = Vec::new();
    for row in 0..volumes.len() {
        data.records += volumes.i64(row, "records").unwrap_or(0).max(0) as u64;
        busiest.push((
            volumes.string(row, "interface_id").unwrap_or_default(),
            volumes.i64(row, "bytes").unwrap_or(0),
        ));
    }
    busiest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut shown: Vec<String> = with_findings.keys().map(|s| s.to_string()).collect();
    for (id, _) in busiest {
        if shown.len() >= MAX_INTERFACES.max(with_findings.len()) {
            break;
        }
        if !with_findings.contains_key(id.as_str()) {
            shown.push(id);
        }
    }
    data.more_interfaces = report.interfaces.len().saturating_sub(shown.len());

    // Every series the page draws: the findings' metrics and each shown interface's flows
    // and rejects, from the stored or learnt history before the window and the window's own.
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    for f in &report.findings {
        if let Some(metric) = catalog.chart_metric(&f.kind) {
            wanted.insert((f.interface_id.clone(), metric.to_string()));
        }
    }
    for id in &shown {
        wanted.insert((id.clone(), "flows".to_string()));
        wanted.insert((id.clone(), "rejects".to_string()));
    }
    let ids = sql_list(wanted.iter().map(|(i, _)| i.as_str()));
    let metrics = sql_list(wanted.iter().map(|(_, m)| m.as_str()));
    let values = Rows::of(
        &run(
            session,
            "report series",
            &format!(
                "SELECT interface_id, metric, hour, value FROM history \
                 WHERE hour >= {from} AND hour < {start} \
                   AND interface_id IN ({ids}) AND metric IN ({metrics}) \
                 UNION ALL \
                 SELECT interface_id, metric, hour, value FROM hour_metrics \
                 WHERE hour >= {start} AND hour < {end} \
                   AND interface_id IN ({ids}) AND metric IN ({metrics})"
            ),
        )
        .await?,
    )?;
    let mut observed: HashMap<(String, String), BTreeMap<i64, f64>> = HashMap::new();
    for row in 0..values.len() {
        let (Some(id), Some(metric), Some(hour)) = (
            values.string(row, "interface_id"),
            values.string(row, "metric"),
            values.i64(row, "hour"),
        ) else {
            continue;
        };
        *observed
            .entry((id, metric))
            .or_default()
            .entry(hour)
            .or_default() += values.f64(row, "value").unwrap_or(0.0);
    }
    let bands = Rows::of(
        &run(
            session,
            "report baseline",
            &format!(
                "SELECT interface_id, metric, weekend, hod, median, mad, max, n FROM base_hours \
                 WHERE interface_id IN ({ids}) AND metric IN ({metrics})"
            ),
        )
        .await?,
    )?;
    // (interface, metric, weekend, hod) -> band and samples; hod -1 is the whole day type.
    let mut slots: HashMap<(String, String, bool, i64), (Band, i64)> = HashMap::new();
    for row in 0..bands.len() {
        let (Some(id), Some(metric), Some(weekend), Some(hod)) = (
            bands.string(row, "interface_id"),
            bands.string(row, "metric"),
            bands.bool(row, "weekend"),
            bands.i64(row, "hod"),
        ) else {
            continue;
        };
        let band = Band {
            median: bands.f64(row, "median").unwrap_or(0.0),
            mad: bands.f64(row, "mad").unwrap_or(0.0),
            max: bands.f64(row, "max").unwrap_or(0.0),
        };
        let n = bands.i64(row, "n").unwrap_or(0);
        slots.insert((id, metric, weekend, hod), (band, n));
    }
    let series = |id: &str, metric: &str| -> Vec<BandPoint> {
        let key = (id.to_string(), metric.to_string());
        let seen = observed.get(&key);
        (from / HOUR..end.div_euclid(HOUR))
            .map(|h| h * HOUR)
            .map(|hour| {
                let (weekend, hod) = day_slot(hour);
                // As `deviations` compares: the hour-of-day slot when it has enough days,
                // else the whole day type.
                let slot = |hod| slots.get(&(key.0.clone(), key.1.clone(), weekend, hod));
                let band = match slot(hod) {
                    Some((band, n)) if *n >= MIN_SLOT_SAMPLES => Some(*band),
                    _ => slot(-1).map(|(band, _)| *band),
                };
                BandPoint {
                    hour,
                    value: seen.and_then(|s| s.get(&hour)).copied().unwrap_or(0.0),
                    band,
                }
            })
            .collect()
    };
    for f in &report.findings {
        let metric = catalog.chart_metric(&f.kind);
        data.findings.push(FindingView {
            finding: f,
            metric,
            series: metric
                .map(|m| series(&f.interface_id, m))
                .unwrap_or_default(),
        });
    }

    let top = |name: &str, by: &str, columns: &str, group: &str| {
        format!(
            "SELECT * FROM (SELECT interface_id, {columns}, \
                    row_number() OVER (PARTITION BY interface_id ORDER BY {by} DESC, {group}) AS rn \
                    FROM (SELECT interface_id, {group}, CAST(sum(records) AS BIGINT) AS records, \
                                 CAST(sum(bytes) AS BIGINT) AS bytes, \
                                 CAST(coalesce(sum(records) FILTER (WHERE action = 'REJECT'), 0) AS BIGINT) AS rejected \
                          FROM traffic WHERE log_status = 'OK' AND interface_id IN ({ids}) \
                          GROUP BY interface_id, {group}) g) t \
             WHERE rn <= {TOP} ORDER BY interface_id, rn -- {name}"
        )
    };
    let remotes = Rows::of(
        &run(
            session,
            "report remotes",
            &top(
                "remotes",
                "bytes",
                "remote, direction, records, bytes, rejected",
                "remote, direction",
            ),
        )
        .await?,
    )?;
    let ports = Rows::of(
        &run(
            session,
            "report ports",
            &top(
                "ports",
                "records",
                "service_side, service_port, protocol, records, bytes, rejected",
                "service_side, service_port, protocol",
            ),
        )
        .await?,
    )?;
    let hours: HashMap<&str, i64> = report
        .interfaces
        .iter()
        .map(|(id, h)| (id.as_str(), *h))
        .collect();
    for id in shown {
        let flows = series(&id, "flows");
        let rejects = series(&id, "rejects");
        let traffic = flows
            .iter()
            .zip(&rejects)
            .map(|(f, r)| (f.hour, (f.value - r.value).max(0.0), r.value))
            .collect();
        let rows_of = |rows: &Rows, cells: &dyn Fn(usize) -> Vec<String>| {
            (0..rows.len())
                .filter(|&r| rows.string(r, "interface_id").as_deref() == Some(id.as_str()))
                .map(cells)
                .collect::<Vec<_>>()
        };
        let remote_rows = rows_of(&remotes, &|r| {
            vec![
                remotes.string(r, "remote").unwrap_or_else(|| "-".into()),
                remotes.string(r, "direction").unwrap_or_else(|| "-".into()),
                remotes.i64(r, "records").unwrap_or(0).to_string(),
                crate::output::human_bytes(remotes.i64(r, "bytes").unwrap_or(0).max(0) as u64),
                remotes.i64(r, "rejected").unwrap_or(0).to_string(),
            ]
        });
        let port_rows = rows_of(&ports, &|r| {
            let side = ports.string(r, "service_side").unwrap_or_default();
            let port = ports
                .i64(r, "service_port")
                .map_or("-".to_string(), |p| p.to_string());
            let protocol = ports
                .i64(r, "protocol")
                .map_or("-".to_string(), |p| crate::query::protocol_name(p as i32));
            vec![
                format!("{protocol}/{port}"),
                match side.as_str() {
                    "local" => "offered".to_string(),
                    "remote" => "used".to_string(),
                    other => other.to_string(),
                },
                ports.i64(r, "records").unwrap_or(0).to_string(),
                crate::output::human_bytes(ports.i64(r, "bytes").unwrap_or(0).max(0) as u64),
                ports.i64(r, "rejected").unwrap_or(0).to_string(),
            ]
        });
        let about = session
            .enrichment()
            .interface(&id)
            .map(|eni| {
                let mut about = Vec::new();
                for (name, value) in [
                    ("name", &eni.name),
                    ("instance", &eni.instance_id),
                    ("description", &eni.description),
                    ("type", &eni.interface_type),
                    ("subnet", &eni.subnet_id),
                    ("VPC", &eni.vpc_id),
                ] {
                    if let Some(v) = value {
                        about.push((name, v.clone()));
                    }
                }
                if !eni.private_ips.is_empty() {
                    about.push(("addresses", eni.private_ips.join(" ")));
                }
                if !eni.security_groups.is_empty() {
                    about.push(("security groups", eni.security_groups.join(" ")));
                }
                if let Some(tags) = &eni.tags {
                    about.push(("tags", tags.clone()));
                }
                about
            })
            .unwrap_or_default();
        data.interfaces.push(InterfaceView {
            about,
            baseline_hours: hours.get(id.as_str()).copied().unwrap_or(0),
            findings: with_findings.get(id.as_str()).copied().unwrap_or(0),
            traffic,
            remotes: remote_rows,
            ports: port_rows,
            interface_id: id,
        });
    }
    Ok(data)
}

/// The `deviations` step's `min_samples` default: days an hour-of-day slot needs.
const MIN_SLOT_SAMPLES: i64 = 3;

/// Weekend and hour of day of an hour, as the `traffic` step computes them (UTC).
fn day_slot(hour: i64) -> (bool, i64) {
    let weekend = (hour.div_euclid(DAY) + 3).rem_euclid(7) >= 5;
    (weekend, hour.rem_euclid(DAY) / HOUR)
}

/// Values as a SQL list of string literals.
fn sql_list<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let unique: BTreeSet<&str> = values.collect();
    if unique.is_empty() {
        return "NULL".to_string();
    }
    unique
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_slots_match_the_traffic_step() {
        // 2026-12-05 is a Saturday; 2026-12-07 a Monday.
        let saturday = 1_764_892_800 + 365 * DAY; // 2026-12-05T00:00Z
        assert_eq!(
            crate::time_range::format_time(saturday),
            "2026-12-05T00:00:00Z"
        );
        assert_eq!(day_slot(saturday + 13 * HOUR), (true, 13));
        assert_eq!(day_slot(saturday + 2 * DAY + 5 * HOUR), (false, 5));
    }

    #[test]
    fn lists_are_quoted_once_each() {
        assert_eq!(sql_list(["b", "a", "b"].into_iter()), "'a', 'b'");
        assert_eq!(sql_list(["o'k"].into_iter()), "'o''k'");
        assert_eq!(sql_list(std::iter::empty()), "NULL");
    }
}

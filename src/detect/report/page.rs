//! The report as one HTML file: styles and the small table-sorting script are inline, the
//! charts are inline SVG, and nothing is fetched when it opens.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::chart::{baseline_chart, traffic_chart};
use super::{InterfaceView, ReportData};
use crate::error::Result;
use crate::time_range::format_time;

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1180px;padding:16px 24px;color:#1d2330}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;width:100%}
th,td{border-bottom:1px solid #e6e8ee;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f9;font-weight:600}th.sortable{cursor:pointer;user-select:none}
th.sortable:after{content:' \\2195';color:#99a}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.sev{font-weight:600;border-radius:3px;padding:0 5px}
.sev-critical{background:#7a0010;color:#fff}.sev-high{background:#d33;color:#fff}
.sev-medium{background:#f0b400}.sev-low{background:#dde6f3}
figure.chart{margin:4px 0}figure.chart svg{max-width:100%;height:auto}
figcaption{font-size:12px;color:#667}
.summary td:first-child{width:220px;color:#556}
.warn{background:#fff7e0;border-left:3px solid #f0b400;padding:4px 8px;margin:4px 0}
code{font-size:12px;white-space:pre-wrap;word-break:break-all}
details{margin:2px 0 4px;color:#445}
";

/// Sorts a table by the clicked column: numbers by value (a cell's data-sort wins), the rest
/// as text; a second click reverses.
const SCRIPT: &str = "
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, column) {
    th.classList.add('sortable');
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var down = th.dataset.dir !== 'down';
      th.dataset.dir = down ? 'down' : 'up';
      var key = function (row) {
        var cell = row.cells[column];
        var text = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent;
        var number = parseFloat(text);
        return isNaN(number) ? text : number;
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
        return down ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
";

/// Text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn severity_cell(severity: &str, rank: u8) -> String {
    format!(
        "<td data-sort=\"{rank}\"><span class=\"sev sev-{severity}\">{severity}</span></td>",
        severity = escape(severity)
    )
}

pub(crate) fn render(data: &ReportData<'_>) -> Result<String> {
    let report = data.report;
    let mut html = String::with_capacity(256 * 1024);
    let (start, end) = report.window;
    let title = format!(
        "flowlens report: {} to {}",
        format_time(start),
        format_time(end)
    );
    // Writing to a String cannot fail.
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );

    // The run.
    html.push_str("<h2 id=\"summary\">Summary</h2>\n<table class=\"summary\"><tbody>\n");
    let mut row = |name: &str, value: String| {
        let _ = writeln!(html, "<tr><td>{name}</td><td>{value}</td></tr>");
    };
    row(
        "Detection window",
        format!("{} to {}", format_time(start), format_time(end)),
    );
    row(
        "Baseline",
        match report.baseline {
            (0, 0) => "none".to_string(),
            (a, b) => format!("{} to {}", format_time(a), format_time(b)),
        },
    );
    row("Interfaces", report.interfaces.len().to_string());
    row("Records in the window", data.records.to_string());
    row("Objects read", data.objects.to_string());
    row("Bad lines", data.bad_lines.to_string());
    row(
        "Findings",
        format!(
            "{} in {} incidents",
            report.findings.len(),
            report.incidents.len()
        ),
    );
    html.push_str("</tbody></table>\n");
    for warning in &report.warnings {
        let _ = writeln!(html, "<div class=\"warn\">{}</div>", escape(warning));
    }
    by_kind(&mut html, data);

    // Incidents.
    let _ = writeln!(
        html,
        "<h2 id=\"incidents\">Incidents ({})</h2>",
        report.incidents.len()
    );
    if !report.incidents.is_empty() {
        html.push_str(
            "<table class=\"sortable\" id=\"incidents-table\"><thead><tr><th>Severity</th>\
             <th>First</th><th>Last</th><th>Interface</th><th>Kinds</th><th>Remotes</th>\
             <th class=\"num\">Findings</th></tr></thead><tbody>\n",
        );
        for incident in &report.incidents {
            let remotes = incident.remote_addrs.len();
            let shown: Vec<String> = incident
                .remote_addrs
                .iter()
                .take(5)
                .map(|r| escape(r))
                .collect();
            let _ = writeln!(
                html,
                "<tr id=\"{id}\">{}<td>{}</td><td>{}</td><td><a href=\"#if-{iface}\">{iface}</a></td>\
                 <td>{}</td><td>{}{}</td><td class=\"num\">{}</td></tr>",
                severity_cell(incident.severity.as_str(), incident.severity as u8),
                format_time(incident.first),
                format_time(incident.last),
                escape(&incident.kinds.join(", ")),
                shown.join(", "),
                match remotes > 5 {
                    true => format!(" and {} more", remotes - 5),
                    false => String::new(),
                },
                incident.finding_ids.len(),
                id = escape(&incident.incident_id),
                iface = escape(&incident.interface_id),
            );
        }
        html.push_str("</tbody></table>\n");
    }

    // Findings, each beside its metric.
    let _ = writeln!(
        html,
        "<h2 id=\"findings\">Findings ({})</h2>",
        report.findings.len()
    );
    if !data.findings.is_empty() {
        html.push_str(
            "<table class=\"sortable\" id=\"findings-table\"><thead><tr><th>Severity</th>\
             <th>Kind</th><th>Interface</th><th>Window</th><th class=\"num\">Score</th>\
             <th>What and why</th></tr></thead><tbody>\n",
        );
        for view in &data.findings {
            let f = view.finding;
            let chart = match view.metric {
                Some(metric) => {
                    baseline_chart(metric, &view.series, (f.window_start, f.window_end))?
                }
                None => String::new(),
            };
            let _ = writeln!(
                html,
                "<tr id=\"f-{id}\">{}<td>{}</td><td><a href=\"#if-{iface}\">{iface}</a>{who}</td>\
                 <td data-sort=\"{ws}\">{} to {}</td><td class=\"num\">{:.1}</td>\
                 <td>{}<details><summary>evidence</summary><code>{}</code></details>{chart}</td></tr>",
                severity_cell(f.severity.as_str(), f.severity as u8),
                escape(&f.kind),
                format_time(f.window_start),
                format_time(f.window_end),
                f.score,
                escape(&f.summary),
                escape(&serde_json::Value::Object(f.evidence.clone()).to_string()),
                id = escape(&f.finding_id),
                iface = escape(&f.interface_id),
                ws = f.window_start,
                who = who(f),
            );
        }
        html.push_str("</tbody></table>\n");
    }

    // Interfaces.
    let _ = writeln!(html, "<h2 id=\"interfaces\">Interfaces</h2>");
    for view in &data.interfaces {
        interface(&mut html, view)?;
    }
    if data.more_interfaces > 0 {
        let _ = writeln!(
            html,
            "<p>{} more interfaces without findings are not shown.</p>",
            data.more_interfaces
        );
    }
    let _ = write!(html, "<script>{SCRIPT}</script>\n</body></html>\n");
    Ok(html)
}

/// The interface's name and instance from the finding's context (an inventory was given).
fn who(finding: &crate::detect::Finding) -> String {
    let Some(about) = finding.evidence.get("interface") else {
        return String::new();
    };
    let parts: Vec<String> = ["name", "instance_id", "description"]
        .iter()
        .filter_map(|k| about.get(*k).and_then(|v| v.as_str()))
        .map(escape)
        .collect();
    match parts.is_empty() {
        true => String::new(),
        false => format!("<br><small>{}</small>", parts.join(" · ")),
    }
}

/// Findings by kind and severity.
fn by_kind(html: &mut String, data: &ReportData<'_>) {
    let mut counts: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for f in &data.report.findings {
        counts.entry(f.kind.as_str()).or_default()[f.severity as usize] += 1;
    }
    if counts.is_empty() {
        return;
    }
    html.push_str(
        "<table class=\"sortable\" id=\"kinds-table\"><thead><tr><th>Kind</th>\
         <th class=\"num\">critical</th><th class=\"num\">high</th><th class=\"num\">medium</th>\
         <th class=\"num\">low</th></tr></thead><tbody>\n",
    );
    for (kind, n) in counts {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(kind),
            n[3],
            n[2],
            n[1],
            n[0]
        );
    }
    html.push_str("</tbody></table>\n");
}

fn interface(html: &mut String, view: &InterfaceView) -> Result<()> {
    let id = escape(&view.interface_id);
    let days = view.baseline_hours as f64 / 24.0;
    let _ = writeln!(
        html,
        "<h3 id=\"if-{id}\">{id}</h3><p>Baseline: {} hours ({days:.1} days) of history. \
         Findings: {}.</p>",
        view.baseline_hours, view.findings
    );
    if !view.about.is_empty() {
        html.push_str("<table class=\"summary\"><tbody>");
        for (name, value) in &view.about {
            let _ = write!(html, "<tr><td>{name}</td><td>{}</td></tr>", escape(value));
        }
        html.push_str("</tbody></table>\n");
    }
    html.push_str(&traffic_chart(&view.interface_id, &view.traffic)?);
    let table = |html: &mut String, title: &str, head: &[&str], rows: &[Vec<String>]| {
        if rows.is_empty() {
            return;
        }
        let _ = write!(
            html,
            "<table class=\"sortable\"><thead><tr><th>{title}</th>"
        );
        for (i, h) in head.iter().enumerate() {
            let class = if i == 0 { "" } else { " class=\"num\"" };
            let _ = write!(html, "<th{class}>{h}</th>");
        }
        html.push_str("</tr></thead><tbody>");
        for row in rows {
            html.push_str("<tr>");
            for (i, cell) in row.iter().enumerate() {
                match i {
                    0 | 1 => {
                        let _ = write!(html, "<td>{}</td>", escape(cell));
                    }
                    _ => {
                        let _ = write!(html, "<td class=\"num\">{}</td>", escape(cell));
                    }
                }
            }
            html.push_str("</tr>");
        }
        html.push_str("</tbody></table>\n");
    };
    table(
        html,
        "Top remotes (window)",
        &["Direction", "Flows", "Bytes", "Rejected"],
        &view.remotes,
    );
    table(
        html,
        "Top ports (window)",
        &["Side", "Flows", "Bytes", "Rejected"],
        &view.ports,
    );
    Ok(())
}

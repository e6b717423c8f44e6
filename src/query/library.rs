//! The named query library: `queries/*.sql`, compiled into the binary, each with a comment
//! header giving its name, description and parameters; a user's folder adds or overrides.
//!
//! ```sql
//! -- name: traffic_from_address
//! -- description: Flows sent by one address
//! -- param: addr text: the source address
//! -- param: limit int = 100: rows at most
//! -- uses: is_private_ip (flowlens function)
//! SELECT … WHERE srcaddr = ${addr} LIMIT ${limit}
//! ```
//!
//! Parameters are typed (`int`, `ints` a comma-separated list, `text`) and substituted as SQL
//! literals (text quoted and escaped), so a value can never change the statement's shape.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../queries/", $name, ".sql")))),*]
    };
}

/// Every file in `queries/` (a test keeps this list and the folder in step).
pub(crate) static BUILTIN: &[(&str, &str)] = builtin![
    "accepted_tcp_traffic",
    "admin_port_traffic",
    "bytes_per_pair",
    "cross_az_traffic",
    "egress_to_public",
    "explain_rejects",
    "internet_exposed_admin_ports",
    "ipv4_bytes",
    "ipv6_bytes",
    "log_health",
    "nacl_return_rejects",
    "nat_gateway_top_consumers",
    "noisiest_scanners",
    "reject_reasons",
    "rejected_by_eni_port_hourly",
    "rejected_tcp_traffic",
    "rejected_traffic",
    "ssh_rdp_traffic",
    "top_talkers",
    "top_talkers_packet_level",
    "top_talking_instances",
    "top_talking_subnets",
    "traffic_by_aws_service",
    "traffic_from_address",
    "traffic_to_address",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    Int,
    Ints,
    Text,
}

impl ParamKind {
    fn parse(word: &str) -> Option<Self> {
        match word {
            "int" => Some(ParamKind::Int),
            "ints" => Some(ParamKind::Ints),
            "text" => Some(ParamKind::Text),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ParamKind::Int => "int",
            ParamKind::Ints => "ints",
            ParamKind::Text => "text",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryParam {
    pub name: String,
    pub kind: ParamKind,
    /// `None`: the parameter is required.
    pub default: Option<String>,
    pub doc: String,
    /// The least value an `int` or each of an `ints` may take (`limit int >= 1 = 100`).
    pub min: Option<i64>,
}

impl fmt::Display for QueryParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.default {
            Some(d) => write!(
                f,
                "{} ({}, default {d}): {}",
                self.name,
                self.kind.as_str(),
                self.doc
            ),
            None => write!(
                f,
                "{} ({}, required): {}",
                self.name,
                self.kind.as_str(),
                self.doc
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryOrigin {
    Builtin,
    File(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedQuery {
    pub name: String,
    pub description: String,
    pub params: Vec<QueryParam>,
    /// Functions beyond portable SQL the query relies on.
    pub uses: Vec<String>,
    /// For a detector: the hourly metric (hour_metrics) a report charts beside its findings.
    pub chart: Option<String>,
    pub sql: String,
    pub origin: QueryOrigin,
}

impl NamedQuery {
    /// Parses a query file: the header comments, then the SQL.
    pub fn parse(text: &str, origin: QueryOrigin) -> Result<Self> {
        let location = match &origin {
            QueryOrigin::Builtin => "queries/".to_string(),
            QueryOrigin::File(p) => p.display().to_string(),
        };
        let mut name = None;
        let mut description = String::new();
        let mut params = Vec::new();
        let mut uses = Vec::new();
        let mut chart = None;
        for (i, line) in text.lines().enumerate() {
            let Some(comment) = line.trim().strip_prefix("--") else {
                continue;
            };
            let Some((key, value)) = comment.trim().split_once(':') else {
                continue;
            };
            let value = value.trim();
            let at = || format!("{location}:{}", i + 1);
            match key.trim() {
                "name" => name = Some(value.to_string()),
                "description" => description = value.to_string(),
                "uses" => uses.push(value.to_string()),
                "chart" => chart = value.split_whitespace().next().map(str::to_string),
                "param" => params.push(parse_param(value).ok_or_else(|| {
                    Error::invalid(
                        at(),
                        format!("`{value}` is not `NAME int|ints|text [= DEFAULT]: description`"),
                    )
                })?),
                _ => {}
            }
        }
        let name = name.ok_or_else(|| Error::invalid(&location, "no `-- name:` header"))?;
        let query = NamedQuery {
            name,
            description,
            params,
            uses,
            chart,
            sql: text.to_string(),
            origin,
        };
        // Every placeholder must be a declared parameter.
        for placeholder in placeholders(&query.sql) {
            if !query.params.iter().any(|p| p.name == placeholder) {
                return Err(Error::invalid(
                    &location,
                    format!("`${{{placeholder}}}` is not declared with `-- param:`"),
                ));
            }
        }
        Ok(query)
    }

    /// The SQL with every `${param}` replaced by a literal from `values` or the default.
    pub fn render(&self, values: &[(String, String)]) -> Result<String> {
        let flag = format!("query {}", self.name);
        for (key, _) in values {
            if !self.params.iter().any(|p| &p.name == key) {
                return Err(Error::invalid(
                    &flag,
                    format!("no parameter `{key}`; it takes: {}", self.param_names()),
                ));
            }
        }
        let mut literals = std::collections::HashMap::new();
        for param in &self.params {
            let value = values
                .iter()
                .rev()
                .find(|(k, _)| k == &param.name)
                .map(|(_, v)| v.as_str())
                .or(param.default.as_deref())
                .ok_or_else(|| {
                    Error::invalid(
                        &flag,
                        format!("needs --param {}=… ({})", param.name, param.doc),
                    )
                })?;
            let literal = literal(param, value).map_err(|reason| Error::invalid(&flag, reason))?;
            literals.insert(param.name.as_str(), literal);
        }
        Ok(substitute(&self.sql, |name| {
            literals.get(name).map(String::as_str)
        }))
    }

    fn param_names(&self) -> String {
        if self.params.is_empty() {
            return "no parameters".to_string();
        }
        self.params
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `limit int = 100: rows at most`
fn parse_param(text: &str) -> Option<QueryParam> {
    let (spec, doc) = match text.split_once(": ") {
        Some((s, d)) => (s, d.trim()),
        None => (text, ""),
    };
    // The default follows the first `=` that is not part of a `>=` bound.
    let equals = spec
        .char_indices()
        .find(|&(i, c)| c == '=' && !spec[..i].ends_with('>'))
        .map(|(i, _)| i);
    let (head, default) = match equals {
        Some(i) => (spec[..i].trim(), Some(spec[i + 1..].trim())),
        None => (spec.trim(), None),
    };
    let mut words = head.split_whitespace();
    let name = words.next()?;
    let kind = ParamKind::parse(words.next()?)?;
    // An optional lower bound: `>= 1` or `>=1`.
    let min = match words.next() {
        None => None,
        Some(">=") => Some(words.next()?.parse().ok()?),
        Some(bound) => Some(bound.strip_prefix(">=")?.parse().ok()?),
    };
    if words.next().is_some()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || (min.is_some() && kind == ParamKind::Text)
    {
        return None;
    }
    // A text default is written as a SQL string ('') or bare.
    let default = default.map(|d| {
        if kind == ParamKind::Text {
            d.trim_matches('\'').to_string()
        } else {
            d.to_string()
        }
    });
    Some(QueryParam {
        name: name.to_string(),
        kind,
        default,
        doc: doc.to_string(),
        min,
    })
}

/// Replaces each `${name}` in `sql` for which `value` has text, in one pass from left to
/// right: substituted text is never scanned again, so a value that itself contains `${…}`
/// stays the literal it was quoted as. Unknown placeholders are kept as they are.
pub(crate) fn substitute<'v>(sql: &str, value: impl Fn(&str) -> Option<&'v str>) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after
            .find('}')
            .and_then(|end| Some((end, value(&after[..end])?)))
        {
            Some((end, text)) => {
                out.push_str(text);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn placeholders(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(i) = rest.find("${") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find('}') {
            out.push(rest[..end].to_string());
            rest = &rest[end + 1..];
        }
    }
    out
}

pub(crate) fn literal(param: &QueryParam, value: &str) -> std::result::Result<String, String> {
    let bad = |what: &str| format!("--param {}: `{value}` is not {what}", param.name);
    let at_least = |n: i64| match param.min {
        Some(min) if n < min => Err(format!(
            "--param {}: `{value}` is below its least value, {min}",
            param.name
        )),
        _ => Ok(n.to_string()),
    };
    match param.kind {
        ParamKind::Int => value
            .trim()
            .parse::<i64>()
            .map_err(|_| bad("a whole number"))
            .and_then(at_least),
        ParamKind::Ints => {
            let numbers = value
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| bad("a comma-separated list of whole numbers"))
                        .and_then(at_least)
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if numbers.is_empty() {
                return Err(bad("a list of at least one number"));
            }
            Ok(numbers.join(", "))
        }
        ParamKind::Text => Ok(format!("'{}'", value.replace('\'', "''"))),
    }
}

/// The queries `flowlens query` can run.
#[derive(Clone, Debug)]
pub struct QueryLibrary {
    queries: BTreeMap<String, NamedQuery>,
}

impl QueryLibrary {
    /// The queries compiled into flowlens.
    pub fn builtin() -> Result<Self> {
        let mut queries = BTreeMap::new();
        for (file, text) in BUILTIN {
            let query = NamedQuery::parse(text, QueryOrigin::Builtin)?;
            debug_assert_eq!(&query.name, file);
            queries.insert(query.name.clone(), query);
        }
        Ok(QueryLibrary { queries })
    }

    /// Adds (or overrides by name) the `*.sql` files of `dir`.
    pub fn with_dir(mut self, dir: &Path) -> Result<Self> {
        let location = dir.display().to_string();
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(&location, e))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::io(path.display().to_string(), e))?;
            let query = NamedQuery::parse(&text, QueryOrigin::File(path))?;
            self.queries.insert(query.name.clone(), query);
        }
        Ok(self)
    }

    pub fn get(&self, name: &str) -> Result<&NamedQuery> {
        self.queries.get(name).ok_or_else(|| {
            Error::invalid(
                format!("query {name}"),
                format!(
                    "no such query; there are: {}",
                    self.queries.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    pub fn queries(&self) -> impl Iterator<Item = &NamedQuery> {
        self.queries.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_queries_is_built_in_and_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let p = e.unwrap().path();
                (p.extension()? == "sql").then(|| p.file_stem().unwrap().to_string_lossy().into())
            })
            .collect();
        files.sort();
        let builtin: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(
            files, builtin,
            "queries/ and BUILTIN must list the same files"
        );
        let library = QueryLibrary::builtin().unwrap();
        for query in library.queries() {
            assert!(!query.description.is_empty(), "{}", query.name);
            let uses_flowlens = ["is_private_ip", "ip_in_cidr", "explain_reject"]
                .iter()
                .any(|f| query.sql.contains(f));
            assert_eq!(
                uses_flowlens,
                !query.uses.is_empty(),
                "{}: uses header",
                query.name
            );
        }
    }

    #[test]
    fn a_value_that_names_another_parameter_stays_a_literal() {
        let q = NamedQuery::parse(
            "-- name: t\n-- param: a text: one\n-- param: b text: two\n\
             SELECT * FROM flows WHERE srcaddr = ${a} AND dstaddr = ${b}",
            QueryOrigin::Builtin,
        )
        .unwrap();
        let sql = q
            .render(&[
                ("a".into(), "${b}".into()),
                ("b".into(), " OR 1=1 --".into()),
            ])
            .unwrap();
        assert!(
            sql.ends_with(
                "\nSELECT * FROM flows WHERE srcaddr = '${b}' AND dstaddr = ' OR 1=1 --'"
            ),
            "{sql}"
        );
        // Placeholders that are not parameters, and a `${` with no end, pass through.
        assert_eq!(
            substitute("${x} ${y", |n| (n == "y").then_some("Y")),
            "${x} ${y"
        );
        assert_eq!(substitute("a${y}b${y}", |_| Some("$")), "a$b$");
    }

    #[test]
    fn parameters_can_declare_a_least_value() {
        let q = NamedQuery::parse(
            "-- name: t\n-- param: b int >= 1 = 300: seconds\n-- param: p ints >=0 = 22: ports\n\
             SELECT ${b}, ${p}",
            QueryOrigin::Builtin,
        )
        .unwrap();
        assert_eq!(q.params[0].min, Some(1));
        assert_eq!(q.params[0].default.as_deref(), Some("300"));
        assert_eq!(q.params[1].min, Some(0));
        assert!(q.render(&[]).unwrap().ends_with("SELECT 300, 22"));
        let zero = q
            .render(&[("b".into(), "0".into())])
            .unwrap_err()
            .to_string();
        assert_eq!(zero, "query t: --param b: `0` is below its least value, 1");
        let negative = q
            .render(&[("p".into(), "22,-1".into())])
            .unwrap_err()
            .to_string();
        assert!(
            negative.contains("`22,-1` is below its least value, 0"),
            "{negative}"
        );
    }

    #[test]
    fn rendering_quotes_text_and_checks_numbers() {
        let q = NamedQuery::parse(
            "-- name: t\n-- param: addr text: an address\n-- param: ports ints = 22,3389: ports\n\
             -- param: limit int = 10: rows\nSELECT ${addr}, ${ports}, ${limit}",
            QueryOrigin::Builtin,
        )
        .unwrap();
        let sql = q.render(&[("addr".into(), "x' OR '1'='1".into())]).unwrap();
        assert!(
            sql.ends_with("SELECT 'x'' OR ''1''=''1', 22, 3389, 10"),
            "{sql}"
        );
        let missing = q.render(&[]).unwrap_err().to_string();
        assert_eq!(missing, "query t: needs --param addr=… (an address)");
        let bad = q
            .render(&[("addr".into(), "a".into()), ("limit".into(), "ten".into())])
            .unwrap_err()
            .to_string();
        assert_eq!(bad, "query t: --param limit: `ten` is not a whole number");
        let unknown = q
            .render(&[("nope".into(), "1".into())])
            .unwrap_err()
            .to_string();
        assert_eq!(
            unknown,
            "query t: no parameter `nope`; it takes: addr, ports, limit"
        );
    }

    #[test]
    fn undeclared_placeholders_and_unknown_names_are_errors() {
        let err = NamedQuery::parse("-- name: t\nSELECT ${x}", QueryOrigin::Builtin).unwrap_err();
        assert!(err.to_string().contains("`${x}` is not declared"), "{err}");
        let library = QueryLibrary::builtin().unwrap();
        let err = library.get("nope").unwrap_err().to_string();
        assert!(
            err.starts_with("query nope: no such query; there are: accepted_tcp_traffic"),
            "{err}"
        );
    }
}

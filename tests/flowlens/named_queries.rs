//! The named queries of queries/ (`flowlens query`): listing, parameter errors, and every
//! query's answer checked against an independent oracle over the same records. A new named
//! query gets a case in the table of `every_named_query_gives_the_right_answer`.

use crate::support::*;

mod oracle {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    /// One record: column name -> text, `-` left out.
    pub struct Rec(HashMap<String, String>);

    impl Rec {
        pub fn s(&self, c: &str) -> Option<&str> {
            self.0.get(c).map(String::as_str)
        }
        pub fn i(&self, c: &str) -> Option<i64> {
            self.s(c).and_then(|v| v.parse().ok())
        }
        pub fn is(&self, c: &str, v: &str) -> bool {
            self.s(c) == Some(v)
        }
    }

    /// Every record under `dir`, read with a parser written for this test: header lines
    /// name the fields, other non-blank lines are records.
    pub fn load(dir: &Path) -> Vec<Rec> {
        let mut recs = Vec::new();
        for path in walk(dir) {
            if path.extension().is_some_and(|e| e == "jsonl") {
                continue;
            }
            let mut text = String::new();
            let file = std::fs::File::open(&path).unwrap();
            if path.extension().is_some_and(|e| e == "gz") {
                MultiGzDecoder::new(file).read_to_string(&mut text).unwrap();
            } else {
                std::io::BufReader::new(file)
                    .read_to_string(&mut text)
                    .unwrap();
            }
            let mut fields: Vec<String> = Vec::new();
            for line in text.lines() {
                let tokens: Vec<&str> = line.split_whitespace().collect();
                if tokens.is_empty() {
                    continue;
                }
                if tokens[0]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-' || c == '$' || c == '{' || c == '}')
                {
                    fields = tokens
                        .iter()
                        .map(|t| {
                            t.trim_start_matches("${")
                                .trim_end_matches('}')
                                .replace('-', "_")
                        })
                        .collect();
                    continue;
                }
                assert_eq!(tokens.len(), fields.len(), "{}: {line}", path.display());
                let map = fields
                    .iter()
                    .zip(&tokens)
                    .filter(|(_, v)| **v != "-")
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect();
                recs.push(Rec(map));
            }
        }
        recs
    }

    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum V {
        I(i64),
        S(String),
        Null,
    }

    impl V {
        pub fn s(v: Option<&str>) -> V {
            v.map_or(V::Null, |s| V::S(s.to_string()))
        }
        pub fn i(v: Option<i64>) -> V {
            v.map_or(V::Null, V::I)
        }
        fn csv(&self) -> String {
            match self {
                V::I(i) => i.to_string(),
                V::S(s) if s.contains(',') => format!("\"{s}\""),
                V::S(s) => s.clone(),
                V::Null => String::new(),
            }
        }
    }

    pub enum Agg {
        Count,
        Sum(&'static str),
        Distinct(&'static str),
        Min(&'static str),
        Max(&'static str),
    }

    pub type Key<'a> = Box<dyn Fn(&Rec) -> V + 'a>;
    pub type Having<'a> = Option<Box<dyn Fn(&[V]) -> bool + 'a>>;

    pub struct Q<'a> {
        pub filter: Box<dyn Fn(&Rec) -> bool + 'a>,
        pub keys: Vec<Key<'a>>,
        pub aggs: Vec<Agg>,
        /// Output column index and descending; NULLs sort last.
        pub order: Vec<(usize, bool)>,
        pub having: Having<'a>,
        pub limit: Option<usize>,
    }

    pub fn col(c: &'static str) -> Box<dyn Fn(&Rec) -> V> {
        Box::new(move |r: &Rec| match r.s(c) {
            Some(v) if v.bytes().all(|b| b.is_ascii_digit()) && !matches!(c, "account_id") => {
                V::I(v.parse().unwrap())
            }
            other => V::s(other),
        })
    }

    pub fn run(recs: &[Rec], q: Q) -> Vec<String> {
        let mut groups: HashMap<Vec<V>, Vec<&Rec>> = HashMap::new();
        for r in recs.iter().filter(|r| (q.filter)(r)) {
            groups
                .entry(q.keys.iter().map(|k| k(r)).collect())
                .or_default()
                .push(r);
        }
        let mut rows: Vec<Vec<V>> = groups
            .into_iter()
            .map(|(mut key, members)| {
                for agg in &q.aggs {
                    key.push(match agg {
                        Agg::Count => V::I(members.len() as i64),
                        Agg::Sum(c) => {
                            let vals: Vec<i64> = members.iter().filter_map(|r| r.i(c)).collect();
                            if vals.is_empty() {
                                V::Null
                            } else {
                                V::I(vals.iter().sum())
                            }
                        }
                        Agg::Distinct(c) => V::I(
                            members
                                .iter()
                                .filter_map(|r| r.s(c))
                                .collect::<BTreeSet<_>>()
                                .len() as i64,
                        ),
                        Agg::Min(c) => V::i(members.iter().filter_map(|r| r.i(c)).min()),
                        Agg::Max(c) => V::i(members.iter().filter_map(|r| r.i(c)).max()),
                    });
                }
                key
            })
            .filter(|row| q.having.as_ref().is_none_or(|h| h(row)))
            .collect();
        rows.sort_by(|a, b| {
            for &(i, desc) in &q.order {
                let ord = match (&a[i], &b[i]) {
                    (V::Null, V::Null) => std::cmp::Ordering::Equal,
                    (V::Null, _) => std::cmp::Ordering::Greater,
                    (_, V::Null) => std::cmp::Ordering::Less,
                    (x, y) if desc => y.cmp(x),
                    (x, y) => x.cmp(y),
                };
                if ord.is_ne() {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
        rows.truncate(q.limit.unwrap_or(usize::MAX));
        rows.iter()
            .map(|r| r.iter().map(V::csv).collect::<Vec<_>>().join(","))
            .collect()
    }

    pub fn private(addr: Option<&str>) -> Option<bool> {
        addr.and_then(|a| a.parse().ok()).map(flowlens::is_private)
    }
}

/// A generated day plus hand-made objects for what normal traffic rarely shows:
/// reject-reason values and a network ACL that drops return traffic.
fn query_archive() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = flowlens(&[
        "generate",
        "--out",
        dir.path().to_str().unwrap(),
        "--days",
        "1",
        "--enis",
        "7",
        "--end",
        "2026-10-15",
        "--object-minutes",
        "60",
        "--seed",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let extra = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status reject-reason flow-direction\n\
        10 123456789012 eni-fixture1 10.9.0.5 198.51.100.7 40001 443 6 5 500 1791950000 1791950010 ACCEPT OK - egress\n\
        10 123456789012 eni-fixture1 198.51.100.7 10.9.0.5 443 40001 6 4 4000 1791950000 1791950010 REJECT OK - ingress\n\
        10 123456789012 eni-fixture1 10.9.0.5 198.51.100.7 40002 443 6 5 500 1791950100 1791950110 ACCEPT OK - egress\n\
        10 123456789012 eni-fixture1 198.51.100.7 10.9.0.5 443 40002 6 4 4000 1791950100 1791950110 REJECT OK - ingress\n\
        10 123456789012 eni-fixture1 203.0.113.9 10.9.0.5 50000 22 6 1 40 1791950200 1791950201 REJECT OK BPA ingress\n\
        10 123456789012 eni-fixture1 203.0.113.9 10.9.0.5 50001 22 6 1 40 1791950300 1791950301 REJECT OK BPA ingress\n\
        10 123456789012 eni-fixture1 10.9.0.6 10.9.0.5 50002 5432 6 1 40 1791950300 1791950301 REJECT OK EC ingress\n";
    std::fs::write(dir.path().join("fixture.log"), extra).unwrap();
    dir
}

#[test]
fn named_queries_list_and_errors() {
    let out = flowlens(&["query", "--list"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("nacl_return_rejects\n    Stateless network ACL mistakes"),
        "{text}"
    );
    assert!(
        text.contains("--param addr (text, required): the source address"),
        "{text}"
    );
    assert_eq!(text.lines().filter(|l| !l.starts_with(' ')).count(), 25);

    let unknown = flowlens(&["query", "nope", "-s", "."]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("no such query; there are: accepted_tcp_traffic"));
    let missing = flowlens(&["query", "traffic_from_address", "-s", "."]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("needs --param addr=…"),
        "{}",
        stderr(&missing)
    );

    // A user's folder adds and overrides queries.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.sql"),
        "-- name: top_talkers\n-- description: mine\nSELECT 7 AS seven",
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let out = flowlens(&[
        "query",
        "top_talkers",
        "-s",
        d,
        "--queries-dir",
        d,
        "-o",
        "csv",
    ]);
    assert_eq!(stdout(&out), "seven\n7\n", "{}", stderr(&out));
}

/// How many rows a named query must give on the test archive, besides its oracle's rows.
enum Rows {
    Any,
    /// At least one: the archive holds what the query looks for.
    Some,
    Exactly(usize),
}

/// What a named query must answer: the rows an independent oracle computes from the records
/// (a filter, group keys, aggregates, order and limit), or rows written out.
enum Expect<'a> {
    Oracle(oracle::Q<'a>, Rows),
    Literal(Vec<String>),
}

/// One named query, its parameters and its answer.
struct Case<'a> {
    name: &'static str,
    params: Vec<String>,
    expect: Expect<'a>,
}

#[test]
fn every_named_query_gives_the_right_answer() {
    use oracle::{Agg::*, Q, V, col, private, run};
    let dir = query_archive();
    let src = dir.path().to_str().unwrap().to_string();
    let recs = oracle::load(dir.path());
    assert!(recs.len() > 10_000);
    let flowlens_rows = |name: &str, params: &[&str]| -> Vec<String> {
        let mut args = vec!["query", name, "-s", &src, "-o", "csv"];
        for p in params {
            args.extend(["-p", p]);
        }
        let out = flowlens(&args);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        stdout(&out).lines().skip(1).map(str::to_string).collect()
    };
    let none = || -> oracle::Having<'static> { None };
    let desc_then_keys = |first: usize, keys: usize| -> Vec<(usize, bool)> {
        std::iter::once((first, true))
            .chain((0..keys).map(|k| (k, false)))
            .collect()
    };
    let web_client = recs
        .iter()
        .find(|r| r.is("dstport", "443") && private(r.s("srcaddr")) == Some(false))
        .and_then(|r| r.s("srcaddr"))
        .unwrap()
        .to_string();
    let pair = |first: bool| -> Box<dyn Fn(&oracle::Rec) -> V> {
        Box::new(move |r| {
            let (a, b) = (r.s("srcaddr").unwrap(), r.s("dstaddr").unwrap());
            V::S(if (a < b) == first { a } else { b }.to_string())
        })
    };
    let zones: std::collections::HashMap<&str, &str> = recs
        .iter()
        .filter(|r| r.is("flow_direction", "egress") && private(r.s("srcaddr")) == Some(true))
        .filter_map(|r| Some((r.s("srcaddr")?, r.s("az_id")?)))
        .collect();
    let zone = &zones;
    let zone_of = |c: &'static str| -> Box<dyn Fn(&oracle::Rec) -> V + '_> {
        Box::new(move |r| V::s(r.s(c).and_then(|a| zone.get(a).copied())))
    };
    let admin: [&str; 11] = [
        "22", "3389", "1433", "1521", "3306", "5432", "5984", "6379", "9200", "11211", "27017",
    ];
    let status = |s: &'static str| -> Box<dyn Fn(&oracle::Rec) -> bool> {
        Box::new(move |r| r.is("log_status", s))
    };
    let health = run(
        &recs,
        Q {
            filter: Box::new(|_| true),
            keys: vec![col("interface_id")],
            aggs: vec![Min("start"), Max("end")],
            order: vec![(0, false)],
            having: none(),
            limit: None,
        },
    );
    let counts = |f: Box<dyn Fn(&oracle::Rec) -> bool>| {
        run(
            &recs,
            Q {
                filter: f,
                keys: vec![col("interface_id")],
                aggs: vec![Count],
                order: vec![(0, false)],
                having: none(),
                limit: None,
            },
        )
    };
    let (ok, nodata, skip) = (
        counts(status("OK")),
        counts(status("NODATA")),
        counts(status("SKIPDATA")),
    );
    let count_of = |rows: &[String], eni: &str| -> i64 {
        rows.iter()
            .find_map(|r| r.strip_prefix(&format!("{eni},")))
            .map_or(0, |n| n.parse().unwrap())
    };
    let mut expected: Vec<(i64, i64, String)> = Vec::new();
    let mut lines = Vec::new();
    for row in &health {
        let eni = row.split(',').next().unwrap().to_string();
        let rest = &row[eni.len() + 1..];
        let (o, n, s) = (
            count_of(&ok, &eni),
            count_of(&nodata, &eni),
            count_of(&skip, &eni),
        );
        expected.push((s, n, eni.clone()));
        lines.push((eni.clone(), format!("{eni},{o},{n},{s},{rest}")));
    }
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let expected: Vec<String> = expected
        .iter()
        .map(|(_, _, eni)| lines.iter().find(|(e, _)| e == eni).unwrap().1.clone())
        .collect();
    let nat_source = |r: &oracle::Rec| -> Option<String> {
        match (r.s("pkt_srcaddr"), r.s("srcaddr")) {
            (Some(p), Some(s)) if p != s => Some(p.to_string()),
            (_, s) => s.map(str::to_string),
        }
    };
    let service = |r: &oracle::Rec| V::s(r.s("pkt_dst_aws_service").or(r.s("pkt_src_aws_service")));
    let (client_from, client_to) = (web_client.clone(), web_client.clone());
    let log_health = expected;
    let cases = vec![
        Case {
            name: "accepted_tcp_traffic",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| r.is("action", "ACCEPT") && r.is("protocol", "6")),
                    keys: vec![
                        col("interface_id"),
                        col("srcaddr"),
                        col("dstaddr"),
                        col("dstport"),
                    ],
                    aggs: vec![Count, Sum("packets"), Sum("bytes")],
                    order: desc_then_keys(6, 4),
                    having: none(),
                    limit: Some(100),
                },
                Rows::Exactly(100),
            ),
        },
        Case {
            name: "admin_port_traffic",
            params: vec!["ports=22,3389".to_string()],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| matches!(r.s("dstport"), Some("22" | "3389"))),
                    keys: vec![
                        col("interface_id"),
                        col("srcaddr"),
                        col("dstaddr"),
                        col("dstport"),
                        col("action"),
                    ],
                    aggs: vec![Count, Sum("bytes")],
                    order: desc_then_keys(5, 5),
                    having: none(),
                    limit: Some(100),
                },
                Rows::Any,
            ),
        },
        Case {
            name: "bytes_per_pair",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| r.s("srcaddr").is_some() && r.s("dstaddr").is_some()),
                    keys: vec![pair(true), pair(false)],
                    aggs: vec![Sum("bytes"), Count],
                    order: desc_then_keys(2, 2),
                    having: none(),
                    limit: Some(50),
                },
                Rows::Any,
            ),
        },
        Case {
            name: "cross_az_traffic",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| {
                        let z = |c| r.s(c).and_then(|a| zone.get(a));
                        r.is("flow_direction", "egress")
                            && z("srcaddr").is_some()
                            && z("dstaddr").is_some()
                            && z("srcaddr") != z("dstaddr")
                    }),
                    keys: vec![zone_of("srcaddr"), zone_of("dstaddr")],
                    aggs: vec![Sum("bytes"), Count],
                    order: desc_then_keys(2, 2),
                    having: none(),
                    limit: None,
                },
                Rows::Some,
            ),
        },
        Case {
            name: "egress_to_public",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| {
                        r.is("action", "ACCEPT")
                            && private(r.s("srcaddr")) == Some(true)
                            && private(r.s("dstaddr")) == Some(false)
                    }),
                    keys: vec![col("interface_id")],
                    aggs: vec![Sum("bytes"), Distinct("dstaddr"), Count],
                    order: desc_then_keys(1, 1),
                    having: none(),
                    limit: None,
                },
                Rows::Any,
            ),
        },
        Case {
            name: "internet_exposed_admin_ports",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(move |r| {
                        r.is("action", "ACCEPT")
                            && r.s("dstport").is_some_and(|p| admin.contains(&p))
                            && private(r.s("srcaddr")) == Some(false)
                            && private(r.s("dstaddr")) == Some(true)
                    }),
                    keys: vec![col("interface_id"), col("dstaddr"), col("dstport")],
                    aggs: vec![
                        Distinct("srcaddr"),
                        Count,
                        Sum("bytes"),
                        Min("start"),
                        Max("end"),
                    ],
                    order: vec![(3, true), (0, false), (2, false)],
                    having: none(),
                    limit: None,
                },
                Rows::Some,
            ),
        },
        Case {
            name: "ipv4_bytes",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(move |r| r.s("srcaddr").is_some_and(|a| a.contains('.'))),
                    keys: vec![col("interface_id")],
                    aggs: vec![Count, Sum("bytes")],
                    order: desc_then_keys(2, 1),
                    having: none(),
                    limit: None,
                },
                Rows::Some,
            ),
        },
        Case {
            name: "ipv6_bytes",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(move |r| r.s("srcaddr").is_some_and(|a| a.contains(':'))),
                    keys: vec![col("interface_id")],
                    aggs: vec![Count, Sum("bytes")],
                    order: desc_then_keys(2, 1),
                    having: none(),
                    limit: None,
                },
                Rows::Some,
            ),
        },
        Case {
            name: "log_health",
            params: vec![],
            expect: Expect::Literal(log_health),
        },
        // The fixture's ACL drops both replies from 198.51.100.7:443.
        Case {
            name: "nacl_return_rejects",
            params: vec![],
            expect: Expect::Literal(vec![
                "eni-fixture1,10.9.0.5,198.51.100.7,443,2,2".to_string(),
            ]),
        },
        Case {
            name: "nat_gateway_top_consumers",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(move |r| {
                        r.s("resource_id").is_some_and(|x| x.starts_with("nat-"))
                            && private(r.s("dstaddr")) == Some(false)
                            && private(nat_source(r).as_deref()) == Some(true)
                    }),
                    keys: vec![
                        col("interface_id"),
                        Box::new(move |r| V::s(nat_source(r).as_deref())),
                    ],
                    aggs: vec![Sum("bytes"), Distinct("dstaddr"), Count],
                    order: desc_then_keys(2, 2),
                    having: none(),
                    limit: Some(20),
                },
                Rows::Some,
            ),
        },
        Case {
            name: "noisiest_scanners",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| {
                        r.is("action", "REJECT") && private(r.s("srcaddr")) == Some(false)
                    }),
                    keys: vec![col("srcaddr")],
                    aggs: vec![
                        Count,
                        Distinct("dstport"),
                        Distinct("interface_id"),
                        Min("start"),
                        Max("end"),
                    ],
                    order: desc_then_keys(1, 1),
                    having: none(),
                    limit: Some(20),
                },
                Rows::Any,
            ),
        },
        Case {
            name: "reject_reasons",
            params: vec![],
            expect: Expect::Literal(vec![
                "BPA,eni-fixture1,22,2,1".to_string(),
                "EC,eni-fixture1,5432,1,1".to_string(),
            ]),
        },
        Case {
            name: "rejected_by_eni_port_hourly",
            params: vec!["min_flows=2".to_string()],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| r.is("action", "REJECT")),
                    keys: vec![
                        col("interface_id"),
                        col("dstport"),
                        Box::new(|r| V::i(r.i("end").map(|e| e / 3600 * 3600))),
                    ],
                    aggs: vec![Count, Distinct("srcaddr")],
                    order: vec![(0, false), (1, false), (2, false)],
                    having: Some(Box::new(|row| row[3] >= V::I(2))),
                    limit: None,
                },
                Rows::Any,
            ),
        },
        Case {
            name: "rejected_tcp_traffic",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| r.is("action", "REJECT") && r.is("protocol", "6")),
                    keys: vec![col("interface_id"), col("srcaddr"), col("dstport")],
                    aggs: vec![Count, Sum("packets")],
                    order: desc_then_keys(3, 3),
                    having: none(),
                    limit: Some(100),
                },
                Rows::Any,
            ),
        },
        Case {
            name: "rejected_traffic",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| r.is("action", "REJECT")),
                    keys: vec![col("interface_id"), col("protocol"), col("dstport")],
                    aggs: vec![Count, Distinct("srcaddr"), Sum("packets")],
                    order: desc_then_keys(3, 3),
                    having: none(),
                    limit: Some(100),
                },
                Rows::Any,
            ),
        },
        Case {
            name: "ssh_rdp_traffic",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| {
                        matches!(r.s("dstport"), Some("22" | "3389")) && r.is("protocol", "6")
                    }),
                    keys: vec![
                        col("interface_id"),
                        col("srcaddr"),
                        col("dstaddr"),
                        col("dstport"),
                        col("action"),
                    ],
                    aggs: vec![Count, Sum("bytes")],
                    order: desc_then_keys(5, 5),
                    having: none(),
                    limit: Some(100),
                },
                Rows::Any,
            ),
        },
        Case {
            name: "top_talkers",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| r.is("log_status", "OK")),
                    keys: vec![col("srcaddr"), col("dstaddr")],
                    aggs: vec![Sum("bytes"), Sum("packets"), Count],
                    order: desc_then_keys(2, 2),
                    having: none(),
                    limit: Some(20),
                },
                Rows::Any,
            ),
        },
        Case {
            name: "top_talkers_packet_level",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| {
                        r.s("pkt_srcaddr").is_some() && r.s("pkt_dstaddr").is_some()
                    }),
                    keys: vec![col("pkt_srcaddr"), col("pkt_dstaddr")],
                    aggs: vec![Sum("bytes"), Sum("packets"), Count],
                    order: desc_then_keys(2, 2),
                    having: none(),
                    limit: Some(20),
                },
                Rows::Any,
            ),
        },
        Case {
            name: "top_talking_instances",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| r.s("instance_id").is_some()),
                    keys: vec![col("instance_id")],
                    aggs: vec![Sum("bytes"), Sum("packets"), Count],
                    order: desc_then_keys(1, 1),
                    having: none(),
                    limit: Some(20),
                },
                Rows::Any,
            ),
        },
        Case {
            name: "top_talking_subnets",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(|r| r.s("subnet_id").is_some()),
                    keys: vec![col("subnet_id"), col("vpc_id")],
                    aggs: vec![Sum("bytes"), Sum("packets"), Count],
                    order: vec![(2, true), (0, false)],
                    having: none(),
                    limit: Some(20),
                },
                Rows::Any,
            ),
        },
        Case {
            name: "traffic_by_aws_service",
            params: vec![],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(move |r| service(r) != V::Null),
                    keys: vec![col("interface_id"), Box::new(service)],
                    aggs: vec![Sum("bytes"), Count],
                    order: desc_then_keys(2, 2),
                    having: none(),
                    limit: None,
                },
                Rows::Some,
            ),
        },
        Case {
            name: "traffic_from_address",
            params: vec![format!("addr={web_client}")],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(move |r| r.s("srcaddr") == Some(client_from.as_str())),
                    keys: vec![
                        col("interface_id"),
                        col("dstaddr"),
                        col("dstport"),
                        col("protocol"),
                        col("action"),
                    ],
                    aggs: vec![Count, Sum("bytes"), Min("start"), Max("end")],
                    order: desc_then_keys(6, 5),
                    having: none(),
                    limit: Some(100),
                },
                Rows::Some,
            ),
        },
        Case {
            name: "traffic_to_address",
            params: vec![format!("addr={web_client}")],
            expect: Expect::Oracle(
                Q {
                    filter: Box::new(move |r| r.s("dstaddr") == Some(client_to.as_str())),
                    keys: vec![
                        col("interface_id"),
                        col("srcaddr"),
                        col("dstport"),
                        col("protocol"),
                        col("action"),
                    ],
                    aggs: vec![Count, Sum("bytes"), Min("start"), Max("end")],
                    order: desc_then_keys(6, 5),
                    having: none(),
                    limit: Some(100),
                },
                Rows::Any,
            ),
        },
    ];
    // Every query of the library has its case, but explain_rejects: it needs an inventory,
    // and is checked against the EC2 emulator's rules in the inventory tests.
    assert_eq!(cases.len(), 24, "every query in the library is checked");
    for case in cases {
        let params: Vec<&str> = case.params.iter().map(String::as_str).collect();
        let got = flowlens_rows(case.name, &params);
        let (expected, rows) = match case.expect {
            Expect::Oracle(q, rows) => (run(&recs, q), rows),
            Expect::Literal(expected) => (expected, Rows::Any),
        };
        assert_eq!(got, expected, "{}", case.name);
        match rows {
            Rows::Any => {}
            Rows::Some => assert!(
                !got.is_empty(),
                "{}: the archive holds what it looks for",
                case.name
            ),
            Rows::Exactly(n) => assert_eq!(got.len(), n, "{}", case.name),
        }
    }
}

//! AWS's published address ranges (ip-ranges.json): which AWS service and region an address
//! belongs to. A prefix is listed once as `AMAZON` and again under its specific service
//! (S3, EC2, CLOUDFRONT, …): the longest prefix wins, and within it the specific service.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    prefixes: Vec<Prefix>,
    #[serde(default)]
    ipv6_prefixes: Vec<Prefix>,
}

#[derive(Deserialize)]
struct Prefix {
    #[serde(alias = "ipv6_prefix")]
    ip_prefix: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    service: String,
}

/// An address's owner in AWS's ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsRange {
    pub service: String,
    pub region: String,
    pub prefix: IpNet,
}

#[derive(Debug, Default)]
pub struct IpRanges {
    /// Prefix length (longest first) -> network -> its entry.
    by_length: BTreeMap<std::cmp::Reverse<u8>, HashMap<IpNet, AwsRange>>,
}

impl IpRanges {
    /// Parses ip-ranges.json text; `location` names it in errors (with the line).
    pub fn parse(text: &str, location: &str) -> Result<Self> {
        let file: File = serde_json::from_str(text).map_err(|e| {
            Error::bad_file(
                format!("{location}:{}:{}", e.line(), e.column()),
                format!("not AWS's ip-ranges.json: {e}"),
            )
        })?;
        let mut ranges = IpRanges::default();
        for prefix in file.prefixes.iter().chain(&file.ipv6_prefixes) {
            let net: IpNet = prefix.ip_prefix.parse().map_err(|_| {
                let line = text
                    .find(&format!("\"{}\"", prefix.ip_prefix))
                    .map_or(0, |at| text[..at].matches('\n').count() + 1);
                Error::bad_file(
                    format!("{location}:{line}"),
                    format!("`{}` is not a CIDR prefix", prefix.ip_prefix),
                )
            })?;
            let net = net.trunc();
            let entry = AwsRange {
                service: prefix.service.clone(),
                region: prefix.region.clone(),
                prefix: net,
            };
            let slot = ranges
                .by_length
                .entry(std::cmp::Reverse(net.prefix_len()))
                .or_default();
            // The specific service over the catch-all AMAZON.
            match slot.get(&net) {
                Some(existing) if existing.service != "AMAZON" => {}
                _ => {
                    slot.insert(net, entry);
                }
            }
        }
        Ok(ranges)
    }

    pub fn len(&self) -> usize {
        self.by_length.values().map(HashMap::len).sum()
    }

    /// The most specific range holding `addr`.
    pub fn lookup(&self, addr: IpAddr) -> Option<&AwsRange> {
        self.by_length.iter().find_map(|(length, nets)| {
            let net = IpNet::new(addr, length.0).ok()?.trunc();
            nets.get(&net)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
  "syncToken": "1",
  "createDate": "2026-12-01-00-00-00",
  "prefixes": [
    {"ip_prefix": "52.216.0.0/15", "region": "us-east-1", "service": "AMAZON", "network_border_group": "us-east-1"},
    {"ip_prefix": "52.216.0.0/15", "region": "us-east-1", "service": "S3", "network_border_group": "us-east-1"},
    {"ip_prefix": "3.0.0.0/9", "region": "GLOBAL", "service": "AMAZON", "network_border_group": "GLOBAL"},
    {"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "EC2", "network_border_group": "ap-northeast-2"}
  ],
  "ipv6_prefixes": [
    {"ipv6_prefix": "2600:1f18::/33", "region": "us-east-1", "service": "EC2", "network_border_group": "us-east-1"}
  ]
}"#;

    #[test]
    fn the_longest_prefix_and_the_specific_service_win() {
        let ranges = IpRanges::parse(SAMPLE, "ip-ranges.json").unwrap();
        let at = |a: &str| ranges.lookup(a.parse().unwrap()).map(|r| r.service.clone());
        assert_eq!(at("52.217.1.2").as_deref(), Some("S3"));
        assert_eq!(at("3.5.141.7").as_deref(), Some("EC2"));
        assert_eq!(at("3.100.0.1").as_deref(), Some("AMAZON"));
        assert_eq!(at("2600:1f18::5").as_deref(), Some("EC2"));
        assert_eq!(at("8.8.8.8"), None);
    }

    #[test]
    fn a_bad_file_is_named_with_its_line() {
        let err =
            IpRanges::parse("{\"prefixes\": [\n  {\"ip_prefix\": 5}]}", "r.json").unwrap_err();
        assert!(err.to_string().starts_with("r.json:2:"), "{err}");
        let bad = SAMPLE.replace("3.5.140.0/22", "3.5.140.0/99");
        let err = IpRanges::parse(&bad, "r.json").unwrap_err();
        assert_eq!(
            err.to_string(),
            "r.json:8: `3.5.140.0/99` is not a CIDR prefix"
        );
    }
}

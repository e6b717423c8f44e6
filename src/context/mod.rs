//! Context for flows and findings: who an interface is (the EC2 inventory), why traffic was
//! rejected (its security groups and network ACLs), and who a remote address is (AWS's
//! ranges, GeoIP and ASN databases, the user's allow and threat lists). Loaded once per
//! process from files (local, S3 or, for ip-ranges.json, a URL); the query layer registers
//! it in sessions as tables and functions, and detection adds it to findings.

mod geoip;
mod inventory;
mod ip_lists;
mod ip_ranges;
mod rules;

use std::net::IpAddr;
use std::sync::Arc;

pub use geoip::GeoAnswer;
pub use inventory::{Inventory, load_inventory, write_inventory};
pub use ip_lists::ListKind;
pub use ip_ranges::AwsRange;
pub use rules::{Explanation, FlowKey, RuleSet};

use crate::error::{Error, Result};
use crate::source::{InterfaceRow, S3Options, Store, fetch_cached};
use geoip::GeoIp;
use ip_lists::IpList;
use ip_ranges::IpRanges;

/// The context files a run was given (`--inventory`, `--ip-ranges`, `--geoip`,
/// `--allow-list`, `--threat-list`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContextOptions {
    pub inventory: Option<String>,
    pub ip_ranges: Option<String>,
    pub geoip: Vec<String>,
    pub allow_lists: Vec<String>,
    pub threat_lists: Vec<String>,
}

impl ContextOptions {
    pub fn is_empty(&self) -> bool {
        *self == ContextOptions::default()
    }
}

/// What is known of a remote address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteInfo {
    pub aws: Option<AwsRange>,
    pub geo: GeoAnswer,
    /// Lists holding it: (name, kind).
    pub lists: Vec<(String, ListKind)>,
}

/// The loaded context.
#[derive(Debug, Default)]
pub struct Context {
    pub inventory: Option<Inventory>,
    rules: Option<RuleSet>,
    ip_ranges: Option<IpRanges>,
    geoip: Option<GeoIp>,
    lists: Vec<IpList>,
}

/// A file's bytes: a local path, an s3:// object, or (http/https) a download cached a day.
async fn read_file(location: &str, what: &str, s3: &S3Options) -> Result<Vec<u8>> {
    if location.starts_with("https://") || location.starts_with("http://") {
        return fetch_cached(location).await;
    }
    let (store, name) = Store::for_file(location, what, s3).await?;
    store
        .get(&name)
        .await?
        .ok_or_else(|| Error::bad_file(location, format!("{what}: no such file")))
}

fn text(bytes: Vec<u8>, location: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        Error::bad_file(
            format!("{location}: byte {}", e.utf8_error().valid_up_to()),
            "not UTF-8 text",
        )
    })
}

/// A list's name: its file name without extension.
fn list_name(location: &str) -> String {
    let file = location.rsplit('/').next().unwrap_or(location);
    file.split('.').next().unwrap_or(file).to_string()
}

impl Context {
    /// Loads what `options` names. A file that is not what it claims to be is an error
    /// naming it (and its line or offset).
    pub async fn load(options: &ContextOptions, s3: &S3Options) -> Result<Arc<Context>> {
        let mut context = Context::default();
        if let Some(location) = &options.inventory {
            let inventory = load_inventory(location, s3).await?;
            context.rules = Some(RuleSet::new(&inventory));
            context.inventory = Some(inventory);
        }
        if let Some(location) = &options.ip_ranges {
            let bytes = read_file(location, "--ip-ranges", s3).await?;
            let ranges = IpRanges::parse(&text(bytes, location)?, location)?;
            tracing::info!("{location}: {} AWS prefixes", ranges.len());
            context.ip_ranges = Some(ranges);
        }
        if !options.geoip.is_empty() {
            let mut geoip = GeoIp::new();
            for location in &options.geoip {
                geoip.add(read_file(location, "--geoip", s3).await?, location)?;
            }
            context.geoip = Some(geoip);
        }
        for (kind, locations) in [
            (ListKind::Allow, &options.allow_lists),
            (ListKind::Threat, &options.threat_lists),
        ] {
            for location in locations {
                let what = format!("--{}-list", kind.as_str());
                let bytes = read_file(location, &what, s3).await?;
                let list = IpList::parse(
                    &text(bytes, location)?,
                    &list_name(location),
                    kind,
                    location,
                )?;
                tracing::info!(
                    "{location}: {} entries ({} list `{}`)",
                    list.len(),
                    kind.as_str(),
                    list.name
                );
                context.lists.push(list);
            }
        }
        Ok(Arc::new(context))
    }

    pub fn has_inventory(&self) -> bool {
        self.rules.is_some()
    }
    pub fn has_ip_ranges(&self) -> bool {
        self.ip_ranges.is_some()
    }
    pub fn has_geoip(&self) -> bool {
        self.geoip.is_some()
    }
    pub fn has_lists(&self) -> bool {
        !self.lists.is_empty()
    }

    /// Why a flow was rejected, when there is an inventory.
    pub fn explain(&self, flow: FlowKey<'_>) -> Option<Explanation> {
        self.rules.as_ref().map(|r| r.explain(flow))
    }

    pub fn interface(&self, id: &str) -> Option<&InterfaceRow> {
        self.rules.as_ref().and_then(|r| r.interface(id))
    }

    pub fn aws_range(&self, addr: IpAddr) -> Option<&AwsRange> {
        self.ip_ranges.as_ref().and_then(|r| r.lookup(addr))
    }

    pub fn geo(&self, addr: IpAddr) -> GeoAnswer {
        self.geoip
            .as_ref()
            .map(|g| g.lookup(addr))
            .unwrap_or_default()
    }

    /// Whether a list of that name (or kind: `allow`, `threat`) holds `addr`; None when no
    /// list has that name.
    pub fn in_list(&self, addr: IpAddr, name: &str) -> Option<bool> {
        let mut named = self
            .lists
            .iter()
            .filter(|l| l.name == name || l.kind.as_str() == name)
            .peekable();
        named.peek()?;
        Some(named.any(|l| l.contains(addr)))
    }

    /// The names of the lists.
    pub fn list_names(&self) -> Vec<String> {
        self.lists.iter().map(|l| l.name.clone()).collect()
    }

    pub fn remote(&self, addr: IpAddr) -> RemoteInfo {
        RemoteInfo {
            aws: self.aws_range(addr).cloned(),
            geo: self.geo(addr),
            lists: self
                .lists
                .iter()
                .filter(|l| l.contains(addr))
                .map(|l| (l.name.clone(), l.kind))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_named_after_their_files() {
        assert_eq!(list_name("s3://b/lists/partners.txt"), "partners");
        assert_eq!(list_name("threats"), "threats");
    }
}

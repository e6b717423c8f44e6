//! Address lists (`--allow-list`, `--threat-list`): one address or CIDR block per line,
//! `#` starts a comment. A list is known by its kind (`allow`, `threat`) and by its file's
//! name without extension, for `ip_in_list(addr, 'name')`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Allow,
    Threat,
}

impl ListKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Allow => "allow",
            ListKind::Threat => "threat",
        }
    }
}

#[derive(Clone, Debug)]
pub struct IpList {
    pub name: String,
    pub kind: ListKind,
    /// The prefix lengths present, longest first: a lookup probes each once.
    lengths: Vec<u8>,
    set: std::collections::HashSet<IpNet>,
}

impl IpList {
    /// Parses a list's text; `location` (the file) and the line name a bad entry.
    pub fn parse(text: &str, name: &str, kind: ListKind, location: &str) -> Result<Self> {
        let mut nets = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(addr) => IpNet::from(addr),
                    Err(_) => {
                        return Err(Error::bad_file(
                            format!("{location}:{}", i + 1),
                            format!("`{entry}` is not an IP address or CIDR block"),
                        ));
                    }
                },
            };
            nets.push(net);
        }
        let mut lengths: Vec<u8> = nets.iter().map(IpNet::prefix_len).collect();
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        lengths.dedup();
        Ok(IpList {
            name: name.to_string(),
            kind,
            set: nets.iter().copied().collect(),
            lengths,
        })
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.lengths.iter().any(|&len| {
            IpNet::new(addr, len)
                .map(|n| self.set.contains(&n.trunc()))
                .unwrap_or(false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_blocks_and_comments() {
        let list = IpList::parse(
            "# partners\n203.0.113.7\n198.51.100.0/24  # office\n\n2001:db8::/32\n",
            "partners",
            ListKind::Allow,
            "partners.txt",
        )
        .unwrap();
        assert_eq!(list.len(), 3);
        for yes in ["203.0.113.7", "198.51.100.200", "2001:db8::1"] {
            assert!(list.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in ["203.0.113.8", "198.51.101.1", "2001:db9::1"] {
            assert!(!list.contains(no.parse().unwrap()), "{no}");
        }
    }

    #[test]
    fn a_bad_line_is_named() {
        let err =
            IpList::parse("10.0.0.1\n10.0.0.300\n", "x", ListKind::Threat, "bad.txt").unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad.txt:2: `10.0.0.300` is not an IP address or CIDR block"
        );
    }
}

//! Why a flow was rejected, from the inventory's rules. The two filters in a VPC behave
//! differently, and the explanation follows each one's semantics:
//! - a network ACL is stateless and ordered: the subnet's entries for the packet's direction
//!   are read by rule number, the first that matches decides (an explicit deny wins over any
//!   later allow), and the final `*` entry denies what none matched. Replies are packets like
//!   any other, so the return traffic to a client's ephemeral ports (1024-65535) needs its
//!   own rule in the other direction;
//! - a security group is stateful and allow-only: a packet passes when any rule of any of
//!   the interface's groups allows it, and the replies of a connection it allowed pass too.
//!
//! A rejected flow is either: the ACL's verdict is evaluated first (it sits at the subnet's
//! edge), then the groups'.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::inventory::Inventory;
use crate::source::{InterfaceRow, NetworkAclRow, SecurityGroupRow};

/// The `*` entry every network ACL ends with.
const LAST_RULE: i32 = 32767;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    All,
    Number(i32),
}

impl Protocol {
    fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "-1" | "all" => Protocol::All,
            "tcp" => Protocol::Number(6),
            "udp" => Protocol::Number(17),
            "icmp" => Protocol::Number(1),
            "icmpv6" => Protocol::Number(58),
            other => Protocol::Number(other.parse().ok()?),
        })
    }

    fn matches(self, protocol: Option<i32>) -> bool {
        match self {
            Protocol::All => true,
            Protocol::Number(n) => protocol == Some(n),
        }
    }
}

fn has_ports(protocol: Option<i32>) -> bool {
    matches!(protocol, Some(6 | 17 | 132))
}

/// Whether `port` is in `from..=to`; no range (or -1) is every port. Ports only count for
/// TCP, UDP and SCTP: for ICMP the fields hold a type and code that flow logs do not record.
fn port_in(protocol: Option<i32>, from: Option<i32>, to: Option<i32>, port: Option<i32>) -> bool {
    if !has_ports(protocol) {
        return true;
    }
    match (from, to, port) {
        (None, _, _) | (Some(-1), _, _) => true,
        (Some(from), to, Some(port)) => port >= from && port <= to.unwrap_or(from),
        (Some(_), _, None) => false,
    }
}

#[derive(Clone, Debug)]
enum Peer {
    Cidr(IpNet),
    Group(String),
    PrefixList(String),
}

#[derive(Clone, Debug)]
struct GroupRule {
    egress: bool,
    protocol: Protocol,
    from: Option<i32>,
    to: Option<i32>,
    peer: Peer,
}

#[derive(Clone, Debug)]
struct AclEntry {
    number: i32,
    egress: bool,
    protocol: Protocol,
    allow: bool,
    cidr: Option<IpNet>,
    from: Option<i32>,
    to: Option<i32>,
}

/// Why the inventory says a flow was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// `network_acl`, `security_group`, or `unknown` (the rules allow it, or the inventory
    /// does not know the interface).
    pub cause: &'static str,
    pub text: String,
}

/// A flow as the evaluation needs it.
#[derive(Clone, Copy, Debug)]
pub struct FlowKey<'a> {
    pub interface_id: &'a str,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub srcport: Option<i32>,
    pub dstport: Option<i32>,
    pub protocol: Option<i32>,
}

/// The inventory's rules, indexed for evaluation.
#[derive(Debug, Default)]
pub struct RuleSet {
    interfaces: HashMap<String, InterfaceRow>,
    /// Address -> the security groups of the interface that holds it (for rules that name
    /// a group as their peer).
    address_groups: HashMap<IpAddr, Vec<String>>,
    groups: HashMap<String, (Option<String>, Vec<GroupRule>)>,
    acl_of_subnet: HashMap<String, String>,
    default_acl_of_vpc: HashMap<String, String>,
    acls: HashMap<String, Vec<AclEntry>>,
    taken_at: Option<String>,
}

impl RuleSet {
    pub fn new(inventory: &Inventory) -> Self {
        let mut rules = RuleSet::default();
        for eni in &inventory.interfaces {
            for addr in local_addresses(eni) {
                rules
                    .address_groups
                    .entry(addr)
                    .or_default()
                    .extend(eni.security_groups.iter().cloned());
            }
            rules.taken_at.get_or_insert_with(|| eni.taken_at.clone());
            rules
                .interfaces
                .insert(eni.interface_id.clone(), eni.clone());
        }
        for row in &inventory.security_groups {
            add_group_rule(&mut rules.groups, row);
        }
        for row in &inventory.network_acls {
            add_acl_entry(&mut rules, row);
        }
        for entries in rules.acls.values_mut() {
            entries.sort_by_key(|e| e.number);
        }
        rules
    }

    /// Why `flow` was rejected.
    pub fn explain(&self, flow: FlowKey<'_>) -> Explanation {
        let unknown = |text: String| Explanation {
            cause: "unknown",
            text,
        };
        let Some(eni) = self.interfaces.get(flow.interface_id) else {
            return unknown(format!("{} is not in the inventory", flow.interface_id));
        };
        let local: Vec<IpAddr> = local_addresses(eni).collect();
        let inbound = if local.contains(&flow.dst) {
            true
        } else if local.contains(&flow.src) {
            false
        } else {
            return unknown(format!(
                "neither {} nor {} is an address of {} in the inventory",
                flow.src, flow.dst, flow.interface_id
            ));
        };
        let remote = if inbound { flow.src } else { flow.dst };
        let (way, from_to) = if inbound {
            ("inbound", "from")
        } else {
            ("outbound", "to")
        };
        let what = traffic_label(flow.protocol, flow.dstport);
        let net = network_label(remote);
        // A reply: from a service port to a client's ephemeral port.
        let reply = has_ports(flow.protocol)
            && matches!((flow.srcport, flow.dstport), (Some(s), Some(d)) if d >= 1024 && s < d);

        let acl_id = eni
            .subnet_id
            .as_ref()
            .and_then(|s| self.acl_of_subnet.get(s))
            .or_else(|| {
                eni.vpc_id
                    .as_ref()
                    .and_then(|v| self.default_acl_of_vpc.get(v))
            });
        let mut allowed_by = Vec::new();
        if let Some((acl, entries)) = acl_id.and_then(|id| self.acls.get(id).map(|e| (id, e))) {
            let first = entries.iter().find(|e| {
                e.egress != inbound
                    && e.protocol.matches(flow.protocol)
                    && port_in(flow.protocol, e.from, e.to, flow.dstport)
                    && e.cidr.is_some_and(|c| c.contains(&remote))
            });
            match first {
                Some(e) if e.allow => allowed_by.push(format!("NACL {acl} rule {}", e.number)),
                Some(e) if e.number != LAST_RULE => {
                    let cidr = e.cidr.map_or("-".to_string(), |c| c.to_string());
                    let text = match reply {
                        true => format!(
                            "NACL {acl} rule {} denies {what} {from_to} {cidr}: the reply to \
                                 ephemeral port {} of a connection {} opened",
                            e.number,
                            flow.dstport.unwrap_or(0),
                            if inbound {
                                "the interface"
                            } else {
                                "the remote"
                            }
                        ),
                        false => format!(
                            "NACL {acl} rule {} denies {what} {from_to} {cidr}",
                            e.number
                        ),
                    };
                    return Explanation {
                        cause: "network_acl",
                        text,
                    };
                }
                _ => {
                    let text = match reply {
                        true => format!(
                            "NACL {acl} has no {way} rule for the replies to ephemeral ports \
                                 1024-65535 ({from_to} {net}; service port {}): network ACLs are \
                                 stateless so return traffic needs its own rule",
                            flow.srcport.map_or("-".to_string(), |p| p.to_string())
                        ),
                        false => format!(
                            "NACL {acl} has no {way} rule that allows {what} {from_to} {net}: \
                                 its final * rule denies it"
                        ),
                    };
                    return Explanation {
                        cause: "network_acl",
                        text,
                    };
                }
            }
        }

        if eni.security_groups.is_empty() {
            return unknown(format!(
                "{} has no security groups in the inventory",
                flow.interface_id
            ));
        }
        let mut unevaluated = Vec::new();
        let mut allowing = None;
        for group in &eni.security_groups {
            let Some((_, group_rules)) = self.groups.get(group) else {
                continue;
            };
            for rule in group_rules {
                if rule.egress == inbound
                    || !rule.protocol.matches(flow.protocol)
                    || !port_in(flow.protocol, rule.from, rule.to, flow.dstport)
                {
                    continue;
                }
                let matched = match &rule.peer {
                    Peer::Cidr(cidr) => cidr.contains(&remote),
                    Peer::Group(g) => self
                        .address_groups
                        .get(&remote)
                        .is_some_and(|groups| groups.contains(g)),
                    Peer::PrefixList(list) => {
                        unevaluated.push(list.clone());
                        false
                    }
                };
                if matched {
                    allowing = Some(group.clone());
                }
            }
        }
        match allowing {
            None => {
                let names: Vec<String> = eni
                    .security_groups
                    .iter()
                    .map(
                        |g| match self.groups.get(g).and_then(|(n, _)| n.as_deref()) {
                            Some(name) => format!("{g} ({name})"),
                            None => g.clone(),
                        },
                    )
                    .collect();
                let mut text = format!(
                    "no {way} rule of {} allows {what} {from_to} {net}",
                    names.join(" or ")
                );
                if reply {
                    text.push_str(
                        " (though a reply to a connection the interface itself opened would pass: \
                         security groups are stateful)",
                    );
                }
                if !unevaluated.is_empty() {
                    unevaluated.sort();
                    unevaluated.dedup();
                    text.push_str(&format!(
                        "; rules naming prefix lists ({}) were not evaluated",
                        unevaluated.join(" ")
                    ));
                }
                Explanation {
                    cause: "security_group",
                    text,
                }
            }
            Some(group) => {
                allowed_by.push(group);
                unknown(format!(
                    "the inventory's rules allow {what} {from_to} {remote} ({}): they may have \
                     changed since it was taken{}",
                    allowed_by.join(" and "),
                    self.taken_at
                        .as_deref()
                        .map(|t| format!(" ({t})"))
                        .unwrap_or_default()
                ))
            }
        }
    }

    /// The inventory row of an interface.
    pub fn interface(&self, id: &str) -> Option<&InterfaceRow> {
        self.interfaces.get(id)
    }
}

fn local_addresses(eni: &InterfaceRow) -> impl Iterator<Item = IpAddr> + '_ {
    eni.private_ips
        .iter()
        .chain(&eni.ipv6_ips)
        .chain(&eni.public_ip)
        .filter_map(|a| a.parse().ok())
}

fn add_group_rule(
    groups: &mut HashMap<String, (Option<String>, Vec<GroupRule>)>,
    row: &SecurityGroupRow,
) {
    let entry = groups
        .entry(row.group_id.clone())
        .or_insert_with(|| (row.group_name.clone(), Vec::new()));
    let (Some(direction), Some(protocol)) = (&row.direction, &row.protocol) else {
        return;
    };
    let Some(protocol) = Protocol::parse(protocol) else {
        return;
    };
    let peer = if let Some(cidr) = row.cidr.as_deref().and_then(|c| c.parse().ok()) {
        Peer::Cidr(cidr)
    } else if let Some(group) = &row.ref_group_id {
        Peer::Group(group.clone())
    } else if let Some(list) = &row.prefix_list_id {
        Peer::PrefixList(list.clone())
    } else {
        return;
    };
    entry.1.push(GroupRule {
        egress: direction == "egress",
        protocol,
        from: row.from_port,
        to: row.to_port,
        peer,
    });
}

fn add_acl_entry(rules: &mut RuleSet, row: &NetworkAclRow) {
    for subnet in &row.subnet_ids {
        rules
            .acl_of_subnet
            .insert(subnet.clone(), row.acl_id.clone());
    }
    if row.is_default
        && let Some(vpc) = &row.vpc_id
    {
        rules
            .default_acl_of_vpc
            .insert(vpc.clone(), row.acl_id.clone());
    }
    let entries = rules.acls.entry(row.acl_id.clone()).or_default();
    let Some(protocol) = Protocol::parse(&row.protocol) else {
        return;
    };
    entries.push(AclEntry {
        number: row.rule_number,
        egress: row.direction == "egress",
        protocol,
        allow: row.rule_action.eq_ignore_ascii_case("allow"),
        cidr: row.cidr.as_deref().and_then(|c| c.parse().ok()),
        from: row.from_port,
        to: row.to_port,
    });
}

/// "tcp/5432", "udp/53", "icmp", "protocol 47".
fn traffic_label(protocol: Option<i32>, port: Option<i32>) -> String {
    let name = match protocol {
        Some(6) => "tcp",
        Some(17) => "udp",
        Some(1) => return "icmp".to_string(),
        Some(58) => return "icmpv6".to_string(),
        Some(132) => "sctp",
        Some(n) => return format!("protocol {n}"),
        None => return "traffic".to_string(),
    };
    match port {
        Some(p) => format!("{name}/{p}"),
        None => name.to_string(),
    }
}

/// The /24 (IPv4) or /64 (IPv6) an address is in: explanations group a scan's sources.
fn network_label(addr: IpAddr) -> String {
    let bits = if addr.is_ipv4() { 24 } else { 64 };
    IpNet::new(addr, bits)
        .map(|n| n.trunc().to_string())
        .unwrap_or_else(|_| addr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eni() -> InterfaceRow {
        InterfaceRow {
            region: "eu-west-1".into(),
            interface_id: "eni-db".into(),
            vpc_id: Some("vpc-1".into()),
            subnet_id: Some("subnet-db".into()),
            private_ips: vec!["10.20.1.10".into()],
            ipv6_ips: vec!["2600:1f18::10".into()],
            security_groups: vec!["sg-db".into()],
            taken_at: "2026-12-05T20:00:00Z".into(),
            ..InterfaceRow::default()
        }
    }

    fn sg(direction: &str, protocol: &str, ports: (i32, i32), cidr: &str) -> SecurityGroupRow {
        SecurityGroupRow {
            region: "eu-west-1".into(),
            group_id: "sg-db".into(),
            group_name: Some("database".into()),
            direction: Some(direction.into()),
            protocol: Some(protocol.into()),
            from_port: Some(ports.0),
            to_port: Some(ports.1),
            cidr: Some(cidr.into()),
            ..SecurityGroupRow::default()
        }
    }

    fn acl(
        number: i32,
        direction: &str,
        protocol: &str,
        action: &str,
        cidr: &str,
        ports: Option<(i32, i32)>,
    ) -> NetworkAclRow {
        NetworkAclRow {
            region: "eu-west-1".into(),
            acl_id: "acl-db".into(),
            vpc_id: Some("vpc-1".into()),
            subnet_ids: vec!["subnet-db".into()],
            rule_number: number,
            direction: direction.into(),
            protocol: protocol.into(),
            rule_action: action.into(),
            cidr: Some(cidr.into()),
            from_port: ports.map(|p| p.0),
            to_port: ports.map(|p| p.1),
            ..NetworkAclRow::default()
        }
    }

    /// An ACL that allows everything both ways (as a default ACL does), then the `*` denies.
    fn open_acl() -> Vec<NetworkAclRow> {
        vec![
            acl(100, "ingress", "-1", "allow", "0.0.0.0/0", None),
            acl(101, "ingress", "-1", "allow", "::/0", None),
            acl(32767, "ingress", "-1", "deny", "0.0.0.0/0", None),
            acl(100, "egress", "-1", "allow", "0.0.0.0/0", None),
            acl(101, "egress", "-1", "allow", "::/0", None),
            acl(32767, "egress", "-1", "deny", "0.0.0.0/0", None),
        ]
    }

    fn rules(groups: Vec<SecurityGroupRow>, acls: Vec<NetworkAclRow>) -> RuleSet {
        RuleSet::new(&Inventory {
            interfaces: vec![eni()],
            security_groups: groups,
            network_acls: acls,
            ..Inventory::default()
        })
    }

    fn flow(src: &str, dst: &str, sport: i32, dport: i32, protocol: i32) -> FlowKey<'static> {
        FlowKey {
            interface_id: "eni-db",
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            srcport: Some(sport),
            dstport: Some(dport),
            protocol: Some(protocol),
        }
    }

    #[test]
    fn a_security_group_without_the_port_is_named() {
        let set = rules(
            vec![sg("ingress", "tcp", (5432, 5432), "10.20.2.0/24")],
            open_acl(),
        );
        // From the allowed subnet: the rules allow it.
        let ok = set.explain(flow("10.20.2.7", "10.20.1.10", 40000, 5432, 6));
        assert_eq!(ok.cause, "unknown", "{ok:?}");
        let e = set.explain(flow("10.20.3.5", "10.20.1.10", 40000, 5432, 6));
        assert_eq!(e.cause, "security_group");
        assert_eq!(
            e.text,
            "no inbound rule of sg-db (database) allows tcp/5432 from 10.20.3.0/24"
        );
        // Outbound with no egress rule.
        let out = set.explain(flow("10.20.1.10", "93.184.216.34", 40000, 443, 6));
        assert!(out.text.starts_with("no outbound rule of sg-db"), "{out:?}");
    }

    #[test]
    fn the_first_matching_acl_entry_decides_so_a_deny_before_an_allow_wins() {
        let mut acls = open_acl();
        acls.push(acl(
            90,
            "ingress",
            "6",
            "deny",
            "10.20.3.0/24",
            Some((5432, 5432)),
        ));
        let set = rules(
            vec![sg("ingress", "-1", (-1, -1), "0.0.0.0/0")],
            acls.clone(),
        );
        let e = set.explain(flow("10.20.3.5", "10.20.1.10", 40000, 5432, 6));
        assert_eq!(e.cause, "network_acl");
        assert_eq!(
            e.text,
            "NACL acl-db rule 90 denies tcp/5432 from 10.20.3.0/24"
        );
        // The same deny numbered after the allow never decides.
        let mut later = open_acl();
        later.push(acl(
            200,
            "ingress",
            "6",
            "deny",
            "10.20.3.0/24",
            Some((5432, 5432)),
        ));
        let set = rules(vec![sg("ingress", "-1", (-1, -1), "0.0.0.0/0")], later);
        assert_eq!(
            set.explain(flow("10.20.3.5", "10.20.1.10", 40000, 5432, 6))
                .cause,
            "unknown"
        );
    }

    #[test]
    fn replies_to_ephemeral_ports_need_their_own_acl_rule() {
        // Requests out on 443 and in on 5432 are allowed; nothing lets replies back in.
        let acls = vec![
            acl(100, "egress", "6", "allow", "0.0.0.0/0", Some((443, 443))),
            acl(
                100,
                "ingress",
                "6",
                "allow",
                "10.0.0.0/8",
                Some((5432, 5432)),
            ),
            acl(32767, "ingress", "-1", "deny", "0.0.0.0/0", None),
            acl(32767, "egress", "-1", "deny", "0.0.0.0/0", None),
        ];
        let set = rules(vec![sg("egress", "-1", (-1, -1), "0.0.0.0/0")], acls);
        let e = set.explain(flow("52.216.8.9", "10.20.1.10", 443, 51234, 6));
        assert_eq!(e.cause, "network_acl");
        assert!(
            e.text.starts_with(
                "NACL acl-db has no inbound rule for the replies to ephemeral ports 1024-65535"
            ),
            "{e:?}"
        );
        // Its replies to a client of 5432 cannot leave either.
        let out = set.explain(flow("10.20.1.10", "10.1.2.3", 5432, 40000, 6));
        assert!(
            out.text
                .starts_with("NACL acl-db has no outbound rule for the replies to ephemeral ports"),
            "{out:?}"
        );
        // A request nothing allows is not called a reply.
        let ssh = set.explain(flow("45.1.2.3", "10.20.1.10", 51000, 22, 6));
        assert!(
            ssh.text
                .contains("has no inbound rule that allows tcp/22 from 45.1.2.0/24"),
            "{ssh:?}"
        );
    }

    #[test]
    fn icmp_and_all_traffic_rules() {
        // ICMP carries no ports: an ICMP rule matches whatever the type fields say.
        let set = rules(
            vec![sg("ingress", "icmp", (8, -1), "0.0.0.0/0")],
            open_acl(),
        );
        assert_eq!(
            set.explain(flow("8.8.8.8", "10.20.1.10", 0, 0, 1)).cause,
            "unknown"
        );
        let udp = set.explain(flow("8.8.8.8", "10.20.1.10", 53, 40000, 17));
        assert_eq!(udp.cause, "security_group");
        assert!(udp.text.contains("udp/40000"), "{udp:?}");
        // An all-traffic rule allows every protocol and port.
        let set = rules(
            vec![sg("ingress", "-1", (-1, -1), "10.0.0.0/8")],
            open_acl(),
        );
        assert_eq!(
            set.explain(flow("10.9.9.9", "10.20.1.10", 1, 47, 47)).cause,
            "unknown"
        );
        // An ACL entry for ICMP only does not allow TCP.
        let acls = vec![
            acl(100, "ingress", "1", "allow", "0.0.0.0/0", None),
            acl(32767, "ingress", "-1", "deny", "0.0.0.0/0", None),
        ];
        let set = rules(vec![sg("ingress", "-1", (-1, -1), "0.0.0.0/0")], acls);
        assert_eq!(
            set.explain(flow("8.8.8.8", "10.20.1.10", 0, 0, 1)).cause,
            "unknown"
        );
        assert_eq!(
            set.explain(flow("8.8.8.8", "10.20.1.10", 40000, 80, 6))
                .cause,
            "network_acl"
        );
    }

    #[test]
    fn ipv6_flows_match_only_ipv6_entries() {
        // Only the IPv4 half of the ACL: IPv6 traffic falls to the * rule.
        let acls = vec![
            acl(100, "ingress", "-1", "allow", "0.0.0.0/0", None),
            acl(32767, "ingress", "-1", "deny", "0.0.0.0/0", None),
        ];
        let set = rules(vec![sg("ingress", "tcp", (443, 443), "::/0")], acls);
        let e = set.explain(flow("2a02:cf40::1", "2600:1f18::10", 40000, 443, 6));
        assert_eq!(e.cause, "network_acl");
        assert!(e.text.contains("from 2a02:cf40::/64"), "{e:?}");
        // With the IPv6 allow, the group's ::/0 rule lets it in.
        let set = rules(vec![sg("ingress", "tcp", (443, 443), "::/0")], open_acl());
        assert_eq!(
            set.explain(flow("2a02:cf40::1", "2600:1f18::10", 40000, 443, 6))
                .cause,
            "unknown"
        );
    }

    #[test]
    fn a_rule_naming_a_group_allows_its_members() {
        let mut peer = eni();
        peer.interface_id = "eni-app".into();
        peer.private_ips = vec!["10.20.2.20".into()];
        peer.security_groups = vec!["sg-app".into()];
        let rule = SecurityGroupRow {
            cidr: None,
            ref_group_id: Some("sg-app".into()),
            ..sg("ingress", "tcp", (5432, 5432), "")
        };
        let set = RuleSet::new(&Inventory {
            interfaces: vec![eni(), peer],
            security_groups: vec![rule],
            network_acls: open_acl(),
            ..Inventory::default()
        });
        assert_eq!(
            set.explain(flow("10.20.2.20", "10.20.1.10", 40000, 5432, 6))
                .cause,
            "unknown"
        );
        assert_eq!(
            set.explain(flow("10.20.2.21", "10.20.1.10", 40000, 5432, 6))
                .cause,
            "security_group"
        );
    }

    #[test]
    fn an_interface_the_inventory_does_not_know_is_said_so() {
        let set = rules(vec![], open_acl());
        let mut f = flow("1.2.3.4", "10.20.1.10", 1, 2, 6);
        f.interface_id = "eni-other";
        assert_eq!(set.explain(f).text, "eni-other is not in the inventory");
    }
}

//! The interface inventory from the EC2 API: network interfaces, security groups, network
//! ACLs, subnets and VPCs of each region (and each account, through AssumeRole), flattened
//! into rows: one per interface, per security group rule, per ACL entry, per subnet and VPC.
//! The same credential chain as S3; `AWS_ENDPOINT_URL[_EC2]` or `--endpoint-url` point it
//! at an emulator. A call the role may not make is reported by its action
//! (`ec2:DescribeNetworkAcls`) and the rest of the snapshot is still taken.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One network interface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InterfaceRow {
    pub account_id: Option<String>,
    pub region: String,
    pub interface_id: String,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub availability_zone: Option<String>,
    pub interface_type: Option<String>,
    pub status: Option<String>,
    pub description: Option<String>,
    pub instance_id: Option<String>,
    /// The `Name` tag.
    pub name: Option<String>,
    pub private_ips: Vec<String>,
    pub ipv6_ips: Vec<String>,
    pub public_ip: Option<String>,
    pub security_groups: Vec<String>,
    /// Every tag, as a JSON object.
    pub tags: Option<String>,
    pub requester_managed: Option<bool>,
    pub taken_at: String,
}

/// One rule of a security group (a group without rules in a direction has none; a group
/// with no rules at all has one row with no direction, so it is still listed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityGroupRow {
    pub account_id: Option<String>,
    pub region: String,
    pub group_id: String,
    pub group_name: Option<String>,
    pub vpc_id: Option<String>,
    /// `ingress` or `egress`.
    pub direction: Option<String>,
    /// As EC2 gives it: `-1` (all), `tcp`, `udp`, `icmp`, `icmpv6` or a number.
    pub protocol: Option<String>,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    /// One of cidr, ref_group_id, prefix_list_id per row.
    pub cidr: Option<String>,
    pub ref_group_id: Option<String>,
    pub prefix_list_id: Option<String>,
    pub description: Option<String>,
    pub taken_at: String,
}

/// One entry of a network ACL.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkAclRow {
    pub account_id: Option<String>,
    pub region: String,
    pub acl_id: String,
    pub vpc_id: Option<String>,
    pub is_default: bool,
    pub subnet_ids: Vec<String>,
    pub rule_number: i32,
    /// `ingress` or `egress`.
    pub direction: String,
    pub protocol: String,
    /// `allow` or `deny`.
    pub rule_action: String,
    pub cidr: Option<String>,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub icmp_type: Option<i32>,
    pub icmp_code: Option<i32>,
    pub taken_at: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubnetRow {
    pub account_id: Option<String>,
    pub region: String,
    pub subnet_id: String,
    pub vpc_id: Option<String>,
    pub cidr: Option<String>,
    pub ipv6_cidrs: Vec<String>,
    pub availability_zone: Option<String>,
    pub name: Option<String>,
    pub taken_at: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VpcRow {
    pub account_id: Option<String>,
    pub region: String,
    pub vpc_id: String,
    pub cidr: Option<String>,
    pub is_default: bool,
    pub name: Option<String>,
    pub taken_at: String,
}

/// What one snapshot found, and the calls it could not make.
#[derive(Clone, Debug, Default)]
pub struct InventorySnapshot {
    pub interfaces: Vec<InterfaceRow>,
    pub security_groups: Vec<SecurityGroupRow>,
    pub network_acls: Vec<NetworkAclRow>,
    pub subnets: Vec<SubnetRow>,
    pub vpcs: Vec<VpcRow>,
    /// "us-east-1 (arn:…): ec2:DescribeNetworkAcls was denied …", one per call refused.
    pub problems: Vec<String>,
}

/// Where and as whom to take the snapshot.
#[derive(Clone, Debug, Default)]
pub struct InventoryOptions {
    /// Regions to describe; none: the configured region (AWS_REGION, the profile).
    pub regions: Vec<String>,
    /// Roles to assume, one per account; none: the caller's own credentials.
    pub role_arns: Vec<String>,
    pub endpoint_url: Option<String>,
}

/// Takes the snapshot, stamped `taken_at` (RFC 3339).
pub async fn snapshot_inventory(
    options: &InventoryOptions,
    taken_at: &str,
) -> Result<InventorySnapshot> {
    let mut base = super::aws_config::sdk_config().await;
    if let Some(url) = &options.endpoint_url {
        base = base.to_builder().endpoint_url(url).build();
    }
    let regions: Vec<String> = match options.regions.is_empty() {
        false => options.regions.clone(),
        true => match base.region() {
            Some(region) => vec![region.to_string()],
            None => {
                return Err(Error::invalid(
                    "inventory",
                    "no region: give --regions or set AWS_REGION",
                ));
            }
        },
    };
    let roles: Vec<Option<&str>> = match options.role_arns.is_empty() {
        true => vec![None],
        false => options.role_arns.iter().map(|r| Some(r.as_str())).collect(),
    };
    let mut snapshot = InventorySnapshot::default();
    for role in roles {
        for region in &regions {
            let region_config = base
                .to_builder()
                .region(aws_config::Region::new(region.clone()))
                .build();
            let config = match role {
                None => region_config,
                Some(arn) => {
                    let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
                        .session_name("flowlens-inventory")
                        .configure(&region_config)
                        .build()
                        .await;
                    region_config
                        .to_builder()
                        .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(
                            provider,
                        ))
                        .build()
                }
            };
            let client = Client::new(&config);
            let scope = match role {
                Some(arn) => format!("{region} ({arn})"),
                None => region.clone(),
            };
            describe_region(&client, region, &scope, taken_at, &mut snapshot).await?;
        }
    }
    Ok(snapshot)
}

/// A refused call becomes a problem naming its IAM action; anything else is an error.
fn refused<E, R>(
    scope: &str,
    action: &str,
    error: SdkError<E, R>,
    problems: &mut Vec<String>,
) -> Result<()>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(service) = &error {
        let code = service.err().code().unwrap_or("");
        if matches!(
            code,
            "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" | "AuthFailure"
        ) {
            problems.push(format!(
                "{scope}: {action} was denied ({code}): the role needs the IAM action {action}; \
                 the inventory goes on without it"
            ));
            return Ok(());
        }
    }
    Err(super::aws_config::aws_error(
        format!("{scope} {action}"),
        &error,
    ))
}

fn tag_value<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

fn owned(text: Option<&str>) -> Option<String> {
    text.map(str::to_string)
}

async fn describe_region(
    client: &Client,
    region: &str,
    scope: &str,
    taken_at: &str,
    out: &mut InventorySnapshot,
) -> Result<()> {
    let stamp = || taken_at.to_string();

    let mut pages = client.describe_network_interfaces().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                refused(scope, "ec2:DescribeNetworkInterfaces", e, &mut out.problems)?;
                break;
            }
        };
        for eni in page.network_interfaces() {
            let Some(id) = eni.network_interface_id() else {
                continue;
            };
            let tags: serde_json::Map<String, serde_json::Value> = eni
                .tag_set()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").into())))
                .collect();
            out.interfaces.push(InterfaceRow {
                account_id: owned(eni.owner_id()),
                region: region.to_string(),
                interface_id: id.to_string(),
                vpc_id: owned(eni.vpc_id()),
                subnet_id: owned(eni.subnet_id()),
                availability_zone: owned(eni.availability_zone()),
                interface_type: eni.interface_type().map(|t| t.as_str().to_string()),
                status: eni.status().map(|s| s.as_str().to_string()),
                description: owned(eni.description()).filter(|d| !d.is_empty()),
                instance_id: owned(eni.attachment().and_then(|a| a.instance_id())),
                name: owned(tag_value(eni.tag_set(), "Name")),
                private_ips: eni
                    .private_ip_addresses()
                    .iter()
                    .filter_map(|p| owned(p.private_ip_address()))
                    .collect(),
                ipv6_ips: eni
                    .ipv6_addresses()
                    .iter()
                    .filter_map(|p| owned(p.ipv6_address()))
                    .collect(),
                public_ip: owned(eni.association().and_then(|a| a.public_ip())),
                security_groups: eni
                    .groups()
                    .iter()
                    .filter_map(|g| owned(g.group_id()))
                    .collect(),
                tags: (!tags.is_empty()).then(|| serde_json::Value::Object(tags).to_string()),
                requester_managed: eni.requester_managed(),
                taken_at: stamp(),
            });
        }
    }

    let mut pages = client.describe_security_groups().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                refused(scope, "ec2:DescribeSecurityGroups", e, &mut out.problems)?;
                break;
            }
        };
        for group in page.security_groups() {
            let Some(id) = group.group_id() else {
                continue;
            };
            let base = SecurityGroupRow {
                account_id: owned(group.owner_id()),
                region: region.to_string(),
                group_id: id.to_string(),
                group_name: owned(group.group_name()),
                vpc_id: owned(group.vpc_id()),
                taken_at: stamp(),
                ..SecurityGroupRow::default()
            };
            let before = out.security_groups.len();
            for (direction, permissions) in [
                ("ingress", group.ip_permissions()),
                ("egress", group.ip_permissions_egress()),
            ] {
                for p in permissions {
                    let rule = SecurityGroupRow {
                        direction: Some(direction.to_string()),
                        protocol: owned(p.ip_protocol()),
                        from_port: p.from_port(),
                        to_port: p.to_port(),
                        ..base.clone()
                    };
                    for r in p.ip_ranges() {
                        out.security_groups.push(SecurityGroupRow {
                            cidr: owned(r.cidr_ip()),
                            description: owned(r.description()),
                            ..rule.clone()
                        });
                    }
                    for r in p.ipv6_ranges() {
                        out.security_groups.push(SecurityGroupRow {
                            cidr: owned(r.cidr_ipv6()),
                            description: owned(r.description()),
                            ..rule.clone()
                        });
                    }
                    for r in p.user_id_group_pairs() {
                        out.security_groups.push(SecurityGroupRow {
                            ref_group_id: owned(r.group_id()),
                            description: owned(r.description()),
                            ..rule.clone()
                        });
                    }
                    for r in p.prefix_list_ids() {
                        out.security_groups.push(SecurityGroupRow {
                            prefix_list_id: owned(r.prefix_list_id()),
                            description: owned(r.description()),
                            ..rule.clone()
                        });
                    }
                }
            }
            if out.security_groups.len() == before {
                out.security_groups.push(base);
            }
        }
    }

    let mut pages = client.describe_network_acls().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                refused(scope, "ec2:DescribeNetworkAcls", e, &mut out.problems)?;
                break;
            }
        };
        for acl in page.network_acls() {
            let Some(id) = acl.network_acl_id() else {
                continue;
            };
            let subnets: Vec<String> = acl
                .associations()
                .iter()
                .filter_map(|a| owned(a.subnet_id()))
                .collect();
            for entry in acl.entries() {
                out.network_acls.push(NetworkAclRow {
                    account_id: owned(acl.owner_id()),
                    region: region.to_string(),
                    acl_id: id.to_string(),
                    vpc_id: owned(acl.vpc_id()),
                    is_default: acl.is_default().unwrap_or(false),
                    subnet_ids: subnets.clone(),
                    rule_number: entry.rule_number().unwrap_or(32767),
                    direction: match entry.egress() {
                        Some(true) => "egress",
                        _ => "ingress",
                    }
                    .to_string(),
                    protocol: entry.protocol().unwrap_or("-1").to_string(),
                    rule_action: entry
                        .rule_action()
                        .map_or("deny", |a| a.as_str())
                        .to_string(),
                    cidr: owned(entry.cidr_block().or(entry.ipv6_cidr_block())),
                    from_port: entry.port_range().and_then(|r| r.from()),
                    to_port: entry.port_range().and_then(|r| r.to()),
                    icmp_type: entry.icmp_type_code().and_then(|c| c.r#type()),
                    icmp_code: entry.icmp_type_code().and_then(|c| c.code()),
                    taken_at: stamp(),
                });
            }
        }
    }

    let mut pages = client.describe_subnets().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                refused(scope, "ec2:DescribeSubnets", e, &mut out.problems)?;
                break;
            }
        };
        for subnet in page.subnets() {
            let Some(id) = subnet.subnet_id() else {
                continue;
            };
            out.subnets.push(SubnetRow {
                account_id: owned(subnet.owner_id()),
                region: region.to_string(),
                subnet_id: id.to_string(),
                vpc_id: owned(subnet.vpc_id()),
                cidr: owned(subnet.cidr_block()),
                ipv6_cidrs: subnet
                    .ipv6_cidr_block_association_set()
                    .iter()
                    .filter_map(|a| owned(a.ipv6_cidr_block()))
                    .collect(),
                availability_zone: owned(subnet.availability_zone()),
                name: owned(tag_value(subnet.tags(), "Name")),
                taken_at: stamp(),
            });
        }
    }

    let mut pages = client.describe_vpcs().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                refused(scope, "ec2:DescribeVpcs", e, &mut out.problems)?;
                break;
            }
        };
        for vpc in page.vpcs() {
            let Some(id) = vpc.vpc_id() else {
                continue;
            };
            out.vpcs.push(VpcRow {
                account_id: owned(vpc.owner_id()),
                region: region.to_string(),
                vpc_id: id.to_string(),
                cidr: owned(vpc.cidr_block()),
                is_default: vpc.is_default().unwrap_or(false),
                name: owned(tag_value(vpc.tags(), "Name")),
                taken_at: stamp(),
            });
        }
    }
    Ok(())
}

//! Every known flow log field in one table: the source of the `flows` schema.
//! Adding a field AWS documents later is one line here.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// How a field's text is turned into a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Int32,
    Int64,
    /// Unix seconds as Int64; producers that emit milliseconds are normalised to seconds.
    UnixTime,
    Utf8,
}

impl FieldKind {
    pub fn data_type(self) -> DataType {
        match self {
            FieldKind::Int32 => DataType::Int32,
            FieldKind::Int64 | FieldKind::UnixTime => DataType::Int64,
            FieldKind::Utf8 => DataType::Utf8,
        }
    }
}

#[derive(Debug)]
pub struct FieldDef {
    /// The field id as AWS writes it in headers and `${…}` formats.
    pub name: &'static str,
    /// The column name, as AWS names Parquet columns.
    pub column: &'static str,
    /// The flow log version that introduced the field.
    pub version: u8,
    pub kind: FieldKind,
    pub doc: &'static str,
}

const fn f(
    name: &'static str,
    column: &'static str,
    version: u8,
    kind: FieldKind,
    doc: &'static str,
) -> FieldDef {
    FieldDef {
        name,
        column,
        version,
        kind,
        doc,
    }
}

use FieldKind::{Int32, Int64, UnixTime, Utf8};

/// The catalog, in the CONTRACT order of the `flows` table.
pub static FIELDS: &[FieldDef] = &[
    f("version", "version", 2, Int32, "flow log version"),
    f(
        "account-id",
        "account_id",
        2,
        Utf8,
        "AWS account of the interface",
    ),
    f(
        "interface-id",
        "interface_id",
        2,
        Utf8,
        "network interface (eni-…)",
    ),
    f(
        "srcaddr",
        "srcaddr",
        2,
        Utf8,
        "source address (IPv4 or IPv6)",
    ),
    f("dstaddr", "dstaddr", 2, Utf8, "destination address"),
    f("srcport", "srcport", 2, Int32, "source port"),
    f("dstport", "dstport", 2, Int32, "destination port"),
    f("protocol", "protocol", 2, Int32, "IANA protocol number"),
    f("packets", "packets", 2, Int64, "packets in the interval"),
    f("bytes", "bytes", 2, Int64, "bytes in the interval"),
    f("start", "start", 2, UnixTime, "first packet, Unix seconds"),
    f("end", "end", 2, UnixTime, "last packet, Unix seconds"),
    f("action", "action", 2, Utf8, "ACCEPT or REJECT"),
    f(
        "log-status",
        "log_status",
        2,
        Utf8,
        "OK, NODATA or SKIPDATA",
    ),
    f("vpc-id", "vpc_id", 3, Utf8, "VPC of the interface"),
    f("subnet-id", "subnet_id", 3, Utf8, "subnet of the interface"),
    f(
        "instance-id",
        "instance_id",
        3,
        Utf8,
        "instance of the interface",
    ),
    f(
        "tcp-flags",
        "tcp_flags",
        3,
        Int32,
        "TCP flags OR-ed over the interval",
    ),
    f("type", "type", 3, Utf8, "IPv4, IPv6 or EFA"),
    f(
        "pkt-srcaddr",
        "pkt_srcaddr",
        3,
        Utf8,
        "packet-level source address",
    ),
    f(
        "pkt-dstaddr",
        "pkt_dstaddr",
        3,
        Utf8,
        "packet-level destination address",
    ),
    f("region", "region", 4, Utf8, "region of the interface"),
    f("az-id", "az_id", 4, Utf8, "availability zone id"),
    f(
        "sublocation-type",
        "sublocation_type",
        4,
        Utf8,
        "wavelength, outpost or localzone",
    ),
    f(
        "sublocation-id",
        "sublocation_id",
        4,
        Utf8,
        "id of the sublocation",
    ),
    f(
        "pkt-src-aws-service",
        "pkt_src_aws_service",
        5,
        Utf8,
        "AWS service of pkt-srcaddr",
    ),
    f(
        "pkt-dst-aws-service",
        "pkt_dst_aws_service",
        5,
        Utf8,
        "AWS service of pkt-dstaddr",
    ),
    f(
        "flow-direction",
        "flow_direction",
        5,
        Utf8,
        "ingress or egress",
    ),
    f(
        "traffic-path",
        "traffic_path",
        5,
        Int32,
        "egress path (1-8)",
    ),
    f(
        "ecs-cluster-arn",
        "ecs_cluster_arn",
        7,
        Utf8,
        "ECS cluster ARN",
    ),
    f(
        "ecs-cluster-name",
        "ecs_cluster_name",
        7,
        Utf8,
        "ECS cluster name",
    ),
    f(
        "ecs-container-instance-arn",
        "ecs_container_instance_arn",
        7,
        Utf8,
        "ECS container instance ARN",
    ),
    f(
        "ecs-container-instance-id",
        "ecs_container_instance_id",
        7,
        Utf8,
        "ECS container instance id",
    ),
    f(
        "ecs-container-id",
        "ecs_container_id",
        7,
        Utf8,
        "Docker id of the first container",
    ),
    f(
        "ecs-second-container-id",
        "ecs_second_container_id",
        7,
        Utf8,
        "Docker id of the second container",
    ),
    f(
        "ecs-service-name",
        "ecs_service_name",
        7,
        Utf8,
        "ECS service name",
    ),
    f(
        "ecs-task-definition-arn",
        "ecs_task_definition_arn",
        7,
        Utf8,
        "ECS task definition ARN",
    ),
    f("ecs-task-arn", "ecs_task_arn", 7, Utf8, "ECS task ARN"),
    f("ecs-task-id", "ecs_task_id", 7, Utf8, "ECS task id"),
    f(
        "reject-reason",
        "reject_reason",
        8,
        Utf8,
        "BPA or EC when rejected for that reason",
    ),
    f(
        "resource-id",
        "resource_id",
        9,
        Utf8,
        "resource, e.g. a NAT gateway id",
    ),
    f(
        "encryption-status",
        "encryption_status",
        10,
        Int32,
        "0 none, 1 Nitro, 2 application, 3 both",
    ),
];

/// The default (version 2) format: the first fourteen fields, in order.
pub const DEFAULT_FIELD_COUNT: usize = 14;

/// Field ids that only transit gateway flow logs have.
pub const TRANSIT_GATEWAY_FIELDS: &[&str] = &[
    "resource-type",
    "tgw-id",
    "tgw-attachment-id",
    "tgw-src-vpc-account-id",
    "tgw-dst-vpc-account-id",
    "tgw-src-eni",
    "tgw-dst-eni",
    "packets-lost-no-route",
    "packets-lost-blackhole",
    "packets-lost-mtu-exceeded",
    "packets-lost-ttl-expired",
];

static BY_NAME: LazyLock<HashMap<&'static str, usize>> = LazyLock::new(|| {
    let mut map = HashMap::with_capacity(FIELDS.len() * 2);
    for (i, def) in FIELDS.iter().enumerate() {
        map.insert(def.name, i);
        map.insert(def.column, i);
    }
    map
});

/// Looks a field up by its AWS id (`log-status`) or column name (`log_status`).
pub fn field_index(name: &str) -> Option<usize> {
    BY_NAME.get(name).copied()
}

/// Looks a column up by its exact column name.
pub fn column_index(column: &str) -> Option<usize> {
    FIELDS.iter().position(|def| def.column == column)
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(
        FIELDS
            .iter()
            .map(|def| Field::new(def.column, def.kind.data_type(), true))
            .collect::<Vec<_>>(),
    ))
});

/// The schema of the `flows` table (CONTRACT): every known field, all nullable.
pub fn flows_schema() -> SchemaRef {
    SCHEMA.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_columns_agree() {
        for def in FIELDS {
            assert_eq!(def.name.replace('-', "_"), def.column);
            assert!(
                !def.name.bytes().any(|b| b.is_ascii_digit()),
                "{}",
                def.name
            );
        }
        assert_eq!(FIELDS[DEFAULT_FIELD_COUNT - 1].name, "log-status");
        assert_eq!(field_index("log_status"), field_index("log-status"));
        assert_eq!(field_index("nope"), None);
    }

    #[test]
    fn contract_types() {
        let schema = flows_schema();
        for (name, ty) in [
            ("version", DataType::Int32),
            ("srcport", DataType::Int32),
            ("tcp_flags", DataType::Int32),
            ("traffic_path", DataType::Int32),
            ("encryption_status", DataType::Int32),
            ("packets", DataType::Int64),
            ("start", DataType::Int64),
            ("account_id", DataType::Utf8),
        ] {
            assert_eq!(schema.field_with_name(name).unwrap().data_type(), &ty);
        }
        assert_eq!(schema.fields().len(), 42);
    }
}

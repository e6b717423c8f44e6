//! Security Lake's VPC flow log tables: OCSF 1.x Network Activity (class 4001) in Parquet,
//! flattened back onto flow log fields, following the OCSF project's published mapping of
//! VPC Flow Logs (source version 2, OCSF 1.1):
//!
//! | flows | OCSF |
//! |---|---|
//! | version | metadata.product.version |
//! | account_id, region, az_id | cloud.account.uid (or cloud.account_uid), cloud.region, cloud.zone |
//! | interface_id, vpc_id, subnet_id, instance_id | dst_endpoint.*_uid for ingress, else src_endpoint.*_uid |
//! | srcaddr, dstaddr | src_endpoint / dst_endpoint intermediate_ips[0] when present, else .ip |
//! | pkt_srcaddr, pkt_dstaddr | src_endpoint.ip, dst_endpoint.ip |
//! | srcport, dstport | src_endpoint.port, dst_endpoint.port |
//! | protocol, tcp_flags, type | connection_info.protocol_num, .tcp_flags, .protocol_ver |
//! | flow_direction | connection_info.direction: Inbound → ingress, Outbound → egress |
//! | packets, bytes | traffic.packets, traffic.bytes |
//! | start, end | start_time, end_time (milliseconds; `time` when start_time is absent) ÷ 1000 |
//! | action | action: Allowed → ACCEPT, Denied → REJECT |
//! | log_status | status_code |
//! | pkt_src_aws_service, pkt_dst_aws_service | src_endpoint.svc_name, dst_endpoint.svc_name |
//!
//! The other flow log fields have no place in that mapping and are NULL.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, ListArray, RecordBatch, StringArray, StringBuilder,
    StructArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;

/// Whether a Parquet file's columns are OCSF's rather than flow log fields.
pub(crate) fn is_ocsf(schema: &Schema) -> bool {
    schema.field_with_name("class_uid").is_ok()
        && (schema.field_with_name("src_endpoint").is_ok()
            || schema.field_with_name("connection_info").is_ok())
}

/// The array at a dotted path of struct fields, if the batch has it.
fn path(batch: &RecordBatch, dotted: &str) -> Option<ArrayRef> {
    let mut parts = dotted.split('.');
    let mut current = batch.column_by_name(parts.next()?)?.clone();
    for part in parts {
        let parent = current.as_any().downcast_ref::<StructArray>()?;
        let child = parent.column_by_name(part)?.clone();
        // A NULL parent makes its fields NULL.
        current = match parent.nulls() {
            Some(nulls) => {
                let data = child
                    .to_data()
                    .into_builder()
                    .nulls(arrow::buffer::NullBuffer::union(child.nulls(), Some(nulls)))
                    .build()
                    .ok()?;
                arrow::array::make_array(data)
            }
            None => child,
        };
    }
    Some(current)
}

fn text(batch: &RecordBatch, dotted: &str) -> Result<Option<StringArray>, ArrowError> {
    match path(batch, dotted) {
        Some(a) => Ok(Some(cast(&a, &DataType::Utf8)?.as_string::<i32>().clone())),
        None => Ok(None),
    }
}

fn int(batch: &RecordBatch, dotted: &str) -> Result<Option<Int64Array>, ArrowError> {
    match path(batch, dotted) {
        Some(a) => Ok(Some(
            cast(&a, &DataType::Int64)?
                .as_primitive::<arrow::datatypes::Int64Type>()
                .clone(),
        )),
        None => Ok(None),
    }
}

fn value(array: &Option<StringArray>, i: usize) -> Option<&str> {
    array.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i))
}

/// The first element of a list of strings (intermediate_ips), per row.
fn first_of_list(batch: &RecordBatch, dotted: &str) -> Result<Option<StringArray>, ArrowError> {
    let Some(array) = path(batch, dotted) else {
        return Ok(None);
    };
    let Some(list) = array.as_any().downcast_ref::<ListArray>() else {
        return text(batch, dotted);
    };
    let mut out = StringBuilder::new();
    for i in 0..list.len() {
        if list.is_null(i) {
            out.append_null();
            continue;
        }
        let items = cast(&list.value(i), &DataType::Utf8)?;
        let items = items.as_string::<i32>();
        match (0..items.len()).find(|&j| items.is_valid(j)) {
            Some(j) => out.append_value(items.value(j)),
            None => out.append_null(),
        }
    }
    Ok(Some(out.finish()))
}

/// A batch of OCSF Network Activity rows as flow log columns (names as in `flows`; the
/// caller casts them to the contract's types).
pub(crate) fn flatten_ocsf(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let rows = batch.num_rows();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    let mut push = |name: &str, array: ArrayRef| {
        fields.push(Field::new(name, array.data_type().clone(), true));
        columns.push(array);
    };
    let strings = |f: &dyn Fn(usize) -> Option<String>| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(rows, rows * 8);
        for i in 0..rows {
            b.append_option(f(i));
        }
        Arc::new(b.finish())
    };
    let ints = |a: Option<Int64Array>, divide: i64| -> ArrayRef {
        match a {
            Some(a) => Arc::new(Int64Array::from_iter(
                a.iter().map(|v| v.map(|v| v.div_euclid(divide))),
            )),
            None => arrow::array::new_null_array(&DataType::Int64, rows),
        }
    };

    let direction = text(batch, "connection_info.direction")?;
    let direction_id = int(batch, "connection_info.direction_id")?;
    let flow_direction = |i: usize| -> Option<&'static str> {
        match value(&direction, i).map(str::to_ascii_lowercase).as_deref() {
            Some("inbound") => Some("ingress"),
            Some("outbound") => Some("egress"),
            _ => match direction_id
                .as_ref()
                .filter(|a| a.is_valid(i))
                .map(|a| a.value(i))
            {
                Some(1) => Some("ingress"),
                Some(2) => Some("egress"),
                _ => None,
            },
        }
    };
    // The flow log version, when it is a number (OCSF keeps it as text).
    let version = text(batch, "metadata.product.version")?;
    push(
        "version",
        Arc::new(Int64Array::from_iter((0..rows).map(|i| {
            value(&version, i).and_then(|v| v.trim().parse::<i64>().ok())
        }))),
    );
    let account = match text(batch, "cloud.account.uid")? {
        Some(a) => Some(a),
        None => text(batch, "cloud.account_uid")?,
    };
    push(
        "account_id",
        strings(&|i| value(&account, i).map(str::to_string)),
    );
    let region = text(batch, "cloud.region")?;
    push(
        "region",
        strings(&|i| value(&region, i).map(str::to_string)),
    );
    let zone = text(batch, "cloud.zone")?;
    push("az_id", strings(&|i| value(&zone, i).map(str::to_string)));
    // The interface's side: the destination of inbound traffic, else the source.
    for (name, field) in [
        ("interface_id", "interface_uid"),
        ("vpc_id", "vpc_uid"),
        ("subnet_id", "subnet_uid"),
        ("instance_id", "instance_uid"),
    ] {
        let src = text(batch, &format!("src_endpoint.{field}"))?;
        let dst = text(batch, &format!("dst_endpoint.{field}"))?;
        push(
            name,
            strings(&|i| {
                let (first, second) = match flow_direction(i) {
                    Some("ingress") => (&dst, &src),
                    _ => (&src, &dst),
                };
                value(first, i).or(value(second, i)).map(str::to_string)
            }),
        );
    }
    for (side, addr, pkt) in [
        ("src_endpoint", "srcaddr", "pkt_srcaddr"),
        ("dst_endpoint", "dstaddr", "pkt_dstaddr"),
    ] {
        let ip = text(batch, &format!("{side}.ip"))?;
        let intermediate = first_of_list(batch, &format!("{side}.intermediate_ips"))?;
        push(
            addr,
            strings(&|i| {
                value(&intermediate, i)
                    .or(value(&ip, i))
                    .map(str::to_string)
            }),
        );
        push(pkt, strings(&|i| value(&ip, i).map(str::to_string)));
    }
    push("srcport", ints(int(batch, "src_endpoint.port")?, 1));
    push("dstport", ints(int(batch, "dst_endpoint.port")?, 1));
    push(
        "protocol",
        ints(int(batch, "connection_info.protocol_num")?, 1),
    );
    push(
        "tcp_flags",
        ints(int(batch, "connection_info.tcp_flags")?, 1),
    );
    let ip_version = text(batch, "connection_info.protocol_ver")?;
    push(
        "type",
        strings(&|i| value(&ip_version, i).map(str::to_string)),
    );
    push(
        "flow_direction",
        strings(&|i| flow_direction(i).map(str::to_string)),
    );
    push("packets", ints(int(batch, "traffic.packets")?, 1));
    push("bytes", ints(int(batch, "traffic.bytes")?, 1));
    let start = match int(batch, "start_time")? {
        Some(a) => Some(a),
        None => int(batch, "time")?,
    };
    push("start", ints(start, 1000));
    push("end", ints(int(batch, "end_time")?, 1000));
    let action = text(batch, "action")?;
    push(
        "action",
        strings(&|i| match value(&action, i) {
            Some("Allowed") => Some("ACCEPT".to_string()),
            Some("Denied") => Some("REJECT".to_string()),
            Some(other) => Some(other.to_ascii_uppercase()),
            None => None,
        }),
    );
    let status = text(batch, "status_code")?;
    push(
        "log_status",
        strings(&|i| value(&status, i).map(str::to_string)),
    );
    let src_svc = text(batch, "src_endpoint.svc_name")?;
    push(
        "pkt_src_aws_service",
        strings(&|i| value(&src_svc, i).map(str::to_string)),
    );
    let dst_svc = text(batch, "dst_endpoint.svc_name")?;
    push(
        "pkt_dst_aws_service",
        strings(&|i| value(&dst_svc, i).map(str::to_string)),
    );
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

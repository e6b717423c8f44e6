//! The interface inventory as tables: written by `flowlens inventory` as one Parquet file per
//! table under a folder (local or S3), read back by `--inventory DIR` into the session as
//! `enis`, `security_groups`, `network_acls`, `subnets` and `vpcs`, and into the rows the
//! rule evaluation and the findings' context use.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::source::{
    InterfaceRow, InventorySnapshot, NetworkAclRow, S3Options, SecurityGroupRow, Store, SubnetRow,
    VpcRow,
};
use crate::table::{Table, from_parquet, to_parquet};

/// The tables, their files and the SQL names they are registered under.
pub(crate) const TABLES: [&str; 5] = ["enis", "security_groups", "network_acls", "subnets", "vpcs"];

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn int(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}
fn flag(name: &str) -> Field {
    Field::new(name, DataType::Boolean, true)
}
fn texts(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        true,
    )
}
fn taken_at() -> Field {
    Field::new(
        "taken_at",
        DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
        false,
    )
}

fn schema(table: &str) -> SchemaRef {
    let head = [
        text("account_id"),
        Field::new("region", DataType::Utf8, false),
    ];
    let fields: Vec<Field> = match table {
        "enis" => vec![
            Field::new("interface_id", DataType::Utf8, false),
            text("vpc_id"),
            text("subnet_id"),
            text("availability_zone"),
            text("interface_type"),
            text("status"),
            text("description"),
            text("instance_id"),
            text("name"),
            texts("private_ips"),
            texts("ipv6_ips"),
            text("public_ip"),
            texts("security_groups"),
            text("tags"),
            flag("requester_managed"),
        ],
        "security_groups" => vec![
            Field::new("group_id", DataType::Utf8, false),
            text("group_name"),
            text("vpc_id"),
            text("direction"),
            text("protocol"),
            int("from_port"),
            int("to_port"),
            text("cidr"),
            text("ref_group_id"),
            text("prefix_list_id"),
            text("description"),
        ],
        "network_acls" => vec![
            Field::new("acl_id", DataType::Utf8, false),
            text("vpc_id"),
            flag("is_default"),
            texts("subnet_ids"),
            Field::new("rule_number", DataType::Int32, false),
            Field::new("direction", DataType::Utf8, false),
            Field::new("protocol", DataType::Utf8, false),
            Field::new("rule_action", DataType::Utf8, false),
            text("cidr"),
            int("from_port"),
            int("to_port"),
            int("icmp_type"),
            int("icmp_code"),
        ],
        "subnets" => vec![
            Field::new("subnet_id", DataType::Utf8, false),
            text("vpc_id"),
            text("cidr"),
            texts("ipv6_cidrs"),
            text("availability_zone"),
            text("name"),
        ],
        _ => vec![
            Field::new("vpc_id", DataType::Utf8, false),
            text("cidr"),
            flag("is_default"),
            text("name"),
        ],
    };
    Arc::new(Schema::new(
        head.into_iter()
            .chain(fields)
            .chain([taken_at()])
            .collect::<Vec<_>>(),
    ))
}

/// Rows as an Arrow table of `table`'s schema (through serde: the rows' fields are named
/// as the columns).
fn to_table<T: Serialize>(table: &str, rows: &[T]) -> Result<Table> {
    let schema = schema(table);
    let error = |source| Error::Arrow {
        location: format!("inventory table {table}"),
        source,
    };
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .build_decoder()
        .map_err(error)?;
    decoder.serialize(rows).map_err(error)?;
    let batches: Vec<RecordBatch> = decoder.flush().map_err(error)?.into_iter().collect();
    Ok(Table { schema, batches })
}

/// A table's rows back as structs.
fn from_table<T: DeserializeOwned>(location: &str, table: &Table) -> Result<Vec<T>> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in &table.batches {
        writer.write(batch).map_err(|source| Error::Arrow {
            location: location.to_string(),
            source,
        })?;
    }
    writer.finish().map_err(|source| Error::Arrow {
        location: location.to_string(),
        source,
    })?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::bad_file(
            location,
            format!("not an inventory table of this flowlens (its columns do not fit: {e})"),
        )
    })
}

/// The inventory, loaded.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pub interfaces: Vec<InterfaceRow>,
    pub security_groups: Vec<SecurityGroupRow>,
    pub network_acls: Vec<NetworkAclRow>,
    pub subnets: Vec<SubnetRow>,
    pub vpcs: Vec<VpcRow>,
    /// The tables as read, for registering in sessions.
    pub tables: Vec<(&'static str, Table)>,
}

/// Writes a snapshot under `location` (a folder or s3:// prefix), one Parquet file per
/// table and `inventory.json` (when, which tables, what could not be described).
pub async fn write_inventory(
    snapshot: &InventorySnapshot,
    location: &str,
    taken_at: &str,
    s3: &S3Options,
) -> Result<Vec<(String, usize)>> {
    let store = Store::open(location, "inventory", s3).await?;
    let tables = [
        ("enis", to_table("enis", &snapshot.interfaces)?),
        (
            "security_groups",
            to_table("security_groups", &snapshot.security_groups)?,
        ),
        (
            "network_acls",
            to_table("network_acls", &snapshot.network_acls)?,
        ),
        ("subnets", to_table("subnets", &snapshot.subnets)?),
        ("vpcs", to_table("vpcs", &snapshot.vpcs)?),
    ];
    let mut written = Vec::new();
    for (name, table) in &tables {
        let file = format!("{name}.parquet");
        store
            .put(&file, &to_parquet(table, &store.location(&file))?)
            .await?;
        written.push((name.to_string(), table.rows()));
    }
    let manifest = serde_json::json!({
        "taken_at": taken_at,
        "tables": written.iter().map(|(n, rows)| serde_json::json!({"name": n, "rows": rows})).collect::<Vec<_>>(),
        "problems": snapshot.problems,
    });
    store
        .put("inventory.json", format!("{manifest:#}\n").as_bytes())
        .await?;
    Ok(written)
}

/// Reads the inventory under `location`. A folder without `inventory.json` is not an
/// inventory (named); a table file that is not one of ours is named too.
pub async fn load_inventory(location: &str, s3: &S3Options) -> Result<Inventory> {
    let store = Store::open(location, "--inventory", s3).await?;
    if store.get("inventory.json").await?.is_none() {
        return Err(Error::bad_file(
            store.location("inventory.json"),
            "no inventory here (take one with `flowlens inventory --out DIR`)",
        ));
    }
    let mut inventory = Inventory::default();
    for name in TABLES {
        let file = format!("{name}.parquet");
        let at = store.location(&file);
        let bytes = store.get(&file).await?.ok_or_else(|| {
            Error::bad_file(
                &at,
                "missing (take the inventory again with `flowlens inventory`)",
            )
        })?;
        let table = from_parquet(bytes, &at)?;
        let expected = schema(name);
        for field in expected.fields() {
            if table.schema.field_with_name(field.name()).is_err() {
                return Err(Error::bad_file(
                    &at,
                    format!("no column `{}`: not an inventory table", field.name()),
                ));
            }
        }
        match name {
            "enis" => inventory.interfaces = from_table(&at, &table)?,
            "security_groups" => inventory.security_groups = from_table(&at, &table)?,
            "network_acls" => inventory.network_acls = from_table(&at, &table)?,
            "subnets" => inventory.subnets = from_table(&at, &table)?,
            _ => inventory.vpcs = from_table(&at, &table)?,
        }
        inventory.tables.push((name, table));
    }
    Ok(inventory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_a_trip_through_their_table() {
        let eni = InterfaceRow {
            account_id: Some("111122223333".into()),
            region: "eu-west-1".into(),
            interface_id: "eni-1".into(),
            private_ips: vec!["10.0.0.5".into(), "10.0.0.6".into()],
            security_groups: vec!["sg-1".into()],
            tags: Some("{\"Name\":\"web\"}".into()),
            name: Some("web".into()),
            taken_at: "2026-12-05T20:00:00Z".into(),
            ..InterfaceRow::default()
        };
        let table = to_table("enis", std::slice::from_ref(&eni)).unwrap();
        let back: Vec<InterfaceRow> = from_table("t", &table).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].private_ips, eni.private_ips);
        assert_eq!(back[0].security_groups, eni.security_groups);
        assert_eq!(back[0].name.as_deref(), Some("web"));
        assert!(back[0].taken_at.starts_with("2026-12-05T20:00:00"));
        let acl = NetworkAclRow {
            region: "eu-west-1".into(),
            acl_id: "acl-1".into(),
            rule_number: 100,
            direction: "ingress".into(),
            protocol: "6".into(),
            rule_action: "allow".into(),
            cidr: Some("0.0.0.0/0".into()),
            from_port: Some(22),
            to_port: Some(22),
            taken_at: "2026-12-05T20:00:00Z".into(),
            ..NetworkAclRow::default()
        };
        let table = to_table("network_acls", std::slice::from_ref(&acl)).unwrap();
        let back: Vec<NetworkAclRow> = from_table("t", &table).unwrap();
        assert_eq!(back[0].from_port, Some(22));
        assert_eq!(back[0].rule_number, 100);
        assert!(to_table::<VpcRow>("vpcs", &[]).unwrap().rows() == 0);
    }
}

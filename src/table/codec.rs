//! How a cluster (Apache DataFusion Ballista) ships flowlens's plans between processes: the
//! `flows` table in logical plans (client to scheduler), its scan in physical plans
//! (scheduler to executors), and in-memory tables (detection's intermediate results, which
//! a step reading `flows` may join). Everything else goes to Ballista's own codecs, so its
//! shuffle and cache nodes still decode.
//!
//! Our nodes are JSON (object lists, options) or Arrow IPC (in-memory tables) after a tag
//! naming what follows; Ballista's protobuf never starts with the tag's bytes.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};

use super::flows_scan::{FlowsScanExec, Reporting};
use super::flows_table::FlowsTable;
use crate::decode::{DecoderOptions, FieldCondition};
use crate::format::{FlowFormat, flows_schema};
use crate::source::{ObjectLocation, ObjectRef, S3Options, TextPart};
use crate::time_range::TimeRange;

const FLOWS_TABLE: &[u8] = b"flowlens:flows-table:1\n";
const MEMORY_TABLE: &[u8] = b"flowlens:memory-table:1\n";
const FLOWS_SCAN: &[u8] = b"flowlens:flows-scan:1\n";

/// Logical plans: the `flows` table and in-memory tables; the rest to Ballista's codec.
#[derive(Debug, Default)]
pub struct FlowsLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

/// Physical plans: the `flows` scan; the rest (shuffles) to Ballista's codec.
#[derive(Debug, Default)]
pub struct FlowsPhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl LogicalExtensionCodec for FlowsLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> DfResult<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        if let Some(json) = buf.strip_prefix(FLOWS_TABLE) {
            let spec: TableSpec = from_json(json, "flows table")?;
            let s3 = spec.s3.clone();
            let (objects, options) = spec.into_parts()?;
            return Ok(Arc::new(FlowsTable::received(objects, options, s3)));
        }
        if let Some(ipc) = buf.strip_prefix(MEMORY_TABLE) {
            return Ok(Arc::new(memory_table_from_ipc(ipc, schema, table_ref)?));
        }
        self.inner
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        if let Some(table) = node.downcast_ref::<FlowsTable>() {
            let spec = TableSpec::of(
                &table.objects,
                &table.options,
                table.s3.as_ref().map(|s| &s.options),
            )?;
            buf.extend_from_slice(FLOWS_TABLE);
            return to_json(buf, &spec);
        }
        if let Some(table) = node.downcast_ref::<MemTable>() {
            buf.extend_from_slice(MEMORY_TABLE);
            return memory_table_to_ipc(table, table_ref, buf);
        }
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn datafusion::datasource::file_format::FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn datafusion::datasource::file_format::FileFormatFactory>,
    ) -> DfResult<()> {
        self.inner.try_encode_file_format(buf, node)
    }
}

impl PhysicalExtensionCodec for FlowsPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some(json) = buf.strip_prefix(FLOWS_SCAN) else {
            return self.inner.try_decode(buf, inputs, ctx, proto_converter);
        };
        let spec: ScanSpec = from_json(json, "flows scan")?;
        let s3 = spec.table.s3.clone();
        let (_, options) = spec.table.into_parts()?;
        let projection = options.projection.clone().unwrap_or_default();
        let schema = Arc::new(flows_schema().project(&projection)?);
        let groups = spec
            .groups
            .into_iter()
            .map(|group| {
                group
                    .into_iter()
                    .map(ObjectSpec::into_object)
                    .collect::<DfResult<Vec<_>>>()
                    .map(Arc::new)
            })
            .collect::<DfResult<Vec<_>>>()?;
        let [input] = inputs else {
            return Err(DataFusionError::Plan(format!(
                "flows scan sent with {} inputs, not 1",
                inputs.len()
            )));
        };
        Ok(Arc::new(FlowsScanExec::over(
            schema,
            groups,
            input.clone(),
            options,
            s3.map(|options| super::flows_scan::S3Link {
                options,
                access: None,
            }),
            spec.lookahead,
            Reporting::Metrics,
        )))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        let Some(scan) = node.downcast_ref::<FlowsScanExec>() else {
            return self.inner.try_encode(node, buf, proto_converter);
        };
        let spec = ScanSpec {
            table: TableSpec::of(&[], &scan.options, scan.s3.as_ref().map(|s| &s.options))?,
            groups: scan
                .groups
                .iter()
                .map(|group| group.iter().map(ObjectSpec::of).collect())
                .collect::<DfResult<_>>()?,
            lookahead: scan.lookahead,
        };
        buf.extend_from_slice(FLOWS_SCAN);
        to_json(buf, &spec)
    }
}

/// The `flows` table as data: what it reads and how.
#[derive(Serialize, Deserialize)]
struct TableSpec {
    objects: Vec<ObjectSpec>,
    /// The format of records before a header line, as a header.
    default_format: String,
    projection: Option<Vec<usize>>,
    batch_size: usize,
    strict: bool,
    max_line_len: usize,
    since: Option<i64>,
    until: Option<i64>,
    s3: Option<S3Options>,
    /// A scan's conditions on fields (a table's are empty).
    #[serde(default)]
    conditions: Vec<FieldCondition>,
}

/// A scan as data: the table's options and its partitions' objects.
#[derive(Serialize, Deserialize)]
struct ScanSpec {
    table: TableSpec,
    groups: Vec<Vec<ObjectSpec>>,
    lookahead: usize,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum ObjectSpec {
    Path {
        path: String,
        size: u64,
        /// A part of a large plain file (see text_parts.rs).
        #[serde(default)]
        part: Option<TextPart>,
    },
    S3 {
        bucket: String,
        key: String,
        size: u64,
    },
}

impl ObjectSpec {
    fn of(object: &ObjectRef) -> DfResult<Self> {
        match &object.location {
            ObjectLocation::S3(url) => Ok(ObjectSpec::S3 {
                bucket: url.bucket.clone(),
                key: url.key.clone(),
                size: object.size,
            }),
            ObjectLocation::Path(path) => match path.to_str() {
                Some(text) => Ok(ObjectSpec::Path {
                    path: text.to_string(),
                    size: object.size,
                    part: object.part.clone(),
                }),
                None => Err(DataFusionError::Plan(format!(
                    "{}: a path that is not UTF-8 cannot be sent to a cluster",
                    path.display()
                ))),
            },
            ObjectLocation::Stdin => Err(DataFusionError::Plan(
                "standard input (-) cannot be read on a cluster: its executors read \
                 objects from S3 or from paths every node sees"
                    .to_string(),
            )),
            ObjectLocation::Logs { .. } => Err(DataFusionError::Plan(format!(
                "{}: CloudWatch Logs sources are read here, not on a cluster",
                object.location
            ))),
        }
    }

    fn into_object(self) -> DfResult<ObjectRef> {
        Ok(match self {
            ObjectSpec::Path { path, size, part } => ObjectRef {
                part,
                ..ObjectRef::path(PathBuf::from(path), size)
            },
            ObjectSpec::S3 { bucket, key, size } => ObjectRef::s3(&bucket, &key, size),
        })
    }
}

impl TableSpec {
    fn of(
        objects: &[ObjectRef],
        options: &DecoderOptions,
        s3: Option<&S3Options>,
    ) -> DfResult<Self> {
        Ok(TableSpec {
            objects: objects
                .iter()
                .map(ObjectSpec::of)
                .collect::<DfResult<_>>()?,
            default_format: options.default_format.header(),
            projection: options.projection.clone(),
            batch_size: options.batch_size,
            strict: options.strict,
            max_line_len: options.max_line_len,
            since: options.time_range.since,
            until: options.time_range.until,
            s3: s3.cloned(),
            conditions: options.conditions.clone(),
        })
    }

    fn into_parts(self) -> DfResult<(Vec<ObjectRef>, DecoderOptions)> {
        let default_format = FlowFormat::parse(&self.default_format).map_err(|e| {
            DataFusionError::Plan(format!("flows table format {:?}: {e}", self.default_format))
        })?;
        let options = DecoderOptions {
            projection: self.projection,
            batch_size: self.batch_size,
            default_format,
            strict: self.strict,
            max_line_len: self.max_line_len,
            time_range: TimeRange {
                since: self.since,
                until: self.until,
            },
            conditions: self.conditions,
        };
        let objects = self
            .objects
            .into_iter()
            .map(ObjectSpec::into_object)
            .collect::<DfResult<_>>()?;
        Ok((objects, options))
    }
}

fn to_json<T: Serialize>(buf: &mut Vec<u8>, value: &T) -> DfResult<()> {
    serde_json::to_writer(buf, value).map_err(|e| DataFusionError::External(Box::new(e)))
}

fn from_json<'a, T: Deserialize<'a>>(json: &'a [u8], what: &str) -> DfResult<T> {
    serde_json::from_slice(json).map_err(|e| {
        DataFusionError::Plan(format!(
            "{what} sent by another flowlens could not be read ({e}): are the client, \
             scheduler and executors the same flowlens version?"
        ))
    })
}

/// An in-memory table as Arrow IPC: the number of partitions, then each partition's
/// stream (length-prefixed).
fn memory_table_to_ipc(
    table: &MemTable,
    table_ref: &TableReference,
    buf: &mut Vec<u8>,
) -> DfResult<()> {
    let schema = table.schema();
    buf.extend_from_slice(&(table.batches.len() as u64).to_le_bytes());
    for partition in &table.batches {
        let batches = partition.try_read().map_err(|_| {
            DataFusionError::Plan(format!(
                "table {table_ref} is being written to and cannot be sent to the cluster"
            ))
        })?;
        let mut writer = StreamWriter::try_new(Vec::new(), &schema)?;
        for batch in batches.iter() {
            writer.write(batch)?;
        }
        let bytes = writer.into_inner()?;
        buf.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        buf.extend_from_slice(&bytes);
    }
    Ok(())
}

fn memory_table_from_ipc(
    mut ipc: &[u8],
    schema: SchemaRef,
    table_ref: &TableReference,
) -> DfResult<MemTable> {
    let broken = || DataFusionError::Plan(format!("in-memory table {table_ref}: truncated"));
    let take_len = |ipc: &mut &[u8]| -> DfResult<usize> {
        let (head, rest) = ipc.split_at_checked(8).ok_or_else(broken)?;
        *ipc = rest;
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(head);
        usize::try_from(u64::from_le_bytes(bytes)).map_err(|_| broken())
    };
    let count = take_len(&mut ipc)?;
    let mut partitions = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        let len = take_len(&mut ipc)?;
        let (stream, rest) = ipc.split_at_checked(len).ok_or_else(broken)?;
        ipc = rest;
        let reader = StreamReader::try_new(Cursor::new(stream), None)?;
        partitions.push(reader.collect::<Result<Vec<_>, _>>()?);
    }
    if partitions.is_empty() {
        partitions.push(Vec::new());
    }
    MemTable::try_new(schema, partitions)
}

//! The context's SQL functions: `aws_service`, `geo_country`, `asn`, `as_org`, `ip_in_list`,
//! `explain_reject` and `reject_cause`. They are registered in every session; one whose data
//! was not given fails with the flag that gives it, rather than answering NULL for all.

use std::net::IpAddr;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Array, Int64Builder, StringArray, StringBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::context::{Context, FlowKey};

/// (signature, description) of each context function, for `--help` and the README.
pub const CONTEXT_FUNCTION_DOCS: &[(&str, &str)] = &[
    (
        "aws_service(addr)",
        "the AWS service whose published range holds the address (S3, EC2, CLOUDFRONT, …; \
         AMAZON when only the catch-all range does): needs --ip-ranges",
    ),
    (
        "geo_country(addr)",
        "ISO country code of the address: needs --geoip with a country or city database",
    ),
    (
        "asn(addr)",
        "autonomous system number of the address: needs --geoip with an ASN database",
    ),
    (
        "as_org(addr)",
        "the organisation owning that autonomous system: needs --geoip with an ASN database",
    ),
    (
        "ip_in_list(addr, 'name')",
        "true when a list named so (its file name without extension, or `allow` / `threat` \
         for every list of that kind) holds the address: needs --allow-list or --threat-list",
    ),
    (
        "explain_reject(interface_id, srcaddr, dstaddr, srcport, dstport, protocol)",
        "which rule rejected the flow, in words (network ACL or security group): needs --inventory",
    ),
    (
        "reject_cause(interface_id, srcaddr, dstaddr, srcport, dstport, protocol)",
        "network_acl, security_group or unknown: needs --inventory",
    ),
];

type Body = dyn Fn(&Context, &[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync;

/// One function over the context: its name, argument types and body.
struct ContextFunction {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    context: Arc<Context>,
    body: Box<Body>,
}

impl std::fmt::Debug for ContextFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for ContextFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.context, &other.context)
    }
}
impl Eq for ContextFunction {}
impl std::hash::Hash for ContextFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for ContextFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args
            .args
            .into_iter()
            .map(|a| a.into_array(rows))
            .collect::<Result<Vec<_>>>()?;
        Ok(ColumnarValue::Array((self.body)(
            &self.context,
            &arrays,
            rows,
        )?))
    }
}

fn needs(function: &str, flag: &str) -> DataFusionError {
    DataFusionError::Execution(format!("{function}(…) needs {flag}"))
}

fn strings(array: &ArrayRef) -> Result<StringArray> {
    Ok(cast(array, &DataType::Utf8)?.as_string::<i32>().clone())
}

fn ints(array: &ArrayRef) -> Result<Int32Array> {
    Ok(cast(array, &DataType::Int32)?
        .as_primitive::<arrow::datatypes::Int32Type>()
        .clone())
}

fn addr_at(addrs: &StringArray, i: usize) -> Option<IpAddr> {
    (!addrs.is_null(i))
        .then(|| addrs.value(i).parse().ok())
        .flatten()
}

fn int_at(values: &Int32Array, i: usize) -> Option<i32> {
    (!values.is_null(i)).then(|| values.value(i))
}

/// A function of one address returning text.
fn text_of_addr(
    name: &'static str,
    context: &Arc<Context>,
    has: fn(&Context) -> bool,
    flag: &'static str,
    answer: fn(&Context, IpAddr) -> Option<String>,
) -> ScalarUDF {
    ScalarUDF::from(ContextFunction {
        name,
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        returns: DataType::Utf8,
        context: context.clone(),
        body: Box::new(move |context, args, _| {
            if !has(context) {
                return Err(needs(name, flag));
            }
            let addrs = strings(&args[0])?;
            let mut out = StringBuilder::with_capacity(addrs.len(), addrs.len() * 8);
            for i in 0..addrs.len() {
                out.append_option(addr_at(&addrs, i).and_then(|a| answer(context, a)));
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        }),
    })
}

/// Every context function, bound to `context`.
pub fn context_functions(context: &Arc<Context>) -> Vec<ScalarUDF> {
    let mut functions = vec![
        text_of_addr(
            "aws_service",
            context,
            Context::has_ip_ranges,
            "--ip-ranges FILE|URL",
            |c, a| c.aws_range(a).map(|r| r.service.clone()),
        ),
        text_of_addr(
            "geo_country",
            context,
            Context::has_geoip,
            "--geoip FILE.mmdb",
            |c, a| c.geo(a).country,
        ),
        text_of_addr(
            "as_org",
            context,
            Context::has_geoip,
            "--geoip FILE.mmdb",
            |c, a| c.geo(a).as_org,
        ),
    ];
    functions.push(ScalarUDF::from(ContextFunction {
        name: "asn",
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        returns: DataType::Int64,
        context: context.clone(),
        body: Box::new(|context, args, _| {
            if !context.has_geoip() {
                return Err(needs("asn", "--geoip FILE.mmdb"));
            }
            let addrs = strings(&args[0])?;
            let mut out = Int64Builder::with_capacity(addrs.len());
            for i in 0..addrs.len() {
                out.append_option(
                    addr_at(&addrs, i)
                        .and_then(|a| context.geo(a).asn)
                        .map(i64::from),
                );
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        }),
    }));
    functions.push(ScalarUDF::from(ContextFunction {
        name: "ip_in_list",
        signature: Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable),
        returns: DataType::Boolean,
        context: context.clone(),
        body: Box::new(|context, args, _| {
            if !context.has_lists() {
                return Err(needs(
                    "ip_in_list",
                    "--allow-list FILE or --threat-list FILE",
                ));
            }
            let addrs = strings(&args[0])?;
            let names = strings(&args[1])?;
            let mut out = BooleanBuilder::with_capacity(addrs.len());
            for i in 0..addrs.len() {
                let name = (!names.is_null(i)).then(|| names.value(i));
                match (addr_at(&addrs, i), name) {
                    (Some(addr), Some(name)) => match context.in_list(addr, name) {
                        Some(found) => out.append_value(found),
                        None => {
                            return Err(DataFusionError::Execution(format!(
                                "ip_in_list: no list named `{name}` (the lists: allow, threat, {})",
                                context.list_names().join(", ")
                            )));
                        }
                    },
                    _ => out.append_null(),
                }
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        }),
    }));
    for (name, cause) in [("explain_reject", false), ("reject_cause", true)] {
        functions.push(ScalarUDF::from(ContextFunction {
            name,
            signature: Signature::exact(
                vec![
                    DataType::Utf8,
                    DataType::Utf8,
                    DataType::Utf8,
                    DataType::Int32,
                    DataType::Int32,
                    DataType::Int32,
                ],
                Volatility::Immutable,
            ),
            returns: DataType::Utf8,
            context: context.clone(),
            body: Box::new(move |context, args, _| {
                if !context.has_inventory() {
                    return Err(needs(name, "--inventory DIR (from `flowlens inventory`)"));
                }
                let (enis, srcs, dsts) =
                    (strings(&args[0])?, strings(&args[1])?, strings(&args[2])?);
                let (sports, dports, protocols) =
                    (ints(&args[3])?, ints(&args[4])?, ints(&args[5])?);
                let mut out = StringBuilder::with_capacity(enis.len(), enis.len() * 64);
                for i in 0..enis.len() {
                    let flow = match (
                        (!enis.is_null(i)).then(|| enis.value(i)),
                        addr_at(&srcs, i),
                        addr_at(&dsts, i),
                    ) {
                        (Some(interface_id), Some(src), Some(dst)) => FlowKey {
                            interface_id,
                            src,
                            dst,
                            srcport: int_at(&sports, i),
                            dstport: int_at(&dports, i),
                            protocol: int_at(&protocols, i),
                        },
                        _ => {
                            out.append_null();
                            continue;
                        }
                    };
                    match context.explain(flow) {
                        Some(e) if cause => out.append_value(e.cause),
                        Some(e) => out.append_value(e.text),
                        None => out.append_null(),
                    }
                }
                Ok(Arc::new(out.finish()) as ArrayRef)
            }),
        }));
    }
    functions
}

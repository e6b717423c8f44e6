//! SQL functions for flow log data: address classification and readable names for
//! protocol numbers and TCP flag bitmasks.

use std::net::IpAddr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Int32Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;
use ipnet::IpNet;

/// Every flowlens function, ready to register with a session.
pub fn flowlens_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(IpInCidr::new()),
        ScalarUDF::from(IsPrivateIp::new()),
        ScalarUDF::from(ProtocolName::new()),
        ScalarUDF::from(TcpFlagNames::new()),
        ScalarUDF::from(IpNetwork::new()),
    ]
}

/// (name, signature, description) of each function, for `--help` and the README.
pub const FUNCTION_DOCS: &[(&str, &str)] = &[
    (
        "ip_in_cidr(addr, cidr)",
        "true when the IPv4 or IPv6 address is inside the CIDR block",
    ),
    (
        "is_private_ip(addr)",
        "true for addresses not routed on the internet: RFC 1918, 100.64/10, loopback, \
         link-local, IPv6 ULA fc00::/7 and link-local fe80::/10",
    ),
    (
        "protocol_name(protocol)",
        "IANA protocol name for a protocol number: 6 -> TCP, 17 -> UDP, 1 -> ICMP, 58 -> ICMPv6",
    ),
    (
        "ip_network(addr, v4_bits, v6_bits)",
        "the network an address is in, as CIDR text: ip_network('52.216.8.9', 24, 48) -> '52.216.8.0/24'",
    ),
    (
        "tcp_flag_names(tcp_flags)",
        "flag names of a tcp-flags bitmask, comma-separated: 18 -> SYN,ACK; 0 -> ''",
    ),
];

fn parse_addr(text: &str) -> Option<IpAddr> {
    text.parse().ok()
}

/// Not routed on the public internet.
pub fn is_private(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

pub fn protocol_name(number: i32) -> String {
    let name = match number {
        0 => "HOPOPT",
        1 => "ICMP",
        2 => "IGMP",
        4 => "IPv4",
        6 => "TCP",
        17 => "UDP",
        41 => "IPv6",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        58 => "ICMPv6",
        89 => "OSPF",
        103 => "PIM",
        112 => "VRRP",
        132 => "SCTP",
        136 => "UDPLite",
        _ => return number.to_string(),
    };
    name.to_string()
}

pub fn tcp_flag_names(flags: i32) -> String {
    const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| flags & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(",")
}

fn arg_error(function: &str, message: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("{function}: {message}"))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IpInCidr {
    signature: Signature,
}

impl IpInCidr {
    fn new() -> Self {
        IpInCidr {
            signature: Signature::uniform(2, vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IpInCidr {
    fn name(&self) -> &str {
        "ip_in_cidr"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let parse_cidr = |text: &str| -> Result<IpNet> {
            text.trim()
                .parse::<IpNet>()
                .or_else(|_| parse_addr(text.trim()).map(IpNet::from).ok_or(()))
                .map_err(|_| arg_error("ip_in_cidr", format!("`{text}` is not a CIDR block")))
        };
        let rows = args.number_rows;
        // The block is nearly always a literal: parse it once.
        if let ColumnarValue::Scalar(ScalarValue::Utf8(cidr)) = &args.args[1] {
            let addrs = args.args[0].clone().into_array(rows)?;
            let addrs = addrs.as_string::<i32>();
            let Some(cidr) = cidr else {
                return Ok(ColumnarValue::Array(Arc::new(BooleanArray::new_null(rows))));
            };
            let net = parse_cidr(cidr)?;
            let out: BooleanArray = addrs
                .iter()
                .map(|a| a.and_then(parse_addr).map(|ip| net.contains(&ip)))
                .collect();
            return Ok(ColumnarValue::Array(Arc::new(out)));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (addrs, cidrs) = (arrays[0].as_string::<i32>(), arrays[1].as_string::<i32>());
        let mut out = Vec::with_capacity(rows);
        for (addr, cidr) in addrs.iter().zip(cidrs.iter()) {
            out.push(match (addr.and_then(parse_addr), cidr) {
                (Some(ip), Some(c)) => Some(parse_cidr(c)?.contains(&ip)),
                _ => None,
            });
        }
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(out))))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IsPrivateIp {
    signature: Signature,
}

impl IsPrivateIp {
    fn new() -> Self {
        IsPrivateIp {
            signature: Signature::uniform(1, vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IsPrivateIp {
    fn name(&self) -> &str {
        "is_private_ip"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let addrs = args.args[0].clone().into_array(args.number_rows)?;
        let out: BooleanArray = addrs
            .as_string::<i32>()
            .iter()
            .map(|a| a.and_then(parse_addr).map(is_private))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// An Int32 -> Utf8 function over a naming rule.
fn int_to_name(args: ScalarFunctionArgs, name: fn(i32) -> String) -> Result<ColumnarValue> {
    let values: ArrayRef = args.args[0].clone().into_array(args.number_rows)?;
    let out: StringArray = values
        .as_primitive::<Int32Type>()
        .iter()
        .map(|v| v.map(name))
        .collect();
    Ok(ColumnarValue::Array(Arc::new(out)))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ProtocolName {
    signature: Signature,
}

impl ProtocolName {
    fn new() -> Self {
        ProtocolName {
            signature: Signature::uniform(1, vec![DataType::Int32], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ProtocolName {
    fn name(&self) -> &str {
        "protocol_name"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        int_to_name(args, protocol_name)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TcpFlagNames {
    signature: Signature,
}

impl TcpFlagNames {
    fn new() -> Self {
        TcpFlagNames {
            signature: Signature::uniform(1, vec![DataType::Int32], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TcpFlagNames {
    fn name(&self) -> &str {
        "tcp_flag_names"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        int_to_name(args, tcp_flag_names)
    }
}

/// The network of `addr` with the prefix length for its family, as CIDR text.
#[cfg(test)]
fn ip_network(addr: IpAddr, v4_bits: u8, v6_bits: u8) -> Option<String> {
    let mut text = String::new();
    write_network(addr, v4_bits, v6_bits, &mut text).then_some(text)
}

/// Writes the network of `addr` as CIDR text into `out`; false for a prefix too long for
/// the family. IPv4 is written digit by digit: the formatting machinery cost more than
/// everything else in the detection steps that call this for every row.
fn write_network(addr: IpAddr, v4_bits: u8, v6_bits: u8, out: &mut String) -> bool {
    match addr {
        IpAddr::V4(v4) if v4_bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(v4_bits)).unwrap_or(0);
            let octets = (u32::from(v4) & mask).to_be_bytes();
            for (i, octet) in octets.iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(out, *octet);
            }
            out.push('/');
            push_decimal(out, v4_bits);
            true
        }
        IpAddr::V6(_) => match IpNet::new(addr, v6_bits) {
            Ok(net) => {
                use std::fmt::Write;
                write!(out, "{}", net.trunc()).is_ok()
            }
            Err(_) => false,
        },
        IpAddr::V4(_) => false,
    }
}

fn push_decimal(out: &mut String, value: u8) {
    if value >= 100 {
        out.push(char::from(b'0' + value / 100));
    }
    if value >= 10 {
        out.push(char::from(b'0' + (value / 10) % 10));
    }
    out.push(char::from(b'0' + value % 10));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IpNetwork {
    signature: Signature,
}

impl IpNetwork {
    fn new() -> Self {
        IpNetwork {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Int64, DataType::Int64],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for IpNetwork {
    fn name(&self) -> &str {
        "ip_network"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let addrs = args.args[0].clone().into_array(args.number_rows)?;
        let addrs = addrs.as_string::<i32>();
        // The prefix lengths are nearly always literals: read them once.
        let bits = |arg: &ColumnarValue| match arg {
            ColumnarValue::Scalar(_) => None,
            ColumnarValue::Array(a) => Some(a.clone()),
        };
        let scalar_bits = |arg: &ColumnarValue| match arg {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(b))) => u8::try_from(*b).ok(),
            _ => None,
        };
        let (v4_array, v6_array) = (bits(&args.args[1]), bits(&args.args[2]));
        let (v4_scalar, v6_scalar) = (scalar_bits(&args.args[1]), scalar_bits(&args.args[2]));
        let at = |array: &Option<ArrayRef>, scalar: Option<u8>, i: usize| match array {
            None => scalar,
            Some(a) => {
                let a = a.as_primitive::<arrow::datatypes::Int64Type>();
                (!a.is_null(i))
                    .then(|| a.value(i))
                    .and_then(|b| u8::try_from(b).ok())
            }
        };
        let mut out = StringBuilder::with_capacity(addrs.len(), addrs.len() * 16);
        let mut text = String::with_capacity(64);
        for i in 0..addrs.len() {
            let addr = (!addrs.is_null(i))
                .then(|| addrs.value(i))
                .and_then(parse_addr);
            text.clear();
            let written = match (
                addr,
                at(&v4_array, v4_scalar, i),
                at(&v6_array, v6_scalar, i),
            ) {
                (Some(ip), Some(b4), Some(b6)) => write_network(ip, b4, b6, &mut text),
                _ => false,
            };
            if written {
                out.append_value(&text);
            } else {
                out.append_null();
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses() {
        for private in [
            "10.1.2.3",
            "172.31.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "fd00::1",
            "fe80::1",
            "::1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2a02:cf40::",
            "2600:1f18::1",
        ] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(protocol_name(6), "TCP");
        assert_eq!(protocol_name(58), "ICMPv6");
        assert_eq!(protocol_name(253), "253");
        assert_eq!(tcp_flag_names(18), "SYN,ACK");
        assert_eq!(tcp_flag_names(19), "FIN,SYN,ACK");
        assert_eq!(tcp_flag_names(3), "FIN,SYN");
        assert_eq!(tcp_flag_names(0), "");
        let net = |a: &str| ip_network(a.parse().unwrap(), 24, 48).unwrap();
        assert_eq!(net("52.216.8.9"), "52.216.8.0/24");
        assert_eq!(net("2a02:cf40:12::1"), "2a02:cf40:12::/48");
        // The digit-by-digit IPv4 text agrees with ipnet's for every prefix length.
        for addr in ["255.201.100.7", "10.0.0.1", "0.0.0.0", "192.168.99.250"] {
            let ip: IpAddr = addr.parse().unwrap();
            for bits in 0..=32 {
                let expected = IpNet::new(ip, bits).unwrap().trunc().to_string();
                assert_eq!(ip_network(ip, bits, 48).as_deref(), Some(expected.as_str()));
            }
            assert_eq!(ip_network(ip, 33, 48), None);
        }
    }
}

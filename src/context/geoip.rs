//! GeoIP and network owner lookups in MaxMind DB files (MaxMind's GeoLite2/GeoIP2 Country,
//! City and ASN, DB-IP's lite databases: the same format). Several files can be given (a
//! country database and an ASN database); each answer comes from the first file that has it.

use std::net::IpAddr;

use maxminddb::Reader;
use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Deserialize, Default)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<Country<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<Country<'a>>,
    #[serde(default)]
    autonomous_system_number: Option<AnyUint>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Country<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

/// An unsigned number of whatever width the database's writer chose (MaxMind writes ASNs
/// as uint32; other writers pick the smallest type that fits).
struct AnyUint(u64);

impl<'de> Deserialize<'de> for AnyUint {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = AnyUint;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an unsigned integer")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<AnyUint, E> {
                Ok(AnyUint(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<AnyUint, E> {
                u64::try_from(v)
                    .map(AnyUint)
                    .map_err(|_| E::custom("a negative number"))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> std::result::Result<AnyUint, E> {
                u64::try_from(v)
                    .map(AnyUint)
                    .map_err(|_| E::custom("a number too large"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// What the databases say of an address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeoAnswer {
    pub country: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
}

pub struct GeoIp {
    readers: Vec<(String, Reader<Vec<u8>>)>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.readers.iter().map(|(l, _)| l))
            .finish()
    }
}

impl GeoIp {
    pub fn new() -> Self {
        GeoIp {
            readers: Vec::new(),
        }
    }

    /// Adds a database from its bytes; `location` names it in errors.
    pub fn add(&mut self, bytes: Vec<u8>, location: &str) -> Result<()> {
        let reader = Reader::from_source(bytes).map_err(|e| {
            Error::bad_file(location, format!("not a MaxMind DB (.mmdb) file: {e}"))
        })?;
        // A file that opens can still have a broken tree or data section: look one address
        // up now, so a bad file is named here and not as a failed query later.
        for probe in ["1.1.1.1", "::1"] {
            if let Ok(addr) = probe.parse()
                && let Err(e) = lookup(&reader, addr)
            {
                return Err(Error::bad_file(
                    location,
                    format!("corrupt MaxMind DB: {e}"),
                ));
            }
        }
        self.readers.push((location.to_string(), reader));
        Ok(())
    }

    pub fn lookup(&self, addr: IpAddr) -> GeoAnswer {
        let mut answer = GeoAnswer::default();
        for (location, reader) in &self.readers {
            let found = match lookup(reader, addr) {
                Ok(Some(found)) => found,
                Ok(None) => continue,
                Err(e) => {
                    // A record this reader cannot decode: said once, not per address.
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| tracing::warn!("{location}: {addr}: {e}"));
                    continue;
                }
            };
            if answer.country.is_none() {
                answer.country = found.country;
            }
            if answer.asn.is_none() {
                answer.asn = found.asn;
            }
            if answer.as_org.is_none() {
                answer.as_org = found.as_org;
            }
        }
        answer
    }
}

fn lookup(
    reader: &Reader<Vec<u8>>,
    addr: IpAddr,
) -> std::result::Result<Option<GeoAnswer>, String> {
    // An IPv6 address in an IPv4-only database is simply not there.
    if addr.is_ipv6() && reader.metadata().ip_version == 4 {
        return Ok(None);
    }
    let result = reader.lookup(addr).map_err(|e| e.to_string())?;
    let Some(record) = result.decode::<Record<'_>>().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    Ok(Some(GeoAnswer {
        country: record
            .country
            .and_then(|c| c.iso_code)
            .or(record.registered_country.and_then(|c| c.iso_code))
            .map(str::to_string),
        asn: record
            .autonomous_system_number
            .and_then(|n| u32::try_from(n.0).ok()),
        as_org: record.autonomous_system_organization.map(str::to_string),
    }))
}

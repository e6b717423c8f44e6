//! A flow log format: which field stands at each position of a record.

use super::catalog::{DEFAULT_FIELD_COUNT, FIELDS, TRANSIT_GATEWAY_FIELDS, field_index};

/// Why a header or `--format` string does not describe VPC flow log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatProblem {
    Empty,
    TransitGateway(String),
    Duplicate(String),
}

impl std::fmt::Display for FormatProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatProblem::Empty => f.write_str("no field names"),
            FormatProblem::TransitGateway(name) => {
                write!(f, "`{name}` is a transit gateway field")
            }
            FormatProblem::Duplicate(name) => write!(f, "field `{name}` appears twice"),
        }
    }
}

/// The layout of one file's records: for each position, the catalog index of its field,
/// or `None` for a field name flowlens does not know (that column is skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFormat {
    positions: Vec<Option<usize>>,
    unknown: Vec<String>,
}

impl FlowFormat {
    /// The default version 2 format.
    pub fn default_v2() -> Self {
        FlowFormat {
            positions: (0..DEFAULT_FIELD_COUNT).map(Some).collect(),
            unknown: Vec::new(),
        }
    }

    /// Parses a header line or a `--format` value: field ids separated by spaces, either
    /// plain (`version account-id`) or as AWS's API writes them (`${version} ${account-id}`).
    pub fn parse(text: &str) -> Result<Self, FormatProblem> {
        let mut positions = Vec::new();
        let mut unknown = Vec::new();
        for token in text.split_ascii_whitespace() {
            let name = token
                .strip_prefix("${")
                .and_then(|t| t.strip_suffix('}'))
                .unwrap_or(token);
            if TRANSIT_GATEWAY_FIELDS.contains(&name) {
                return Err(FormatProblem::TransitGateway(name.to_string()));
            }
            match field_index(name) {
                Some(idx) if positions.contains(&Some(idx)) => {
                    return Err(FormatProblem::Duplicate(name.to_string()));
                }
                Some(idx) => positions.push(Some(idx)),
                None => {
                    positions.push(None);
                    unknown.push(name.to_string());
                }
            }
        }
        if positions.is_empty() {
            return Err(FormatProblem::Empty);
        }
        Ok(FlowFormat { positions, unknown })
    }

    /// Catalog index of the field at each position (`None`: unknown, skipped).
    pub fn positions(&self) -> &[Option<usize>] {
        &self.positions
    }

    /// Field names this format has that the catalog does not know.
    pub fn unknown_fields(&self) -> &[String] {
        &self.unknown
    }

    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The format written as a header line.
    pub fn header(&self) -> String {
        let mut out = String::new();
        let mut unknown = self.unknown.iter();
        for (i, pos) in self.positions.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            match pos {
                Some(idx) => out.push_str(FIELDS[*idx].name),
                None => out.push_str(unknown.next().map(String::as_str).unwrap_or("?")),
            }
        }
        out
    }
}

/// Whether a line's first token makes it a header rather than a record. Field names hold
/// no digits, and no record value equals a field name, so a first token that is a known
/// field id (or `${…}`) marks a header. A header whose first name is unknown to the
/// catalog (a field AWS added later) still counts when every token looks like a field id
/// and at least one is known.
pub fn is_header_line(line: &[u8]) -> bool {
    let first = match line.split(|&b| b == b' ').find(|t| !t.is_empty()) {
        Some(t) => t,
        None => return false,
    };
    if !looks_like_field_name(first) {
        return false;
    }
    if std::str::from_utf8(strip_braces(first))
        .ok()
        .and_then(field_index)
        .is_some()
    {
        return true;
    }
    let mut known = 0;
    for token in line.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
        if !looks_like_field_name(token) {
            return false;
        }
        // Transit gateway field names make it a header too, so that it is refused as one.
        if std::str::from_utf8(strip_braces(token))
            .ok()
            .is_some_and(|name| {
                field_index(name).is_some() || TRANSIT_GATEWAY_FIELDS.contains(&name)
            })
        {
            known += 1;
        }
    }
    known >= 1
}

fn strip_braces(token: &[u8]) -> &[u8] {
    token
        .strip_prefix(b"${")
        .and_then(|t| t.strip_suffix(b"}"))
        .unwrap_or(token)
}

fn looks_like_field_name(token: &[u8]) -> bool {
    let name = strip_braces(token);
    !name.is_empty()
        && name[0].is_ascii_lowercase()
        && name
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b == b'-' || b == b'_' || b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_braced_forms_agree() {
        let plain = FlowFormat::parse("version account-id interface-id").unwrap();
        let braced = FlowFormat::parse("${version} ${account-id} ${interface-id}").unwrap();
        assert_eq!(plain, braced);
        assert_eq!(plain.positions(), &[Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn unknown_fields_are_kept_as_skipped_positions() {
        let fmt = FlowFormat::parse("version instance-tag-Name srcaddr").unwrap();
        assert_eq!(fmt.positions(), &[Some(0), None, Some(3)]);
        assert_eq!(fmt.unknown_fields(), &["instance-tag-Name".to_string()]);
        assert_eq!(fmt.header(), "version instance-tag-Name srcaddr");
    }

    #[test]
    fn transit_gateway_and_nonsense_are_rejected() {
        assert_eq!(
            FlowFormat::parse("version resource-type account-id tgw-id"),
            Err(FormatProblem::TransitGateway("resource-type".into()))
        );
        assert_eq!(FlowFormat::parse("  "), Err(FormatProblem::Empty));
        assert!(matches!(
            FlowFormat::parse("srcaddr srcaddr"),
            Err(FormatProblem::Duplicate(_))
        ));
    }

    #[test]
    fn header_detection() {
        assert!(is_header_line(b"version account-id interface-id"));
        assert!(is_header_line(b"${interface-id} ${srcaddr}"));
        assert!(is_header_line(b"instance-tag-Name srcaddr dstaddr"));
        assert!(!is_header_line(b"2 123456789010 eni-1235b8ca123456789 - -"));
        assert!(!is_header_line(b"eni-0abc 10.0.0.1"));
        assert!(!is_header_line(b"ingress ACCEPT"));
        assert!(!is_header_line(b""));
    }
}

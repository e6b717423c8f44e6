//! Conditions on one field that a row must meet to be wanted, taken from a query's WHERE
//! clause: the decoder leaves out the rows that fail one instead of building them. They
//! only ever narrow what a query reads; the query still applies its own filter, so a
//! condition that cannot tell (a number that does not parse) lets the row through.
//!
//! Their meaning is SQL's: a NULL field (`-`) meets no condition, as `NULL = 'x'` and
//! `NULL <> 'x'` are both unknown, and WHERE keeps only rows where it is true.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::format::{FIELDS, FieldKind};

/// A test on the field at catalog index `field`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldCondition {
    pub field: usize,
    pub test: ValueTest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueTest {
    /// A text field is one of `values` (`=`, `IN`), or with `negated` none of them.
    Text { values: Vec<String>, negated: bool },
    /// A number field is one of `values`, or with `negated` none of them.
    Numbers { values: Vec<i64>, negated: bool },
    /// A number field lies within `low..=high` (`<`, `<=`, `>`, `>=`, `BETWEEN`).
    Range { low: i64, high: i64 },
}

impl FieldCondition {
    /// Whether this test can be asked of its field at all (a text test of a text field,
    /// a number test of a number field).
    pub fn fits_field(&self) -> bool {
        let Some(def) = FIELDS.get(self.field) else {
            return false;
        };
        match self.test {
            ValueTest::Text { .. } => def.kind == FieldKind::Utf8,
            ValueTest::Numbers { .. } | ValueTest::Range { .. } => def.kind != FieldKind::Utf8,
        }
    }

    /// Whether the field's text `raw` (a text field) meets the test.
    #[inline(always)]
    pub(crate) fn text_holds(&self, raw: &[u8]) -> bool {
        match &self.test {
            ValueTest::Text { values, negated } => {
                if raw == b"-" {
                    return false;
                }
                // A loop of byte compares rather than a call to memcmp per value: values
                // are a few bytes long, and this runs for every line read (a tenth of a
                // `WHERE action = 'REJECT'` scan's time went to those calls).
                let mut found = false;
                for value in values {
                    let value = value.as_bytes();
                    if value.len() == raw.len() && value.iter().zip(raw).all(|(a, b)| a == b) {
                        found = true;
                        break;
                    }
                }
                found != *negated
            }
            // Never asked (see fits_field); letting the row through is always safe.
            _ => true,
        }
    }

    /// Whether a number field whose value is `value` (None: NULL) meets the test.
    #[inline(always)]
    pub(crate) fn number_holds(&self, value: Option<i64>) -> bool {
        let Some(v) = value else {
            return false;
        };
        match &self.test {
            ValueTest::Numbers { values, negated } => values.contains(&v) != *negated,
            ValueTest::Range { low, high } => (*low..=*high).contains(&v),
            ValueTest::Text { .. } => true,
        }
    }
}

/// As SQL would write it, for EXPLAIN.
impl fmt::Display for FieldCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = FIELDS.get(self.field).map_or("?", |d| d.column);
        fn list<T>(
            f: &mut fmt::Formatter<'_>,
            name: &str,
            values: &[T],
            negated: bool,
            show: impl Fn(&T) -> String,
        ) -> fmt::Result {
            match (values, negated) {
                ([], true) => write!(f, "{name} IS NOT NULL"),
                ([one], false) => write!(f, "{name} = {}", show(one)),
                ([one], true) => write!(f, "{name} <> {}", show(one)),
                _ => {
                    let not = if negated { "NOT " } else { "" };
                    let shown: Vec<String> = values.iter().map(show).collect();
                    write!(f, "{name} {not}IN ({})", shown.join(", "))
                }
            }
        }
        match &self.test {
            ValueTest::Text { values, negated } => list(f, name, values, *negated, |v| {
                format!("'{}'", v.replace('\'', "''"))
            }),
            ValueTest::Numbers { values, negated } => {
                list(f, name, values, *negated, |v| v.to_string())
            }
            ValueTest::Range { low, high } => match (*low, *high) {
                (i64::MIN, high) => write!(f, "{name} <= {high}"),
                (low, i64::MAX) => write!(f, "{name} >= {low}"),
                (low, high) => write!(f, "{name} BETWEEN {low} AND {high}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::column_index;

    fn on(column: &str, test: ValueTest) -> FieldCondition {
        FieldCondition {
            field: column_index(column).unwrap(),
            test,
        }
    }

    #[test]
    fn null_meets_no_condition_and_negation_keeps_the_others() {
        let reject = on(
            "action",
            ValueTest::Text {
                values: vec!["REJECT".into()],
                negated: false,
            },
        );
        assert!(reject.text_holds(b"REJECT"));
        assert!(!reject.text_holds(b"ACCEPT"));
        assert!(!reject.text_holds(b"-"));
        let not_accept = on(
            "action",
            ValueTest::Text {
                values: vec!["ACCEPT".into()],
                negated: true,
            },
        );
        assert!(not_accept.text_holds(b"REJECT"));
        assert!(!not_accept.text_holds(b"ACCEPT"));
        assert!(!not_accept.text_holds(b"-"));
        let ports = on(
            "dstport",
            ValueTest::Numbers {
                values: vec![22, 3389],
                negated: true,
            },
        );
        assert!(ports.number_holds(Some(443)));
        assert!(!ports.number_holds(Some(22)));
        assert!(!ports.number_holds(None));
        let big = on(
            "bytes",
            ValueTest::Range {
                low: 1000,
                high: i64::MAX,
            },
        );
        assert!(big.number_holds(Some(1000)) && !big.number_holds(Some(999)));
        assert!(reject.fits_field() && ports.fits_field() && big.fits_field());
        assert!(
            !on(
                "bytes",
                ValueTest::Text {
                    values: vec![],
                    negated: false
                }
            )
            .fits_field()
        );
    }

    #[test]
    fn shown_as_sql() {
        let shown = |c: FieldCondition| c.to_string();
        assert_eq!(
            shown(on(
                "action",
                ValueTest::Text {
                    values: vec!["REJECT".into()],
                    negated: false
                }
            )),
            "action = 'REJECT'"
        );
        assert_eq!(
            shown(on(
                "dstport",
                ValueTest::Numbers {
                    values: vec![22, 3389],
                    negated: true
                }
            )),
            "dstport NOT IN (22, 3389)"
        );
        assert_eq!(
            shown(on("bytes", ValueTest::Range { low: 5, high: 9 })),
            "bytes BETWEEN 5 AND 9"
        );
        assert_eq!(
            shown(on(
                "bytes",
                ValueTest::Range {
                    low: i64::MIN,
                    high: 9
                }
            )),
            "bytes <= 9"
        );
    }
}

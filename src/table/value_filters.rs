//! The part of a query's WHERE clause that the decoder can test on a field's own text: a
//! column compared with literals (`=`, `<>`, `IN`, `<`, `>=`, `BETWEEN`, `IS NOT NULL`).
//! Rows that fail are never built (`WHERE action = 'REJECT'` builds only the rejected
//! ones); the query still applies its whole filter, so what is not understood here is
//! simply not pushed down.

use arrow::datatypes::DataType;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::scalar::ScalarValue;

use crate::decode::{FieldCondition, ValueTest};
use crate::format::{FIELDS, FieldKind, column_index};

/// The conditions that every row meeting all of `filters` meets (the parts of their ANDs
/// that can be tested on one field; nothing for any other expression). Ranges of one field
/// are one condition (`x >= a AND x <= b`, as DataFusion writes BETWEEN).
pub fn conditions_of<'a>(filters: impl IntoIterator<Item = &'a Expr>) -> Vec<FieldCondition> {
    let mut merged: Vec<FieldCondition> = Vec::new();
    for condition in filters.into_iter().flat_map(all_conditions_of) {
        let same = merged.iter_mut().find(|c| c.field == condition.field);
        match (same, condition.test) {
            (
                Some(FieldCondition {
                    test: ValueTest::Range { low, high },
                    ..
                }),
                ValueTest::Range { low: l, high: h },
            ) => {
                *low = (*low).max(l);
                *high = (*high).min(h);
            }
            (_, test) => merged.push(FieldCondition {
                field: condition.field,
                test,
            }),
        }
    }
    merged
}

fn all_conditions_of(expr: &Expr) -> Vec<FieldCondition> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut conditions = all_conditions_of(left);
            conditions.extend(all_conditions_of(right));
            conditions
        }
        _ => condition_of(expr).into_iter().collect(),
    }
}

/// A literal of a comparison, as a field's text or number.
enum Value {
    Text(String),
    Number(i64),
}

impl Value {
    fn text(self) -> Option<String> {
        match self {
            Value::Text(t) => Some(t),
            Value::Number(_) => None,
        }
    }

    fn number(self) -> Option<i64> {
        match self {
            Value::Number(n) => Some(n),
            Value::Text(_) => None,
        }
    }
}

fn condition_of(expr: &Expr) -> Option<FieldCondition> {
    let (field, test) = match expr {
        // Either side, on one field (DataFusion writes a short IN list this way).
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (left, right) = (condition_of(left)?, condition_of(right)?);
            if left.field != right.field {
                return None;
            }
            (left.field, either(left.test, right.test)?)
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            match (field_of(left), field_of(right)) {
                (Some(field), None) => (field, compare(*op, literal(right)?)?),
                (None, Some(field)) => (field, compare(op.swap()?, literal(left)?)?),
                _ => return None,
            }
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let field = field_of(expr)?;
            let values = list.iter().map(literal);
            let negated = *negated;
            let test = match FIELDS[field].kind {
                FieldKind::Utf8 => ValueTest::Text {
                    values: values.map(|v| v?.text()).collect::<Option<_>>()?,
                    negated,
                },
                _ => ValueTest::Numbers {
                    values: values.map(|v| v?.number()).collect::<Option<_>>()?,
                    negated,
                },
            };
            (field, test)
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => match (field_of(expr)?, literal(low)?, literal(high)?) {
            (field, Value::Number(low), Value::Number(high)) => {
                (field, ValueTest::Range { low, high })
            }
            _ => return None,
        },
        // Not NULL: not one of no values.
        Expr::IsNotNull(inner) => {
            let field = field_of(inner)?;
            let test = match FIELDS[field].kind {
                FieldKind::Utf8 => ValueTest::Text {
                    values: Vec::new(),
                    negated: true,
                },
                _ => ValueTest::Numbers {
                    values: Vec::new(),
                    negated: true,
                },
            };
            (field, test)
        }
        _ => return None,
    };
    let condition = FieldCondition { field, test };
    condition.fits_field().then_some(condition)
}

/// A test that every value meeting `a` or `b` meets: the values of both, or for numbers
/// the range that spans both (a wider test only lets more rows through to the query's
/// own filter). None when neither fits (a negated list).
fn either(a: ValueTest, b: ValueTest) -> Option<ValueTest> {
    let span = |t: &ValueTest| match t {
        ValueTest::Numbers {
            values,
            negated: false,
        } => Some((*values.iter().min()?, *values.iter().max()?)),
        ValueTest::Range { low, high } => Some((*low, *high)),
        _ => None,
    };
    Some(match (a, b) {
        (
            ValueTest::Text {
                values: mut x,
                negated: false,
            },
            ValueTest::Text {
                values: y,
                negated: false,
            },
        ) => {
            x.extend(y);
            ValueTest::Text {
                values: x,
                negated: false,
            }
        }
        (
            ValueTest::Numbers {
                values: mut x,
                negated: false,
            },
            ValueTest::Numbers {
                values: y,
                negated: false,
            },
        ) => {
            x.extend(y);
            ValueTest::Numbers {
                values: x,
                negated: false,
            }
        }
        (a, b) => {
            let ((l1, h1), (l2, h2)) = (span(&a)?, span(&b)?);
            ValueTest::Range {
                low: l1.min(l2),
                high: h1.max(h2),
            }
        }
    })
}

/// `field op value` as a test, for the operators a field's text can answer.
fn compare(op: Operator, value: Value) -> Option<ValueTest> {
    let one = |negated| match &value {
        Value::Text(t) => ValueTest::Text {
            values: vec![t.clone()],
            negated,
        },
        Value::Number(n) => ValueTest::Numbers {
            values: vec![*n],
            negated,
        },
    };
    // No number meets `< i64::MIN` or `> i64::MAX`: one of no values.
    let none = ValueTest::Numbers {
        values: Vec::new(),
        negated: false,
    };
    let range = |low, high| ValueTest::Range { low, high };
    Some(match (op, &value) {
        (Operator::Eq, _) => one(false),
        (Operator::NotEq, _) => one(true),
        (Operator::Lt, Value::Number(n)) => n.checked_sub(1).map_or(none, |h| range(i64::MIN, h)),
        (Operator::LtEq, Value::Number(n)) => range(i64::MIN, *n),
        (Operator::Gt, Value::Number(n)) => n.checked_add(1).map_or(none, |l| range(l, i64::MAX)),
        (Operator::GtEq, Value::Number(n)) => range(*n, i64::MAX),
        _ => return None,
    })
}

/// The catalog field `expr` reads, as a column or through a cast that keeps its values
/// (a number to a wider number, text to text): comparing the cast is comparing the field.
fn field_of(expr: &Expr) -> Option<usize> {
    let (inner, to) = match expr {
        Expr::Column(c) => return column_index(&c.name),
        Expr::Cast(cast) => (&cast.expr, cast.field.data_type()),
        Expr::TryCast(cast) => (&cast.expr, cast.field.data_type()),
        _ => return None,
    };
    let field = field_of(inner)?;
    let keeps_values = match FIELDS[field].kind {
        FieldKind::Utf8 => matches!(
            to,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ),
        FieldKind::Int32 => matches!(to, DataType::Int32 | DataType::Int64),
        FieldKind::Int64 | FieldKind::UnixTime => matches!(to, DataType::Int64),
    };
    keeps_values.then_some(field)
}

fn literal(expr: &Expr) -> Option<Value> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    Some(match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => Value::Text(s.clone()),
        ScalarValue::Utf8View(Some(s)) => Value::Text(s.clone()),
        ScalarValue::Int8(Some(v)) => Value::Number(i64::from(*v)),
        ScalarValue::Int16(Some(v)) => Value::Number(i64::from(*v)),
        ScalarValue::Int32(Some(v)) => Value::Number(i64::from(*v)),
        ScalarValue::Int64(Some(v)) => Value::Number(*v),
        ScalarValue::UInt8(Some(v)) => Value::Number(i64::from(*v)),
        ScalarValue::UInt16(Some(v)) => Value::Number(i64::from(*v)),
        ScalarValue::UInt32(Some(v)) => Value::Number(i64::from(*v)),
        ScalarValue::UInt64(Some(v)) => Value::Number(i64::try_from(*v).ok()?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{Cast, col, lit};

    fn shown(expr: Expr) -> Vec<String> {
        conditions_of([&expr])
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    #[test]
    fn comparisons_with_literals_become_conditions() {
        assert_eq!(
            shown(col("action").eq(lit("REJECT"))),
            ["action = 'REJECT'"]
        );
        assert_eq!(
            shown(lit("ACCEPT").not_eq(col("action"))),
            ["action <> 'ACCEPT'"]
        );
        assert_eq!(shown(col("dstport").eq(lit(22i32))), ["dstport = 22"]);
        assert_eq!(shown(lit(100i64).lt(col("bytes"))), ["bytes >= 101"]);
        assert_eq!(shown(col("bytes").lt(lit(100i64))), ["bytes <= 99"]);
        assert_eq!(
            shown(col("bytes").between(lit(5i64), lit(9i64))),
            ["bytes BETWEEN 5 AND 9"]
        );
        assert_eq!(
            shown(col("dstport").in_list(vec![lit(22i64), lit(3389i64)], true)),
            ["dstport NOT IN (22, 3389)"]
        );
        assert_eq!(shown(col("vpc_id").is_not_null()), ["vpc_id IS NOT NULL"]);
        // OR on one field: the values of both sides, or a range spanning them.
        let either = col("dstport")
            .eq(lit(22i32))
            .or(col("dstport").eq(lit(3389i32)));
        assert_eq!(shown(either), ["dstport IN (22, 3389)"]);
        let either = col("action").eq(lit("A")).or(col("action").eq(lit("B")));
        assert_eq!(shown(either), ["action IN ('A', 'B')"]);
        let either = col("bytes").lt(lit(10i64)).or(col("bytes").eq(lit(500i64)));
        assert_eq!(shown(either), ["bytes <= 500"]);
        let both = col("bytes")
            .gt_eq(lit(5i64))
            .and(col("bytes").lt_eq(lit(9i64)));
        assert_eq!(shown(both), ["bytes BETWEEN 5 AND 9"]);
        // Filters handed over one by one are merged alike.
        let (low, high) = (col("bytes").gt_eq(lit(5i64)), col("bytes").lt_eq(lit(9i64)));
        let merged: Vec<String> = conditions_of([&low, &high])
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(merged, ["bytes BETWEEN 5 AND 9"]);
        // Both sides of an AND; a cast that keeps the values.
        let widened = Expr::Cast(Cast::new(Box::new(col("srcport")), DataType::Int64));
        assert_eq!(
            shown(
                col("action")
                    .eq(lit("REJECT"))
                    .and(widened.gt_eq(lit(1024i64)))
            ),
            ["action = 'REJECT'", "srcport >= 1024"]
        );
    }

    #[test]
    fn what_the_text_cannot_answer_is_left_to_the_query() {
        // OR across fields, a function, text ordering, a number against text, a cast that
        // changes values.
        assert!(
            shown(
                col("action")
                    .eq(lit("REJECT"))
                    .or(col("bytes").gt(lit(1i64)))
            )
            .is_empty()
        );
        assert!(
            shown(
                col("action")
                    .not_eq(lit("A"))
                    .or(col("action").eq(lit("B")))
            )
            .is_empty()
        );
        assert!(
            shown(datafusion::functions::expr_fn::upper(col("action")).eq(lit("A"))).is_empty()
        );
        assert!(shown(col("action").lt(lit("B"))).is_empty());
        assert!(shown(col("bytes").eq(lit("12"))).is_empty());
        assert!(shown(col("action").eq(lit(1i64))).is_empty());
        let narrowed = Expr::Cast(Cast::new(Box::new(col("bytes")), DataType::Int32));
        assert!(shown(narrowed.eq(lit(1i32))).is_empty());
        let as_text = Expr::Cast(Cast::new(Box::new(col("dstport")), DataType::Utf8));
        assert!(shown(as_text.eq(lit("22"))).is_empty());
        assert!(
            shown(col("action").in_list(vec![lit("A"), lit(ScalarValue::Utf8(None))], false))
                .is_empty()
        );
        assert!(shown(col("no_such_column").eq(lit("x"))).is_empty());
        assert!(shown(col("action").eq(col("log_status"))).is_empty());
    }
}

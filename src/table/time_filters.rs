//! The part of a query's WHERE clause that bounds record times, turned into a
//! [`TimeRange`] so whole objects can be skipped by their key layout.

use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::scalar::ScalarValue;

use crate::time_range::TimeRange;

/// The window implied by one filter on `start` or `end` against a literal, if any.
pub fn time_range_of(expr: &Expr) -> Option<TimeRange> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match (
            column_name(left),
            literal(right),
            column_name(right),
            literal(left),
        ) {
            (Some(col), Some(v), _, _) => bound(col, *op, v),
            (_, _, Some(col), Some(v)) => bound(col, op.swap()?, v),
            _ => None,
        }
        .or_else(|| match op {
            Operator::And => {
                let l = time_range_of(left).unwrap_or(TimeRange::ALL);
                let r = time_range_of(right).unwrap_or(TimeRange::ALL);
                let both = l.intersect(&r);
                (!both.is_all()).then_some(both)
            }
            // Either side: the span covering both, when each side bounds the time.
            Operator::Or => {
                let (l, r) = (time_range_of(left)?, time_range_of(right)?);
                let either = TimeRange {
                    since: l.since.zip(r.since).map(|(a, b)| a.min(b)),
                    until: l.until.zip(r.until).map(|(a, b)| a.max(b)),
                };
                (!either.is_all()).then_some(either)
            }
            _ => None,
        }),
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let col = column_name(expr)?;
            let lo = bound(col, Operator::GtEq, literal(low)?)?;
            let hi = bound(col, Operator::LtEq, literal(high)?)?;
            Some(lo.intersect(&hi))
        }
        _ => None,
    }
}

fn column_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(c) if c.name == "start" || c.name == "end" => Some(c.name.as_str()),
        Expr::Cast(cast) => column_name(&cast.expr),
        _ => None,
    }
}

fn literal(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(value, _) => match value {
            ScalarValue::Int64(Some(v)) => Some(*v),
            ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
            ScalarValue::UInt32(Some(v)) => Some(i64::from(*v)),
            ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok(),
            _ => None,
        },
        Expr::Cast(cast) => literal(&cast.expr),
        _ => None,
    }
}

/// Records satisfy `start <= end`, so a lower bound on either column bounds `end` from
/// below, and an upper bound on either bounds `start` from above.
fn bound(column: &str, op: Operator, value: i64) -> Option<TimeRange> {
    let since = |v| TimeRange {
        since: Some(v),
        until: None,
    };
    let until = |v| TimeRange {
        since: None,
        until: Some(v),
    };
    let _ = column;
    match op {
        Operator::Gt => Some(since(value.saturating_add(1))),
        Operator::GtEq => Some(since(value)),
        Operator::Lt => Some(until(value)),
        Operator::LtEq => Some(until(value.saturating_add(1))),
        Operator::Eq => Some(since(value).intersect(&until(value.saturating_add(1)))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    #[test]
    fn bounds_from_filters() {
        let r = time_range_of(&col("start").gt_eq(lit(100i64))).unwrap();
        assert_eq!(
            r,
            TimeRange {
                since: Some(100),
                until: None
            }
        );
        let r = time_range_of(&lit(200i64).gt(col("end"))).unwrap();
        assert_eq!(
            r,
            TimeRange {
                since: None,
                until: Some(200)
            }
        );
        let r = time_range_of(&col("end").between(lit(100i64), lit(199i64))).unwrap();
        assert_eq!(
            r,
            TimeRange {
                since: Some(100),
                until: Some(200)
            }
        );
        let both = col("start")
            .gt_eq(lit(100i64))
            .and(col("end").lt(lit(300i64)));
        assert_eq!(
            time_range_of(&both).unwrap(),
            TimeRange {
                since: Some(100),
                until: Some(300)
            }
        );
        assert!(time_range_of(&col("bytes").gt(lit(1i64))).is_none());
        assert!(time_range_of(&col("start").not_eq(lit(1i64))).is_none());
        let or = col("start")
            .gt_eq(lit(100i64))
            .or(col("end").lt(lit(50i64)));
        assert!(time_range_of(&or).is_none());
        // Both sides bounded above: the later bound; below too: the earlier.
        let or = col("end").lt(lit(300i64)).or(col("start").lt(lit(200i64)));
        assert_eq!(
            time_range_of(&col("end").gt_eq(lit(100i64)).and(or)).unwrap(),
            TimeRange {
                since: Some(100),
                until: Some(300)
            }
        );
        let or = col("end")
            .between(lit(100i64), lit(199i64))
            .or(col("end").between(lit(500i64), lit(599i64)));
        assert_eq!(
            time_range_of(&or).unwrap(),
            TimeRange {
                since: Some(100),
                until: Some(600)
            }
        );
        let or = col("end").lt(lit(300i64)).or(col("bytes").gt(lit(1i64)));
        assert!(time_range_of(&or).is_none());
    }
}

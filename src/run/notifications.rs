//! S3 event notifications as SQS delivers them: straight from S3, wrapped in an SNS
//! notification, or as EventBridge events. Each message names zero or more created objects,
//! is a message to drop (S3's test event, a deletion), or is not a notification at all.

use serde_json::Value;

/// An object a notification names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifiedObject {
    pub bucket: String,
    pub key: String,
    pub size: u64,
}

/// What a message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// Objects created (possibly none: a deletion, S3's test event).
    Objects(Vec<NotifiedObject>),
    /// Not an S3 event notification: why.
    Poison(String),
}

/// Keys in S3's own notifications are URL-encoded, with `+` for spaces.
fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

pub fn parse_notification(body: &str) -> Notification {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return Notification::Poison("the body is not JSON".to_string());
    };
    parse_value(&value, 0)
}

fn parse_value(value: &Value, depth: u8) -> Notification {
    // SNS: the S3 event is the Message, as a JSON string.
    if value.get("Type").and_then(Value::as_str) == Some("Notification")
        && let Some(message) = value.get("Message").and_then(Value::as_str)
        && depth == 0
    {
        return match serde_json::from_str::<Value>(message) {
            Ok(inner) => parse_value(&inner, depth + 1),
            Err(_) => Notification::Poison("an SNS notification whose Message is not JSON".into()),
        };
    }
    // S3's test event when a notification is configured.
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Notification::Objects(Vec::new());
    }
    // EventBridge.
    if value.get("source").and_then(Value::as_str) == Some("aws.s3") {
        let kind = value
            .get("detail-type")
            .and_then(Value::as_str)
            .unwrap_or("");
        if kind != "Object Created" {
            return Notification::Objects(Vec::new());
        }
        let detail = value.get("detail");
        let bucket = detail
            .and_then(|d| d.pointer("/bucket/name"))
            .and_then(Value::as_str);
        let key = detail
            .and_then(|d| d.pointer("/object/key"))
            .and_then(Value::as_str);
        return match (bucket, key) {
            (Some(bucket), Some(key)) => Notification::Objects(vec![NotifiedObject {
                bucket: bucket.to_string(),
                key: key.to_string(),
                size: detail
                    .and_then(|d| d.pointer("/object/size"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            }]),
            _ => Notification::Poison("an EventBridge S3 event without bucket and key".into()),
        };
    }
    // S3 directly.
    let Some(records) = value.get("Records").and_then(Value::as_array) else {
        return Notification::Poison("not an S3 event notification (no Records)".into());
    };
    let mut objects = Vec::new();
    for record in records {
        if record.get("eventSource").and_then(Value::as_str) != Some("aws:s3") {
            return Notification::Poison("a record that is not from aws:s3".into());
        }
        let name = record
            .get("eventName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !name.starts_with("ObjectCreated:") {
            continue;
        }
        let bucket = record.pointer("/s3/bucket/name").and_then(Value::as_str);
        let key = record.pointer("/s3/object/key").and_then(Value::as_str);
        let (Some(bucket), Some(key)) = (bucket, key) else {
            return Notification::Poison("an S3 record without bucket and key".into());
        };
        objects.push(NotifiedObject {
            bucket: bucket.to_string(),
            key: decode_key(key),
            size: record
                .pointer("/s3/object/size")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        });
    }
    Notification::Objects(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3_EVENT: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"eu-west-1",
      "eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"logs"},
      "object":{"key":"AWSLogs/1/vpcflowlogs/eu-west-1/2026/12/05/my+file%3D1.log.gz","size":1234}}}]}"#;

    fn one(bucket: &str, key: &str, size: u64) -> Notification {
        Notification::Objects(vec![NotifiedObject {
            bucket: bucket.into(),
            key: key.into(),
            size,
        }])
    }

    #[test]
    fn direct_sns_and_eventbridge_notifications() {
        let expected = one(
            "logs",
            "AWSLogs/1/vpcflowlogs/eu-west-1/2026/12/05/my file=1.log.gz",
            1234,
        );
        assert_eq!(parse_notification(S3_EVENT), expected);
        let sns =
            serde_json::json!({"Type": "Notification", "MessageId": "x", "Message": S3_EVENT})
                .to_string();
        assert_eq!(parse_notification(&sns), expected);
        let bridge = r#"{"version":"0","detail-type":"Object Created","source":"aws.s3",
          "detail":{"bucket":{"name":"logs"},"object":{"key":"a b.log","size":7}}}"#;
        assert_eq!(parse_notification(bridge), one("logs", "a b.log", 7));
    }

    #[test]
    fn test_events_and_deletions_name_nothing() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"logs"}"#;
        assert_eq!(parse_notification(test), Notification::Objects(vec![]));
        let removed = S3_EVENT.replace("ObjectCreated:Put", "ObjectRemoved:Delete");
        assert_eq!(parse_notification(&removed), Notification::Objects(vec![]));
    }

    #[test]
    fn anything_else_is_poison() {
        for body in [
            "hello",
            "{}",
            r#"{"Records":[{"eventSource":"aws:sqs"}]}"#,
            r#"{"Type":"Notification","Message":"nope"}"#,
        ] {
            assert!(
                matches!(parse_notification(body), Notification::Poison(_)),
                "{body}"
            );
        }
    }
}

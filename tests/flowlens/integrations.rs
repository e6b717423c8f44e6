//! Where flow logs arrive from and findings go to besides files: CloudWatch Logs as a
//! source, Security Hub, SNS and webhook alerts. AWS APIs are moto's on loopback; webhooks
//! are a small HTTP server of the test's own on loopback.

use std::io::BufRead;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::support::*;
use s3::Moto;

/// A loopback HTTP server that answers each POST with the next status of `statuses` (the
/// last one repeated) and keeps the bodies it was sent.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Hook {
    fn start(statuses: &[u16]) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        let statuses = statuses.to_vec();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                kept.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                let status = statuses[n.min(statuses.len() - 1)];
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Hook { url, bodies }
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

/// Incidents of the sample logs at high or above, as `detect -o incidents` gives them.
fn high_incidents() -> Vec<serde_json::Value> {
    let out = flowlens(&["detect", "--source", &sample_logs(), "-o", "incidents"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|i| matches!(i["severity"].as_str(), Some("high" | "critical")))
        .collect()
}

#[test]
fn webhooks_get_one_alert_per_incident_and_a_failing_one_is_retried_then_reported() {
    let expected = high_incidents();
    assert!(expected.len() >= 3, "{expected:?}");
    // Fails twice, then takes everything.
    let flaky = Hook::start(&[500, 503, 200]);
    let out = Command::new(env!("CARGO_BIN_EXE_flowlens"))
        .args(["detect", "--source", &sample_logs(), "-o", "jsonl"])
        .args(["--notify", &format!("webhook:{}", flaky.url)])
        .env("FLOWLENS_NOTIFY_BACKOFF_MS", "10")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let bodies = flaky.bodies();
    assert_eq!(
        bodies.len(),
        expected.len() + 2,
        "two refused attempts, then one per incident"
    );
    let sent: Vec<serde_json::Value> = bodies[2..]
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let mut ids: Vec<&str> = sent
        .iter()
        .map(|b| b["incident_id"].as_str().unwrap())
        .collect();
    let mut want: Vec<&str> = expected
        .iter()
        .map(|i| i["incident_id"].as_str().unwrap())
        .collect();
    ids.sort();
    want.sort();
    assert_eq!(ids, want);
    assert!(
        sent.iter()
            .all(|b| b["source"] == "flowlens" && b["summaries"].is_array())
    );
    assert!(stderr(&out).contains(&format!("{} alerts sent", expected.len())));

    // A server that never takes them: reported, and the findings are still written.
    let down = Hook::start(&[500]);
    let out = Command::new(env!("CARGO_BIN_EXE_flowlens"))
        .args(["detect", "--source", &sample_logs(), "-o", "jsonl"])
        .args(["--notify", &format!("webhook:{}", down.url)])
        .env("FLOWLENS_NOTIFY_BACKOFF_MS", "10")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).lines().count() > 10, "findings written");
    assert!(
        stderr(&out).contains("alert not delivered: webhook:")
            && stderr(&out).contains("(4 attempts)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(down.bodies().len(), 4 * expected.len());

    // A mistyped target is refused before anything is read.
    let out = flowlens(&["detect", "--source", &sample_logs(), "--notify", "email:me"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not sns:TOPIC-ARN or webhook:URL"));
}

#[test]
fn slack_webhooks_get_text() {
    // Slack's incoming webhooks are told by their address; this one is on loopback.
    let hook = Hook::start(&[200]);
    let slack = hook
        .url
        .replace("/hook", "/hooks.slack.com/services/T0/B0/x");
    let out = Command::new(env!("CARGO_BIN_EXE_flowlens"))
        .args(["detect", "--source", &sample_logs(), "-o", "jsonl"])
        .args([
            "--notify",
            &format!("webhook:{slack}"),
            "--notify-min-severity",
            "critical",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let bodies = hook.bodies();
    assert!(!bodies.is_empty());
    for body in bodies {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let text = v["text"].as_str().unwrap();
        assert!(text.starts_with("*flowlens CRITICAL: "), "{text}");
        assert!(text.contains("\n• "), "{text}");
    }
}

#[test]
fn sns_alerts_reach_the_topic_subscribers() {
    let moto = Moto::start(&[]);
    let arn = moto
        .python(
            r#"
import boto3
sns, sqs = boto3.client("sns"), boto3.client("sqs")
topic = sns.create_topic(Name="flowlens-alerts")["TopicArn"]
queue = sqs.create_queue(QueueName="pager")["QueueUrl"]
queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
print(topic)
"#,
        )
        .trim()
        .to_string();
    let expected = high_incidents();
    let out = moto
        .command(&["detect", "--source", &sample_logs(), "-o", "jsonl"])
        .args(["--notify", &format!("sns:{arn}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let received = moto.python(
        r#"
import boto3, json
sqs = boto3.client("sqs")
queue = sqs.get_queue_url(QueueName="pager")["QueueUrl"]
seen = []
while True:
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    if not got:
        break
    for m in got:
        envelope = json.loads(m["Body"])
        seen.append({"subject": envelope.get("Subject"), "incident": json.loads(envelope["Message"])["incident_id"]})
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
print(json.dumps(seen))
"#,
    );
    let seen: Vec<serde_json::Value> = serde_json::from_str(received.trim()).unwrap();
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
    assert!(
        seen.iter()
            .all(|m| m["subject"].as_str().unwrap().starts_with("flowlens "))
    );
}

#[test]
fn security_hub_imports_findings_once_whatever_the_reruns() {
    let moto = Moto::start(&[]);
    let count = || -> (usize, serde_json::Value) {
        let got = moto.python(
            r#"
import boto3, json
hub = boto3.client("securityhub")
found, token = [], None
while True:
    args = {"MaxResults": 100}
    if token: args["NextToken"] = token
    page = hub.get_findings(**args)
    found += page["Findings"]
    token = page.get("NextToken")
    if not token: break
print(json.dumps({"n": len(found), "first": found[0] if found else None}))
"#,
        );
        let v: serde_json::Value = serde_json::from_str(got.trim()).unwrap();
        (v["n"].as_u64().unwrap() as usize, v["first"].clone())
    };
    let run = || {
        let out = moto
            .command(&[
                "detect",
                "--source",
                &sample_logs(),
                "-o",
                "jsonl",
                "--export",
                "securityhub",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        out
    };
    let out = run();
    let findings = stdout(&out).lines().count();
    assert!(findings > 10);
    assert!(
        stderr(&out).contains(&format!(
            "{findings} findings imported into Security Hub, 0 refused"
        )),
        "{}",
        stderr(&out)
    );
    let (n, first) = count();
    assert_eq!(n, findings);
    assert_eq!(first["Resources"][0]["Type"], "AwsEc2NetworkInterface");
    assert!(first["Id"].as_str().unwrap().starts_with("flowlens/"));
    assert!(
        ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
            .contains(&first["Severity"]["Label"].as_str().unwrap())
    );
    // Again: the same ids update, nothing is added.
    run();
    assert_eq!(count().0, findings);
}

#[test]
fn cloudwatch_logs_groups_are_a_source_like_any_other() {
    let moto = Moto::start(&[]);
    // Two streams of the sample's records as CloudWatch Logs delivers them (no header; the
    // event time is the record's start), and one bad line.
    let sample: Vec<String> = csv_rows(
        &[&sample_logs()],
        &[],
        "SELECT concat_ws(' ', CAST(version AS VARCHAR), account_id, interface_id, srcaddr, dstaddr, \
                CAST(srcport AS VARCHAR), CAST(dstport AS VARCHAR), CAST(protocol AS VARCHAR), \
                CAST(packets AS VARCHAR), CAST(bytes AS VARCHAR), CAST(start AS VARCHAR), \
                CAST(\"end\" AS VARCHAR), action, log_status) \
         FROM flows WHERE log_status = 'OK' AND version IS NOT NULL AND account_id IS NOT NULL \
           AND srcport IS NOT NULL AND protocol IS NOT NULL AND packets IS NOT NULL \
         ORDER BY start, interface_id, srcaddr, dstaddr, srcport, dstport LIMIT 400",
    );
    assert_eq!(sample.len(), 400);
    // CloudWatch Logs takes no events older than 14 days: the records move to the last hours.
    let starts: Vec<i64> = sample
        .iter()
        .map(|l| l.split(' ').nth(10).unwrap().parse().unwrap())
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let shift = (now - 6 * 3600 - starts[0]).div_euclid(3600) * 3600;
    let sample: Vec<String> = sample
        .iter()
        .map(|l| {
            let mut fields: Vec<String> = l.split(' ').map(str::to_string).collect();
            for i in [10, 11] {
                fields[i] = (fields[i].parse::<i64>().unwrap() + shift).to_string();
            }
            fields.join(" ")
        })
        .collect();
    let events: Vec<serde_json::Value> = sample
        .iter()
        .map(|line| {
            let start: i64 = line.split(' ').nth(10).unwrap().parse().unwrap();
            serde_json::json!({"timestamp": start * 1000, "message": line})
        })
        .collect();
    let (a, b) = events.split_at(250);
    let mut b = b.to_vec();
    b.push(serde_json::json!({"timestamp": b.last().unwrap()["timestamp"], "message": "2 123 eni-x not enough fields"}));
    moto.python(&format!(
        r#"
import boto3, json
logs = boto3.client("logs")
logs.create_log_group(logGroupName="/aws/vpc/flows")
for stream, events in (("eni-a-all", {a}), ("eni-b-all", {b})):
    logs.create_log_stream(logGroupName="/aws/vpc/flows", logStreamName=stream)
    for i in range(0, len(events), 100):
        logs.put_log_events(logGroupName="/aws/vpc/flows", logStreamName=stream, logEvents=events[i:i + 100])
"#,
        a = serde_json::to_string(a).unwrap(),
        b = serde_json::to_string(&b).unwrap(),
    ));
    let count = |source: &str| -> String {
        let out = moto
            .command(&[
                "sql",
                "SELECT count(*), sum(bytes) FROM flows",
                "--source",
                source,
                "-o",
                "csv",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{source}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("logs:///aws/vpc/flows/eni-b-all:151: wrong field count"),
            "the bad line is named: {}",
            stderr(&out)
        );
        stdout(&out).lines().nth(1).unwrap().to_string()
    };
    let bytes: u64 = sample
        .iter()
        .map(|l| l.split(' ').nth(9).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(count("logs:///aws/vpc/flows"), format!("400,{bytes}"));
    // A stream prefix, after the group's name.
    let out = moto
        .command(&[
            "sql",
            "SELECT count(*) FROM flows",
            "--source",
            "logs:///aws/vpc/flows/eni-a",
            "-o",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().nth(1), Some("250"));
    // The time window is pushed down and still cuts exactly.
    let first: i64 = sample[0].split(' ').nth(10).unwrap().parse().unwrap();
    let out = moto
        .command(&[
            "sql",
            "SELECT count(*) FROM flows",
            "--source",
            "logs:///aws/vpc/flows",
            "--until",
            &(first + 1).to_string(),
            "-o",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let early = sample
        .iter()
        .filter(|l| l.split(' ').nth(10).unwrap().parse::<i64>().unwrap() <= first)
        .count();
    assert_eq!(
        stdout(&out).lines().nth(1),
        Some(early.to_string().as_str())
    );
    // No such group: named.
    let out = moto
        .command(&["sql", "SELECT 1", "--source", "logs://nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("logs://nope: no such log group"));
    // convert and detect take it too.
    let dir = tempfile::tempdir().unwrap();
    let out = moto
        .command(&[
            "convert",
            "--source",
            "logs:///aws/vpc/flows",
            "--out",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let parquet = walk(dir.path())
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert!(parquet > 0);
    let out = moto
        .command(&["detect", "--source", "logs:///aws/vpc/flows", "-o", "jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The scheduled task driven by a queue of S3 notifications: S3 is the loopback S3 server,
/// the queue is moto's.
#[test]
fn the_scheduled_task_takes_what_the_queue_names_and_deletes_messages_only_once_checkpointed() {
    let s3 = s3::Server::start();
    let moto = Moto::start(&[]);
    // Three of the sample's objects in the bucket.
    let day =
        Path::new(&sample_logs()).join("AWSLogs/123456789012/vpcflowlogs/us-east-1/2026/10/31");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let prefix = "AWSLogs/123456789012/vpcflowlogs/us-east-1/2026/10/31";
    let bucket = s3.bucket("logs").join(prefix);
    std::fs::create_dir_all(&bucket).unwrap();
    let keys: Vec<String> = names[..3]
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            std::fs::copy(p, bucket.join(&name)).unwrap();
            format!("{prefix}/{name}")
        })
        .collect();
    let queue = moto
        .python(
            r#"
import boto3
sqs = boto3.client("sqs")
print(sqs.create_queue(QueueName="flow-logs", Attributes={"VisibilityTimeout": "1"})["QueueUrl"])
"#,
        )
        .trim()
        .to_string();
    let send = |bodies: Vec<String>| {
        moto.python(&format!(
            r#"
import boto3, json
sqs = boto3.client("sqs")
for body in json.loads({bodies:?}):
    sqs.send_message(QueueUrl={queue:?}, MessageBody=body)
"#,
            bodies = serde_json::to_string(&bodies).unwrap()
        ));
    };
    let event = |key: &str| {
        serde_json::json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "logs"}, "object": {"key": key, "size": 1000}}}]})
        .to_string()
    };
    let left_on_queue = || -> Vec<String> {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let got = moto.python(&format!(
            r#"
import boto3, json
sqs = boto3.client("sqs")
got = sqs.receive_message(QueueUrl={queue:?}, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=0).get("Messages", [])
print(json.dumps([m["Body"] for m in got]))
"#
        ));
        serde_json::from_str(got.trim()).unwrap()
    };
    let state = tempfile::tempdir().unwrap();
    let run = |failpoint: Option<&str>| {
        let mut cmd = s3.command(&["run"]);
        cmd.env("AWS_ENDPOINT_URL_S3", &s3.endpoint)
            .env("AWS_ENDPOINT_URL_SQS", &moto.endpoint)
            // The queue's region (moto keeps queues per region).
            .env("AWS_REGION", "eu-west-1")
            .env("FLOWLENS_SQS", &queue)
            // A killed run's lock expires at once.
            .env("FLOWLENS_LOCK_TTL", "1s")
            .env("FLOWLENS_STATE", state.path().join("st"))
            .env("FLOWLENS_FINDINGS", state.path().join("findings"))
            .env_remove("FLOWLENS_SOURCE")
            .env_remove("FLOWLENS_CONVERT")
            .env_remove("FLOWLENS_FAILPOINT");
        if let Some(point) = failpoint {
            cmd.env("FLOWLENS_FAILPOINT", point);
        }
        cmd.output().unwrap()
    };

    // Direct, through SNS, the first again, S3's test event, and one that is no notification.
    let sns = serde_json::json!({"Type": "Notification", "Message": event(&keys[1])}).to_string();
    send(vec![
        event(&keys[0]),
        sns,
        event(&keys[0]),
        r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#.to_string(),
        "hello".to_string(),
    ]);
    let out = run(None);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = summary(&out);
    assert_eq!(first["status"], "ok", "{first}");
    assert_eq!(first["queue_messages"], 5);
    assert_eq!(first["queue_objects"], 2);
    assert_eq!(first["objects"], 2);
    assert_eq!(first["poison_messages"], 1);
    assert!(stderr(&out).contains("is not an S3 event notification (the body is not JSON)"));
    let records = first["records"].as_u64().unwrap();
    assert!(records > 0);
    // Only the poison message is left, for the dead-letter queue.
    assert_eq!(left_on_queue(), vec!["hello".to_string()]);

    // Killed after the checkpoint, before the message is deleted: it comes back, and its
    // object is not processed twice.
    send(vec![event(&keys[2])]);
    let out = run(Some("recorded"));
    assert!(!out.status.success(), "the failpoint kills the run");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let out = run(None);
    assert!(out.status.success(), "{}", stderr(&out));
    let again = summary(&out);
    assert_eq!(again["status"], "idle", "{again}");
    assert_eq!(again["duplicate_objects"], 1, "{again}");
    assert_eq!(again["records"], 0);
    assert_eq!(left_on_queue(), vec!["hello".to_string()]);
}

#[test]
fn the_scheduled_task_exports_and_alerts_once_per_cooldown_and_a_failing_target_never_blocks_it() {
    let moto = Moto::start(&[]);
    let hook = Hook::start(&[200]);
    let expected = high_incidents().len();
    let run = |state: &Path, hook_url: &str| {
        let out = moto
            .command(&["run"])
            .env("FLOWLENS_SOURCE", sample_logs())
            .env("FLOWLENS_STATE", state.join("st"))
            .env("FLOWLENS_FINDINGS", state.join("findings"))
            .env("FLOWLENS_NOTIFY", format!("webhook:{hook_url}"))
            .env("FLOWLENS_SECURITYHUB", "true")
            .env("FLOWLENS_NOTIFY_BACKOFF_MS", "10")
            .env_remove("FLOWLENS_CONVERT")
            .env_remove("FLOWLENS_FAILPOINT")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        summary(&out)
    };
    let a = tempfile::tempdir().unwrap();
    let first = run(a.path(), &hook.url);
    assert_eq!(first["alerts_sent"], expected, "{first}");
    assert_eq!(hook.bodies().len(), expected);
    let findings: usize = first["findings"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap() as usize)
        .sum();
    assert_eq!(first["exported"], findings);
    assert_eq!(first["export_refused"], 0);

    // The same incidents within the cooldown (its state copied to a new task) page nobody.
    let b = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(b.path().join("st")).unwrap();
    std::fs::copy(
        a.path().join("st/notified.json"),
        b.path().join("st/notified.json"),
    )
    .unwrap();
    let second = run(b.path(), &hook.url);
    assert_eq!(second["alerts_sent"], 0, "{second}");
    assert_eq!(second["alerts_suppressed"], expected);
    assert_eq!(hook.bodies().len(), expected);

    // A target that is down: counted, and the batch is checkpointed all the same.
    let down = Hook::start(&[503]);
    let c = tempfile::tempdir().unwrap();
    let third = run(c.path(), &down.url);
    assert_eq!(third["status"], "ok");
    assert_eq!(third["alert_failures"], expected, "{third}");
    assert!(c.path().join("st/checkpoint.json").exists());
}

/// Records of the sample as Security Lake stores them: OCSF Network Activity (4001) in
/// Parquet under `region=…/accountId=…/eventDay=…/`. The fixture follows the OCSF project's
/// VPC Flow Logs mapping (source version 2, OCSF 1.1).
#[test]
fn security_lake_flow_tables_read_as_flows_and_findings_write_as_a_custom_source() {
    let rows = csv_rows(
        &[&sample_logs()],
        &[],
        "SELECT account_id, interface_id, srcaddr, dstaddr, srcport, dstport, protocol, packets, \
                bytes, start, \"end\", action, log_status, \
                CASE WHEN interface_id IS NOT NULL AND (srcaddr LIKE '10.%') THEN 'egress' ELSE 'ingress' END \
         FROM flows WHERE log_status = 'OK' AND srcport IS NOT NULL AND packets IS NOT NULL \
           AND account_id IS NOT NULL \
         ORDER BY start, interface_id, srcaddr, dstaddr, srcport, dstport LIMIT 300",
    );
    assert_eq!(rows.len(), 300);
    let events: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let f: Vec<&str> = r.split(',').collect();
            let n = |i: usize| f[i].parse::<i64>().unwrap();
            let (inbound, eni) = (f[13] == "ingress", f[1]);
            let endpoint = |ip: &str, port: i64, here: bool| {
                let mut e = serde_json::json!({"ip": ip, "port": port});
                if here {
                    e["interface_uid"] = serde_json::json!(eni);
                    e["vpc_uid"] = serde_json::json!("vpc-0lake");
                }
                e
            };
            serde_json::json!({
                "class_uid": 4001, "category_uid": 4, "activity_id": 6, "severity_id": 1,
                "metadata": {"product": {"name": "Amazon VPC", "vendor_name": "AWS", "version": "5"}, "version": "1.1.0"},
                "cloud": {"provider": "AWS", "region": "us-east-1", "zone": "use1-az1", "account": {"uid": f[0]}},
                "src_endpoint": endpoint(f[2], n(4), !inbound),
                "dst_endpoint": endpoint(f[3], n(5), inbound),
                "connection_info": {"protocol_num": n(6), "direction": if inbound { "Inbound" } else { "Outbound" },
                                    "direction_id": if inbound { 1 } else { 2 }, "protocol_ver": "IPv4"},
                "traffic": {"packets": n(7), "bytes": n(8)},
                "time": n(9) * 1000, "start_time": n(9) * 1000, "end_time": n(10) * 1000,
                "action": if f[11] == "ACCEPT" { "Allowed" } else { "Denied" },
                "status_code": f[12],
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let day = dir
        .path()
        .join("aws/VPC_FLOW/2.0/region=us-east-1/accountId=123456789012/eventDay=20261017");
    std::fs::create_dir_all(&day).unwrap();
    {
        let schema = std::sync::Arc::new(
            arrow::json::reader::infer_json_schema_from_iterator(events.iter().map(Ok)).unwrap(),
        );
        let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
            .build_decoder()
            .unwrap();
        decoder.serialize(&events).unwrap();
        let batch = decoder.flush().unwrap().unwrap();
        let file = std::fs::File::create(day.join("part-0001.parquet")).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
    let lake = dir.path().to_str().unwrap();
    let got = csv_rows(
        &[lake],
        &[],
        "SELECT count(*), sum(bytes), sum(packets), count(DISTINCT interface_id), \
                count(*) FILTER (WHERE action = 'REJECT'), count(*) FILTER (WHERE flow_direction = 'ingress'), \
                min(start), max(\"end\"), min(vpc_id), min(az_id), min(version) FROM flows",
    );
    let sum = |i: usize| {
        rows.iter()
            .map(|r| r.split(',').nth(i).unwrap().parse::<i64>().unwrap())
            .sum::<i64>()
    };
    let count = |i: usize, v: &str| {
        rows.iter()
            .filter(|r| r.split(',').nth(i) == Some(v))
            .count()
    };
    let enis: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.split(',').nth(1).unwrap()).collect();
    let min_start = rows
        .iter()
        .map(|r| r.split(',').nth(9).unwrap().parse::<i64>().unwrap())
        .min()
        .unwrap();
    let max_end = rows
        .iter()
        .map(|r| r.split(',').nth(10).unwrap().parse::<i64>().unwrap())
        .max()
        .unwrap();
    assert_eq!(
        got,
        vec![format!(
            "300,{},{},{},{},{},{min_start},{max_end},vpc-0lake,use1-az1,5",
            sum(8),
            sum(7),
            enis.len(),
            count(11, "REJECT"),
            count(13, "ingress"),
        )]
    );
    // The partition's day prunes: a window a week later reads nothing.
    let out = flowlens(&[
        "sql",
        "SELECT count(*) FROM flows",
        "--source",
        lake,
        "--since",
        "2026-10-25",
        "-o",
        "csv",
        "-v",
    ]);
    assert!(
        stderr(&out).contains("0 objects selected"),
        "{}",
        stderr(&out)
    );

    // Findings out as a custom source.
    let out_dir = tempfile::tempdir().unwrap();
    let target = format!("{}/", out_dir.path().display());
    let out = flowlens(&[
        "detect",
        "--source",
        &sample_logs(),
        "-o",
        "ocsf",
        "--out",
        &target,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let jsonl = flowlens(&["detect", "--source", &sample_logs(), "-o", "jsonl"]);
    let findings = stdout(&jsonl).lines().count();
    let files: Vec<PathBuf> = walk(out_dir.path());
    assert!(!files.is_empty());
    let mut total = 0;
    for file in &files {
        let relative = file
            .strip_prefix(out_dir.path())
            .unwrap()
            .display()
            .to_string();
        assert!(
            relative.starts_with("region=us-east-1/accountId=123456789012/eventDay=2026"),
            "{relative}"
        );
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(file).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let class = arrow::compute::cast(
                batch.column_by_name("class_uid").unwrap(),
                &arrow::datatypes::DataType::Int64,
            )
            .unwrap();
            let class = class
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap();
            assert!(class.iter().all(|c| c == Some(2004)));
            total += batch.num_rows();
        }
    }
    assert_eq!(total, findings);
}

#[test]
fn listing_and_the_queue_together_take_each_object_once() {
    let s3 = s3::Server::start();
    let moto = Moto::start(&[]);
    let prefix = "AWSLogs/123456789012/vpcflowlogs/us-east-1/2026/10/31";
    let day = Path::new(&sample_logs()).join(prefix);
    let mut names: Vec<PathBuf> = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let bucket = s3.bucket("logs").join(prefix);
    std::fs::create_dir_all(&bucket).unwrap();
    let put = |p: &PathBuf| {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        std::fs::copy(p, bucket.join(&name)).unwrap();
        format!("{prefix}/{name}")
    };
    let (first, second) = (put(&names[0]), put(&names[1]));
    let queue = moto
        .python(
            r#"
import boto3
print(boto3.client("sqs").create_queue(QueueName="both", Attributes={"VisibilityTimeout": "1"})["QueueUrl"])
"#,
        )
        .trim()
        .to_string();
    let notify = |key: &str| {
        let body = serde_json::json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "logs"}, "object": {"key": key, "size": 1}}}]})
        .to_string();
        moto.python(&format!(
            "import boto3\nboto3.client('sqs').send_message(QueueUrl={queue:?}, MessageBody={body:?})"
        ));
    };
    let state = tempfile::tempdir().unwrap();
    let run = || {
        let out = s3
            .command(&["run"])
            .env("AWS_ENDPOINT_URL_S3", &s3.endpoint)
            .env("AWS_ENDPOINT_URL_SQS", &moto.endpoint)
            .env("AWS_REGION", "eu-west-1")
            .env("FLOWLENS_SOURCE", "s3://logs/")
            .env("FLOWLENS_SQS", &queue)
            .env("FLOWLENS_STATE", state.path().join("st"))
            .env("FLOWLENS_FINDINGS", state.path().join("findings"))
            .env_remove("FLOWLENS_CONVERT")
            .env_remove("FLOWLENS_FAILPOINT")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        summary(&out)
    };
    // The listing finds both; the queue names one of them: two objects.
    notify(&first);
    let one = run();
    assert_eq!(one["objects"], 2, "{one}");
    assert_eq!(one["queue_objects"], 1);
    // A third object, listed and named: once.
    let third = put(&names[2]);
    notify(&third);
    let two = run();
    assert_eq!(two["objects"], 1, "{two}");
    // Named again later (a redelivery): a duplicate, nothing read.
    notify(&second);
    let three = run();
    assert_eq!(three["status"], "idle", "{three}");
    assert_eq!(three["duplicate_objects"], 1);
}

//! Context: the EC2 inventory (`flowlens inventory`, against moto's EC2 emulator on
//! loopback), why flows were rejected (`explain-rejects`), and who remotes are
//! (`--ip-ranges`, `--geoip`, `--allow-list`, `--threat-list`) in SQL and in findings.

use crate::support::*;
use s3::Moto;

/// A VPC made in the emulator: a database interface whose subnet's ACL denies one network,
/// lets requests in on 5432 and 22 but no replies to ephemeral ports, and whose security
/// group allows 5432 from the application subnet only. Prints the ids as JSON.
const ESTATE: &str = r#"
import boto3, json
ec2 = boto3.client("ec2")
vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
db = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
app = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.2.0/24")["Subnet"]["SubnetId"]
sg = ec2.create_security_group(GroupName="database", Description="db", VpcId=vpc)["GroupId"]
ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
    {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "10.20.2.0/24"}]}])
acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
def entry(n, egress, action, cidr, ports=None, protocol="6"):
    args = dict(NetworkAclId=acl, RuleNumber=n, Egress=egress, RuleAction=action, CidrBlock=cidr, Protocol=protocol)
    if ports: args["PortRange"] = {"From": ports[0], "To": ports[1]}
    ec2.create_network_acl_entry(**args)
entry(90, False, "deny", "10.20.3.0/24", (5432, 5432))
entry(100, False, "allow", "10.20.0.0/16", (5432, 5432))
entry(110, False, "allow", "10.20.0.0/16", (22, 22))
entry(100, True, "allow", "0.0.0.0/0", protocol="-1")
assoc = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [db]}])
current = [a for n in assoc["NetworkAcls"] for a in n["Associations"] if a["SubnetId"] == db][0]
ec2.replace_network_acl_association(AssociationId=current["NetworkAclAssociationId"], NetworkAclId=acl)
eni = ec2.create_network_interface(SubnetId=db, Groups=[sg], PrivateIpAddress="10.20.1.10",
    Description="orders database",
    TagSpecifications=[{"ResourceType": "network-interface", "Tags": [{"Key": "Name", "Value": "orders-db"}]}])
print(json.dumps({"vpc": vpc, "db": db, "sg": sg, "acl": acl, "eni": eni["NetworkInterface"]["NetworkInterfaceId"]}))
"#;

struct Estate {
    /// The emulator, running while the estate is used.
    _moto: Moto,
    ids: serde_json::Value,
    inventory: tempfile::TempDir,
}

impl Estate {
    fn id(&self, name: &str) -> String {
        self.ids[name].as_str().unwrap().to_string()
    }
}

/// The estate in a fresh emulator and its inventory taken by flowlens.
fn estate() -> Estate {
    let moto = Moto::start(&[]);
    let ids: serde_json::Value = serde_json::from_str(moto.python(ESTATE).trim()).unwrap();
    let inventory = tempfile::tempdir().unwrap();
    let out = moto
        .command(&["inventory", "--out", inventory.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("inventory taken at"),
        "{}",
        stderr(&out)
    );
    Estate {
        _moto: moto,
        ids,
        inventory,
    }
}

/// Rejected flows of the database interface, each explained differently by the rules.
fn rejected_flows(eni: &str) -> String {
    let t = 1_764_900_000;
    let mut lines = vec![V2_HEADER.to_string()];
    let mut add = |src: &str, dst: &str, sport: u32, dport: u32, action: &str, n: u32| {
        for i in 0..n {
            let start = t + i64::from(i) * 60;
            lines.push(format!(
                "2 111122223333 {eni} {src} {dst} {sport} {dport} 6 3 180 {start} {} {action} OK",
                start + 30
            ));
        }
    };
    // From a network the ACL denies outright.
    add("10.20.3.5", "10.20.1.10", 40001, 5432, "REJECT", 4);
    // SSH from the application subnet: the ACL allows it, the group does not.
    add("10.20.2.7", "10.20.1.10", 40002, 22, "REJECT", 3);
    add("10.20.2.8", "10.20.1.10", 40003, 22, "REJECT", 3);
    // Requests out to S3 accepted; the replies to the ephemeral ports rejected.
    for port in 51000..51006 {
        add("10.20.1.10", "52.216.8.9", port, 443, "ACCEPT", 1);
        add("52.216.8.9", "10.20.1.10", 443, port, "REJECT", 1);
    }
    // Allowed by both, rejected anyway: the inventory cannot say why.
    add("10.20.2.9", "10.20.1.10", 40004, 5432, "REJECT", 1);
    lines.join("\n") + "\n"
}

#[test]
fn the_inventory_is_joinable_and_explains_each_rejected_flow() {
    let estate = estate();
    let inventory = estate.inventory.path().to_str().unwrap().to_string();
    let eni = estate.id("eni");
    // The tables, as SQL sees them.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("flows.log");
    std::fs::write(&log, rejected_flows(&eni)).unwrap();
    let src = log.to_str().unwrap();
    let rows = csv_rows(
        &[src],
        &["--inventory", &inventory],
        "SELECT e.interface_id, e.description, e.name, e.subnet_id, array_to_string(e.security_groups, ';'), \
                count(*) FROM flows f JOIN enis e ON e.interface_id = f.interface_id \
         GROUP BY 1, 2, 3, 4, 5",
    );
    assert_eq!(
        rows,
        vec![format!(
            "{eni},orders database,orders-db,{},{},{}",
            estate.id("db"),
            estate.id("sg"),
            4 + 6 + 12 + 1
        )]
    );
    let rules = csv_rows(
        &[src],
        &["--inventory", &inventory],
        &format!(
            "SELECT rule_number, direction, rule_action, cidr, from_port FROM network_acls \
             WHERE acl_id = '{}' AND rule_number < 32767 ORDER BY direction DESC, rule_number",
            estate.id("acl")
        ),
    );
    assert_eq!(
        rules,
        vec![
            "90,ingress,deny,10.20.3.0/24,5432",
            "100,ingress,allow,10.20.0.0/16,5432",
            "110,ingress,allow,10.20.0.0/16,22",
            "100,egress,allow,0.0.0.0/0,",
        ]
    );

    // Why each was rejected.
    let out = flowlens(&[
        "explain-rejects",
        "--source",
        src,
        "--inventory",
        &inventory,
        "--interface",
        &eni,
        "-o",
        "csv",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let acl = estate.id("acl");
    let sg = estate.id("sg");
    let expect = [
        format!(
            "{eni},network_acl,NACL {acl} has no inbound rule for the replies to ephemeral ports 1024-65535"
        ),
        format!(
            "{eni},security_group,no inbound rule of {sg} (database) allows tcp/22 from 10.20.2.0/24,6,"
        ),
        format!("{eni},network_acl,NACL {acl} rule 90 denies tcp/5432 from 10.20.3.0/24,4,"),
        format!("{eni},unknown,the inventory's rules allow tcp/5432 from 10.20.2.9"),
    ];
    for line in expect {
        assert!(text.contains(&line), "no `{line}` in:\n{text}");
    }
    // The replies: six flows, one per ephemeral port, one row.
    assert_eq!(
        text.matches("replies to ephemeral ports").count(),
        1,
        "{text}"
    );

    // Without an inventory the command says what it needs.
    let out = flowlens(&["explain-rejects", "--source", src]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("needs --inventory DIR"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn findings_name_the_interface_and_the_acl_rule_behind_rejected_replies() {
    let estate = estate();
    let inventory = estate.inventory.path().to_str().unwrap().to_string();
    let eni = estate.id("eni");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("flows.log");
    std::fs::write(&log, rejected_flows(&eni)).unwrap();
    let page = dir.path().join("report.html");
    let out = flowlens(&[
        "detect",
        "--source",
        log.to_str().unwrap(),
        "--inventory",
        &inventory,
        "-o",
        "jsonl",
        "--report",
        page.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The report names the interface too.
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("<small>orders-db · orders database</small>"),
        "finding row"
    );
    assert!(
        html.contains("<td>description</td><td>orders database</td>"),
        "interface section"
    );
    let findings: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let nacl = findings
        .iter()
        .find(|f| f["kind"] == "nacl_return_reject")
        .unwrap_or_else(|| panic!("no nacl_return_reject in {findings:#?}"));
    let evidence = &nacl["evidence"];
    assert_eq!(evidence["interface"]["description"], "orders database");
    assert_eq!(evidence["interface"]["name"], "orders-db");
    assert_eq!(evidence["interface"]["subnet_id"], estate.id("db").as_str());
    assert_eq!(evidence["interface"]["tags"]["Name"], "orders-db");
    assert_eq!(evidence["reject_cause"], "network_acl");
    assert!(
        evidence["explanation"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "NACL {} has no inbound rule for the replies to ephemeral ports 1024-65535",
                estate.id("acl")
            )),
        "{evidence}"
    );
}

/// moto checks IAM policies once INITIAL_NO_AUTH_ACTION_COUNT requests have been made: a
/// user allowed every Describe call but DescribeNetworkAcls.
#[test]
fn a_missing_permission_is_named_and_the_rest_of_the_inventory_is_taken() {
    let moto = Moto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "4")]);
    let keys = moto.python(
        r#"
import boto3, json
iam = boto3.client("iam")
iam.create_user(UserName="reader")
iam.put_user_policy(UserName="reader", PolicyName="describe", PolicyDocument=json.dumps({
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
    {"Effect": "Deny", "Action": "ec2:DescribeNetworkAcls", "Resource": "*"}]}))
key = iam.create_access_key(UserName="reader")["AccessKey"]
ec2 = boto3.client("ec2")
ec2.create_vpc(CidrBlock="10.9.0.0/16")
print(key["AccessKeyId"], key["SecretAccessKey"])
"#,
    );
    let (id, secret) = keys.trim().split_once(' ').unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = moto
        .command(&["inventory", "--out", dir.path().to_str().unwrap()])
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "partial: {}", stderr(&out));
    assert!(
        stderr(&out).contains("ec2:DescribeNetworkAcls was denied"),
        "{}",
        stderr(&out)
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("inventory.json")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["problems"].as_array().unwrap().len(),
        1,
        "{manifest}"
    );
    // The VPCs were still described, and detection runs with what there is.
    let rows = csv_rows(
        &[&sample_logs()],
        &["--inventory", dir.path().to_str().unwrap()],
        "SELECT count(*) FROM vpcs WHERE cidr = '10.9.0.0/16'",
    );
    assert_eq!(rows, vec!["1"]);
    let out = flowlens(&[
        "detect",
        "--source",
        &sample_logs(),
        "--inventory",
        dir.path().to_str().unwrap(),
        "-o",
        "jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_folder_that_is_not_an_inventory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = flowlens(&[
        "sql",
        "SELECT 1",
        "--source",
        &sample_logs(),
        "--inventory",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{}: no inventory here",
            dir.path().join("inventory.json").display()
        )),
        "{}",
        stderr(&out)
    );
}

/// AWS's format, a few prefixes.
const IP_RANGES: &str = r#"{
  "syncToken": "1764892800",
  "createDate": "2026-12-05-00-00-00",
  "prefixes": [
    {"ip_prefix": "52.216.0.0/15", "region": "us-east-1", "service": "AMAZON", "network_border_group": "us-east-1"},
    {"ip_prefix": "52.216.0.0/15", "region": "us-east-1", "service": "S3", "network_border_group": "us-east-1"}
  ],
  "ipv6_prefixes": []
}"#;

/// A GeoIP database (country and ASN in one) written with mmdb-writer.
fn geoip_fixture(path: &Path) {
    s3::python(
        &format!(
            r#"
from mmdb_writer import MMDBWriter
from netaddr import IPSet
w = MMDBWriter(ip_version=6, database_type="flowlens-test", ipv4_compatible=True)
w.insert_network(IPSet(["52.216.0.0/15"]), {{"country": {{"iso_code": "US"}}, "autonomous_system_number": 16509, "autonomous_system_organization": "AMAZON-02"}})
w.insert_network(IPSet(["185.220.101.0/24"]), {{"country": {{"iso_code": "DE"}}, "autonomous_system_number": 60729, "autonomous_system_organization": "Tor exit"}})
w.to_db_file({path:?})
"#,
            path = path.to_str().unwrap()
        ),
        &[],
    );
}

#[test]
fn remotes_are_named_by_aws_range_geoip_and_lists_in_sql() {
    let dir = tempfile::tempdir().unwrap();
    let ranges = dir.path().join("ip-ranges.json");
    std::fs::write(&ranges, IP_RANGES).unwrap();
    let mmdb = dir.path().join("geo.mmdb");
    geoip_fixture(&mmdb);
    let threats = dir.path().join("tor.txt");
    std::fs::write(&threats, "# exits\n185.220.101.0/24\n").unwrap();
    let rows = csv_rows(
        &[&sample_logs()],
        &[
            "--ip-ranges",
            ranges.to_str().unwrap(),
            "--geoip",
            mmdb.to_str().unwrap(),
            "--threat-list",
            threats.to_str().unwrap(),
        ],
        "SELECT aws_service('52.217.1.2'), aws_service('8.8.8.8'), geo_country('52.217.1.2'), \
                asn('185.220.101.4'), as_org('185.220.101.4'), ip_in_list('185.220.101.4', 'tor'), \
                ip_in_list('185.220.101.4', 'threat'), ip_in_list('8.8.8.8', 'threat')",
    );
    assert_eq!(rows, vec!["S3,,US,60729,Tor exit,true,true,false"]);
    // A function without its data says which flag gives it.
    let out = flowlens(&[
        "sql",
        "SELECT geo_country('1.1.1.1')",
        "--source",
        &sample_logs(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("geo_country(…) needs --geoip"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn allow_listed_remotes_raise_nothing_and_threats_raise_the_severity() {
    // The sample logs' findings, and the remotes of one of them.
    let plain = flowlens(&["detect", "--source", &sample_logs(), "-o", "jsonl"]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let findings: Vec<serde_json::Value> = stdout(&plain)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let brute: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f["kind"] == "brute_force")
        .collect();
    assert!(!brute.is_empty());
    let sources: Vec<String> = brute
        .iter()
        .flat_map(|f| f["evidence"]["remote_addrs"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let scan = findings
        .iter()
        .find(|f| f["kind"] == "port_scan")
        .expect("a port scan in the sample logs");
    let scanner = scan["evidence"]["remote_addrs"][0]
        .as_str()
        .unwrap()
        .to_string();

    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("pentest.txt");
    std::fs::write(
        &allow,
        format!("# our pentesters\n{}\n", sources.join("\n")),
    )
    .unwrap();
    let threats = dir.path().join("scanners.txt");
    std::fs::write(&threats, format!("{scanner}\n")).unwrap();
    let out = flowlens(&[
        "detect",
        "--source",
        &sample_logs(),
        "--allow-list",
        allow.to_str().unwrap(),
        "--threat-list",
        threats.to_str().unwrap(),
        "-o",
        "jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("left out: their remotes are all on an allow list"));
    let after: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        after.iter().all(|f| f["kind"] != "brute_force"),
        "allow-listed"
    );
    assert_eq!(after.len(), findings.len() - brute.len());
    let raised = after
        .iter()
        .find(|f| f["finding_id"] == scan["finding_id"])
        .unwrap();
    assert_eq!(raised["evidence"]["severity_raised_from"], scan["severity"]);
    assert_ne!(raised["severity"], scan["severity"]);
    assert!(
        raised["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("{scanner} is on threat list scanners")),
        "{raised}"
    );
    assert_eq!(
        raised["evidence"]["remote_context"][0]["threat_lists"][0],
        "scanners"
    );
}

#[test]
fn malformed_context_files_are_named_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, &str, &[u8], String)> = vec![
        (
            "--ip-ranges",
            "ranges.json",
            b"{\"prefixes\": [\n {\"ip_prefix\": \"1.2.3.0/33\"}]}",
            "ranges.json:2: `1.2.3.0/33` is not a CIDR prefix".to_string(),
        ),
        (
            "--threat-list",
            "bad.txt",
            b"10.0.0.1\n# fine\nnot-an-address\n",
            "bad.txt:3: `not-an-address` is not an IP address or CIDR block".to_string(),
        ),
        (
            "--geoip",
            "geo.mmdb",
            b"this is no database",
            "geo.mmdb: not a MaxMind DB (.mmdb) file".to_string(),
        ),
    ];
    for (flag, name, bytes, message) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = flowlens(&[
            "sql",
            "SELECT 1",
            "--source",
            &sample_logs(),
            flag,
            path.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{flag}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("{}", dir.path().join(&message).display())),
            "{flag}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn ip_ranges_by_url_are_downloaded_once_and_cached() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("www");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join("ip-ranges.json"), IP_RANGES).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(s3::tools_venv().join("bin/python"))
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&served)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed().as_secs() < 30,
            "http.server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("http://127.0.0.1:{port}/ip-ranges.json");
    let cache = dir.path().join("cache");
    let query = || {
        Command::new(env!("CARGO_BIN_EXE_flowlens"))
            .args(["sql", "SELECT aws_service('52.216.9.9')", "-o", "csv"])
            .args(["--source", &sample_logs(), "--ip-ranges", &url])
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .unwrap()
    };
    let first = query();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).ends_with("S3\n"), "{}", stdout(&first));
    assert_eq!(walk(&cache.join("flowlens")).len(), 1, "one cached copy");
    // The server gone, the cached copy answers.
    let _ = server.kill();
    let _ = server.wait();
    let second = query();
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(stdout(&second).ends_with("S3\n"));
}

#[test]
fn an_organisation_is_snapshot_through_a_role_per_account_and_region() {
    // moto keeps each account's resources apart: a role assumed in 111111111111 sees that
    // account's default VPCs, one per region.
    let moto = Moto::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = moto
        .command(&[
            "inventory",
            "--out",
            dir.path().to_str().unwrap(),
            "--regions",
            "eu-west-1,us-east-1",
            "--role-arn",
            "arn:aws:iam::111111111111:role/flowlens-audit",
            "--role-arn",
            "arn:aws:iam::222222222222:role/flowlens-audit",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = csv_rows(
        &[&sample_logs()],
        &["--inventory", dir.path().to_str().unwrap()],
        "SELECT account_id, region, count(*) FROM vpcs WHERE is_default GROUP BY 1, 2 ORDER BY 1, 2",
    );
    assert_eq!(
        rows,
        vec![
            "111111111111,eu-west-1,1",
            "111111111111,us-east-1,1",
            "222222222222,eu-west-1,1",
            "222222222222,us-east-1,1",
        ]
    );
}

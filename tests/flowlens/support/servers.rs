//! A real S3-compatible server (s3s-fs) on 127.0.0.1, spoken to through aws-sdk-s3 with
//! signed requests. Each test starts its own server on its own port and data folder; the
//! server is built once (cargo install into target/tools) and stopped when the test ends. It
//! never skips: a server that cannot be built or started fails the test.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const KEY: &str = "flowlens-test-key";
pub const SECRET: &str = "flowlens-test-secret-0123456789";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The s3s-fs binary, installed on first use. A failed install fails the tests.
fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let root = target_dir().join("tools");
        let bin = root.join("bin").join("s3s-fs");
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let out = Command::new(cargo)
                .args([
                    "install",
                    "s3s-fs@0.14.1",
                    "--features",
                    "binary",
                    "--locked",
                    "--root",
                ])
                .arg(&root)
                .arg("--target-dir")
                .arg(target_dir().join("tools-build"))
                .output()
                .expect("cargo runs");
            assert!(
                out.status.success() && bin.exists(),
                "installing s3s-fs failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        bin
    })
}

pub struct Server {
    child: Child,
    pub endpoint: String,
    pub root: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        let root = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", KEY, "--secret-key", SECRET])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        let server = Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            root,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "s3s-fs did not start listening on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// A bucket is a folder of the server's data directory; objects are files in it.
    pub fn bucket(&self, name: &str) -> PathBuf {
        let dir = self.root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowlens"));
        cmd.args(args)
            .env_remove("FLOWLENS_SOURCE")
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HOME", std::env::temp_dir());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("flowlens runs")
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The number before `words` in flowlens's `-v` report, e.g. `12 objects selected`.
pub fn number_before(text: &str, words: &str) -> u64 {
    text.split(words)
        .next()
        .filter(|head| head.len() < text.len())
        .and_then(|head| head.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{words}` in: {text}"))
}

/// The number after `word` in flowlens's `-v` report, e.g. `read 12 objects`.
pub fn number_after(text: &str, word: &str) -> u64 {
    text.split(word)
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{word}` in: {text}"))
}

/// Python tools the tests need, in a virtualenv under target/: moto's server (an AWS API
/// emulator: EC2, IAM, SQS, SNS, …) and mmdb-writer (GeoIP fixtures). Installed on first
/// use; a failed install fails the tests.
pub fn tools_venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = target_dir().join("tools-venv");
        let ready = venv.join("ready-moto-5.2.6");
        if !ready.exists() {
            let run = |cmd: &mut Command, what: &str| {
                let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(
                    out.status.success(),
                    "{what} failed:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            run(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                "python3 -m venv",
            );
            run(
                Command::new(venv.join("bin/pip")).args([
                    "install",
                    "--quiet",
                    "moto[server]==5.2.6",
                    "mmdb-writer==0.2.7",
                ]),
                "pip install moto[server] mmdb-writer",
            );
            std::fs::write(&ready, "").unwrap();
        }
        venv
    })
}

/// Runs a Python script with the tools' interpreter and returns its standard output.
pub fn python(script: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new(tools_venv().join("bin/python"))
        .arg("-c")
        .arg(script)
        .envs(env.iter().copied())
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// moto's server on 127.0.0.1, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts a server; `env` sets moto's own options (INITIAL_NO_AUTH_ACTION_COUNT turns on
    /// IAM checks after that many requests).
    pub fn start(env: &[(&str, &str)]) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(tools_venv().join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not start listening on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// The environment an AWS client (flowlens, boto3) needs to talk to this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", "eu-west-1".to_string()),
            ("AWS_DEFAULT_REGION", "eu-west-1".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
    }

    /// flowlens with this server's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowlens"));
        cmd.args(args)
            .env_remove("FLOWLENS_SOURCE")
            .env("HOME", std::env::temp_dir());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// A Python script with boto3 pointed at this server.
    pub fn python(&self, script: &str) -> String {
        let env = self.env();
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        python(script, &pairs)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

//! End-to-end tests of the `flowlens` binary, run as a user runs it. One test binary for the
//! whole crate (each binary is a large link), in modules by feature; each module's first
//! lines say what belongs in it.

mod support;

// Scale-out on a loopback Ballista cluster.
#[cfg(feature = "cluster")]
mod cluster;
// Context: the EC2 inventory (on moto), rejects explained, who remotes are.
mod context;
mod convert;
mod detect;
mod install;
// CloudWatch Logs as a source; Security Hub, SNS and webhook alerts (moto, loopback).
mod integrations;
mod named_queries;
// Bad input, faults and hostile values: each test names the defect it pins down.
mod reliability;
// The HTML report, opened in headless Chromium.
mod report;
mod s3;
mod scheduled;
mod sql;

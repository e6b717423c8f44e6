//! Findings into AWS Security Hub (BatchImportFindings, at most 100 per call) in the AWS
//! Security Finding Format. Ids are the findings' stable ids, so a rerun updates the
//! findings Security Hub holds instead of adding copies. Security Hub answers per finding:
//! the ones it refused are returned with their error, and the rest still go in.

use aws_sdk_securityhub::Client;
use aws_sdk_securityhub::types::{AwsSecurityFinding, Resource, Severity, SeverityLabel};

use super::aws_config::{aws_error, sdk_config};
use crate::error::Result;

/// BatchImportFindings takes at most this many findings per call.
pub const IMPORT_BATCH: usize = 100;

/// One finding in ASFF's terms (what flowlens fills in).
#[derive(Clone, Debug, PartialEq)]
pub struct AsffFinding {
    pub id: String,
    pub generator_id: String,
    pub account_id: String,
    pub region: String,
    pub types: Vec<String>,
    /// RFC 3339.
    pub first_observed_at: String,
    pub last_observed_at: String,
    pub created_at: String,
    pub updated_at: String,
    /// LOW, MEDIUM, HIGH or CRITICAL.
    pub severity: String,
    pub title: String,
    pub description: String,
    /// The network interface.
    pub resource_id: String,
    pub product_fields: Vec<(String, String)>,
}

/// What Security Hub made of an import.
#[derive(Clone, Debug, Default)]
pub struct ImportSummary {
    pub imported: usize,
    /// (finding id, error code, message) for each finding it refused.
    pub refused: Vec<(String, String, String)>,
}

fn severity(label: &str) -> Severity {
    let label = match label {
        "CRITICAL" => SeverityLabel::Critical,
        "HIGH" => SeverityLabel::High,
        "MEDIUM" => SeverityLabel::Medium,
        "LOW" => SeverityLabel::Low,
        _ => SeverityLabel::Informational,
    };
    Severity::builder().label(label).build()
}

/// Imports `findings` as the product `arn:aws:securityhub:REGION:ACCOUNT:product/ACCOUNT/default`
/// of the caller's account.
pub async fn import_findings(
    findings: &[AsffFinding],
    caller_account: &str,
) -> Result<ImportSummary> {
    let config = sdk_config().await;
    let client = Client::new(&config);
    let mut summary = ImportSummary::default();
    for chunk in findings.chunks(IMPORT_BATCH) {
        let mut batch = Vec::with_capacity(chunk.len());
        for f in chunk {
            let product_arn = format!(
                "arn:aws:securityhub:{}:{caller_account}:product/{caller_account}/default",
                f.region
            );
            let mut finding = AwsSecurityFinding::builder()
                .schema_version("2018-10-08")
                .id(&f.id)
                .product_arn(product_arn)
                .product_name("flowlens")
                .company_name("flowlens")
                .generator_id(&f.generator_id)
                .aws_account_id(&f.account_id)
                .region(&f.region)
                .first_observed_at(&f.first_observed_at)
                .last_observed_at(&f.last_observed_at)
                .created_at(&f.created_at)
                .updated_at(&f.updated_at)
                .severity(severity(&f.severity))
                .title(&f.title)
                .description(&f.description)
                .resources(
                    Resource::builder()
                        .r#type("AwsEc2NetworkInterface")
                        .id(&f.resource_id)
                        .region(&f.region)
                        .build(),
                );
            for t in &f.types {
                finding = finding.types(t);
            }
            for (k, v) in &f.product_fields {
                finding = finding.product_fields(k, v);
            }
            batch.push(finding.build());
        }
        let answer = client
            .batch_import_findings()
            .set_findings(Some(batch))
            .send()
            .await
            .map_err(|e| aws_error("securityhub:BatchImportFindings", &e))?;
        let failed = answer.failed_findings();
        summary.imported += answer.success_count().unwrap_or(0).max(0) as usize;
        for f in failed {
            summary.refused.push((
                f.id().unwrap_or("").to_string(),
                f.error_code().unwrap_or("").to_string(),
                f.error_message().unwrap_or("").to_string(),
            ));
        }
    }
    Ok(summary)
}

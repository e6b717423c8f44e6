//! An SQS queue of S3 event notifications (the scheduled task's event-driven mode): messages
//! are received in batches of ten and deleted by the caller once what they name is safely
//! recorded. A message not deleted comes back after the queue's visibility timeout, and
//! after its maxReceiveCount goes to the queue's dead-letter queue.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;

use super::aws_config::{aws_error, sdk_config};
use crate::error::{Error, Result};

/// One received message.
#[derive(Clone, Debug)]
pub struct QueueMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
}

/// Receives up to `max` messages: batches of ten until the queue has no more visible ones
/// (a short wait on the first call, so a message sent a moment ago is seen).
pub async fn receive_messages(queue_url: &str, max: usize) -> Result<Vec<QueueMessage>> {
    let client = Client::new(&sdk_config().await);
    let mut messages = Vec::new();
    while messages.len() < max {
        let wanted = (max - messages.len()).min(10) as i32;
        let answer = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(wanted)
            .wait_time_seconds(if messages.is_empty() { 1 } else { 0 })
            .send()
            .await
            .map_err(|e| aws_error(format!("{queue_url} sqs:ReceiveMessage"), &e))?;
        let got = answer.messages();
        if got.is_empty() {
            break;
        }
        for m in got {
            messages.push(QueueMessage {
                message_id: m.message_id().unwrap_or("").to_string(),
                receipt_handle: m.receipt_handle().unwrap_or("").to_string(),
                body: m.body().unwrap_or("").to_string(),
            });
        }
    }
    Ok(messages)
}

/// Deletes the messages of these receipt handles, ten per call. A message the queue will
/// not delete is named (it comes back; what it names is already recorded, so it is then
/// deleted without being processed again).
pub async fn delete_messages(queue_url: &str, receipts: &[String]) -> Result<()> {
    let client = Client::new(&sdk_config().await);
    for chunk in receipts.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .map_err(|e| Error::Service {
                        location: format!("{queue_url} sqs:DeleteMessageBatch"),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let answer = client
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_error(format!("{queue_url} sqs:DeleteMessageBatch"), &e))?;
        for failed in answer.failed() {
            tracing::warn!(
                "{queue_url}: a message was not deleted ({}: {}); it comes back and is then \
                 deleted without being processed again",
                failed.code(),
                failed.message().unwrap_or("")
            );
        }
    }
    Ok(())
}

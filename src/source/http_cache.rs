//! Files given by URL (AWS's ip-ranges.json): downloaded once a day into the user's cache
//! folder, so runs do not fetch them every time and a run without network still has the last
//! copy (named in a warning when it is stale).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::stable_hash::StableHash;

/// How long a downloaded copy is used before it is fetched again.
const FRESH_FOR: Duration = Duration::from_secs(24 * 3600);

fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("flowlens")
}

/// The body at `url`, from the cache when a copy is younger than a day.
pub async fn fetch_cached(url: &str) -> Result<Vec<u8>> {
    let hash = StableHash::default().update(url.as_bytes()).hex();
    let name = url
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("download");
    let path = cache_dir().join(format!("{hash}-{name}"));
    let age = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    if age.is_some_and(|a| a < FRESH_FOR)
        && let Ok(bytes) = std::fs::read(&path)
    {
        return Ok(bytes);
    }
    match download(url).await {
        Ok(bytes) => {
            // The cache is a convenience: failing to write it costs a download next time.
            if let Some(dir) = path.parent()
                && std::fs::create_dir_all(dir).is_ok()
                && let Ok(mut staged) = tempfile::NamedTempFile::new_in(dir)
                && std::io::Write::write_all(&mut staged, &bytes).is_ok()
            {
                let _ = staged.persist(&path);
            }
            Ok(bytes)
        }
        Err(e) => match std::fs::read(&path) {
            Ok(bytes) => {
                tracing::warn!("{e}; using the copy cached at {}", path.display());
                Ok(bytes)
            }
            Err(_) => Err(e),
        },
    }
}

async fn download(url: &str) -> Result<Vec<u8>> {
    let failed = |message: String| Error::Io {
        location: url.to_string(),
        source: std::io::Error::other(message),
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| failed(format!("cannot download: {e}")))?;
    if !response.status().is_success() {
        return Err(failed(format!("the server answered {}", response.status())));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| failed(format!("the download broke off: {e}")))?;
    Ok(body.to_vec())
}

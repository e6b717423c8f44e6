//! Turns the `--source` values people give (files, folders, globs, `-`) into objects.

use std::path::{Path, PathBuf};

use super::object::{ObjectRef, flow_log_name};
use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct LocalListing {
    pub objects: Vec<ObjectRef>,
    /// Files under folders that were passed over because their names are not flow logs.
    pub skipped: Vec<PathBuf>,
    /// Places under source folders that could not be walked (a symbolic link loop, a folder
    /// that cannot be read): each is warned about and passed over, the rest still listed.
    pub unreadable: Vec<String>,
}

/// Expands local sources. Objects come out sorted and without repeats.
pub fn list_local(sources: &[String]) -> Result<LocalListing> {
    let mut listing = LocalListing::default();
    for source in sources {
        if source == "-" {
            listing.objects.push(ObjectRef::stdin());
        } else if source.contains(['*', '?', '[']) {
            expand_glob(source, &mut listing)?;
        } else {
            add_path(source, Path::new(source), &mut listing)?;
        }
    }
    listing.objects.sort_by(|a, b| a.location.cmp(&b.location));
    listing.objects.dedup_by(|a, b| a.location == b.location);
    Ok(listing)
}

fn expand_glob(pattern: &str, listing: &mut LocalListing) -> Result<()> {
    // Like a shell, `*` does not match a leading dot.
    let options = glob::MatchOptions {
        require_literal_leading_dot: true,
        ..glob::MatchOptions::new()
    };
    let paths = glob::glob_with(pattern, options)
        .map_err(|e| Error::invalid(format!("--source {pattern}"), e.to_string()))?;
    let mut matched = false;
    for entry in paths {
        let path = entry.map_err(|e| {
            let location = e.path().display().to_string();
            Error::io(location, e.into())
        })?;
        matched = true;
        add_path(pattern, &path, listing)?;
    }
    if !matched {
        return Err(Error::invalid(
            format!("--source {pattern}"),
            "the pattern matches no files",
        ));
    }
    Ok(())
}

fn add_path(source: &str, path: &Path, listing: &mut LocalListing) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("--source {source}"), e))?;
    if meta.is_file() {
        listing
            .objects
            .push(ObjectRef::path(path.to_path_buf(), meta.len()));
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(path)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let location = e
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| path.display().to_string());
                let reason = match e.loop_ancestor() {
                    Some(ancestor) => {
                        format!("a symbolic link loop back to {}", ancestor.display())
                    }
                    None => e
                        .into_io_error()
                        .map(|io| io.to_string())
                        .unwrap_or_else(|| "cannot be read".to_string()),
                };
                tracing::warn!("{location}: skipped: {reason}");
                listing.unreadable.push(location);
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        if !flow_log_name(&entry.path().to_string_lossy()) {
            listing.skipped.push(entry.path().to_path_buf());
            continue;
        }
        let size = match entry.metadata() {
            Ok(meta) => meta.len(),
            Err(e) => {
                let location = entry.path().display().to_string();
                tracing::warn!("{location}: skipped: {e}");
                listing.unreadable.push(location);
                continue;
            }
        };
        listing
            .objects
            .push(ObjectRef::path(entry.into_path(), size));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_globs_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        for name in ["x.log.gz", "y.log", "README.md", ".hidden.log"] {
            std::fs::write(sub.join(name), b"").unwrap();
        }
        std::fs::write(dir.path().join("z.parquet"), b"").unwrap();

        let all = list_local(&[dir.path().display().to_string()]).unwrap();
        let names: Vec<String> = all
            .objects
            .iter()
            .map(|o| {
                o.location
                    .to_string()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["x.log.gz", "y.log", "z.parquet"]);
        assert_eq!(all.skipped.len(), 2);

        let pattern = format!("{}/a/**/*.log", dir.path().display());
        assert_eq!(list_local(&[pattern]).unwrap().objects.len(), 1);

        let explicit = sub.join("README.md").display().to_string();
        assert_eq!(
            list_local(&[explicit.clone(), explicit])
                .unwrap()
                .objects
                .len(),
            1
        );

        let missing = list_local(&["/no/such/place".into()])
            .unwrap_err()
            .to_string();
        assert!(missing.starts_with("--source /no/such/place:"), "{missing}");
        // A link back to an ancestor is a loop: named and passed over, the rest listed.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path(), sub.join("loop")).unwrap();
            let looped = list_local(&[dir.path().display().to_string()]).unwrap();
            assert_eq!(looped.objects.len(), 3);
            assert_eq!(looped.unreadable.len(), 1, "{:?}", looped.unreadable);
            std::fs::remove_file(sub.join("loop")).unwrap();
        }
        let nothing = format!("{}/*.nope", dir.path().display());
        assert!(
            list_local(&[nothing])
                .unwrap_err()
                .to_string()
                .contains("matches no files")
        );
    }
}

//! Where recordings live on disk: `DATA_DIR/recordings/TENANT/ID.dhwrec`,
//! one folder per tenant (a path every node can share). The call task
//! writes there; the CLI, export, erasure and the sweeper read it.

use std::path::{Path, PathBuf};

/// File name ending of recordings.
pub const EXTENSION: &str = "dhwrec";

/// Every stored recording file (optionally of one tenant), newest first.
pub fn stored(data_dir: &Path, tenant: Option<&str>) -> Vec<PathBuf> {
    let root = data_dir.join("recordings");
    let mut out = Vec::new();
    let Ok(tenants) = std::fs::read_dir(&root) else {
        return out;
    };
    for t in tenants.filter_map(Result::ok) {
        if tenant.is_some_and(|want| t.file_name().to_string_lossy() != want) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(t.path()) else {
            continue;
        };
        out.extend(
            files
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == EXTENSION)),
        );
    }
    out.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).and_then(|m| m.modified()).ok()));
    out
}

//! The version `ddbsnap --version` prints (`DDBSNAP_VERSION`): the package's, and the commit
//! it is built from when known: `DDBSNAP_COMMIT` when the build sets it (the release workflow
//! passes the tag's commit), else the checkout's `git rev-parse HEAD` when there is one (a
//! crate or an sdist built elsewhere has none, and says nothing).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DDBSNAP_COMMIT");
    let commit = std::env::var("DDBSNAP_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_head);
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let version = match commit {
        Some(commit) => {
            let short: String = commit.trim().chars().take(12).collect();
            format!("{version} ({short})")
        }
        None => version,
    };
    println!("cargo:rustc-env=DDBSNAP_VERSION={version}");
}

/// The commit checked out, when this is a git checkout; rebuilds when it changes.
fn git_head() -> Option<String> {
    let dir = Command::new("git")
        .args(["rev-parse", "--absolute-git-dir"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let dir = String::from_utf8(dir.stdout).ok()?;
    let dir = std::path::Path::new(dir.trim());
    // HEAD names the branch; the branch's ref (or packed-refs) moves with each commit.
    println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
    if let Ok(head) = std::fs::read_to_string(dir.join("HEAD"))
        && let Some(branch) = head.trim().strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed={}", dir.join(branch).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        dir.join("packed-refs").display()
    );
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

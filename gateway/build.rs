//! Builds the scanner page into the `prov` binary, so that `prov demo` serves it with no hand
//! step (issue 5):
//!
//! 1. the wasm verifier, by running `scanner-web/build-wasm.sh --out $OUT_DIR/verifier.wasm
//!    --locked`: the one implementation of that build (its own target directory, so this
//!    nested cargo never waits on the outer build's target-directory lock; wasm-opt when
//!    scanner-web's npm packages are installed). The cargo variables of this build script's
//!    environment that would leak into the nested build (flags, wrappers, target, jobserver)
//!    are removed first;
//! 2. every file under `scanner-web/www/` (walked recursively, dot files skipped) plus
//!    `scanner-web/js/verifier.js`, as a table of `include_bytes!` in `$OUT_DIR/web_assets.rs`,
//!    included by `src/web.rs`.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Variables cargo sets for build scripts (or a user sets for the outer build) that must not
/// reach the nested wasm build: they would change its flags, wrap its rustc (clippy), redirect
/// its target directory or target, or hand it the outer build's jobserver.
const LEAKING: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_LINKER",
    "RUSTDOC",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_PROFILE_RELEASE_DEBUG",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "NUM_JOBS",
];

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .ok_or("the gateway crate has no parent directory")?
        .to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let web = root.join("scanner-web");
    let www = web.join("www");

    for watched in [
        www.clone(),
        web.join("js/verifier.js"),
        web.join("build-wasm.sh"),
        web.join("verifier"),
        root.join("schemas/src"),
        root.join("schemas/Cargo.toml"),
        root.join("ledger/src"),
        root.join("ledger/Cargo.toml"),
        root.join("Cargo.toml"),
        root.join("Cargo.lock"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }

    let wasm = out_dir.join("verifier.wasm");
    build_wasm(&web, &wasm)?;

    let mut files = Vec::new();
    if www.is_dir() {
        walk(&www, &www, &mut files)?;
    }
    files.sort();
    let mut table = String::new();
    writeln!(
        table,
        "/// Every file of `scanner-web/www/` (path relative to it, `/`-separated; contents).\n\
         pub static PAGE_FILES: &[(&str, &[u8])] = &["
    )?;
    for (rel, abs) in &files {
        writeln!(table, "    ({rel:?}, include_bytes!({:?})),", abs.display())?;
    }
    writeln!(table, "];")?;
    writeln!(
        table,
        "/// `scanner-web/js/verifier.js`, the wasm verifier's loader.\n\
         pub static VERIFIER_JS: &[u8] = include_bytes!({:?});",
        web.join("js/verifier.js").display()
    )?;
    writeln!(
        table,
        "/// The wasm verifier built from `scanner-web/verifier` by `scanner-web/build-wasm.sh`.\n\
         pub static VERIFIER_WASM: &[u8] = include_bytes!({:?});",
        wasm.display()
    )?;
    std::fs::write(out_dir.join("web_assets.rs"), table)?;
    Ok(())
}

/// Runs `scanner-web/build-wasm.sh --out {wasm} --locked` in a clean cargo environment.
fn build_wasm(web: &Path, wasm: &Path) -> Result<()> {
    let mut cmd = Command::new("bash");
    cmd.arg(web.join("build-wasm.sh"))
        .arg("--out")
        .arg(wasm)
        .arg("--locked");
    for var in LEAKING {
        cmd.env_remove(var);
    }
    // Every other `CARGO_CFG_*`, `CARGO_FEATURE_*`, `CARGO_PKG_*`, `CARGO_MANIFEST_*` variable
    // describes this build, not the nested one.
    for (key, _) in std::env::vars_os() {
        if let Some(k) = key.to_str()
            && (k.starts_with("CARGO_CFG_")
                || k.starts_with("CARGO_FEATURE_")
                || k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_MANIFEST_")
                || k.starts_with("DEP_"))
        {
            cmd.env_remove(&key);
        }
    }
    let output = cmd.output()?;
    if !output.status.success() {
        // Cargo shows a failed build script's stderr: the nested build's own messages, unescaped.
        eprintln!("{}", String::from_utf8_lossy(&output.stdout));
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        return Err(format!(
            "building the wasm verifier (scanner-web/build-wasm.sh) failed ({}): see above",
            output.status
        )
        .into());
    }
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        if line.starts_with("note:") {
            println!("cargo:warning={line}");
        }
    }
    Ok(())
}

/// Collects `(path relative to base, absolute path)` of every regular file under `dir`,
/// skipping dot files and dot directories (`.keep`, editor files).
fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(base, &path, out)?;
        } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            let rel = path
                .strip_prefix(base)?
                .components()
                .filter_map(|c| c.as_os_str().to_str())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path.canonicalize()?));
        }
    }
    Ok(())
}

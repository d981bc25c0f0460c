//! Writes the shared test vectors to `schemas/vectors/` (or the folder given as the argument).
//! Deterministic: a second run writes the same bytes.

use anyhow::{Context, Result};
use std::path::PathBuf;

fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/vectors"));
    for (name, contents) in prov_tests::vectors::generate()? {
        let path = dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

//! Rebuilds this package when a committed contract artifact changes: its `sol!`
//! bindings read `sidecar/contracts/out/*.json` at compile time, and cargo does
//! not track files a macro reads (a stale binding once compiled here).
fn main() {
    println!("cargo:rerun-if-changed=../sidecar/contracts/out");
}

//! The `berth` binary: `berth server`, `berth agent` and the kubectl-style CLI verbs. Glue only:
//! flags, wiring and exit codes; the work lives in the library crates.
#![forbid(unsafe_code)]

fn main() {}

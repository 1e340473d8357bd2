//! The fuzz targets' shared code: [`universe`] decodes bytes into a pre-state and a block and
//! compares the parallel engine with the sequential one. The same file is compiled into the
//! main crate's `tests/fuzz_corpus.rs`, which replays the committed corpus on stable Rust.

pub mod universe;

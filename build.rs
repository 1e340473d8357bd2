//! Build script.
//!
//! Today it only asks cargo to rerun when it changes. The worker-pool issue makes it detect
//! the system hwloc library (for the NUMA-aware pool via hwlocality) and say which backend
//! the build uses; the compiled Solidity artifacts under `contracts/build/` are committed and
//! need no build step here.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
}

//! Build script: says which worker-placement backend the build uses.
//!
//! With the `hwloc` feature, the pool places workers by the system hwloc library's NUMA
//! topology (through hwlocality, which links `libhwloc`); the script checks with `pkg-config`
//! that the library is there and, if not, says how to install it before the link fails.
//! Without the feature, the pool is one node of `available_parallelism` threads. The choice
//! is passed to the crate as `BLOCKSTM_POOL_BACKEND` for its start-up log line. (The
//! compiled Solidity artifacts under `contracts/build/` are committed and need no step here.)

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CARGO_FEATURE_HWLOC");
    let backend = if std::env::var_os("CARGO_FEATURE_HWLOC").is_some() {
        let found = Command::new("pkg-config")
            .args(["--modversion", "hwloc"])
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
        match found {
            Some(version) => format!("hwloc {version}"),
            None => {
                println!(
                    "cargo::warning=feature `hwloc` is on but pkg-config finds no hwloc \
                     library: run scripts/install-hwloc.sh (Debian: libhwloc-dev, \
                     libudev-dev, pkg-config)"
                );
                "hwloc (library not found at build time)".to_owned()
            }
        }
    } else {
        "available_parallelism (built without the `hwloc` feature)".to_owned()
    };
    println!("cargo::rustc-env=BLOCKSTM_POOL_BACKEND={backend}");
}

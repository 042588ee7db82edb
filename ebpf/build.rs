//! Compiles the kernel-side programs (`src/bpf/*.bpf.c`) with clang into `$OUT_DIR`.
//!
//! clang is the only tool needed: the programs declare the kernel types they read themselves
//! (CO-RE, see `src/bpf/kernel.h`), and libbpf's headers come from `libbpf-dev`. Without clang
//! the crate still builds, with an empty object: the collector then says at start-up that this
//! build has no eBPF tracker and falls back to procfs, so a machine without clang can still
//! build and test everything else.

use std::{env, path::PathBuf, process::Command};

const SOURCE: &str = "src/bpf/connections.bpf.c";

fn main() {
    for file in [SOURCE, "src/bpf/kernel.h", "src/bpf/event.h"] {
        println!("cargo::rerun-if-changed={file}");
    }
    println!("cargo::rerun-if-env-changed=CLANG");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out.join("connections.bpf.o");

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    if Command::new(&clang).arg("--version").output().is_err() {
        println!(
            "cargo::warning=`{clang}` not found: building without the eBPF connection tracker \
             (the collector will use procfs). Install clang and libbpf-dev (scripts/setup does)."
        );
        std::fs::write(&object, []).expect("write the empty object");
        // Cargo cannot watch PATH: a path that does not exist makes it run this script again on
        // every build, so installing clang later is enough to get the tracker.
        println!("cargo::rerun-if-changed=/usr/bin/{clang}");
        return;
    }

    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets the target arch");
    let (bpf_arch, multiarch) = match arch.as_str() {
        "x86_64" => ("x86", "x86_64-linux-gnu"),
        "aarch64" => ("arm64", "aarch64-linux-gnu"),
        other => panic!("no eBPF target arch known for {other}"),
    };
    let output = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-D__TARGET_ARCH_{bpf_arch}"))
        // <linux/bpf.h> includes <asm/types.h>, which lives in the multiarch include dir.
        .arg(format!("-I/usr/include/{multiarch}"))
        .arg("-Isrc/bpf")
        .args(["-c", SOURCE, "-o"])
        .arg(&object)
        .output()
        .unwrap_or_else(|e| panic!("running {clang}: {e}"));
    if !output.status.success() {
        panic!(
            "{clang} failed to compile {SOURCE} (is libbpf-dev installed?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

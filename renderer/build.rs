//! The web UI embeds the browser bundles of graphology and sigma that npm installs under
//! `ui/node_modules` (`scripts/setup` runs `npm ci`); without them the renderer cannot serve
//! its page, so the build stops here with what to do instead of at an `include_bytes!`.

use std::path::Path;

/// Every file `src/api/ui.rs` embeds from npm, relative to `ui/`.
const NPM_FILES: &[&str] = &[
    "node_modules/graphology/dist/graphology.umd.min.js",
    "node_modules/sigma/dist/sigma.min.js",
];

fn main() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    println!("cargo:rerun-if-changed=ui/package-lock.json");
    let missing: Vec<&str> = NPM_FILES
        .iter()
        .copied()
        .filter(|file| !ui.join(file).is_file())
        .collect();
    for file in NPM_FILES {
        println!("cargo:rerun-if-changed=ui/{file}");
    }
    if !missing.is_empty() {
        panic!(
            "the web UI's JavaScript libraries are missing ({}): run scripts/setup, which runs `npm ci` in {}",
            missing.join(", "),
            ui.display()
        );
    }
}

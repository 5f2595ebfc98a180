//! Validates `openapi/openapi.yaml` and generates the Rust types for its
//! bodies, its operation table and one response enum per operation into
//! `OUT_DIR/api_types.rs`, and derives its OpenAPI 3.0 edition into
//! `OUT_DIR/openapi-3.0.{json,yaml}`. A spec that breaks a rule fails the build with the
//! JSON pointer of each violation. First, unless the `bundled-postgres`
//! feature compiles libpq, it checks that the system's libpq can be linked.

#[path = "src/build_support/codegen.rs"]
mod codegen;
#[path = "src/build_support/downgrade.rs"]
mod downgrade;
#[path = "src/build_support/libpq.rs"]
mod libpq;
#[path = "src/build_support/validate.rs"]
mod validate;

use std::{env, fs, path::PathBuf, process};

const SPEC: &str = "openapi/openapi.yaml";

fn main() {
    println!("cargo:rerun-if-changed=openapi");
    println!("cargo:rerun-if-changed=schema");
    println!("cargo:rerun-if-changed=src/build_support");
    println!("cargo:rerun-if-env-changed=PQ_LIB_DIR");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // pq-sys links the system's libpq unless `bundled-postgres` compiles it.
    if env::var_os("CARGO_FEATURE_BUNDLED_POSTGRES").is_none() {
        if let Err(message) = libpq::probe("pq", &libpq::search_dirs(), &out_dir) {
            fail(&message);
        }
    }

    let text =
        fs::read_to_string(SPEC).unwrap_or_else(|e| fail(&format!("{SPEC}: cannot read: {e}")));
    let spec: serde_json::Value = yaml_serde::from_str(&text)
        .unwrap_or_else(|e| fail(&format!("{SPEC}: not valid YAML: {e}")));

    let violations = validate::validate(&spec);
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(|v| format!("  {SPEC}#{v}")).collect();
        fail(&format!(
            "{} violation(s) in the OpenAPI document:\n{}",
            violations.len(),
            list.join("\n")
        ));
    }

    let code = codegen::generate(&spec).unwrap_or_else(|e| fail(&format!("{SPEC}#{e}")));
    let out = out_dir.join("api_types.rs");
    fs::write(&out, code)
        .unwrap_or_else(|e| fail(&format!("{}: cannot write: {e}", out.display())));

    // The OpenAPI 3.0 edition, served and printed beside the 3.1 document.
    let edition = downgrade::downgrade(&spec).unwrap_or_else(|pointers| {
        let list: Vec<String> = pointers.iter().map(|p| format!("  {SPEC}#{p}")).collect();
        fail(&format!(
            "the OpenAPI 3.0 edition cannot express:\n{}",
            list.join("\n")
        ))
    });
    let json = serde_json::to_string_pretty(&edition).expect("a JSON value serializes");
    let yaml = yaml_serde::to_string(&edition)
        .unwrap_or_else(|e| fail(&format!("the OpenAPI 3.0 edition as YAML: {e}")));
    for (name, text) in [("openapi-3.0.json", json), ("openapi-3.0.yaml", yaml)] {
        let out = out_dir.join(name);
        fs::write(&out, text)
            .unwrap_or_else(|e| fail(&format!("{}: cannot write: {e}", out.display())));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    process::exit(1);
}

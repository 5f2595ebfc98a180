//! Generates the client with progenitor from the OpenAPI 3.0 edition the
//! server serves (`/api-docs/openapi-3.0.json`), saved by .ci/clients.sh to
//! the file `FLASHBACK_OPENAPI_3_0` names. progenitor reads OpenAPI 3.0 only.

use std::{env, fs, path::PathBuf, process};

fn main() {
    println!("cargo:rerun-if-env-changed=FLASHBACK_OPENAPI_3_0");
    let Some(path) = env::var_os("FLASHBACK_OPENAPI_3_0").map(PathBuf::from) else {
        fail(
            "set FLASHBACK_OPENAPI_3_0 to the saved /api-docs/openapi-3.0.json of a running server",
        );
    };
    println!("cargo:rerun-if-changed={}", path.display());
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| fail(&format!("{}: cannot read: {e}", path.display())));
    // serde_path_to_error would name the node; openapiv3's own message is enough
    // to find it, together with the path given here.
    let spec: openapiv3::OpenAPI = serde_json::from_str(&text).unwrap_or_else(|e| {
        fail(&format!(
            "{}: not an OpenAPI 3.0 document progenitor can read: {e}",
            path.display()
        ))
    });
    let mut generator = progenitor::Generator::default();
    let tokens = generator.generate_tokens(&spec).unwrap_or_else(|e| {
        fail(&format!(
            "progenitor cannot generate from {}: {e}",
            path.display()
        ))
    });
    let ast = syn::parse2(tokens)
        .unwrap_or_else(|e| fail(&format!("progenitor's output does not parse: {e}")));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("codegen.rs");
    fs::write(&out, prettyplease::unparse(&ast))
        .unwrap_or_else(|e| fail(&format!("{}: cannot write: {e}", out.display())));
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    process::exit(1);
}

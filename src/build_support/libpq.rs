//! Finds out, before anything is compiled, whether the linker will find
//! PostgreSQL's client library, so that a machine without it gets one line
//! saying what to install instead of a linker error after minutes of
//! building. Unless the `bundled-postgres` feature compiles libpq from source.
//!
//! Compiled by `build.rs` and by `tests/build_libpq.rs` (it is not part of the
//! library's module tree), so it depends only on `std`.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// What to do when libpq is missing, in one line.
pub const MISSING_LIBPQ: &str = "PostgreSQL's client library (libpq) was not found: install it \
(Debian/Ubuntu: apt-get install libpq-dev; Fedora: dnf install libpq-devel; macOS: brew install libpq), \
or set PQ_LIB_DIR to the folder that holds it, or build with --features bundled-postgres to compile it from source";

/// Where pq-sys will tell the linker to look, besides the linker's defaults:
/// `PQ_LIB_DIR`, else `pg_config --libdir` (pkg-config's answer for libpq is
/// the same folder on the systems that have both).
pub fn search_dirs() -> Vec<PathBuf> {
    if let Some(dir) = env::var_os("PQ_LIB_DIR") {
        return vec![PathBuf::from(dir)];
    }
    Command::new("pg_config")
        .arg("--libdir")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|dir| vec![PathBuf::from(dir.trim())])
        .unwrap_or_default()
}

/// Links an empty C program against `library` with the C compiler that
/// links Rust programs here (`cc`, or `$CC`), as the final link will.
/// `Ok(())` when it links, and also when no compiler can be run at all (then
/// the probe cannot tell, and the real link will speak for itself).
pub fn probe(library: &str, dirs: &[PathBuf], scratch: &Path) -> Result<(), String> {
    let source = scratch.join("libpq_probe.c");
    let output = scratch.join("libpq_probe");
    fs::write(&source, "int main(void) { return 0; }\n")
        .map_err(|e| format!("{}: {e}", source.display()))?;
    let compiler = env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let mut command = Command::new(compiler);
    command.arg(&source).arg("-o").arg(&output);
    for dir in dirs {
        command.arg(format!("-L{}", dir.display()));
    }
    command
        .arg(format!("-l{library}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let linked = match command.status() {
        Ok(status) => status.success(),
        Err(_) => true,
    };
    let _ = fs::remove_file(&source);
    let _ = fs::remove_file(&output);
    if linked {
        Ok(())
    } else {
        Err(MISSING_LIBPQ.to_owned())
    }
}

//! The build's libpq check (`src/build_support/libpq.rs`, run by `build.rs`):
//! it links what the linker finds and refuses, with the one line that says
//! what to install, what it does not find.

#[path = "../src/build_support/libpq.rs"]
mod libpq;

#[test]
fn a_library_the_linker_finds_passes() {
    let scratch = tempfile::tempdir().unwrap();
    // The C library itself: present wherever a Rust program can be linked.
    assert_eq!(libpq::probe("c", &[], scratch.path()), Ok(()));
}

#[test]
fn this_machine_links_libpq_as_the_default_build_needs() {
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(
        libpq::probe("pq", &libpq::search_dirs(), scratch.path()),
        Ok(()),
        "the default build links the system's libpq (CI installs libpq-dev)"
    );
}

#[test]
fn a_missing_library_gets_one_line_saying_what_to_install() {
    let scratch = tempfile::tempdir().unwrap();
    let missing = libpq::probe("pq_that_no_system_has", &[], scratch.path()).unwrap_err();
    assert_eq!(missing, libpq::MISSING_LIBPQ);
    assert!(!missing.contains('\n'), "one line");
    for hint in ["libpq-dev", "PQ_LIB_DIR", "--features bundled-postgres"] {
        assert!(missing.contains(hint), "{hint}");
    }
}

//! Dependencies whose raw FFI this crate calls are pinned to the version the
//! calls were compiled against, and the lock file holds that version.

fn requirement(manifest: &str, name: &str) -> String {
    let line = manifest
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} is not a dependency"));
    let start = line.find("version = \"").expect("a version") + "version = \"".len();
    line[start..][..line[start..].find('"').unwrap()].to_owned()
}

fn locked_versions(lock: &str, name: &str) -> Vec<String> {
    let mut versions = Vec::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"") {
            let version = lines.next().unwrap();
            versions.push(
                version
                    .trim_start_matches("version = \"")
                    .trim_end_matches('"')
                    .to_owned(),
            );
        }
    }
    versions
}

#[test]
fn libsqlite3_sys_is_pinned_to_the_locked_version() {
    let manifest = include_str!("../Cargo.toml");
    let lock = include_str!("../Cargo.lock");
    let required = requirement(manifest, "libsqlite3-sys");
    let pinned = required
        .strip_prefix('=')
        .unwrap_or_else(|| panic!("libsqlite3-sys = {required:?} is a range, not one version"));
    assert_eq!(
        locked_versions(lock, "libsqlite3-sys"),
        vec![pinned.to_owned()]
    );
}

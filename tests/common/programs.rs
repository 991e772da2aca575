//! The optional programs some tests need, as build.rs found them when the tests were built. A
//! test that needs one carries `#[cfg_attr(no_NAME, ignore = "needs NAME …")]`, so that the
//! runner reports it as ignored where NAME is missing (build.rs says how that is decided).

use std::path::PathBuf;

/// Where build.rs found `name`, if it did.
pub fn find(name: &str) -> Option<PathBuf> {
    env!("MQTTCLI_TEST_PROGRAMS")
        .split(';')
        .filter_map(|entry| entry.split_once('='))
        .find(|(program, _)| *program == name)
        .map(|(_, path)| PathBuf::from(path))
}

/// Where build.rs found `name`; a failure naming it if it did not (the test should have been
/// ignored, or MQTTCLI_REQUIRE_MOSQUITTO=1 asks for it).
#[track_caller]
pub fn program(name: &str) -> PathBuf {
    find(name).unwrap_or_else(|| {
        panic!(
            "this test needs `{name}`, which was not found when the tests were built \
             (build.rs; after installing it, `touch build.rs` to look again)"
        )
    })
}

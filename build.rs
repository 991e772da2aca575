//! Tells the integration tests which optional programs this machine has, so that a test needing
//! a missing one is reported as ignored (`#[cfg_attr(no_mosquitto, ignore = "…")]`) instead of
//! passing without checking anything. It only prints `cargo::` lines: the binary is the same
//! whatever it finds, and it never fails a build (`cargo install` runs it too).
//!
//! - `cfg(no_PROGRAM)` when PROGRAM is not found (PATH, then /usr/sbin and /usr/local/sbin, where
//!   Debian puts mosquitto); `MQTTCLI_TEST_PROGRAMS` = `name=path;…` for those found, read by
//!   tests/common/programs.rs.
//! - `MQTTCLI_TEST_NO_MOSQUITTO=1` hides Mosquitto (and its tools), to check the ignored count
//!   and the rumqttd fallback on a machine that has it.
//! - `MQTTCLI_REQUIRE_MOSQUITTO=1` (CI) sets no `no_mosquitto*` or `no_openssl`: those tests
//!   run and fail when the program is missing.

use std::path::PathBuf;

/// Programs some tests need, and whether `MQTTCLI_REQUIRE_MOSQUITTO=1` requires them.
const PROGRAMS: [(&str, bool); 10] = [
    ("mosquitto", true),
    ("mosquitto_passwd", true),
    ("mosquitto_pub", true),
    ("openssl", true),
    ("bash", false),
    ("zsh", false),
    ("fish", false),
    ("groff", false),
    ("man", false),
    ("script", false),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for var in [
        "PATH",
        "MQTTCLI_REQUIRE_MOSQUITTO",
        "MQTTCLI_TEST_NO_MOSQUITTO",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let names: Vec<String> = PROGRAMS.iter().map(|(p, _)| format!("no_{p}")).collect();
    println!("cargo::rustc-check-cfg=cfg({})", names.join(", "));
    let required = std::env::var("MQTTCLI_REQUIRE_MOSQUITTO").is_ok_and(|v| v == "1");
    let hidden = std::env::var("MQTTCLI_TEST_NO_MOSQUITTO").is_ok_and(|v| v == "1");
    let mut found = Vec::new();
    for (program, require) in PROGRAMS {
        match find(program).filter(|_| !(hidden && program.starts_with("mosquitto"))) {
            Some(path) => {
                // Uninstalling it reruns this script.
                println!("cargo::rerun-if-changed={}", path.display());
                found.push(format!("{program}={}", path.display()));
            }
            None if required && require => {}
            None => println!("cargo::rustc-cfg=no_{program}"),
        }
    }
    println!("cargo::rustc-env=MQTTCLI_TEST_PROGRAMS={}", found.join(";"));
}

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

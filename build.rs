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
//! - The broker matrix's Aedes and amqtt are not programs on PATH but installs in `.brokers/`
//!   (`.ci/run` makes them; `MQTTCLI_BROKERS_DIR` points elsewhere): `cfg(no_aedes)` unless
//!   `node` and `.brokers/aedes/node_modules/aedes` are there, `cfg(no_amqtt)` unless
//!   `.brokers/amqtt/bin/amqtt` is. `MQTTCLI_REQUIRE_BROKERS=1` (CI) sets neither, so a missing
//!   broker fails its cases instead of skipping them. Found, they are listed in
//!   `MQTTCLI_TEST_PROGRAMS` as `aedes=NODE_MODULES_DIR` and `amqtt=INSTALL_DIR`.

use std::path::PathBuf;

/// Programs some tests need, and whether `MQTTCLI_REQUIRE_MOSQUITTO=1` requires them.
const PROGRAMS: [(&str, bool); 11] = [
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
    ("node", false),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for var in [
        "PATH",
        "MQTTCLI_REQUIRE_MOSQUITTO",
        "MQTTCLI_TEST_NO_MOSQUITTO",
        "MQTTCLI_REQUIRE_BROKERS",
        "MQTTCLI_BROKERS_DIR",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let names: Vec<String> = PROGRAMS
        .iter()
        .map(|(p, _)| p)
        .chain(&["aedes", "amqtt"])
        .map(|p| format!("no_{p}"))
        .collect();
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
    let brokers_required = std::env::var("MQTTCLI_REQUIRE_BROKERS").is_ok_and(|v| v == "1");
    let dir = std::env::var_os("MQTTCLI_BROKERS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".brokers"),
        PathBuf::from,
    );
    let has_node = found.iter().any(|f| f.starts_with("node="));
    // (name, what the tests are given, a file that is there once the install is complete)
    let aedes = dir.join("aedes/node_modules");
    let amqtt = dir.join("amqtt");
    let brokers = [
        (
            "aedes",
            aedes.clone(),
            aedes.join("aedes/package.json"),
            has_node,
        ),
        ("amqtt", amqtt.clone(), amqtt.join("bin/amqtt"), true),
    ];
    for (broker, home, marker, runnable) in brokers {
        if runnable && marker.is_file() {
            println!("cargo::rerun-if-changed={}", marker.display());
            found.push(format!("{broker}={}", home.display()));
        } else if !brokers_required {
            println!("cargo::rustc-cfg=no_{broker}");
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

//! `pub`'s progress line: on a terminal only, once a second, never under `--quiet`. script(1)
//! gives the binary a pseudo-terminal; its output is what the terminal would show.

use std::process::Command;

use crate::common::{run, Broker, Proto};

/// `pub --interval 300ms --repeat 5` (about 1.5 s, so one progress tick) with stderr on a
/// terminal when `terminal`, with `extra` flags. Returns everything it printed.
fn stream(broker: &Broker, terminal: bool, extra: &[&str]) -> String {
    let bin = env!("CARGO_BIN_EXE_mqttcli");
    let port = broker.port(Proto::V311).to_string();
    let mut argv = vec![
        bin,
        "pub",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "progress/t",
        "-q",
        "1",
        "-m",
        "m{n}",
        "--interval",
        "300ms",
        "--repeat",
        "5",
    ];
    argv.extend_from_slice(extra);
    if terminal {
        let script = crate::common::programs::program("script");
        let out = Command::new(script)
            .args(["-qec", &argv.join(" "), "/dev/null"])
            .env("TERM", "xterm")
            .output()
            .expect("run script");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        let out = run(Command::new(bin).args(&argv[1..]));
        out.assert_code(0);
        out.stderr.clone()
    }
}

#[test]
#[cfg_attr(no_script, ignore = "needs script (util-linux) for a terminal")]
fn progress_shows_on_a_terminal_only_and_not_under_quiet() {
    let broker = Broker::start();
    let shown = stream(&broker, true, &[]);
    // "mqttcli: N sent, M acknowledged, R msg/s", drawn over with \r and cleared at the end.
    assert!(
        shown.contains("\r\x1b[Kmqttcli: ")
            && shown.contains(" acknowledged, ")
            && shown.contains(" msg/s"),
        "no progress line on a terminal: {shown:?}"
    );
    assert!(
        shown.ends_with("\r\x1b[K"),
        "progress line not cleared at the end: {shown:?}"
    );
    let quiet = stream(&broker, true, &["--quiet"]);
    assert!(
        !quiet.contains("msg/s"),
        "progress under --quiet: {quiet:?}"
    );
    let piped = stream(&broker, false, &[]);
    assert_eq!(piped, "", "stderr of a pipe");
}

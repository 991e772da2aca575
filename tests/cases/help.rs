//! `--help` of each subcommand: exit 0, on stdout, with an examples section and the exit-code
//! table (README, "Errors and exit codes"). No broker is involved.

use crate::common::{mqttcli, run};

const SUBCOMMANDS: [&str; 5] = ["pub", "sub", "unsub", "check", "rr"];

/// The table as the README documents it: each code with the start of its meaning.
const CODES: [(&str, &str); 9] = [
    ("0", "success"),
    ("1", "other error"),
    ("2", "usage error"),
    ("3", "cannot reach the broker"),
    ("4", "the broker refused the connection"),
    ("5", "a publish, subscribe or unsubscribe was refused"),
    ("6", "the -W timeout expired"),
    ("7", "the TLS handshake failed"),
    ("130", "interrupted by Ctrl-C or SIGTERM"),
];

#[test]
fn help_of_each_subcommand_has_examples_and_the_exit_codes() {
    for subcommand in SUBCOMMANDS {
        // COLUMNS would make clap wrap the text at another width.
        let out = run(mqttcli().args([subcommand, "--help"]).env_remove("COLUMNS"));
        out.assert_code(0);
        assert_eq!(out.stderr, "", "stderr of {subcommand} --help");
        let text = out.stdout_str();
        let lines: Vec<&str> = text.lines().collect();

        // The table printed whole, as src/exit.rs has it, and with the README's codes.
        assert!(
            text.contains(mqttcli::exit::TABLE),
            "{subcommand} --help lacks the exit code table:\n{text}"
        );
        let table = lines
            .iter()
            .position(|l| *l == "Exit codes:")
            .unwrap_or_else(|| panic!("{subcommand} --help has no 'Exit codes:' line:\n{text}"));
        let rows: Vec<(&str, &str)> = lines[table + 1..]
            .iter()
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.trim_start().split_once(' '))
            .map(|(code, meaning)| (code, meaning.trim_start()))
            .collect();
        assert_eq!(
            rows.len(),
            CODES.len(),
            "{subcommand} --help: exit code rows {rows:#?}"
        );
        for ((code, meaning), (want_code, want_meaning)) in rows.iter().zip(CODES) {
            assert_eq!(*code, want_code, "{subcommand} --help: {rows:#?}");
            assert!(
                meaning.starts_with(want_meaning),
                "{subcommand} --help: code {code} reads {meaning:?}, expected {want_meaning:?}…"
            );
        }

        // An examples section, before the table, of commands that use this subcommand.
        let examples = lines
            .iter()
            .position(|l| *l == "Examples:" || *l == "Example:")
            .unwrap_or_else(|| panic!("{subcommand} --help has no examples section:\n{text}"));
        assert!(examples < table, "{subcommand} --help:\n{text}");
        let commands: Vec<&str> = lines[examples + 1..]
            .iter()
            .take_while(|l| l.starts_with("  "))
            .copied()
            .collect();
        let invocation = format!("mqttcli {subcommand} ");
        assert!(
            !commands.is_empty() && commands.iter().all(|c| c.contains(&invocation)),
            "{subcommand} --help: examples should each run '{invocation}…': {commands:#?}"
        );
    }
}

/// `-h` is the broker host, as in mosquitto's tools (help is `--help` only): alone, it is a
/// usage error for the missing host, not the help text.
#[test]
fn dash_h_is_the_host_not_help() {
    for subcommand in SUBCOMMANDS {
        run(mqttcli().args([subcommand, "-h"])).assert_exact_error(
            2,
            "mqttcli: error: a value is required for '--host <HOST>' but none was supplied",
        );
    }
}

/// On a terminal `--help` is styled (clap's bold and underline), and NO_COLOR turns that off;
/// through a pipe it never is. `script` gives the binary a pseudo-terminal.
#[test]
#[cfg_attr(no_script, ignore = "needs script (util-linux) for a terminal")]
fn help_is_styled_only_on_a_terminal_and_no_color_turns_it_off() {
    let script = crate::common::programs::program("script");
    let bin = env!("CARGO_BIN_EXE_mqttcli");
    let on_a_terminal = |no_color: bool| {
        let mut cmd = std::process::Command::new(&script);
        cmd.args(["-qec", &format!("{bin} pub --help"), "/dev/null"])
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR")
            .env_remove("CLICOLOR_FORCE")
            .env("TERM", "xterm");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().expect("run script");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let styled = on_a_terminal(false);
    assert!(
        styled.contains("\x1b["),
        "no styling on a terminal:\n{styled}"
    );
    let plain = on_a_terminal(true);
    assert!(plain.contains("Usage: mqttcli pub"), "{plain}");
    assert!(!plain.contains('\x1b'), "styled despite NO_COLOR:\n{plain}");
    let piped = run(mqttcli().args(["pub", "--help"]));
    assert!(!piped.stdout_str().contains('\x1b'), "styled into a pipe");
}

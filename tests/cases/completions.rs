//! `mqttcli completions SHELL` and `mqttcli man [SUBCOMMAND]`: generated from the clap
//! definitions. Scripts are syntax-checked by their shell when it is installed, and the man
//! pages rendered by groff (or man); where neither is installed, the roff is checked by hand,
//! and a line on stderr says so.

use std::process::{Command, Stdio};

use crate::common::programs::program;
use crate::common::{mqttcli, run, run_with_timeout, Out, DEADLINE};

/// The subcommands every completion script and the main man page must name.
const SUBCOMMANDS: [&str; 7] = ["pub", "sub", "unsub", "check", "rr", "bench", "completions"];

#[track_caller]
fn generated(args: &[&str]) -> String {
    let out = run(mqttcli().args(args));
    out.assert_code(0);
    assert_eq!(out.stderr, "", "{args:?} wrote to stderr");
    let text = String::from_utf8(out.stdout.clone()).expect("UTF-8");
    assert!(!text.trim().is_empty(), "{args:?} printed nothing");
    text
}

/// `program args… < input`, with a deadline.
#[track_caller]
fn pipe_through(name: &str, args: &[&str], input: &str) -> Out {
    run_with_timeout(
        Command::new(program(name)).args(args),
        Some(input.as_bytes().to_vec()),
        DEADLINE,
    )
}

#[test]
fn bash_completion_names_the_subcommands() {
    let script = generated(&["completions", "bash"]);
    assert!(script.contains("_mqttcli()"), "no completion function");
    assert!(
        script.contains("complete -F _mqttcli") && script.contains("mqttcli"),
        "no complete line"
    );
    for sub in SUBCOMMANDS {
        assert!(
            script.contains(&format!("mqttcli,{sub})")),
            "bash script lacks the subcommand {sub}"
        );
    }
    for flag in ["--probe", "--profile", "--response-topic", "--json"] {
        assert!(script.contains(flag), "bash script lacks {flag}");
    }
}

#[test]
#[cfg_attr(no_bash, ignore = "needs bash")]
fn bash_completion_parses_and_registers_itself() {
    let script = generated(&["completions", "bash"]);
    {
        let out = pipe_through("bash", &["-n"], &script);
        out.assert_code(0);
        assert_eq!(out.stderr, "", "bash -n found problems");
        // Loaded into a shell, it registers itself for mqttcli.
        let out = pipe_through(
            "bash",
            &["-c", "source /dev/stdin && complete -p mqttcli"],
            &script,
        );
        out.assert_code(0);
        assert!(
            out.stdout_str().contains("_mqttcli") && out.stdout_str().contains("mqttcli"),
            "{}",
            out.stdout_str()
        );
    }
}

#[test]
fn zsh_completion_names_the_subcommands() {
    let script = generated(&["completions", "zsh"]);
    assert!(
        script.starts_with("#compdef mqttcli\n"),
        "{}",
        &script[..60]
    );
    for sub in SUBCOMMANDS {
        assert!(
            script.contains(&format!("'{sub}:")),
            "zsh script lacks the subcommand {sub}"
        );
    }
    assert!(script.contains("--probe"));
}

#[test]
#[cfg_attr(no_zsh, ignore = "needs zsh")]
fn zsh_completion_parses() {
    let script = generated(&["completions", "zsh"]);
    let out = pipe_through("zsh", &["-n"], &script);
    out.assert_code(0);
    assert_eq!(out.stderr, "", "zsh -n found problems");
}

#[test]
fn fish_completion_names_the_subcommands() {
    let script = generated(&["completions", "fish"]);
    for sub in SUBCOMMANDS {
        assert!(
            script
                .lines()
                .any(|l| l.starts_with("complete -c mqttcli")
                    && l.contains(&format!(" -a \"{sub}\""))),
            "fish script lacks the subcommand {sub}"
        );
    }
    assert!(script.contains("-l probe"));
}

#[test]
#[cfg_attr(no_fish, ignore = "needs fish")]
fn fish_completion_parses() {
    let script = generated(&["completions", "fish"]);
    let out = pipe_through("fish", &["--no-execute"], &script);
    out.assert_code(0);
    assert_eq!(out.stderr, "", "fish --no-execute found problems");
}

#[test]
fn completions_for_other_shells_and_a_bad_one() {
    for shell in ["powershell", "elvish"] {
        let script = generated(&["completions", shell]);
        assert!(
            script.contains("mqttcli") && script.contains("check"),
            "{shell}"
        );
    }
    run(mqttcli().args(["completions", "tcsh"])).assert_exact_error(
        2,
        "mqttcli: error: invalid value 'tcsh' for '<SHELL>' [possible values: bash, elvish, fish, powershell, zsh]; tip: a similar value exists: 'zsh'",
    );
}

/// A reader that goes away (`mqttcli completions bash | head -1`) ends it quietly, exit 0; the
/// script is larger than a pipe holds, so the write is sure to fail. This panicked in
/// clap_complete ("failed to write completion file") before.
#[cfg(target_os = "linux")]
#[test]
fn completions_into_a_closed_pipe_exit_0_without_a_panic() {
    for shell in ["bash", "zsh", "fish"] {
        // A FIFO opened for reading and writing, then for writing; closing the first leaves
        // the child a pipe with no reader: its writes fail with EPIPE, with no race.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out");
        let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(status.success());
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        drop(reader);
        let out = crate::common::Live::spawn_with(
            mqttcli().args(["completions", shell]),
            crate::common::Input::Null,
            Stdio::from(writer),
        )
        .finish();
        out.assert_code(0);
        assert_eq!(out.stderr, "", "{shell}: stderr");
    }
}

/// How the man page is rendered here: groff, else man. The tests that render carry
/// `#[cfg_attr(all(no_groff, no_man), ignore = …)]`.
fn renderer() -> (&'static str, Vec<&'static str>) {
    if crate::common::programs::find("groff").is_some() {
        // -ww: every warning; -P-cbou: plain text, no overstriking.
        ("groff", vec!["-man", "-Tutf8", "-ww", "-P-cbou"])
    } else {
        ("man", vec!["-l", "-"])
    }
}

/// The page rendered to plain text.
#[track_caller]
fn render(page: &str) -> String {
    let (name, args) = renderer();
    let program = name;
    let mut cmd = Command::new(crate::common::programs::program(name));
    cmd.args(&args)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "80")
        .env("GROFF_NO_SGR", "1");
    let out = run_with_timeout(&mut cmd, Some(page.as_bytes().to_vec()), DEADLINE);
    out.assert_code(0);
    assert_eq!(out.stderr, "", "{program} warned about the page");
    // Whatever overstriking is left (man may ask for it): keep the last of `x\bx`.
    let mut text = String::new();
    for c in out.stdout_str().chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    text
}

/// Rendered text with every run of white space as one space: formatters justify lines.
fn squeezed(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What any roff man page needs: a title, sections, and no line a formatter would misread.
#[track_caller]
fn assert_roff_structure(page: &str, title: &str, sections: &[&str]) {
    assert!(
        page.lines()
            .any(|l| l.starts_with(&format!(".TH {title} 1 "))),
        "no .TH {title} 1 line"
    );
    for section in sections {
        assert!(
            page.lines().any(|l| l == format!(".SH {section}")),
            "no .SH {section}"
        );
    }
    for line in page.lines() {
        // A body line starting with ' or an unknown request would be swallowed.
        assert!(!line.starts_with('\''), "line starts with a quote: {line}");
        if let Some(request) = line.strip_prefix('.') {
            let name = request.split([' ', '\t']).next().unwrap_or("");
            assert!(
                [
                    "TH", "SH", "SS", "TP", "PP", "P", "LP", "IP", "RS", "RE", "B", "I", "br",
                    "sp", "nf", "fi", "ie", "el", "ds", "in", "ti", "HP", "BR", "IR"
                ]
                .contains(&name),
                "unknown roff request: {line}"
            );
        }
    }
}

/// The sections of the main man page.
const SECTIONS: [&str; 8] = [
    "NAME",
    "SYNOPSIS",
    "DESCRIPTION",
    "OPTIONS",
    "SUBCOMMANDS",
    "ENVIRONMENT",
    "FILES",
    "VERSION",
];

/// The sections of `mqttcli man check`.
const CHECK_SECTIONS: [&str; 6] = [
    "NAME",
    "SYNOPSIS",
    "DESCRIPTION",
    "OPTIONS",
    "ENVIRONMENT",
    "FILES",
];

#[test]
fn man_pages_are_well_formed_roff() {
    assert_roff_structure(&generated(&["man"]), "mqttcli", &SECTIONS);
    let page = generated(&["man", "check"]);
    assert_roff_structure(&page, "mqttcli-check", &CHECK_SECTIONS);
    assert!(!page.contains(".SH SUBCOMMANDS"));
    for sub in ["pub", "sub", "unsub", "rr", "bench", "completions"] {
        let page = generated(&["man", sub]);
        assert_roff_structure(&page, &format!("mqttcli-{sub}"), &["NAME", "SYNOPSIS"]);
    }
}

#[test]
#[cfg_attr(all(no_groff, no_man), ignore = "needs groff or man")]
fn man_page_renders() {
    let text = render(&generated(&["man"]));
    let sections = SECTIONS;
    let lines: Vec<&str> = text.lines().collect();
    for section in sections {
        assert!(
            lines.contains(&section),
            "rendered page lacks {section}:\n{text}"
        );
    }
    assert!(
        squeezed(&text)
            .contains("mqttcli - Publish, subscribe and unsubscribe over MQTT 3.1.1 and 5.0"),
        "NAME line:\n{text}"
    );
    for sub in SUBCOMMANDS {
        assert!(
            text.contains(&format!("mqttcli-{sub}(1)")),
            "rendered page lacks mqttcli-{sub}(1):\n{text}"
        );
    }
    assert!(
        !text.contains("mqttcli-man"),
        "the hidden man subcommand is listed"
    );
    for var in [
        "MQTT_HOST",
        "MQTT_PORT",
        "MQTT_USERNAME",
        "MQTT_PASSWORD",
        "MQTTCLI_PROFILE",
        "MQTTCLI_CONFIG",
    ] {
        assert!(
            lines.iter().any(|l| l.trim() == var),
            "ENVIRONMENT lacks {var}:\n{text}"
        );
    }
    assert!(text.contains("~/.config/mqttcli/config.toml"));
    // Escaped hyphens come out as plain ones a reader can type.
    assert!(
        squeezed(&text).contains("when -h and -L give none"),
        "{text}"
    );
    assert!(text.contains(&format!("v{}", env!("CARGO_PKG_VERSION"))));
}

#[test]
#[cfg_attr(all(no_groff, no_man), ignore = "needs groff or man")]
fn man_page_of_check_renders() {
    let text = render(&generated(&["man", "check"]));
    assert!(
        squeezed(&text).contains("mqttcli-check - Check a broker end to end"),
        "NAME line:\n{text}"
    );
    for option in [
        "--probe",
        "--json",
        "--count",
        "--timeout",
        "--profile",
        "--config",
    ] {
        assert!(
            text.lines().any(|l| l.trim_start().contains(option)),
            "OPTIONS lacks {option}:\n{text}"
        );
    }
    assert!(
        squeezed(&text).contains("mqttcli check -h broker.emqx.io"),
        "examples:\n{text}"
    );
}

#[test]
#[cfg_attr(all(no_groff, no_man), ignore = "needs groff or man")]
fn man_page_of_every_subcommand_renders() {
    for sub in ["pub", "sub", "unsub", "rr", "bench", "completions"] {
        let text = render(&generated(&["man", sub]));
        assert!(
            squeezed(&text).contains(&format!("mqttcli-{sub} - ")),
            "{sub}:\n{text}"
        );
    }
}

#[test]
fn man_of_a_bad_name_is_refused() {
    let out = run(mqttcli().args(["man", "nope"]));
    out.assert_code(2);
    out.assert_stdout(b"");
    assert!(
        out.stderr
            .starts_with("mqttcli: error: no subcommand 'nope': choose one of pub, sub, unsub, check, rr, bench, completions"),
        "{}",
        out.stderr
    );
    // The man subcommand is hidden: it has no page of its own.
    let out = run(mqttcli().args(["man", "man"]));
    out.assert_code(2);
    assert!(out
        .stderr
        .starts_with("mqttcli: error: no subcommand 'man'"));
}

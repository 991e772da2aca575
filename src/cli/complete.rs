//! Shell completions and the man page, generated from the clap definitions so they never drift
//! from `--help`. The release workflow ships both.

use std::io::{self, Write};

use anyhow::Result;
use clap::CommandFactory;

use super::{Cli, CompletionsArgs, ManArgs};
use crate::exit::usage;

pub fn completions(args: &CompletionsArgs, out: &mut dyn Write) -> Result<()> {
    let mut cmd = Cli::command();
    // clap_complete panics when its writer fails, and a reader that goes away
    // (`mqttcli completions bash | head`) is a normal end: render into memory, then write, so a
    // closed stdout is an error that `main` recognises as a broken pipe.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "mqttcli", &mut script);
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}

/// Environment variables, for the man page's ENVIRONMENT section.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("MQTT_HOST", "broker host, when -h and -L give none"),
    ("MQTT_PORT", "broker port, when -p and -L give none"),
    ("MQTT_USERNAME", "username, when -u and -L give none"),
    (
        "MQTT_PASSWORD",
        "password, when -P, --password-file and -L give none",
    ),
    ("MQTTCLI_PROFILE", "profile to use when --profile is absent"),
    (
        "MQTTCLI_CONFIG",
        "config file with the profiles, when --config is absent",
    ),
    (
        "HTTPS_PROXY, ALL_PROXY, NO_PROXY",
        "HTTP CONNECT proxy when --proxy is absent (never for loopback hosts)",
    ),
    (
        "SSL_CERT_FILE, SSL_CERT_DIR",
        "trusted CAs for TLS without --cafile",
    ),
    ("RUST_LOG", "log filter for stderr, e.g. mqttcli=debug"),
];

pub fn man(args: &ManArgs, out: &mut dyn Write) -> Result<()> {
    let mut cmd = Cli::command();
    // Propagates global arguments (--help) into the subcommands.
    cmd.build();
    let page = match &args.subcommand {
        None => clap_mangen::Man::new(cmd),
        Some(name) => {
            let sub = cmd
                .find_subcommand(name)
                .filter(|s| !s.is_hide_set())
                .cloned()
                .ok_or_else(|| {
                    let known: Vec<&str> = cmd
                        .get_subcommands()
                        .filter(|s| !s.is_hide_set())
                        .map(|s| s.get_name())
                        .collect();
                    usage(format!(
                        "no subcommand '{name}': choose one of {}",
                        known.join(", ")
                    ))
                })?;
            // clap_mangen's VERSION section unwraps the command's version, which a subcommand
            // lacks unless given one.
            clap_mangen::Man::new(
                sub.name(format!("mqttcli-{name}"))
                    .version(env!("CARGO_PKG_VERSION")),
            )
        }
    };
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;
    if args.subcommand.is_none() {
        page.render_subcommands_section(out)?;
    }
    page.render_extra_section(out)?;
    write_environment(out)?;
    write_files(out)?;
    page.render_version_section(out)?;
    Ok(())
}

fn write_environment(out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, ".SH ENVIRONMENT")?;
    for (name, meaning) in ENVIRONMENT {
        writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(name), roff(meaning))?;
    }
    writeln!(
        out,
        ".PP\nPrecedence, first found wins: flags (and the parts of \\-L's URL), then the environment, then the profile, then the defaults."
    )
}

fn write_files(out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, ".SH FILES")?;
    writeln!(
        out,
        ".TP\n\\fI~/.config/mqttcli/config.toml\\fR\nConnection profiles, as [profiles.NAME] tables (%APPDATA%\\\\mqttcli\\\\config.toml on Windows; $XDG_CONFIG_HOME is honoured). A profile that holds a password is refused unless the file is private (chmod 600)."
    )
}

/// Escapes text for a roff body line: backslashes, and hyphens as `\-`, so that man shows
/// them as typable minus signs.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap_complete::Shell;

    fn man_text(sub: Option<&str>) -> String {
        let mut out = Vec::new();
        man(
            &ManArgs {
                subcommand: sub.map(str::to_string),
            },
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn man_pages_have_a_title_and_the_environment() {
        let page = man_text(None);
        // clap_mangen puts its string definitions (.ie/.el) before the title.
        let title = |page: &str, want: &str| page.lines().any(|l| l.starts_with(want));
        assert!(title(&page, ".TH mqttcli 1 "), "{}", &page[..200]);
        assert!(page.contains(".SH ENVIRONMENT") && page.contains("MQTT_HOST"));
        assert!(page.contains("check"));
        let page = man_text(Some("check"));
        assert!(title(&page, ".TH mqttcli-check 1 "), "{}", &page[..200]);
        assert!(page.contains("probe"));
    }

    #[test]
    fn unknown_subcommand_for_man_is_a_usage_error() {
        let err = man(
            &ManArgs {
                subcommand: Some("nope".into()),
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(crate::exit::exit_for(&err), crate::exit::Exit::Usage);
        assert!(err.to_string().contains("pub, sub"));
    }

    #[test]
    fn completions_name_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            completions(&CompletionsArgs { shell }, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.contains("mqttcli") && text.contains("check"),
                "{shell}"
            );
        }
    }
}

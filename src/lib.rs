//! mqttcli as a library: the binary (`src/main.rs`) calls [`main`], and `mqttcli bench` runs
//! the second binary (`src/bin/mqttcli-bench.rs`), which calls [`bench_main`]; the fuzz
//! targets in `fuzz/` reach the parsers mqttcli owns through the public modules.
//!
//! Data flows one way, and each module imports only those below it (the README's Design;
//! `tests` in this file checks it):
//! argv → `cli` (clap types; the one conversion to settings and options) → `commands` →
//! `output` → `profile` → `connection` (the session; rumqttc) → the leaves (`payload`,
//! `signals`, `topic`, `duration`, `secret`, `logging`, `exit`). `architecture.rs` checks it.

pub mod cli;
mod commands;
pub mod connection;
pub mod duration;
pub mod exit;
mod logging;
pub mod output;
pub mod payload;
mod profile;
pub mod secret;
mod signals;
pub mod topic;

#[cfg(test)]
mod architecture;
#[cfg(test)]
mod proptests;

use std::io::Write;

use cli::{Cli, Command, Environment, Plan};
use exit::Exit;

/// Parses argv, runs the subcommand and exits the process with the documented code.
pub fn main() -> ! {
    finish(run(parse()))
}

/// `mqttcli-bench`, which `mqttcli bench` runs with its own arguments (`bench_exec`).
pub fn bench_main() -> ! {
    finish(run_bench(parse()))
}

fn parse() -> Cli {
    let cli = match Cli::parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    let (debug, quiet) = Plan::logging(&cli.command);
    logging::init(debug, quiet);
    cli
}

fn finish(result: anyhow::Result<Exit>) -> ! {
    let code = match result {
        Ok(exit) => exit,
        Err(err) if exit::is_broken_pipe(&err) => Exit::Success,
        Err(err) => {
            // Each cause in words, for -d: a Debug form would carry anyhow's backtrace when
            // RUST_BACKTRACE is set.
            let causes: Vec<String> = err.chain().map(|e| e.to_string()).collect();
            tracing::debug!(?causes, "error");
            eprintln!("mqttcli: error: {err:#}");
            exit::exit_for(&err)
        }
    };
    let _ = std::io::stdout().flush();
    // Exit without waiting for the runtime's blocking threads: one may sit in a read of an
    // idle stdin that will never return.
    std::process::exit(code.code().into());
}

/// clap's errors span several lines (message, usage, tip); ours are one line that names the
/// problem, with the same exit code 2. Help and version output stay as clap prints them.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let text = e.render().to_string();
    let mut blocks = text.split("\n\n");
    let first: Vec<&str> = blocks
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut line = first.join(" ");
    for tip in blocks
        .flat_map(str::lines)
        .map(str::trim)
        .filter(|l| l.starts_with("tip:"))
    {
        line.push_str("; ");
        line.push_str(tip);
    }
    eprintln!(
        "mqttcli: error: {}",
        line.strip_prefix("error: ").unwrap_or(&line)
    );
    std::process::exit(Exit::Usage.code().into());
}

fn run(cli: Cli) -> anyhow::Result<Exit> {
    // Generated text needs no runtime and no connection.
    match &cli.command {
        Command::Completions(args) => {
            cli::complete::completions(args, &mut std::io::stdout().lock())?;
            return Ok(Exit::Success);
        }
        Command::Man(args) => {
            cli::complete::man(args, &mut std::io::stdout().lock())?;
            return Ok(Exit::Success);
        }
        Command::Bench(_) => return bench_exec(),
        _ => {}
    }
    let env = Environment::from_process();
    let Some(plan) = cli::plan(cli.command, &env)? else {
        return Ok(Exit::Success);
    };
    on_one_thread(|interrupt| async move {
        match plan {
            Plan::Publish(opts, settings) => {
                commands::publish::run(opts, settings, interrupt).await
            }
            Plan::Subscribe(opts, settings) => {
                commands::subscribe::run(opts, settings, interrupt).await
            }
            Plan::Unsubscribe(opts, settings) => {
                commands::unsubscribe::run(opts, settings, interrupt).await
            }
            Plan::Check(opts, settings) => commands::check::run(opts, settings, interrupt).await,
            Plan::Request(opts, settings) => commands::rr::run(opts, settings, interrupt).await,
            Plan::Bench(..) => Err(bench_elsewhere()),
        }
    })
}

/// Runs `work` on this thread (a CLI client gains nothing from a thread pool and starts faster
/// without one), with Ctrl-C and SIGTERM as its `Interrupt`.
fn on_one_thread<F, W>(work: W) -> anyhow::Result<Exit>
where
    W: FnOnce(signals::Interrupt) -> F,
    F: std::future::Future<Output = anyhow::Result<Exit>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async { work(signals::Interrupt::install()?).await });
    // tokio reads stdin with a blocking read on a thread of its own that cannot be cancelled;
    // dropping the runtime would wait for that read, so `tail -f log | mqttcli pub -l` would
    // hang after Ctrl-C until the next line came. Nothing else is left running by now.
    runtime.shutdown_background();
    result
}

/// `bench` runs in a binary of its own, `mqttcli-bench`, installed beside `mqttcli`: its
/// threads, histograms and their encoding would otherwise be loaded and paged in by every
/// `pub` and `sub`. clap has
/// checked the arguments here already (they are part of `mqttcli --help` and its completions).
fn bench_exec() -> anyhow::Result<Exit> {
    let name = format!("mqttcli-bench{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe()?.with_file_name(name);
    if !exe.is_file() {
        return Err(exit::fail(
            Exit::Other,
            format!(
                "mqttcli bench runs {}, which is missing: install mqttcli-bench beside mqttcli \
                 (cargo install, the .deb and the release archives carry both)",
                exe.display()
            ),
        ));
    }
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(std::env::args_os().skip(1));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = cmd.arg0("mqttcli").exec();
        Err(exit::fail(
            Exit::Other,
            format!("cannot run {}: {e}", exe.display()),
        ))
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status()?;
        let _ = std::io::stdout().flush();
        std::process::exit(status.code().unwrap_or(1));
    }
}

fn bench_elsewhere() -> anyhow::Error {
    exit::fail(
        Exit::Other,
        "bench runs in mqttcli-bench: run it as mqttcli bench",
    )
}

/// `mqttcli bench`, in `mqttcli-bench`. This thread only paces and adds up: the clients run on
/// threads of their own (commands/bench/workers.rs).
fn run_bench(cli: Cli) -> anyhow::Result<Exit> {
    let args = match cli.command {
        Command::Bench(args) => args,
        _ => {
            return Err(exit::usage(
                "mqttcli-bench runs only bench: run mqttcli for the rest",
            ))
        }
    };
    if let cli::BenchCommand::Merge(m) = &args.command {
        return commands::bench::merge(&m.files, m.json);
    }
    let env = Environment::from_process();
    let Some(plan) = cli::plan(Command::Bench(args), &env)? else {
        return Ok(Exit::Success);
    };
    on_one_thread(|interrupt| async move {
        match plan {
            Plan::Bench(opts, settings) => commands::bench::run(opts, settings, interrupt).await,
            _ => Err(exit::usage(
                "mqttcli-bench runs only bench: run mqttcli for the rest",
            )),
        }
    })
}

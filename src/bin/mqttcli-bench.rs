//! `mqttcli bench`, as a binary of its own (see `bench_exec` in src/lib.rs): `mqttcli` runs it
//! with the same arguments, so its dependencies stay out of every other subcommand.

fn main() {
    mqttcli::bench_main()
}

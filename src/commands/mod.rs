//! The subcommands that talk to a broker. Each takes its options and complete connection
//! settings from `cli` and drives one `connection::Session`; none knows clap or rumqttc.

pub mod bench;
pub mod check;
pub mod publish;
pub mod rr;
pub mod subscribe;
pub mod unsubscribe;

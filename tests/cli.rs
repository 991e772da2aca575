//! Integration tests: the built `mqttcli` binary against a real broker over TCP on 127.0.0.1.
//! See tests/common/broker.rs for which broker that is (Mosquitto, or an in-process rumqttd).

mod cases;
mod common;

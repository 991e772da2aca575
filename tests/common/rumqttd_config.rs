//! rumqttd 0.20's configuration for the tests: one MQTT 3.1.1 and one MQTT 5 listener on
//! 127.0.0.1. Shared by the in-process fallback broker (broker.rs) and the broker matrix's
//! process (examples/rumqttd.rs, which includes this file by path).

use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

pub fn config(port_v311: u16, port_v5: u16) -> Config {
    let server = |name: &str, port: u16| ServerSettings {
        name: name.into(),
        listen: ([127, 0, 0, 1], port).into(),
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            // Room for the 1 MiB payload tests plus topic and header.
            max_payload_size: 4 << 20,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        // RouterConfig::default() is all zeros, which routes nothing.
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some([("v4".to_string(), server("v4", port_v311))].into()),
        v5: Some([("v5".to_string(), server("v5", port_v5))].into()),
        ..Default::default()
    }
}

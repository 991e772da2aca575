//! What the process environment says, read once, before anything else looks at it: the
//! `MQTT_*` variables, the profile and config choices, and the proxy variables. Passed in, so
//! the conversion to settings is tested without touching the process environment.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::connection::proxy::ProxyEnv;
use crate::profile;

/// What the process environment says, read once; passed in so tests need no process env.
/// Empty variables count as unset (except `MQTT_PASSWORD`: an empty password may be meant).
#[derive(Default)]
pub struct Environment {
    /// `MQTT_PASSWORD`
    pub password: Option<String>,
    /// `MQTT_HOST`
    pub host: Option<String>,
    /// `MQTT_PORT`, checked in `resolve` so that a bad value is a usage error naming it.
    pub port: Option<String>,
    /// `MQTT_USERNAME`
    pub username: Option<String>,
    /// `MQTTCLI_PROFILE`: the profile to use when `--profile` is absent.
    pub profile: Option<String>,
    /// `MQTTCLI_CONFIG`: the config file when `--config` is absent.
    pub config: Option<PathBuf>,
    /// The platform's default config file (`~/.config/mqttcli/config.toml`).
    pub default_config: Option<PathBuf>,
    /// Every variable, for a profile's `password_env`.
    pub vars: HashMap<String, String>,
    pub proxy: ProxyEnv,
}

/// The first of `names` that is set to something other than blanks.
fn first_set(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok())
        .filter(|v| !v.trim().is_empty())
}

impl Environment {
    pub fn from_process() -> Self {
        let set = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Environment {
            password: std::env::var("MQTT_PASSWORD").ok(),
            host: set("MQTT_HOST"),
            port: set("MQTT_PORT"),
            username: set("MQTT_USERNAME"),
            profile: set("MQTTCLI_PROFILE"),
            config: set("MQTTCLI_CONFIG").map(PathBuf::from),
            default_config: profile::default_path(),
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            proxy: ProxyEnv {
                https_proxy: first_set(&["HTTPS_PROXY", "https_proxy"]),
                all_proxy: first_set(&["ALL_PROXY", "all_proxy"]),
                no_proxy: first_set(&["NO_PROXY", "no_proxy"]),
            },
        }
    }
}

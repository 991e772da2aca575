//! Named connection profiles: a TOML file of `[profiles.NAME]` tables, chosen with
//! `--profile NAME` (or `MQTTCLI_PROFILE`). The file is `--config FILE`, else `MQTTCLI_CONFIG`,
//! else `config.toml` in the platform config dir (`~/.config/mqttcli/` on Linux and macOS).
//!
//! This module only finds, reads and checks a profile; how its values rank against flags and
//! the environment is decided in `cli::settings`.
//!
//! ```toml
//! [profiles.local]
//! host = "localhost"
//! port = 1883
//!
//! [profiles.emqx]
//! url = "mqtts://broker.emqx.io"
//! username = "emqx"
//! password_env = "EMQX_PASSWORD"
//! protocol = 5
//!
//! [profiles.socket]
//! unix = "/run/mosquitto/mqtt.sock"
//! protocol = 31
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Deserializer};

use crate::connection::Version;
use crate::exit::usage;
use crate::secret::Secret;

/// One profile. Every field is optional; a flag or an environment variable beats it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `mqtt://`, `mqtts://`, `ws://` or `wss://`, as `-L` takes it.
    pub url: Option<String>,
    /// WebSocket transport, as `--ws`.
    pub ws: Option<bool>,
    pub ws_path: Option<String>,
    /// TLS with the OS trust store, as `--tls`.
    pub tls: Option<bool>,
    /// Relative paths are taken from the config file's directory; `~/` is the home directory.
    pub cafile: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub proxy: Option<String>,
    pub username: Option<String>,
    /// Refused unless the file is private (mode 600): see [`load`].
    #[serde(default, deserialize_with = "secret")]
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    /// The name of an environment variable that holds the password.
    pub password_env: Option<String>,
    pub id_prefix: Option<String>,
    /// `31`, `311` or `5` (a number or a string; `mqttv31`, `mqttv311`, `mqttv5` work too).
    #[serde(default, deserialize_with = "protocol")]
    pub protocol: Option<Version>,
    /// A Unix-domain socket to connect to, as `--unix`: instead of `host`, `port` and `url`.
    pub unix: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// Where the profile came from, for messages.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub name: String,
    pub file: PathBuf,
    pub profile: Profile,
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Secret::new))
}

fn protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Version>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i64),
        Text(String),
    }
    let text = match Option::<Raw>::deserialize(d)? {
        None => return Ok(None),
        Some(Raw::Number(n)) => n.to_string(),
        Some(Raw::Text(s)) => s,
    };
    Version::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The default config file: `config.toml` in the platform config dir.
pub fn default_path() -> Option<PathBuf> {
    use etcetera::BaseStrategy;
    etcetera::choose_base_strategy()
        .ok()
        .map(|dirs| dirs.config_dir().join("mqttcli").join("config.toml"))
}

/// Reads `file` and returns profile `name`, with its paths made absolute. Errors are usage
/// errors: a missing file, bad TOML, an unknown field or profile (the message lists the known
/// names), or a password in a file that others can read.
pub fn load(file: &Path, name: &str) -> Result<Loaded> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        usage(format!(
            "profile '{name}': cannot read the config file {}: {e}: create it, or point --config (or MQTTCLI_CONFIG) at it",
            file.display()
        ))
    })?;
    let config: ConfigFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let at = line.map_or(String::new(), |l| format!(" line {l}:"));
        usage(format!(
            "{}:{at} {}",
            file.display(),
            e.message().trim().replace('\n', "; ")
        ))
    })?;
    let Some(mut profile) = config.profiles.get(name).cloned() else {
        let known: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
        let known = if known.is_empty() {
            "it has none".to_string()
        } else {
            format!("known profiles: {}", known.join(", "))
        };
        return Err(usage(format!(
            "no profile '{name}' in {} ({known}): add a [profiles.{name}] table, or pick one of those with --profile",
            file.display()
        )));
    };
    let sources = [
        profile.password.is_some(),
        profile.password_file.is_some(),
        profile.password_env.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err(usage(format!(
            "profile '{name}' in {} gives more than one of password, password_file and password_env: keep one",
            file.display()
        )));
    }
    if profile.password.is_some() {
        check_private(file, name)?;
    }
    if profile.unix.is_some() {
        // A socket is where the broker is, and local: nothing else in the same profile may say
        // otherwise (flags and the environment may; cli::settings decides).
        let other = [
            ("host", profile.host.is_some()),
            ("port", profile.port.is_some()),
            ("url", profile.url.is_some()),
            ("tls", profile.tls == Some(true)),
            ("cafile", profile.cafile.is_some()),
            ("ws", profile.ws == Some(true)),
            ("proxy", profile.proxy.is_some()),
        ]
        .into_iter()
        .find_map(|(field, set)| set.then_some(field));
        if let Some(field) = other {
            return Err(usage(format!(
                "profile '{name}' in {} gives both unix and {field}: a Unix socket is local and plain; keep one",
                file.display()
            )));
        }
    }
    let base = file.parent().unwrap_or(Path::new("."));
    for path in [
        &mut profile.cafile,
        &mut profile.cert,
        &mut profile.key,
        &mut profile.password_file,
        &mut profile.unix,
    ]
    .into_iter()
    .flatten()
    {
        *path = absolute(base, path);
    }
    Ok(Loaded {
        name: name.to_string(),
        file: file.to_path_buf(),
        profile,
    })
}

/// A password may sit in the file only if no one else can read it, as ssh insists for keys.
#[cfg(unix)]
fn check_private(file: &Path, name: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file)
        .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(usage(format!(
            "profile '{name}' holds a password, but {file} can be read by other users (mode {:03o}): run chmod 600 {file}, or use password_file or password_env instead",
            mode & 0o777,
            file = file.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_file: &Path, _name: &str) -> Result<()> {
    Ok(())
}

fn absolute(base: &Path, path: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~") {
        if let Ok(home) = etcetera::home_dir() {
            return home.join(rest);
        }
    }
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let file = dir.join("config.toml");
        std::fs::write(&file, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        file
    }

    fn usage_text(r: Result<Loaded>) -> String {
        let e = r.unwrap_err();
        assert_eq!(crate::exit::exit_for(&e), crate::exit::Exit::Usage);
        e.to_string()
    }

    #[test]
    fn reads_a_profile_and_makes_paths_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "[profiles.a]\nhost = \"h\"\nport = 1884\nprotocol = 5\ncafile = \"certs/ca.pem\"\n\
             [profiles.b]\nprotocol = \"mqttv311\"\n",
        );
        let a = load(&file, "a").unwrap().profile;
        assert_eq!((a.host.as_deref(), a.port), (Some("h"), Some(1884)));
        assert_eq!(a.protocol, Some(Version::parse("5").unwrap()));
        assert_eq!(a.cafile.unwrap(), dir.path().join("certs/ca.pem"));
        assert_eq!(
            load(&file, "b").unwrap().profile.protocol,
            Some(Version::parse("311").unwrap())
        );
    }

    #[test]
    fn a_profile_can_name_a_socket_and_mqtt_3_1() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "[profiles.local]\nunix = \"run/mq.sock\"\nprotocol = 31\n\
             [profiles.both]\nunix = \"/s\"\nport = 1884\n\
             [profiles.tls]\nunix = \"/s\"\ntls = true\n",
        );
        let local = load(&file, "local").unwrap().profile;
        assert_eq!(local.unix.unwrap(), dir.path().join("run/mq.sock"));
        let v = local.protocol.unwrap();
        assert!(v.mqtt31, "{v:?}");
        let msg = usage_text(load(&file, "both"));
        assert!(msg.contains("gives both unix and port"), "{msg}");
        assert!(usage_text(load(&file, "tls")).contains("gives both unix and tls"));
    }

    #[test]
    fn unknown_profile_lists_the_known_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "[profiles.prod]\n[profiles.local]\n");
        let msg = usage_text(load(&file, "staging"));
        assert!(msg.contains("no profile 'staging'"), "{msg}");
        assert!(msg.contains("known profiles: local, prod"), "{msg}");
    }

    #[test]
    fn mistakes_in_the_file_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "[profiles.a]\nhost = \"h\"\nprot = 5\n");
        let msg = usage_text(load(&file, "a"));
        assert!(msg.contains("line 3") && msg.contains("prot"), "{msg}");
        assert!(!msg.contains('\n'));
        let file = write(dir.path(), "[profiles.a]\nprotocol = 6\n");
        let msg = usage_text(load(&file, "a"));
        assert!(msg.contains("'6' is not a supported protocol"), "{msg}");
        assert!(msg.contains("31 (mqttv31)"), "{msg}");
        let file = write(
            dir.path(),
            "[profiles.a]\npassword_env = \"X\"\npassword_file = \"f\"\n",
        );
        assert!(usage_text(load(&file, "a")).contains("more than one"));
        let missing = dir.path().join("nope.toml");
        assert!(usage_text(load(&missing, "a")).contains("cannot read the config file"));
    }

    #[cfg(unix)]
    #[test]
    fn a_password_needs_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "[profiles.a]\nusername = \"u\"\npassword = \"pw\"\n",
        );
        let loaded = load(&file, "a").unwrap();
        assert_eq!(loaded.profile.password.unwrap().expose(), "pw");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let msg = usage_text(load(&file, "a"));
        assert!(
            msg.contains(&format!("chmod 600 {}", file.display())),
            "{msg}"
        );
        assert!(!msg.contains("pw\""));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let p = Profile {
            password: Some(Secret::new("hunter2")),
            ..Profile::default()
        };
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}

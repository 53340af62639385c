//! Reaching a hub on another machine over ZeroMQ CURVE: the same options,
//! environment variables, `client.toml` and key files as the Python client
//! (`clients/statehub/remote.py`; docs/security.md, "Network access").
//!
//! Each setting comes from the first place that has it: the builder options
//! (`--hub`, `--hub-events`, `--server-key`), then `STATEHUB_HUB`,
//! `STATEHUB_HUB_EVENTS`, `STATEHUB_SERVER_KEY`, then the `[hub]` table of
//! `client.toml` in the client config dir (`$STATEHUB_CONFIG_DIR`, else the
//! platform's, `~/.config/statehub` on Linux). No hub endpoint anywhere means a
//! local client, found through `hub.json` as always. The client's key pair is
//! `curve/client.key` and `curve/client.key_secret` in the config dir
//! (`statehub keys init` makes it).

use std::env;
use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

pub const ENV_HUB: &str = "STATEHUB_HUB";
pub const ENV_HUB_EVENTS: &str = "STATEHUB_HUB_EVENTS";
pub const ENV_SERVER_KEY: &str = "STATEHUB_SERVER_KEY";
pub const ENV_CONFIG_DIR: &str = "STATEHUB_CONFIG_DIR";
const CONFIG_FILE: &str = "client.toml";
const APP_NAME: &str = "statehub";
/// Z85 text of a 32-byte Curve25519 key.
const KEY_LENGTH: usize = 40;
const Z85_ALPHABET: &str =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// What the caller asked for explicitly; unset fields fall back to the
/// environment, then to `client.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteOptions {
    pub hub: Option<String>,
    pub events: Option<String>,
    pub server_key: Option<String>,
}

/// A hub reached by its endpoints rather than through a data dir.
#[derive(Clone, PartialEq, Eq)]
pub struct Remote {
    pub rpc: String,
    pub events: String,
    /// None: a plain connection, allowed only to a loopback endpoint.
    curve: Option<CurveKeys>,
}

#[derive(Clone, PartialEq, Eq)]
struct CurveKeys {
    server: Vec<u8>,
    public: String,
    secret: Vec<u8>,
}

impl fmt::Debug for Remote {
    // Never print the secret key, not even in a debug dump.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("rpc", &self.rpc)
            .field("events", &self.events)
            .field("client_public_key", &self.curve.as_ref().map(|keys| &keys.public))
            .finish()
    }
}

impl Remote {
    /// This client's CURVE public key (Z85), when it talks CURVE to the hub.
    pub fn client_public_key(&self) -> Option<&str> {
        self.curve.as_ref().map(|keys| keys.public.as_str())
    }
}

/// The remote hub the options, environment or `client.toml` name; None for a local client.
pub fn resolve(options: &RemoteOptions) -> Result<Option<Remote>> {
    let file = read_config_file()?;
    let Some(rpc) = first([options.hub.clone(), env_var(ENV_HUB), file.rpc]) else {
        return Ok(None);
    };
    check_tcp_endpoint(&rpc, "the hub endpoint")?;
    let events = first([options.events.clone(), env_var(ENV_HUB_EVENTS), file.events])
        .unwrap_or_else(|| events_endpoint_for(&rpc));
    check_tcp_endpoint(&events, "the hub's events endpoint")?;
    let Some(key_text) = first([
        options.server_key.clone(),
        env_var(ENV_SERVER_KEY),
        file.server_key,
    ]) else {
        if is_loopback(&rpc) {
            return Ok(Some(Remote {
                rpc,
                events,
                curve: None,
            }));
        }
        return Err(Error::Invalid(format!(
            "the hub at {rpc} is on another machine, so it needs its server key: give --server-key, \
             ${ENV_SERVER_KEY} or server_key in {} (print it on the hub with `statehub keys show-server`)",
            config_dir()?.join(CONFIG_FILE).display()
        )));
    };
    if zmq::has("curve") != Some(true) {
        return Err(Error::Invalid(
            "this libzmq was built without CURVE; it cannot reach a remote hub".into(),
        ));
    }
    let server = decode_key(&server_key_text(&key_text)?)?;
    let curve = Some(load_client_keys(server)?);
    Ok(Some(Remote { rpc, events, curve }))
}

/// Make `socket` a CURVE client of `remote` (nothing for local and plain loopback
/// hubs). Call before `connect`: the options apply to connections made afterwards.
pub fn secure(socket: &zmq::Socket, remote: Option<&Remote>) -> Result<()> {
    if let Some(keys) = remote.and_then(|remote| remote.curve.as_ref()) {
        socket.set_curve_serverkey(&keys.server)?;
        socket.set_curve_publickey(&decode_key(&keys.public)?)?;
        socket.set_curve_secretkey(&keys.secret)?;
    }
    Ok(())
}

/// The client config dir: `$STATEHUB_CONFIG_DIR`, else the one Python's
/// platformdirs picks (`user_config_dir("statehub")`).
pub fn config_dir() -> Result<PathBuf> {
    if let Some(dir) = env::var_os(ENV_CONFIG_DIR).filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    // platformdirs uses the local (not roaming) app data folder on Windows.
    let base = if cfg!(windows) {
        dirs::data_local_dir()
    } else {
        dirs::config_dir()
    };
    base.map(|base| base.join(APP_NAME)).ok_or_else(|| {
        Error::Io(format!(
            "cannot find the user config folder; set {ENV_CONFIG_DIR}"
        ))
    })
}

fn load_client_keys(server: Vec<u8>) -> Result<CurveKeys> {
    let folder = config_dir()?.join("curve");
    let (public_path, secret_path) = (folder.join("client.key"), folder.join("client.key_secret"));
    if !public_path.exists() {
        return Err(Error::Invalid(format!(
            "this client has no CURVE key pair in {}: make one with `statehub keys init`, then have it \
             allow-listed on the hub (`statehub keys add NAME KEY` there)",
            folder.display()
        )));
    }
    let public = read_key_file(&public_path)?;
    // Say which file is wrong, never what is in it.
    let secret = decode_key(&read_key_file(&secret_path)?)
        .map_err(|_| Error::Invalid(format!("{} does not hold a secret key", secret_path.display())))?;
    Ok(CurveKeys {
        server,
        public,
        secret,
    })
}

fn read_key_file(path: &Path) -> Result<String> {
    let text =
        fs::read_to_string(path).map_err(|e| Error::Io(format!("cannot read {}: {e}", path.display())))?;
    Ok(text.trim().to_string())
}

/// The server key itself, or the contents of the file it names.
fn server_key_text(text: &str) -> Result<String> {
    if decode_key(text).is_ok() {
        return Ok(text.trim().to_string());
    }
    let path = Path::new(text);
    if path.is_file() {
        return read_key_file(path);
    }
    Err(Error::Invalid(format!(
        "the server key '{}' is neither a 40-character Z85 key nor a readable file",
        text.chars().take(60).collect::<String>()
    )))
}

fn decode_key(text: &str) -> Result<Vec<u8>> {
    let key = text.trim();
    if key.len() != KEY_LENGTH || !key.chars().all(|c| Z85_ALPHABET.contains(c)) {
        return Err(Error::Invalid(format!(
            "invalid public key '{}': a CURVE key is {KEY_LENGTH} characters of Z85, got {}",
            key.chars().take(60).collect::<String>(),
            key.len()
        )));
    }
    zmq::z85_decode(key).map_err(|e| Error::Invalid(format!("invalid key: {e}")))
}

/// `endpoint` must be tcp://HOST:PORT (PORT a number).
fn check_tcp_endpoint(endpoint: &str, what: &str) -> Result<()> {
    let valid = endpoint
        .strip_prefix("tcp://")
        .and_then(|rest| rest.rsplit_once(':'))
        .is_some_and(|(host, port)| {
            !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        });
    if valid {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} '{endpoint}' is not a tcp://HOST:PORT endpoint (for example tcp://plant-pi:5555)"
        )))
    }
}

/// The change stream that goes with a request endpoint: the same host, port + 1.
fn events_endpoint_for(rpc: &str) -> String {
    match rpc.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u32>() {
            Ok(port) => format!("{host}:{}", port + 1),
            Err(_) => rpc.to_string(),
        },
        None => rpc.to_string(),
    }
}

fn is_loopback(endpoint: &str) -> bool {
    let host = endpoint
        .strip_prefix("tcp://")
        .and_then(|rest| rest.rsplit_once(':'))
        .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or_default();
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    hub: HubTable,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HubTable {
    rpc: Option<String>,
    events: Option<String>,
    server_key: Option<String>,
}

fn read_config_file() -> Result<HubTable> {
    let path = config_dir()?.join(CONFIG_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(HubTable::default()),
        Err(err) => {
            return Err(Error::Io(format!(
                "cannot read the client config {}: {err}",
                path.display()
            )))
        }
    };
    let file: ConfigFile = toml::from_str(&text)
        .map_err(|e| Error::Invalid(format!("cannot read the client config {}: {e}", path.display())))?;
    Ok(file.hub)
}

fn env_var(name: &str) -> Option<String> {
    env::var(name).ok()
}

fn first<const N: usize>(candidates: [Option<String>; N]) -> Option<String> {
    candidates.into_iter().flatten().find(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_default_to_the_next_port() {
        assert_eq!(events_endpoint_for("tcp://plant-pi:5555"), "tcp://plant-pi:5556");
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(check_tcp_endpoint("tcp://[::1]:5555", "x").is_ok());
        assert!(check_tcp_endpoint("tcp://plant-pi", "x").is_err());
        assert!(check_tcp_endpoint("ipc:///tmp/x", "x").is_err());
    }

    #[test]
    fn loopback_is_recognised() {
        assert!(is_loopback("tcp://127.0.0.1:1"));
        assert!(is_loopback("tcp://[::1]:1"));
        assert!(is_loopback("tcp://localhost:1"));
        assert!(!is_loopback("tcp://10.0.0.1:1"));
    }

    #[test]
    fn keys_must_be_z85_of_the_right_length() {
        assert_eq!(
            decode_key("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")
                .unwrap()
                .len(),
            32
        );
        assert!(decode_key("short").is_err());
        assert!(decode_key("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf\"").is_err());
    }
}

//! Finding the hub (docs/protocol.md section 1): the data dir, and the endpoints
//! a running hub announced in its `hub.json`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The environment variable naming the data dir.
pub const ENV_DATA_DIR: &str = "STATEHUB_DATA_DIR";
const APP_NAME: &str = "statehub";

/// The data dir: the explicit option, else `$STATEHUB_DATA_DIR`, else the platform's
/// user data folder (the same folder Python's platformdirs picks).
pub fn resolve_data_dir(option: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = option.filter(|dir| !dir.as_os_str().is_empty()) {
        return absolute(dir);
    }
    if let Some(dir) = env::var_os(ENV_DATA_DIR).filter(|dir| !dir.is_empty()) {
        return absolute(Path::new(&dir));
    }
    // data_local_dir, not data_dir: on Windows platformdirs uses %LOCALAPPDATA%
    // (dirs::data_dir would be the roaming folder); on Linux and macOS both agree.
    dirs::data_local_dir()
        .map(|base| base.join(APP_NAME))
        .ok_or_else(|| Error::Io("cannot find the user data folder; set STATEHUB_DATA_DIR".into()))
}

/// Like Python's `Path(p).expanduser().absolute()`: no symlink resolution.
fn absolute(path: &Path) -> Result<PathBuf> {
    let expanded = match path.strip_prefix("~") {
        Ok(rest) => dirs::home_dir()
            .ok_or_else(|| Error::Io("cannot expand '~': no home folder".into()))?
            .join(rest),
        Err(_) => path.to_path_buf(),
    };
    if expanded.is_absolute() {
        return Ok(expanded);
    }
    let cwd = env::current_dir().map_err(|e| Error::Io(format!("current folder: {e}")))?;
    Ok(cwd.join(expanded))
}

/// The contents of `hub.json`: how to reach the hub that wrote it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HubInfo {
    pub pid: u64,
    pub version: String,
    pub protocol: u32,
    pub rpc: String,
    pub events: String,
    pub started: f64,
}

/// The endpoints to connect to, and whether a hub announced them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub rpc: String,
    pub events: String,
    /// False when there was no readable `hub.json`: the hub is probably not running.
    pub announced: bool,
}

/// The files of one data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub data_dir: PathBuf,
}

impl Layout {
    pub fn new(data_dir: PathBuf) -> Layout {
        Layout { data_dir }
    }

    pub fn mirror(&self) -> PathBuf {
        self.data_dir.join("state.txt")
    }

    pub fn hub_file(&self) -> PathBuf {
        self.data_dir.join("hub.json")
    }

    fn ipc_endpoint(&self, name: &str) -> String {
        format!("ipc://{}", self.data_dir.join(format!("{name}.sock")).display())
    }

    /// The `hub.json` of this data dir, or None when missing or unreadable.
    pub fn hub_info(&self) -> Option<HubInfo> {
        let text = fs::read(self.hub_file()).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Where the hub listens: from `hub.json`, else the default ipc endpoints.
    /// Read afresh each time, since a restarted hub may have bound new tcp ports.
    pub fn endpoints(&self) -> Endpoints {
        match self.hub_info() {
            Some(info) => Endpoints {
                rpc: info.rpc,
                events: info.events,
                announced: true,
            },
            None => Endpoints {
                rpc: self.ipc_endpoint("rpc"),
                events: self.ipc_endpoint("events"),
                announced: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_option_wins_and_is_absolute() {
        let dir = resolve_data_dir(Some(Path::new("relative/dir"))).unwrap();
        assert!(dir.is_absolute());
        assert!(dir.ends_with("relative/dir"));
    }

    #[test]
    fn default_endpoints_are_ipc_in_the_data_dir() {
        let layout = Layout::new(PathBuf::from("/nonexistent/statehub-test"));
        let endpoints = layout.endpoints();
        assert_eq!(endpoints.rpc, "ipc:///nonexistent/statehub-test/rpc.sock");
        assert_eq!(endpoints.events, "ipc:///nonexistent/statehub-test/events.sock");
        assert!(!endpoints.announced);
    }

    #[test]
    fn hub_json_is_read() {
        let dir = env::temp_dir().join(format!("statehub-rs-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("hub.json"),
            r#"{"pid": 4242, "version": "0.1.0", "protocol": 1, "rpc": "tcp://127.0.0.1:5000",
                "events": "tcp://127.0.0.1:5001", "started": 1795000000.25, "extra": 1}"#,
        )
        .unwrap();
        let endpoints = Layout::new(dir.clone()).endpoints();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(endpoints.rpc, "tcp://127.0.0.1:5000");
        assert_eq!(endpoints.events, "tcp://127.0.0.1:5001");
        assert!(endpoints.announced);
    }
}

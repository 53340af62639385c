//! `react --state FILE`: where a consumer stands in the feed, kept across its restarts.
//!
//! The file holds `{"epoch": "...", "rev": N}`: every change up to revision N of
//! that store has been handled. It is replaced atomically (a temp file in the
//! same folder, fsync, rename, fsync the folder), so a kill at any moment
//! leaves the old cursor or the new one, never half a file.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use statehub::{Cursor, Error};

pub struct CursorFile {
    path: PathBuf,
    written: Option<Cursor>,
}

impl CursorFile {
    /// The cursor stored in `path` (None when there is no file yet); a file that
    /// is not a cursor is refused with what to do.
    pub fn open(path: PathBuf) -> Result<(CursorFile, Option<Cursor>), Error> {
        let stored = match fs::read_to_string(&path) {
            Ok(text) => Some(parse(&text).ok_or_else(|| {
                Error::Invalid(format!(
                    "{} is not a react state file (expected {{\"epoch\": \"...\", \"rev\": N}}); \
                     move it away to start from the current state",
                    path.display()
                ))
            })?),
            Err(err) if err.kind() == ErrorKind::NotFound => None,
            Err(err) => return Err(Error::Io(format!("cannot read {}: {err}", path.display()))),
        };
        let file = CursorFile {
            path,
            written: stored.clone(),
        };
        Ok((file, stored))
    }

    /// Store `cursor` if it moved since the last write.
    pub fn save(&mut self, cursor: Option<Cursor>) -> Result<(), Error> {
        let Some(cursor) = cursor else {
            return Ok(());
        };
        if self.written.as_ref() == Some(&cursor) {
            return Ok(());
        }
        let text = json!({"epoch": cursor.0, "rev": cursor.1}).to_string();
        write_atomically(&self.path, text.as_bytes()).map_err(|e| {
            Error::Io(format!(
                "cannot write the state file {}: {e}",
                self.path.display()
            ))
        })?;
        self.written = Some(cursor);
        Ok(())
    }
}

fn parse(text: &str) -> Option<Cursor> {
    let value: Value = serde_json::from_str(text).ok()?;
    Some((value["epoch"].as_str()?.to_string(), value["rev"].as_u64()?))
}

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = File::create(&temp)?;
    file.write_all(data)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path)?;
    // The rename is durable only once the folder is (POSIX; Windows has no folder handle to sync).
    if cfg!(unix) {
        File::open(&folder)?.sync_all()?;
    }
    Ok(())
}

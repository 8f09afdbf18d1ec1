//! `.kompox/state.json` next to a compose file: which namespace each app of that directory
//! lives in (written by `apply`, read by every app command to find the app).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::CliError;

/// `.kompox/state.json`: which namespace each app of this directory lives in.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// `<workspace>/<app>` → where it lives.
    #[serde(default)]
    pub apps: BTreeMap<String, AppState>,
}

/// One app's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppState {
    pub namespace: String,
    pub app_id: String,
    pub name: String,
    pub workspace: String,
}

/// The state file for a compose file.
#[must_use]
pub fn state_path(compose: &Path) -> PathBuf {
    compose
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
        .join(".kompox/state.json")
}

/// Reads the state file (absent: empty).
///
/// # Errors
///
/// [`CliError::Invalid`] when it exists but does not parse.
pub fn read_state(path: &Path) -> Result<State, CliError> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map_err(|e| CliError::Invalid(vec![format!("{}: {e}", path.display())])),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(CliError::Io(format!("reading {}: {e}", path.display()))),
    }
}

pub fn write_state(path: &Path, state: &State) -> Result<(), CliError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)
            .map_err(|e| CliError::Io(format!("creating {}: {e}", d.display())))?;
    }
    let text = serde_json::to_string_pretty(state)
        .map_err(|e| CliError::Io(format!("encoding state: {e}")))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| CliError::Io(format!("writing {}: {e}", path.display())))
}

pub fn key(workspace: &str, app: &str) -> String {
    format!("{workspace}/{app}")
}

/// The namespace recorded for `app`, if any.
///
/// # Errors
///
/// See [`read_state`].
pub fn recorded(compose: &Path, workspace: &str, app: &str) -> Result<Option<AppState>, CliError> {
    Ok(read_state(&state_path(compose))?
        .apps
        .get(&key(workspace, app))
        .cloned())
}

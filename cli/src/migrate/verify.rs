//! Verification of a moved disk: the file tree of the source volume and of the target volume,
//! compared entry by entry (path, kind, permission bits, size, then the bytes of every file
//! and the target of every symlink).
//!
//! The trees are read from the CSI driver's data directory (`--verify-data-dir`, default
//! `$KOMPOX_CSI_DATA_DIR`: `<dir>/volumes/<handle>`), which is how the local clusters' mock
//! driver keeps its volumes and where no node runs processes. Both sides are read here and
//! compared as they stream (no digest is computed: the comparison runs at the speed of the
//! reads). Only counts and paths are printed; contents never leave this process.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use crate::CliError;

/// One entry of a tree: kind, permission bits, size (a file's) and a symlink's target.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    size: u64,
    link: Option<PathBuf>,
}

/// A volume's file tree, by path relative to its root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    root: PathBuf,
    entries: BTreeMap<String, Entry>,
}

impl Tree {
    /// Regular files in the tree.
    #[must_use]
    pub fn files(&self) -> usize {
        self.entries.values().filter(|e| e.kind == "file").count()
    }

    /// Bytes of the regular files.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.entries
            .values()
            .filter(|e| e.kind == "file")
            .map(|e| e.size)
            .sum()
    }

    /// The paths that differ between `self` and `other` (missing on one side, another kind,
    /// mode, size, symlink target, or other bytes), sorted.
    ///
    /// # Errors
    ///
    /// [`CliError::Io`] naming a file that could not be read.
    pub fn differences(&self, other: &Tree) -> Result<Vec<String>, CliError> {
        let mut out: Vec<String> = other
            .entries
            .keys()
            .filter(|p| !self.entries.contains_key(*p))
            .cloned()
            .collect();
        for (p, e) in &self.entries {
            let same = match other.entries.get(p) {
                Some(o) if o == e && e.kind == "file" => {
                    same_bytes(&self.root.join(p), &other.root.join(p))?
                }
                Some(o) => o == e,
                None => false,
            };
            if !same {
                out.push(p.clone());
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// Whether files `a` and `b` hold the same bytes, read side by side in 1 MiB chunks.
fn same_bytes(a: &Path, b: &Path) -> Result<bool, CliError> {
    let open = |p: &Path| {
        std::fs::File::open(p).map_err(|e| CliError::Io(format!("reading {}: {e}", p.display())))
    };
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba)
            .map_err(|e| CliError::Io(format!("reading {}: {e}", a.display())))?;
        let nb = read_full(&mut fb, &mut bb)
            .map_err(|e| CliError::Io(format!("reading {}: {e}", b.display())))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Fills `buf` as far as the file goes; the bytes read (fewer only at its end).
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The directory of volume `handle` under the driver's data directory `data_dir`; an error
/// when the handle is not one plain path element (it comes from the API).
///
/// # Errors
///
/// [`CliError::Invalid`] naming the handle.
pub fn volume_dir(data_dir: &Path, handle: &str) -> Result<PathBuf, CliError> {
    let p = Path::new(handle);
    let plain = !handle.is_empty()
        && p.components().count() == 1
        && matches!(p.components().next(), Some(Component::Normal(_)));
    if !plain {
        return Err(CliError::Invalid(vec![format!(
            "volume handle {handle:?} is not a single path element"
        )]));
    }
    Ok(data_dir.join("volumes").join(handle))
}

/// Reads the tree under `root` (not following symlinks).
///
/// # Errors
///
/// [`CliError::Io`] naming the path that could not be read.
pub fn read_tree(root: &Path) -> Result<Tree, CliError> {
    let io = |p: &Path, e: std::io::Error| CliError::Io(format!("reading {}: {e}", p.display()));
    let meta = std::fs::symlink_metadata(root).map_err(|e| io(root, e))?;
    if !meta.is_dir() {
        return Err(CliError::Io(format!(
            "{}: not a directory (no such volume in the driver's data?)",
            root.display()
        )));
    }
    let mut tree = Tree {
        root: root.to_path_buf(),
        entries: BTreeMap::new(),
    };
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let path = entry.map_err(|e| io(&dir, e))?.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
            let rel = path
                .strip_prefix(root)
                .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?
                .to_string_lossy()
                .into_owned();
            let mode = meta.permissions().mode() & 0o7777;
            let (kind, size, link) = if meta.is_dir() {
                todo.push(path.clone());
                ("dir", 0, None)
            } else if meta.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
                ("symlink", 0, Some(target))
            } else if meta.is_file() {
                ("file", meta.len(), None)
            } else {
                ("other", 0, None)
            };
            tree.entries.insert(
                rel,
                Entry {
                    kind,
                    mode,
                    size,
                    link,
                },
            );
        }
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "kompox-verify-{name}-{}-{:x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("nested")).unwrap_or_default();
        d
    }

    fn write(root: &Path, rel: &str, bytes: &[u8]) {
        std::fs::write(root.join(rel), bytes).unwrap_or_default();
    }

    /// Two trees made alike, then `change` applied to the second: the first tree and the
    /// differences.
    fn compare(change: impl Fn(&Path)) -> (Tree, Vec<String>) {
        let (a, b) = (temp("a"), temp("b"));
        for root in [&a, &b] {
            write(root, "data.bin", &[7u8; 5000]);
            write(root, "nested/notes.txt", b"hello");
        }
        change(&b);
        let ta = read_tree(&a).unwrap_or_default();
        let tb = read_tree(&b).unwrap_or_default();
        let diff = ta
            .differences(&tb)
            .unwrap_or_else(|e| vec![format!("error: {e}")]);
        let _ = (std::fs::remove_dir_all(&a), std::fs::remove_dir_all(&b));
        (ta, diff)
    }

    #[rstest]
    #[case::identical(|_: &Path| {}, &[])]
    #[case::one_byte_changed(|b: &Path| { let mut v = vec![7u8; 5000]; v[4321] = 8; write(b, "data.bin", &v) }, &["data.bin"])]
    #[case::another_size(|b: &Path| write(b, "data.bin", &[7u8; 5001]), &["data.bin"])]
    #[case::a_symlink_instead(|b: &Path| { let _ = std::fs::remove_file(b.join("nested/notes.txt")); let _ = std::os::unix::fs::symlink("x", b.join("nested/notes.txt")); }, &["nested/notes.txt"])]
    #[case::a_file_missing(|b: &Path| { let _ = std::fs::remove_file(b.join("nested/notes.txt")); }, &["nested/notes.txt"])]
    #[case::an_extra_file(|b: &Path| write(b, "extra", b""), &["extra"])]
    #[case::another_mode(|b: &Path| { let _ = std::fs::set_permissions(b.join("data.bin"), std::fs::Permissions::from_mode(0o600)); }, &["data.bin"])]
    fn tree_differences(#[case] change: impl Fn(&Path), #[case] want: &[&str]) {
        let (tree, diff) = compare(change);
        assert_eq!(diff, want);
        assert_eq!((tree.files(), tree.bytes()), (2, 5005));
    }

    #[rstest]
    #[case::plain("12", true)]
    #[case::parent("..", false)]
    #[case::nested("a/b", false)]
    #[case::absolute("/etc", false)]
    #[case::empty("", false)]
    fn volume_dirs(#[case] handle: &str, #[case] ok: bool) {
        assert_eq!(volume_dir(Path::new("/d"), handle).is_ok(), ok);
    }

    #[test]
    fn a_missing_volume_is_an_error_naming_it() {
        let err = read_tree(Path::new("/nonexistent/kompox/volume"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/kompox/volume"), "{err}");
    }
}

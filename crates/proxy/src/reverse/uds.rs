//! Binding the Unix socket safely: refuse when a live process already listens on the path,
//! replace a stale socket file, never delete anything that is not a socket, set the file mode,
//! and remove the file again on shutdown (only if it is still ours).

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use super::ListenerError;

/// Removes the socket file when dropped, if the file is still the one we created.
pub(crate) struct SocketFile {
    path: PathBuf,
    inode: u64,
}

impl SocketFile {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), "could not remove agent socket: {e}");
            }
        }
    }
}

pub(crate) fn bind_uds(
    path: &Path,
    mode: u32,
) -> Result<(UnixListener, SocketFile), ListenerError> {
    if let Some(problem) = socket_directory_problem(path) {
        return Err(ListenerError::SocketDirectory {
            path: path.to_path_buf(),
            problem,
        });
    }
    remove_stale_socket(path)?;
    let listener = UnixListener::bind(path).map_err(|source| ListenerError::Bind {
        address: path.display().to_string(),
        reason: source,
    })?;
    let io_error = |source| ListenerError::Bind {
        address: path.display().to_string(),
        reason: source,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_error)?;
    let inode = std::fs::symlink_metadata(path).map_err(io_error)?.ino();
    Ok((
        listener,
        SocketFile {
            path: path.to_path_buf(),
            inode,
        },
    ))
}

/// What keeps a socket from being created at `path` because of its directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketDirectoryProblem {
    /// The directory does not exist.
    #[error(
        "the directory {0} does not exist; create it (`mkdir -p {0}`, owned by the user \
         sentinel runs as) or set `path` to a socket in an existing directory"
    )]
    Missing(PathBuf),
    /// The directory exists but this process cannot create files in it.
    #[error(
        "the directory {0} is not writable by this user; make it writable for the user \
         sentinel runs as or set `path` to a socket in a directory it can write"
    )]
    NotWritable(PathBuf),
}

/// Checks the directory a Unix socket at `path` would be created in. `sentinel check` warns
/// with it; binding refuses with it.
pub fn socket_directory_problem(path: &Path) -> Option<SocketDirectoryProblem> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Some(SocketDirectoryProblem::Missing(dir.to_path_buf()));
    }
    let Ok(dir_c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return None;
    };
    // SAFETY: `dir_c` is a valid NUL-terminated string that outlives the call.
    let writable = unsafe { libc::access(dir_c.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
    (!writable).then(|| SocketDirectoryProblem::NotWritable(dir.to_path_buf()))
}

fn remove_stale_socket(path: &Path) -> Result<(), ListenerError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ListenerError::Bind {
                address: path.display().to_string(),
                reason: source,
            })
        }
    };
    if !metadata.file_type().is_socket() {
        return Err(ListenerError::NotASocket(path.to_path_buf()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(ListenerError::AlreadyListening(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing stale agent socket");
            std::fs::remove_file(path).map_err(|source| ListenerError::Bind {
                address: path.display().to_string(),
                reason: source,
            })
        }
        Err(source) => Err(ListenerError::Bind {
            address: path.display().to_string(),
            reason: source,
        }),
    }
}

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
    remove_stale_socket(path)?;
    let listener = UnixListener::bind(path).map_err(|source| ListenerError::Bind {
        address: path.display().to_string(),
        source,
    })?;
    let io_error = |source| ListenerError::Bind {
        address: path.display().to_string(),
        source,
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

fn remove_stale_socket(path: &Path) -> Result<(), ListenerError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ListenerError::Bind {
                address: path.display().to_string(),
                source,
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
                source,
            })
        }
        Err(source) => Err(ListenerError::Bind {
            address: path.display().to_string(),
            source,
        }),
    }
}

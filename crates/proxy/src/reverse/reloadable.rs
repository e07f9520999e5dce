//! A setting swapped whole by a configuration reload while the listener runs. Each handshake
//! takes the value in force when it starts, so connections already up are never touched.

use std::sync::{Arc, RwLock};

/// The current value of a reloadable setting.
#[derive(Debug)]
pub struct Reloadable<T> {
    current: RwLock<Arc<T>>,
}

impl<T> Reloadable<T> {
    pub(crate) fn new(value: T) -> Arc<Reloadable<T>> {
        Arc::new(Reloadable {
            current: RwLock::new(Arc::new(value)),
        })
    }

    /// The value new handshakes use.
    pub fn current(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Makes new handshakes use `value`.
    pub fn replace(&self, value: T) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
    }
}

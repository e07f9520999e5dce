//! Which local processes may use the Unix socket, by the credentials the kernel reports for
//! the peer (`SO_PEERCRED`): `allowed-uids` and `allowed-gids`. The file mode of the socket is
//! the first gate; this is the second, and it does not depend on anything the peer sends.

use sentinel_agent_protocol::RegistrationErrorCode;

use super::Rejection;
use crate::transport::{PeerCredentials, Transport};

/// The uid/gid allowlist of the Unix socket. With neither list set, every peer that can open
/// the socket may register; with one or both set, a peer is allowed when its uid is in
/// `allowed-uids` **or** its gid is in `allowed-gids`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerFilter {
    /// Effective user ids allowed to register over the Unix socket.
    pub allowed_uids: Option<Vec<u32>>,
    /// Effective (primary) group ids allowed to register over the Unix socket.
    pub allowed_gids: Option<Vec<u32>>,
}

impl PeerFilter {
    /// Whether any list is configured.
    pub fn is_active(&self) -> bool {
        self.allowed_uids.is_some() || self.allowed_gids.is_some()
    }

    /// `Ok` if the peer may go on to register; otherwise the `not_allowed` rejection to send.
    /// Only Unix socket peers are checked; a Unix peer whose credentials could not be read is
    /// refused when a list is configured.
    pub(crate) fn check(
        &self,
        transport: Transport,
        credentials: Option<&PeerCredentials>,
    ) -> Result<(), Rejection> {
        if transport != Transport::Uds || !self.is_active() {
            return Ok(());
        }
        let Some(peer) = credentials else {
            return Err(Rejection {
                code: RegistrationErrorCode::NotAllowed,
                message:
                    "the peer's credentials could not be read; only allowed uids/gids may register"
                        .into(),
            });
        };
        let uid_ok = self
            .allowed_uids
            .as_ref()
            .is_some_and(|uids| uids.contains(&peer.uid));
        let gid_ok = self
            .allowed_gids
            .as_ref()
            .is_some_and(|gids| gids.contains(&peer.gid));
        if uid_ok || gid_ok {
            Ok(())
        } else {
            Err(Rejection {
                code: RegistrationErrorCode::NotAllowed,
                message: format!(
                    "peer uid {} gid {} not allowed to register on this socket",
                    peer.uid, peer.gid
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> PeerCredentials {
        PeerCredentials {
            uid,
            gid,
            pid: None,
        }
    }

    #[test]
    fn uid_or_gid_lets_a_peer_in() {
        let filter = PeerFilter {
            allowed_uids: Some(vec![1000]),
            allowed_gids: Some(vec![50]),
        };
        assert!(filter.check(Transport::Uds, Some(&peer(1000, 1))).is_ok());
        assert!(filter.check(Transport::Uds, Some(&peer(7, 50))).is_ok());
        let refused = filter.check(Transport::Uds, Some(&peer(7, 8))).unwrap_err();
        assert_eq!(refused.code, RegistrationErrorCode::NotAllowed);
        assert!(
            refused.message.contains("peer uid 7 gid 8"),
            "{}",
            refused.message
        );
        assert!(
            filter.check(Transport::Uds, None).is_err(),
            "unknown peers fail closed"
        );
        assert!(
            filter.check(Transport::Tcp, None).is_ok(),
            "TCP peers are not checked"
        );
    }

    #[test]
    fn no_lists_allow_everyone() {
        let filter = PeerFilter::default();
        assert!(!filter.is_active());
        assert!(filter.check(Transport::Uds, Some(&peer(7, 8))).is_ok());
        assert!(filter.check(Transport::Uds, None).is_ok());
    }
}

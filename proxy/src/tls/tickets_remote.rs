//! A remote-mode proxy's ticket keys (`[hsm] mode = "remote"`): released by the HSM nodes
//! (`POST /v1/tls/ticket-keys`), RSA-OAEP-encrypted to a key the proxy makes at start, and
//! held in memory as aws-lc-rs AES-256-GCM keys, so that sealing and opening tickets needs no
//! node.

use std::sync::Arc;

use super::{Error, TicketCipher, TicketKey};

/// A remote proxy's ticket-key source: the nodes, and the RSA key (3072 bits, made at start,
/// never stored) they encrypt the released keys to.
pub(super) struct RemoteTickets {
    remote: Arc<crate::remote::Remote>,
    recipient: aws_lc_rs::rsa::OaepPrivateDecryptingKey,
    spki: Vec<u8>,
}

impl RemoteTickets {
    pub(super) fn new(remote: Arc<crate::remote::Remote>) -> Result<Self, Error> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::{KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey};
        let err = |what: &str| Error::Tickets {
            reason: format!("the ticket-key transport key: {what}"),
        };
        let key = PrivateDecryptingKey::generate(KeySize::Rsa3072).map_err(|_| err("generate"))?;
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| err("encode"))?
            .as_ref()
            .to_vec();
        let recipient = OaepPrivateDecryptingKey::new(key).map_err(|_| err("OAEP"))?;
        Ok(RemoteTickets {
            remote,
            recipient,
            spki,
        })
    }

    /// Asks the nodes for the keys around now and unwraps them.
    pub(super) fn fetch(&self, rotation_s: u64) -> Result<Vec<TicketKey>, Error> {
        use aws_lc_rs::aead::{LessSafeKey, UnboundKey, AES_256_GCM};
        use aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256;
        let released = self
            .remote
            .block_on(self.remote.hsm().ticket_keys(rotation_s, &self.spki))
            .map_err(|reason| Error::Tickets {
                reason: format!("fetching ticket keys from the HSM nodes: {reason}"),
            })?;
        let mut keys = Vec::new();
        for k in released {
            let mut value = zeroize::Zeroizing::new(vec![0u8; self.recipient.min_output_size()]);
            let n = self
                .recipient
                .decrypt(
                    &OAEP_SHA256_MGF1SHA256,
                    &k.wrapped,
                    &mut value,
                    Some(&k.name),
                )
                .map_err(|_| Error::Tickets {
                    reason: format!("ticket key of period {} does not unwrap", k.period),
                })?
                .len();
            let key = UnboundKey::new(&AES_256_GCM, &value[..n]).map_err(|_| Error::Tickets {
                reason: format!("ticket key of period {} is not an AES-256 key", k.period),
            })?;
            keys.push(TicketKey {
                period: k.period,
                name: k.name,
                cipher: TicketCipher::Local(Arc::new(LessSafeKey::new(key))),
            });
        }
        Ok(keys)
    }
}

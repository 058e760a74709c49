//! Importing a private key without sending it in plaintext: PKCS#11 `CKM_RSA_AES_KEY_WRAP`
//! (`rsa-aes`) under a one-use transport key generated on the HSM.
//!
//! [`Client::import_private_pkcs8`] generates an RSA-2048 transport pair on the node (the
//! private half may only unwrap and is not extractable), wraps the PKCS#8 key here under its
//! public half, unwraps it on the node, and destroys both transport keys, also when the
//! unwrap fails.

use zeroize::Zeroizing;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::types::CallOptions;
use crate::{Key, KeyTemplate};

impl Client {
    /// Imports a PKCS#8 private key (`der`) with the attributes of `template`, wrapped with
    /// `rsa-aes` under a transport key generated on the node for this call and destroyed
    /// after it. The key never crosses the API in plaintext.
    ///
    /// Errors: [`Error::TransportKey`] when the transport key cannot be made or destroyed,
    /// [`Error::LocalWrap`] when wrapping here fails, and the API's error when the node
    /// refuses the key (for example an unsupported key type).
    pub async fn import_private_pkcs8(&self, der: &[u8], template: &KeyTemplate) -> Result<Key> {
        let mut rnd = [0u8; 8];
        aws_lc_rs::rand::fill(&mut rnd).map_err(|_| Error::LocalWrap("random generator failed"))?;
        let label = format!("import-transport-{}", hex::encode(rnd));
        let pair = self
            .generate_pair(
                "rsa-2048",
                &KeyTemplate::new(&label)
                    .with("unwrap", true)
                    .with("extractable", false),
                &KeyTemplate::new(&label).with("wrap", true),
                CallOptions::default(),
            )
            .await
            .map_err(|e| Error::TransportKey {
                action: "generate",
                source: Box::new(e),
            })?;
        let result = async {
            let spki = self.public_key(pair.public.handle).await?.der;
            let wrapped = rsa_aes_wrap(&spki, der)?;
            self.unwrap(
                pair.private.handle,
                "rsa-aes",
                &wrapped,
                None,
                template,
                CallOptions::default(),
            )
            .await
        }
        .await;
        let d1 = self.destroy(pair.private.handle).await;
        let d2 = self.destroy(pair.public.handle).await;
        let k = result?;
        d1.and(d2).map_err(|e| Error::TransportKey {
            action: "destroy",
            source: Box::new(e),
        })?;
        Ok(k)
    }
}

/// PKCS#11 CKM_RSA_AES_KEY_WRAP (PKCS#11 v3.0 §2.1.21): RSA-OAEP-SHA-256 of a fresh AES-256
/// key ‖ AES-KWP (RFC 5649) of `target`, under the RSA public key `spki` (DER).
fn rsa_aes_wrap(spki: &[u8], target: &[u8]) -> Result<Vec<u8>> {
    use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded, AES_256};
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
    let mut aes = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(aes.as_mut()).map_err(|_| Error::LocalWrap("random generator failed"))?;
    let rsa = OaepPublicEncryptingKey::new(
        PublicEncryptingKey::from_der(spki)
            .map_err(|_| Error::LocalWrap("bad transport public key"))?,
    )
    .map_err(|_| Error::LocalWrap("bad transport public key"))?;
    let mut out = vec![0u8; rsa.ciphertext_size()];
    let n = rsa
        .encrypt(&OAEP_SHA256_MGF1SHA256, aes.as_ref(), &mut out, None)
        .map_err(|_| Error::LocalWrap("rsa-oaep encryption failed"))?
        .len();
    out.truncate(n);
    let kek = AesKek::new(&AES_256, aes.as_ref()).map_err(|_| Error::LocalWrap("aes kek"))?;
    let mut kwp = vec![0u8; target.len().div_ceil(8) * 8 + 8];
    let m = kek
        .wrap_with_padding(target, &mut kwp)
        .map_err(|_| Error::LocalWrap("aes-kwp wrap failed"))?
        .len();
    kwp.truncate(m);
    out.extend_from_slice(&kwp);
    Ok(out)
}

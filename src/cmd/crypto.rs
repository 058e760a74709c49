//! `keyward crypto ...`: sign, verify, encrypt, decrypt and MAC with keys on the nodes given
//! by `--server`; a key is named by handle or label.

use std::path::Path;

use anyhow::{Context, Result};
use keyward_client::{
    Client, DecryptItem, EncryptItem, RewrapItem, SignItem, VerifyItem, Versioned,
};

use super::{key_handle, read_input, write_output};
use crate::cli::{Conn, CryptoCommand};
use crate::output;

/// `keyward crypto ...`. Returns whether a verification succeeded (always true otherwise).
pub(crate) fn run(conn: &Conn, cmd: CryptoCommand) -> Result<bool> {
    super::client_runtime()?.block_on(async {
        let remote = conn.connect().await?;
        let r = crypto_inner(&remote.client, conn.user.as_deref(), cmd).await;
        remote.finish(r).await
    })
}

/// A signature, MAC or ciphertext as the crypto commands read it: the text `kw:vN:BASE64`
/// (surrounding white space ignored), else raw bytes made by `key_version` (default 1).
fn versioned_input(bytes: Vec<u8>, key_version: Option<u32>) -> Result<Versioned> {
    if bytes.starts_with(keyward_client::VERSIONED_PREFIX.as_bytes()) {
        if let Some(v) = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| Versioned::from_text(t.trim()).ok())
        {
            if key_version.is_some_and(|k| k != v.key_version) {
                anyhow::bail!(
                    "--key-version {} differs from the input's kw:v{}: prefix",
                    key_version.unwrap_or_default(),
                    v.key_version
                );
            }
            return Ok(v);
        }
    }
    Ok(Versioned {
        key_version: key_version.unwrap_or(1),
        bytes,
    })
}

/// Writes a signature, MAC or ciphertext: raw when key version 1 made it (what these commands
/// always wrote before keys had versions), else `kw:vN:BASE64` and a newline.
fn write_versioned(out: Option<&Path>, v: &Versioned) -> Result<()> {
    if v.key_version == 1 {
        write_output(out, &v.bytes)
    } else {
        write_output(out, format!("{}\n", v.to_text()).as_bytes())
    }
}

fn read_aad(path: Option<&Path>) -> Result<Option<Vec<u8>>> {
    path.map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()
}

async fn crypto_inner(client: &Client, me: Option<&str>, cmd: CryptoCommand) -> Result<bool> {
    // The classes a key used by each operation may have (the private or secret half first).
    let using = ["private", "secret"];
    let checking = ["public", "secret"];
    match cmd {
        CryptoCommand::EncryptFile(a) => super::envelope::encrypt_file(client, me, a).await?,
        CryptoCommand::DecryptFile(a) => super::envelope::decrypt_file(client, me, a).await?,
        CryptoCommand::Sign { a, out } => {
            let data = read_input(a.input.as_deref())?;
            let sig = client
                .sign_versioned(&SignItem::message(
                    key_handle(client, me, &a.key, &using).await?,
                    a.mechanism,
                    data,
                ))
                .await?;
            write_versioned(out.as_deref(), &sig)?;
        }
        CryptoCommand::Hmac { a, out } => {
            let data = read_input(a.input.as_deref())?;
            let mac = client
                .hmac_versioned(&SignItem::message(
                    key_handle(client, me, &a.key, &["secret"]).await?,
                    a.mechanism,
                    data,
                ))
                .await?;
            write_versioned(out.as_deref(), &mac)?;
        }
        CryptoCommand::Verify {
            a,
            signature,
            key_version,
        } => {
            let data = read_input(a.input.as_deref())?;
            let sig = std::fs::read(&signature)
                .with_context(|| format!("cannot read {}", signature.display()))?;
            let sig = versioned_input(sig, key_version)?;
            let ok = client
                .verify(&VerifyItem::versioned(
                    key_handle(client, me, &a.key, &checking).await?,
                    a.mechanism,
                    data,
                    &sig,
                ))
                .await?;
            println!("{}", if ok { "valid" } else { "invalid" });
            return Ok(ok);
        }
        CryptoCommand::Encrypt { a, out, aad_file } => {
            let key = key_handle(client, me, &a.key, &checking).await?;
            let mut item = EncryptItem::new(key, a.mechanism, read_input(a.input.as_deref())?);
            item.aad = read_aad(aad_file.as_deref())?;
            let ct = client.encrypt_versioned(&item).await?;
            write_versioned(out.as_deref(), &ct)?;
        }
        CryptoCommand::Decrypt {
            a,
            out,
            aad_file,
            key_version,
        } => {
            let key = key_handle(client, me, &a.key, &using).await?;
            let ct = versioned_input(read_input(a.input.as_deref())?, key_version)?;
            let mut item = DecryptItem::versioned(key, a.mechanism, &ct);
            item.aad = read_aad(aad_file.as_deref())?;
            let pt = zeroize::Zeroizing::new(client.decrypt(&item).await?);
            write_output(out.as_deref(), &pt)?;
        }
        CryptoCommand::Rewrap {
            a,
            out,
            aad_file,
            key_version,
            json,
        } => {
            let key = key_handle(client, me, &a.key, &["secret", "private"]).await?;
            let ct = versioned_input(read_input(a.input.as_deref())?, key_version)?;
            let mut item = RewrapItem::new(key, a.mechanism, ct);
            item.aad = read_aad(aad_file.as_deref())?;
            let new = client.rewrap(&item).await?;
            if json {
                output::json_sorted(&keyward_api::Ciphertext {
                    ciphertext: keyward_api::Base64::encode(&new.bytes),
                    key_version: new.key_version,
                    versioned: Some(keyward_api::VersionedBase64::new(
                        new.key_version,
                        &new.bytes,
                    )),
                })?;
            } else {
                write_versioned(out.as_deref(), &new)?;
            }
        }
    }
    Ok(true)
}

//! `keyward crypto ...`: sign, verify, encrypt, decrypt and MAC with keys on the nodes given
//! by `--server`; a key is named by handle or label.

use std::path::Path;

use anyhow::{bail, Context, Result};
use keyward_client::{Client, DecryptItem, EncryptItem, Key, KeyFilter, SignItem, VerifyItem};

use super::{read_input, write_output};
use crate::cli::{Conn, CryptoCommand};

/// `keyward crypto ...`. Returns whether a verification succeeded (always true otherwise).
pub(crate) fn run(conn: &Conn, cmd: CryptoCommand) -> Result<bool> {
    super::client_runtime()?.block_on(async {
        let remote = conn.connect().await?;
        let r = crypto_inner(&remote.client, conn.user.as_deref(), cmd).await;
        remote.finish(r).await
    })
}

/// The handle `key` names: a number is a handle; anything else a label, looked up among the
/// keys of `classes` that `me` owns, else among those shared with the caller.
async fn key_handle(client: &Client, me: Option<&str>, key: &str, classes: &[&str]) -> Result<u64> {
    if let Ok(h) = key.parse::<u64>() {
        return Ok(h);
    }
    let mut found = Vec::new();
    for class in classes {
        let page = client
            .list_keys(&KeyFilter {
                label: Some(key.to_owned()),
                class: Some((*class).to_owned()),
                limit: Some(1000),
                ..KeyFilter::default()
            })
            .await?;
        found.extend(page.keys);
    }
    let own: Vec<&Key> = found
        .iter()
        .filter(|k| Some(k.owner.as_str()) == me)
        .collect();
    match (own.as_slice(), found.as_slice()) {
        ([one], _) => Ok(one.handle),
        ([], [one]) => Ok(one.handle),
        ([], []) => bail!(
            "no {} key labelled {key:?} that you own or that is shared with you",
            classes.join(" or ")
        ),
        _ => bail!(
            "the label {key:?} names {} keys ({}); use a handle",
            found.len(),
            found
                .iter()
                .map(|k| format!("{} {} of {}", k.handle, k.class, k.owner))
                .collect::<Vec<_>>()
                .join(", ")
        ),
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
        CryptoCommand::Sign { a, out } => {
            let data = read_input(a.input.as_deref())?;
            let sig = client
                .sign(&SignItem::message(
                    key_handle(client, me, &a.key, &using).await?,
                    a.mechanism,
                    data,
                ))
                .await?;
            write_output(out.as_deref(), &sig)?;
        }
        CryptoCommand::Hmac { a, out } => {
            let data = read_input(a.input.as_deref())?;
            let mac = client
                .hmac(&SignItem::message(
                    key_handle(client, me, &a.key, &["secret"]).await?,
                    a.mechanism,
                    data,
                ))
                .await?;
            write_output(out.as_deref(), &mac)?;
        }
        CryptoCommand::Verify { a, signature } => {
            let data = read_input(a.input.as_deref())?;
            let sig = std::fs::read(&signature)
                .with_context(|| format!("cannot read {}", signature.display()))?;
            let ok = client
                .verify(&VerifyItem::message(
                    key_handle(client, me, &a.key, &checking).await?,
                    a.mechanism,
                    data,
                    sig,
                ))
                .await?;
            println!("{}", if ok { "valid" } else { "invalid" });
            return Ok(ok);
        }
        CryptoCommand::Encrypt { a, out, aad_file } => {
            let key = key_handle(client, me, &a.key, &checking).await?;
            let mut item = EncryptItem::new(key, a.mechanism, read_input(a.input.as_deref())?);
            item.aad = read_aad(aad_file.as_deref())?;
            let ct = client.encrypt(&item).await?;
            write_output(out.as_deref(), &ct)?;
        }
        CryptoCommand::Decrypt { a, out, aad_file } => {
            let key = key_handle(client, me, &a.key, &using).await?;
            let mut item = DecryptItem::new(key, a.mechanism, read_input(a.input.as_deref())?);
            item.aad = read_aad(aad_file.as_deref())?;
            let pt = zeroize::Zeroizing::new(client.decrypt(&item).await?);
            write_output(out.as_deref(), &pt)?;
        }
    }
    Ok(true)
}

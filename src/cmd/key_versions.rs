//! `keyward key show|rotate|config|trim`: a key's versions (Vault transit style) on the nodes
//! given by `--server`; a key is named by handle or label.

use anyhow::Result;
use keyward_client::{CallOptions, Client, Key, KeyConfigRequest};

use super::key_handle;
use crate::output;

/// Versions are managed on a secret key or on the private key of a pair.
const MANAGED: [&str; 2] = ["private", "secret"];

/// Prints a key after a version change: JSON, or one line with its versions.
fn print_versions(k: &Key, json: bool, what: &str) -> Result<()> {
    if json {
        return output::json_sorted(k);
    }
    println!(
        "{what} {} key {:?} (handle {}): latest version {}, min_decryption_version {}, min_encryption_version {}, versions held {} to {}",
        k.spec,
        k.attributes.label,
        k.handle,
        k.latest_version,
        k.min_decryption_version,
        k.min_encryption_version,
        k.min_available_version,
        k.latest_version
    );
    Ok(())
}

/// `key show KEY`: the key object as the API describes it.
pub(crate) async fn show(client: &Client, me: Option<&str>, key: &str, json: bool) -> Result<()> {
    // A pair's halves share their label: the private half answers for a label.
    let handle = match key_handle(client, me, key, &MANAGED).await {
        Ok(h) => h,
        Err(_) => key_handle(client, me, key, &["public"]).await?,
    };
    let k = client.get_key(handle).await?;
    if json {
        return output::json_sorted(&k);
    }
    let rows = [
        ("handle", k.handle.to_string()),
        ("label", k.attributes.label.clone()),
        ("class", k.class.to_string()),
        ("type", k.spec.to_string()),
        (
            "linked",
            k.linked_handle.map(|h| h.to_string()).unwrap_or_default(),
        ),
        ("owner", k.owner.clone()),
        ("shared with", k.shared_with.join(",")),
        ("attributes", output::KeyRow::new(&k)?.flags.join(",")),
        ("check value", k.attributes.check_value.clone()),
        ("latest version", k.latest_version.to_string()),
        (
            "min decryption version",
            k.min_decryption_version.to_string(),
        ),
        (
            "min encryption version",
            k.min_encryption_version.to_string(),
        ),
        ("min available version", k.min_available_version.to_string()),
    ];
    output::table(
        &["FIELD", "VALUE"],
        rows.into_iter().map(|(f, v)| [f.to_owned(), v]),
    );
    Ok(())
}

/// `key rotate KEY`.
pub(crate) async fn rotate(client: &Client, me: Option<&str>, key: &str, json: bool) -> Result<()> {
    let handle = key_handle(client, me, key, &MANAGED).await?;
    let k = client.rotate_key(handle, CallOptions::default()).await?;
    print_versions(&k, json, "rotated")
}

/// `key config KEY --min-decryption-version N --min-encryption-version N`.
pub(crate) async fn config(
    client: &Client,
    me: Option<&str>,
    key: &str,
    config: &KeyConfigRequest,
    json: bool,
) -> Result<()> {
    if config.min_decryption_version.is_none() && config.min_encryption_version.is_none() {
        anyhow::bail!("give --min-decryption-version and/or --min-encryption-version");
    }
    let handle = key_handle(client, me, key, &MANAGED).await?;
    let k = client.configure_key(handle, config).await?;
    print_versions(&k, json, "configured")
}

/// `key trim KEY --min-available-version N`.
pub(crate) async fn trim(
    client: &Client,
    me: Option<&str>,
    key: &str,
    min_available_version: u32,
    json: bool,
) -> Result<()> {
    let handle = key_handle(client, me, key, &MANAGED).await?;
    let k = client.trim_key(handle, min_available_version).await?;
    print_versions(&k, json, "trimmed")
}

//! `keyward key ...`: generating and listing keys, in the local data directory or on the
//! nodes given by `--server`, and the remote key commands (attributes, sharing, deletion; the
//! commands that move key material are in [`super::key_transfer`]).

use anyhow::{bail, Context, Result};
use keyward_client::{CallOptions, Client, Key, KeyFilter, KeyPair};
use keyward_hsm::{KeySpec, MAX_PAGE_SIZE, PROXY_USER};

use super::{key_handle, template};
use crate::cli::{Conn, JsonFlag, KeyCommand, KeyRemote, PairType, SymType};
use crate::data_dir;
use crate::output::{self, KeyRow};

/// The classes a `--key` label is looked up in: keys with secret material (shared, wrapped,
/// unwrapping) ...
const SECRET_OR_PRIVATE: [&str; 2] = ["secret", "private"];
/// ... and any key object.
const ANY: [&str; 3] = ["secret", "private", "public"];

/// Runs `keyward key <command>`: `list` on the `--server` nodes when given, else in the local
/// data directory; `generate` locally; every other command on the nodes.
pub(crate) fn run(conn: &Conn, cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Generate {
            spec,
            label,
            json,
            data,
        } => generate_local(&data.hsm(), spec, &label, json),
        KeyCommand::List { json, filter, .. } if conn.is_remote() => {
            list_remote(conn, &filter, json)
        }
        KeyCommand::List { json, filter, data } => {
            if !filter.is_empty() {
                bail!("--filter needs --server (the local key list shows every key)");
            }
            list_local(&data.hsm(), json)
        }
        KeyCommand::Remote(cmd) => super::client_runtime()?.block_on(async {
            let remote = conn.connect().await?;
            let r = remote_command(&remote.client, conn.user.as_deref(), cmd).await;
            remote.finish(r).await
        }),
    }
}

/// `keyward key generate`: a TLS key pair in the local data directory (created if needed).
fn generate_local(
    store: &keyward_config::HsmConfig,
    spec: KeySpec,
    label: &str,
    json: bool,
) -> Result<()> {
    // Refuse bad input before anything is created on disk.
    keyward_hsm::Attributes::check_label(label)?;
    let (hsm, _writer) = data_dir::open_or_create_for_writing(store)?;
    let session = hsm.service_session(PROXY_USER)?;
    let (private, public) = keyward_server::pki::generate_tls_key(&hsm, &session, spec, label)?;
    if json {
        output::json_sorted(&KeyPair::from((private, public)))?;
    } else {
        println!(
            "generated {spec} key pair {:?}: private key handle {}, public key handle {}",
            private.attributes.label, private.handle, public.handle
        );
    }
    Ok(())
}

/// `keyward key list` on the local data directory: every key, read from a snapshot.
fn list_local(store: &keyward_config::HsmConfig, json: bool) -> Result<()> {
    let hsm = data_dir::open_to_read(store)?;
    let session = hsm.service_session(PROXY_USER)?;
    let mut keys = Vec::new();
    let mut after = None;
    loop {
        let page = hsm.list_keys(
            &session,
            &keyward_hsm::KeyFilter::default(),
            after,
            MAX_PAGE_SIZE,
        )?;
        keys.extend(page.keys.into_iter().map(Key::from));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    print_keys(&keys, json)
}

/// Parses `--filter` values of `key list`.
fn key_filter(filters: &[String]) -> Result<KeyFilter> {
    let mut f = KeyFilter::default();
    for item in filters {
        let (name, value) = item
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--filter {item:?}: expected NAME=VALUE"))?;
        match name {
            "attr.label" | "label" => f.label = Some(value.to_owned()),
            "class" => f.class = Some(value.to_owned()),
            "type" | "key-type" => f.key_type = Some(value.to_owned()),
            _ => {
                let attr = name.strip_prefix("attr.").unwrap_or(name);
                let v: bool = value.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "--filter {item:?}: expected attr.NAME=true|false, class=, type="
                    )
                })?;
                f.attributes.push((attr.to_owned(), v));
            }
        }
    }
    Ok(f)
}

/// `keyward key list --server ...`: every page of the keys the filter selects.
fn list_remote(conn: &Conn, filters: &[String], json: bool) -> Result<()> {
    let mut filter = key_filter(filters)?;
    super::client_runtime()?.block_on(async {
        let remote = conn.connect().await?;
        let client = &remote.client;
        let mut keys = Vec::new();
        let r: Result<()> = async {
            loop {
                let page = client.list_keys(&filter).await?;
                keys.extend(page.keys);
                match page.next {
                    Some(n) => filter.after = Some(n),
                    None => break Ok(()),
                }
            }
        }
        .await;
        remote.finish(r).await?;
        print_keys(&keys, json)
    })
}

/// Prints a key listing, the same whether it came from the local data directory or from a
/// node: the key table, or the API's JSON array with each object's keys sorted.
fn print_keys(keys: &[Key], json: bool) -> Result<()> {
    if json {
        return output::json_sorted(keys);
    }
    let rows = keys.iter().map(KeyRow::new).collect::<Result<Vec<_>>>()?;
    output::key_table(rows);
    Ok(())
}

/// Prints one key: JSON, or `WHAT SPEC key "LABEL": handle N`.
pub(crate) fn print_key(k: &Key, json: bool, what: &str) -> Result<()> {
    if json {
        output::json_sorted(k)
    } else {
        println!(
            "{what} {} key {:?}: handle {}",
            k.spec, k.attributes.label, k.handle
        );
        Ok(())
    }
}

/// One remote key command on a connected client; `me` is the user logged in (labels name
/// its own keys first).
async fn remote_command(client: &Client, me: Option<&str>, cmd: KeyRemote) -> Result<()> {
    use super::key_transfer as transfer;
    use super::key_versions as versions;
    match cmd {
        KeyRemote::Show { key, out } => versions::show(client, me, &key, out.json).await,
        KeyRemote::Rotate { key, out } => versions::rotate(client, me, &key, out.json).await,
        KeyRemote::Config {
            key,
            min_decryption_version,
            min_encryption_version,
            out,
        } => {
            let config = keyward_client::KeyConfigRequest {
                min_decryption_version,
                min_encryption_version,
            };
            versions::config(client, me, &key, &config, out.json).await
        }
        KeyRemote::Trim {
            key,
            min_available_version,
            out,
        } => versions::trim(client, me, &key, min_available_version, out.json).await,
        KeyRemote::GenerateSymmetric {
            kind,
            bits,
            bytes,
            label,
            attr,
            out,
        } => generate_symmetric(client, kind, bits, bytes, &label, &attr, &out).await,
        KeyRemote::GenerateAsymmetricPair {
            kind,
            bits,
            curve,
            label,
            private_attr,
            public_attr,
            out,
        } => {
            let spec = pair_spec(kind, bits, curve.as_deref())?;
            generate_pair(client, &spec, &label, &private_attr, &public_attr, &out).await
        }
        KeyRemote::SetAttribute {
            key,
            name,
            value,
            out,
        } => {
            let v = match value.as_str() {
                "true" => serde_json::Value::Bool(true),
                "false" => serde_json::Value::Bool(false),
                _ => serde_json::Value::String(value.clone()),
            };
            let key = key_handle(client, me, &key, &ANY).await?;
            let k = client.set_attribute(key, &name, v).await?;
            print_key(&k, out.json, &format!("set {name}={value} on"))
        }
        KeyRemote::Share { key, with } => {
            let key = key_handle(client, me, &key, &SECRET_OR_PRIVATE).await?;
            client.share(key, &with, CallOptions::default()).await?;
            println!("shared key {key} with {with}");
            Ok(())
        }
        KeyRemote::Unshare { key, with } => {
            let key = key_handle(client, me, &key, &SECRET_OR_PRIVATE).await?;
            client.unshare(key, &with).await?;
            println!("stopped sharing key {key} with {with}");
            Ok(())
        }
        KeyRemote::Delete {
            key,
            force_by_admin,
        } => {
            let key = key_handle(client, me, &key, &ANY).await?;
            if force_by_admin {
                client.destroy_as_admin(key).await?;
            } else {
                client.destroy(key).await?;
            }
            println!("deleted key {key}");
            Ok(())
        }
        KeyRemote::GenerateFile { key, encoding, out } => {
            let key = key_handle(client, me, &key, &["private"]).await?;
            transfer::generate_file(client, key, encoding, &out).await
        }
        KeyRemote::Public { key, format } => {
            let key = match key_handle(client, me, &key, &["private"]).await {
                Ok(h) => h,
                Err(_) => key_handle(client, me, &key, &["public"]).await?,
            };
            transfer::public(client, key, format).await
        }
        KeyRemote::Wrap {
            key,
            target,
            mechanism,
            out,
        } => {
            let key = key_handle(client, me, &key, &["secret", "public"]).await?;
            let target = key_handle(client, me, &target, &SECRET_OR_PRIVATE).await?;
            transfer::wrap(client, key, target, &mechanism, &out).await
        }
        KeyRemote::Unwrap {
            key,
            mechanism,
            input,
            label,
            secret_spec,
            attr,
            out,
        } => {
            let unwrap = transfer::Unwrap {
                key: key_handle(client, me, &key, &SECRET_OR_PRIVATE).await?,
                mechanism: &mechanism,
                input: &input,
                secret_spec: secret_spec.as_deref(),
            };
            transfer::unwrap(client, unwrap, &template(&label, &attr), &out).await
        }
        KeyRemote::Import {
            format,
            input,
            label,
            attr,
            out,
        } => transfer::import(client, format, &input, &label, attr, &out).await,
    }
}

/// `key generate-symmetric`: an AES or generic-secret key.
async fn generate_symmetric(
    client: &Client,
    kind: SymType,
    bits: Option<u32>,
    bytes: Option<u32>,
    label: &str,
    attr: &[(String, bool)],
    out: &JsonFlag,
) -> Result<()> {
    let spec = match kind {
        SymType::Aes => format!("aes-{}", bits.context("--bits is required for aes")?),
        SymType::GenericSecret => format!(
            "generic-secret-{}",
            bytes.context("--bytes is required for generic-secret")?
        ),
    };
    let k = client
        .generate_symmetric(&spec, &template(label, attr), CallOptions::default())
        .await?;
    print_key(&k, out.json, "generated")
}

/// The key spec of `key generate-asymmetric-pair`'s type, `--bits` and `--curve`.
fn pair_spec(kind: PairType, bits: Option<u32>, curve: Option<&str>) -> Result<String> {
    Ok(match kind {
        PairType::Rsa => {
            if curve.is_some() {
                bail!("--curve is for ec keys");
            }
            format!("rsa-{}", bits.unwrap_or(2048))
        }
        PairType::Ec => {
            if bits.is_some() {
                bail!("--bits is for rsa keys; ec takes --curve");
            }
            let c = curve.unwrap_or("p256").to_ascii_lowercase();
            format!("ec-{}", c.trim_start_matches("ec-").replace('-', ""))
        }
        PairType::Ed25519 => {
            if bits.is_some() || curve.is_some() {
                bail!("ed25519 takes neither --bits nor --curve");
            }
            "ed25519".to_owned()
        }
    })
}

/// `key generate-asymmetric-pair`: a key pair of `spec`.
async fn generate_pair(
    client: &Client,
    spec: &str,
    label: &str,
    private_attr: &[(String, bool)],
    public_attr: &[(String, bool)],
    out: &JsonFlag,
) -> Result<()> {
    let pair = client
        .generate_pair(
            spec,
            &template(label, private_attr),
            &template(label, public_attr),
            CallOptions::default(),
        )
        .await?;
    if out.json {
        output::json_sorted(&pair)
    } else {
        println!(
            "generated {spec} key pair {label:?}: private key handle {}, public key handle {}",
            pair.private.handle, pair.public.handle
        );
        Ok(())
    }
}

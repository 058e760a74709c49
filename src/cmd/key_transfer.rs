//! The remote key commands that move key material or name it in a file: `key generate-file`
//! (a reference PEM), `key public`, `key wrap`, `key unwrap` and `key import` (a private key
//! goes wrapped under a transport key, through [`keyward_client::Client::import_private_pkcs8`]).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use keyward_client::{CallOptions, Client, KeyTemplate, PublicKeyInput};

use super::key::print_key;
use super::{read_input, template, write_output};
use crate::cli::{FileEncoding, ImportFormat, JsonFlag, PublicFormat};
use crate::output;

/// `key generate-file`: a reference PEM for private key `key`, written to `out`.
pub(crate) async fn generate_file(
    client: &Client,
    key: u64,
    encoding: FileEncoding,
    out: &Path,
) -> Result<()> {
    let FileEncoding::ReferencePem = encoding;
    let info = client.get_key(key).await?;
    if info.class != "private" {
        return Err(anyhow!(
            "key {key} is a {} key; reference files name private keys",
            info.class
        ));
    }
    let public = client.public_key(key).await?;
    let reference = keyward_hsm::KeyReference {
        v: 1,
        label: info.attributes.label.clone(),
        handle: key,
        spec: info.spec.to_string(),
        spki_sha256: keyward_hsm::spki_sha256(&public.der),
    };
    write_output(Some(out), reference.to_pem().as_bytes())?;
    println!(
        "wrote a reference to key {key} ({:?}) to {}",
        reference.label,
        out.display()
    );
    Ok(())
}

/// `key public`: prints the public key `key` as PEM or JWK.
pub(crate) async fn public(client: &Client, key: u64, format: PublicFormat) -> Result<()> {
    let p = client.public_key(key).await?;
    match format {
        PublicFormat::Pem => print!("{}", p.pem),
        PublicFormat::Jwk => {
            output::json(&p.jwk.ok_or_else(|| anyhow!("key {key} has no JWK form"))?)?
        }
    }
    Ok(())
}

/// `key wrap`: key `target` wrapped under key `key`, written to `out`.
pub(crate) async fn wrap(
    client: &Client,
    key: u64,
    target: u64,
    mechanism: &str,
    out: &Path,
) -> Result<()> {
    let wrapped = client.wrap(key, mechanism, target).await?;
    write_output(Some(out), &wrapped)?;
    println!(
        "wrote key {target} wrapped with {mechanism} under key {key} to {}",
        out.display()
    );
    Ok(())
}

/// What `key unwrap` unwraps: the file `input`, under key `key` with `mechanism`.
pub(crate) struct Unwrap<'a> {
    pub(crate) key: u64,
    pub(crate) mechanism: &'a str,
    pub(crate) input: &'a Path,
    /// The spec of a secret key; `None` for a PKCS#8 private key.
    pub(crate) secret_spec: Option<&'a str>,
}

/// `key unwrap`: imports the wrapped key with the attributes of `template`.
pub(crate) async fn unwrap(
    client: &Client,
    u: Unwrap<'_>,
    template: &KeyTemplate,
    out: &JsonFlag,
) -> Result<()> {
    let wrapped = read_input(Some(u.input))?;
    let k = client
        .unwrap(
            u.key,
            u.mechanism,
            &wrapped,
            u.secret_spec,
            template,
            CallOptions::default(),
        )
        .await?;
    print_key(&k, out.json, "unwrapped")
}

/// `key import pem`: a public key directly, a PKCS#8 private key wrapped under a transport key
/// (a private key's attributes default to `sign=true`).
pub(crate) async fn import(
    client: &Client,
    format: ImportFormat,
    input: &Path,
    label: &str,
    mut attr: Vec<(String, bool)>,
    out: &JsonFlag,
) -> Result<()> {
    let ImportFormat::Pem = format;
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let block =
        pem::parse(text.as_bytes()).with_context(|| format!("{} is not PEM", input.display()))?;
    let k = match block.tag() {
        "PUBLIC KEY" => {
            client
                .import_public(
                    &PublicKeyInput::Pem(text.clone()),
                    &template(label, &attr),
                    CallOptions::default(),
                )
                .await?
        }
        "PRIVATE KEY" => {
            if attr.is_empty() {
                attr.push(("sign".to_owned(), true));
            }
            let der = zeroize::Zeroizing::new(block.into_contents());
            // An unsupported or broken key is refused here, before a transport key is made.
            keyward_hsm::private_key_spec(&der)?;
            client
                .import_private_pkcs8(&der, &template(label, &attr))
                .await?
        }
        other => bail!(
            "{}: PEM {other:?} is not supported; give a PUBLIC KEY or a PKCS#8 PRIVATE KEY \
             (openssl pkcs8 -topk8 -nocrypt converts)",
            input.display()
        ),
    };
    print_key(&k, out.json, "imported")
}

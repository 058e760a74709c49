//! [`Client`]: one typed async method per route.

use std::sync::{Arc, PoisonError};

use http::Method;
use keyward_api::{
    AuditQuery, Base64, Batch, BatchResults, Ciphertext, CreateUserRequest, DecryptRequest,
    DeriveRequest, DestroyQuery, EncryptRequest, GeneratePairRequest, GenerateSymmetricRequest,
    Health, ImportPublicRequest, KeyConfigRequest, ListQuery, LoginRequest, LoginResponse,
    PasswordRequest, Plaintext, PublicKeyQuery, RandomBytes, RandomRequest, RewrapRequest,
    SecretBase64, SetAttributeRequest, ShareRequest, SignRequest, Signature, TrimRequest,
    UnwrapRequest, Verified, VerifyRequest, VersionedBase64, WrapRequest, Wrapped,
};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::transport::{decode, login_call, Call, Inner, NodeStatus, Retry};
use crate::types::*;
use crate::{
    AuditEntry, AuditReport, ItemError, Key, KeyPage, KeyPair, KeyTemplate, Password, SessionToken,
    User,
};

/// A client of one or more HSM nodes. Cheap to clone (clones share connections and sessions).
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

/// The bytes of a base64 field of a response.
fn dec(field: &str, b: &Base64) -> Result<Vec<u8>> {
    b.decode()
        .map_err(|e| Error::Decode(format!("{field} is not base64: {e}")))
}

/// The bytes of a secret base64 field of a response, moved out of their zeroizing buffer.
fn dec_secret(field: &str, b: &SecretBase64) -> Result<Vec<u8>> {
    let mut bytes = b
        .decode()
        .map_err(|e| Error::Decode(format!("{field} is not base64: {e}")))?;
    Ok(std::mem::take(&mut *bytes))
}

fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// A query string (`?...`), or nothing when every parameter is absent.
fn query(q: &impl Serialize) -> Result<String> {
    let q = serde_urlencoded::to_string(q).map_err(|e| Error::Config(e.to_string()))?;
    Ok(if q.is_empty() { q } else { format!("?{q}") })
}

/// A password in a request of its own (the caller keeps theirs; both are zeroized on drop).
fn password_copy(p: &Password) -> Password {
    Password::new(p.expose_secret().to_owned())
}

fn input(i: &SignInput) -> (Option<Base64>, Option<Base64>) {
    match i {
        SignInput::Message(m) => (Some(Base64::encode(m)), None),
        SignInput::Digest(d) => (None, Some(Base64::encode(d))),
    }
}

impl From<&SignItem> for SignRequest {
    fn from(s: &SignItem) -> Self {
        let (message, digest) = input(&s.input);
        SignRequest {
            key: s.key,
            mechanism: s.mechanism.clone(),
            message,
            digest,
            encoding: s.encoding.clone(),
            key_version: s.key_version,
        }
    }
}

impl From<&VerifyItem> for VerifyRequest {
    fn from(s: &VerifyItem) -> Self {
        let (message, digest) = input(&s.input);
        VerifyRequest {
            key: s.key,
            mechanism: s.mechanism.clone(),
            message,
            digest,
            signature: VersionedBase64::bare(&s.signature),
            encoding: s.encoding.clone(),
            key_version: s.key_version,
        }
    }
}

impl From<&EncryptItem> for EncryptRequest {
    fn from(s: &EncryptItem) -> Self {
        EncryptRequest {
            key: s.key,
            mechanism: s.mechanism.clone(),
            plaintext: SecretBase64::encode(&s.plaintext),
            aad: s.aad.as_deref().map(Base64::encode),
            key_version: s.key_version,
            iv: s.iv.as_deref().map(Base64::encode),
        }
    }
}

impl From<&DecryptItem> for DecryptRequest {
    fn from(s: &DecryptItem) -> Self {
        DecryptRequest {
            key: s.key,
            mechanism: s.mechanism.clone(),
            ciphertext: VersionedBase64::bare(&s.ciphertext),
            aad: s.aad.as_deref().map(Base64::encode),
            key_version: s.key_version,
        }
    }
}

impl From<&RewrapItem> for RewrapRequest {
    fn from(s: &RewrapItem) -> Self {
        RewrapRequest {
            key: s.key,
            mechanism: s.mechanism.clone(),
            ciphertext: VersionedBase64::bare(&s.ciphertext.bytes),
            aad: s.aad.as_deref().map(Base64::encode),
            key_version: Some(s.ciphertext.key_version),
        }
    }
}

fn versioned_signature(r: Signature) -> Result<Versioned> {
    Ok(Versioned {
        key_version: r.key_version,
        bytes: dec("signature", &r.signature)?,
    })
}

fn versioned_ciphertext(r: Ciphertext) -> Result<Versioned> {
    Ok(Versioned {
        key_version: r.key_version,
        bytes: dec("ciphertext", &r.ciphertext)?,
    })
}

impl Client {
    /// A client of the configured nodes. Makes no request.
    pub fn new(config: ClientConfig) -> Result<Self> {
        Ok(Client {
            inner: Arc::new(Inner::new(config)?),
        })
    }

    /// Health of each node (after failures nodes cool down before they are tried again).
    pub fn nodes(&self) -> Vec<NodeStatus> {
        self.inner.status()
    }

    pub(crate) async fn inner_execute(&self, call: &Call<'_>) -> Result<(usize, bytes::Bytes)> {
        self.inner.execute(call).await
    }

    pub(crate) async fn run<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        let (_, body) = self.inner.execute(&call).await?;
        decode(&body)
    }

    async fn run_empty(&self, call: Call<'_>) -> Result<()> {
        self.inner.execute(&call).await.map(|_| ())
    }

    // ---- health and sessions ----

    /// `GET /v1/health` on some node: `"ok"` when it answers.
    pub async fn health(&self) -> Result<String> {
        let mut c = Call::new(Method::GET, "/v1/health".into(), Retry::Safe);
        c.auth = false;
        Ok(self.run::<Health>(c).await?.status)
    }

    /// `GET /v1/ready` on some node: `"ready"` when it serves requests.
    pub async fn ready(&self) -> Result<String> {
        let mut c = Call::new(Method::GET, "/v1/ready".into(), Retry::Safe);
        c.auth = false;
        Ok(self.run::<Health>(c).await?.status)
    }

    /// Logs in on one node and keeps the credentials (zeroized on drop) for the others.
    ///
    /// Nodes do not share sessions: each node gets its own token, logged in lazily the
    /// first time a call goes to it, and again when it answers `401 session_invalid`.
    pub async fn login(&self, username: &str, password: impl Into<Password>) -> Result<Session> {
        self.login_with_ttl(username, password, None).await
    }

    /// [`Client::login`] with a session lifetime in seconds (1 to 604800).
    pub async fn login_with_ttl(
        &self,
        username: &str,
        password: impl Into<Password>,
        ttl_seconds: Option<u64>,
    ) -> Result<Session> {
        let creds = Arc::new(LoginRequest {
            username: username.to_owned(),
            password: password.into(),
            ttl_seconds,
        });
        let call = login_call(&creds)?;
        let (idx, body) = self.inner.execute(&call).await?;
        let r: LoginResponse = decode(&body)?;
        for n in 0..self.inner.nodes.len() {
            self.inner.node(n).set_token(None);
        }
        self.inner.node(idx).set_token(Some(Arc::new(r.token)));
        *self
            .inner
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(creds);
        Ok(Session {
            username: r.username,
            role: r.role,
            expires_in_seconds: r.expires_in_seconds,
        })
    }

    /// Ends the session on every node that has one and forgets the credentials.
    /// Returns the first failure, after trying all nodes.
    pub async fn logout(&self) -> Result<()> {
        self.inner
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut first_err = None;
        for idx in 0..self.inner.nodes.len() {
            let Some(token) = self.inner.node_token(idx) else {
                continue;
            };
            self.inner.node(idx).set_token(None);
            let call = Call::new(Method::POST, "/v1/auth/logout".into(), Retry::Safe);
            match self
                .inner
                .send(self.inner.node(idx), &call, Some(&token))
                .await
            {
                Ok(_) => {}
                Err(Error::Api { status: 401, .. }) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Starts from an existing session token of one node (e.g. one a CLI saved after an
    /// earlier [`Client::login`]) without storing a password. Calls that go to that node use
    /// the token; as the client holds no credentials, a `401 session_invalid` from the node
    /// (logged out, expired, forged) is returned as [`Error::Api`] instead of a new login.
    /// Nodes without a token answer [`Error::NotLoggedIn`]. [`Client::logout`] ends it.
    pub fn set_session_token(&self, node_url: &str, token: SessionToken) -> Result<()> {
        let idx = self
            .inner
            .node_index(node_url)
            .ok_or_else(|| Error::Config(format!("{node_url:?} is not a configured node")))?;
        self.inner.node(idx).set_token(Some(Arc::new(token)));
        Ok(())
    }

    /// A client of the configured nodes that starts from an existing session token of one
    /// node; see [`Client::set_session_token`].
    pub fn with_session_token(
        config: ClientConfig,
        node_url: &str,
        token: SessionToken,
    ) -> Result<Self> {
        let client = Client::new(config)?;
        client.set_session_token(node_url, token)?;
        Ok(client)
    }

    /// The session token this client holds for a node, if any (to save it for a later
    /// process; treat it as a secret: its `Debug` is redacted, never print it).
    pub fn session_token(&self, node_url: &str) -> Option<Arc<SessionToken>> {
        self.inner
            .node_index(node_url)
            .and_then(|idx| self.inner.node_token(idx))
    }

    // ---- users ----

    /// Creates a user (admin). `role` is `admin` or `crypto-user`.
    pub async fn create_user(
        &self,
        username: &str,
        role: &str,
        password: &Password,
        opts: CallOptions,
    ) -> Result<User> {
        let c = Call::new(Method::POST, "/v1/users".into(), Retry::Unsafe)
            .json(&CreateUserRequest {
                username: username.to_owned(),
                role: role.to_owned(),
                password: password_copy(password),
            })?
            .idempotency_key(opts.idempotency_key.as_deref());
        self.run(c).await
    }

    /// Lists users.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        self.run(Call::new(Method::GET, "/v1/users".into(), Retry::Safe))
            .await
    }

    /// Deletes a user (admin).
    pub async fn delete_user(&self, username: &str) -> Result<()> {
        let path = format!("/v1/users/{}", seg(username));
        self.run_empty(Call::new(Method::DELETE, path, Retry::Safe))
            .await
    }

    /// Sets a password: an admin for anyone (unlocks a locked user), a user for itself.
    pub async fn change_password(&self, username: &str, password: &Password) -> Result<()> {
        let path = format!("/v1/users/{}/password", seg(username));
        let c = Call::new(Method::PUT, path, Retry::Safe).json(&PasswordRequest {
            password: password_copy(password),
        })?;
        self.run_empty(c).await
    }

    // ---- keys ----

    /// Generates an AES or generic-secret key (`aes-256`, `generic-secret-32`, ...).
    pub async fn generate_symmetric(
        &self,
        spec: &str,
        template: &KeyTemplate,
        opts: CallOptions,
    ) -> Result<Key> {
        let c = Call::new(Method::POST, "/v1/keys/symmetric".into(), Retry::Unsafe)
            .json(&GenerateSymmetricRequest {
                spec: spec.to_owned(),
                template: template.clone(),
            })?
            .idempotency_key(opts.idempotency_key.as_deref());
        self.run(c).await
    }

    /// Generates a key pair (`ec-p256`, `rsa-3072`, `ed25519`, ...). It gets at least 60 s,
    /// whatever the configured request timeout (RSA-4096 takes seconds on a busy node).
    pub async fn generate_pair(
        &self,
        spec: &str,
        private: &KeyTemplate,
        public: &KeyTemplate,
        opts: CallOptions,
    ) -> Result<KeyPair> {
        let mut c = Call::new(
            Method::POST,
            "/v1/keys/asymmetric-pair".into(),
            Retry::Unsafe,
        )
        .json(&GeneratePairRequest {
            spec: spec.to_owned(),
            private: private.clone(),
            public: public.clone(),
        })?
        .idempotency_key(opts.idempotency_key.as_deref());
        c.min_timeout = Some(crate::transport::KEY_PAIR_TIMEOUT);
        self.run(c).await
    }

    /// Imports a public key (SPKI PEM or DER).
    pub async fn import_public(
        &self,
        key: &PublicKeyInput,
        template: &KeyTemplate,
        opts: CallOptions,
    ) -> Result<Key> {
        let (pem, der) = match key {
            PublicKeyInput::Pem(p) => (Some(p.clone()), None),
            PublicKeyInput::Der(d) => (None, Some(Base64::encode(d))),
        };
        let c = Call::new(Method::POST, "/v1/keys/import-public".into(), Retry::Unsafe)
            .json(&ImportPublicRequest {
                pem,
                der,
                template: template.clone(),
            })?
            .idempotency_key(opts.idempotency_key.as_deref());
        self.run(c).await
    }

    /// Lists the keys the caller may see, one page at a time.
    pub async fn list_keys(&self, filter: &KeyFilter) -> Result<KeyPage> {
        let path = format!("/v1/keys{}", query(&ListQuery::from(filter))?);
        self.run(Call::new(Method::GET, path, Retry::Safe)).await
    }

    /// One key.
    pub async fn get_key(&self, handle: u64) -> Result<Key> {
        self.run(Call::new(
            Method::GET,
            format!("/v1/keys/{handle}"),
            Retry::Safe,
        ))
        .await
    }

    /// Changes one attribute; `value` is a JSON boolean, or a string for `label` and `id`.
    pub async fn set_attribute(
        &self,
        handle: u64,
        name: &str,
        value: serde_json::Value,
    ) -> Result<Key> {
        let path = format!("/v1/keys/{handle}/attributes");
        // Setting an attribute to a value is idempotent.
        let c = Call::new(Method::PATCH, path, Retry::Safe).json(&SetAttributeRequest {
            name: name.to_owned(),
            value,
        })?;
        self.run(c).await
    }

    /// Shares a key with a crypto-user, for use only.
    pub async fn share(&self, handle: u64, username: &str, opts: CallOptions) -> Result<Key> {
        let c = Call::new(
            Method::POST,
            format!("/v1/keys/{handle}/share"),
            Retry::Unsafe,
        )
        .json(&ShareRequest {
            username: username.to_owned(),
        })?
        .idempotency_key(opts.idempotency_key.as_deref());
        self.run(c).await
    }

    /// Stops sharing a key.
    pub async fn unshare(&self, handle: u64, username: &str) -> Result<Key> {
        let path = format!("/v1/keys/{handle}/share/{}", seg(username));
        self.run(Call::new(Method::DELETE, path, Retry::Safe)).await
    }

    /// Destroys a key.
    pub async fn destroy(&self, handle: u64) -> Result<()> {
        self.run_empty(Call::new(
            Method::DELETE,
            format!("/v1/keys/{handle}"),
            Retry::Safe,
        ))
        .await
    }

    /// Destroys any user's token key, `destroyable` or not (admins only; audited as
    /// `key.destroy-by-admin`).
    pub async fn destroy_as_admin(&self, handle: u64) -> Result<()> {
        self.run_empty(Call::new(
            Method::DELETE,
            format!(
                "/v1/keys/{handle}{}",
                query(&DestroyQuery {
                    force_by_admin: Some(true),
                })?
            ),
            Retry::Safe,
        ))
        .await
    }

    /// The public key (of the latest version) as PEM, DER and JWK.
    pub async fn public_key(&self, handle: u64) -> Result<PublicKey> {
        self.public_key_at(handle, None).await
    }

    /// The public key of key version `version` (`None`: the latest).
    pub async fn public_key_at(&self, handle: u64, version: Option<u32>) -> Result<PublicKey> {
        let path = format!(
            "/v1/keys/{handle}/public-key{}",
            query(&PublicKeyQuery { version })?
        );
        let w: keyward_api::PublicKey = self.run(Call::new(Method::GET, path, Retry::Safe)).await?;
        Ok(PublicKey {
            pem: w.pem,
            der: dec("der", &w.der)?,
            jwk: w.jwk,
        })
    }

    /// Wraps (exports) key `target` under the wrapping key `handle`.
    pub async fn wrap(&self, handle: u64, mechanism: &str, target: u64) -> Result<Vec<u8>> {
        let c = Call::new(Method::POST, format!("/v1/keys/{handle}/wrap"), Retry::Safe).json(
            &WrapRequest {
                mechanism: mechanism.to_owned(),
                target,
            },
        )?;
        let r: Wrapped = self.run(c).await?;
        dec("wrapped", &r.wrapped)
    }

    /// Unwraps (imports) a key under the unwrapping key `handle`. `secret_spec` is the spec
    /// of a secret key, `None` for a PKCS#8 private key.
    pub async fn unwrap(
        &self,
        handle: u64,
        mechanism: &str,
        wrapped: &[u8],
        secret_spec: Option<&str>,
        template: &KeyTemplate,
        opts: CallOptions,
    ) -> Result<Key> {
        let c = Call::new(
            Method::POST,
            format!("/v1/keys/{handle}/unwrap"),
            Retry::Unsafe,
        )
        .json(&UnwrapRequest {
            mechanism: mechanism.to_owned(),
            wrapped: Base64::encode(wrapped),
            secret_spec: secret_spec.map(str::to_owned),
            template: template.clone(),
        })?
        .idempotency_key(opts.idempotency_key.as_deref());
        self.run(c).await
    }

    /// ECDH with `peer_public` (SPKI DER or uncompressed point) + HKDF-SHA256 into a new
    /// secret key of `spec`.
    #[allow(
        clippy::too_many_arguments,
        reason = "the derive request's fields, as the API names them"
    )]
    pub async fn derive(
        &self,
        handle: u64,
        peer_public: &[u8],
        salt: &[u8],
        info: &[u8],
        spec: &str,
        template: &KeyTemplate,
        opts: CallOptions,
    ) -> Result<Key> {
        let r = DeriveRequest {
            peer_public: Base64::encode(peer_public),
            salt: Some(Base64::encode(salt)),
            info: Some(Base64::encode(info)),
            kdf: None,
            spec: spec.to_owned(),
            template: template.clone(),
        };
        self.derive_request(handle, &r, opts).await
    }

    /// ECDH without a KDF (PKCS#11's `CKD_NULL`): a new secret key of `spec` whose value is
    /// the leftmost bytes of the shared secret (at most its length).
    pub async fn derive_no_kdf(
        &self,
        handle: u64,
        peer_public: &[u8],
        spec: &str,
        template: &KeyTemplate,
        opts: CallOptions,
    ) -> Result<Key> {
        let r = DeriveRequest {
            peer_public: Base64::encode(peer_public),
            salt: None,
            info: None,
            kdf: Some("none".into()),
            spec: spec.to_owned(),
            template: template.clone(),
        };
        self.derive_request(handle, &r, opts).await
    }

    /// `POST /v1/keys/{handle}/derive`.
    async fn derive_request(
        &self,
        handle: u64,
        r: &DeriveRequest,
        opts: CallOptions,
    ) -> Result<Key> {
        let c = Call::new(
            Method::POST,
            format!("/v1/keys/{handle}/derive"),
            Retry::Unsafe,
        )
        .json(r)?
        .idempotency_key(opts.idempotency_key.as_deref());
        self.run(c).await
    }

    // ---- key versions ----

    /// Adds a new version to a secret key or a key pair (through its private key): new
    /// signatures, MACs and ciphertexts use it; older versions still decrypt and verify down
    /// to `min_decryption_version`. Not repeated on a retry without an idempotency key.
    pub async fn rotate_key(&self, handle: u64, opts: CallOptions) -> Result<Key> {
        let c = Call::new(
            Method::POST,
            format!("/v1/keys/{handle}/rotate"),
            Retry::Unsafe,
        )
        .idempotency_key(opts.idempotency_key.as_deref());
        self.run(c).await
    }

    /// Sets a key's `min_decryption_version` and/or `min_encryption_version`.
    pub async fn configure_key(&self, handle: u64, config: &KeyConfigRequest) -> Result<Key> {
        let path = format!("/v1/keys/{handle}/config");
        // Setting values is idempotent.
        let c = Call::new(Method::PATCH, path, Retry::Safe).json(config)?;
        self.run(c).await
    }

    /// Destroys every key version below `min_available_version` (no undo).
    pub async fn trim_key(&self, handle: u64, min_available_version: u32) -> Result<Key> {
        let path = format!("/v1/keys/{handle}/trim");
        let c = Call::new(Method::POST, path, Retry::Safe).json(&TrimRequest {
            min_available_version,
        })?;
        self.run(c).await
    }

    /// Re-encrypts a ciphertext under the key's latest version inside the HSM.
    pub async fn rewrap(&self, item: &RewrapItem) -> Result<Versioned> {
        let c = Call::new(Method::POST, "/v1/crypto/rewrap".into(), Retry::Safe)
            .json(&RewrapRequest::from(item))?;
        versioned_ciphertext(self.run(c).await?)
    }

    /// Rewraps 1 to 1000 items.
    pub async fn rewrap_batch(
        &self,
        items: &[RewrapItem],
    ) -> Result<Vec<Result<Versioned, ItemError>>> {
        let w = items.iter().map(RewrapRequest::from).collect();
        self.batch("/v1/crypto/rewrap/batch", w, versioned_ciphertext)
            .await
    }

    // ---- crypto ----

    /// Signs (or MACs) a message or digest. [`sign_versioned`](Self::sign_versioned) also says
    /// which key version signed.
    pub async fn sign(&self, item: &SignItem) -> Result<Vec<u8>> {
        Ok(self.sign_versioned(item).await?.bytes)
    }

    /// Signs (or MACs) a message or digest; returns the signature with its key version.
    pub async fn sign_versioned(&self, item: &SignItem) -> Result<Versioned> {
        let c = Call::new(Method::POST, "/v1/crypto/sign".into(), Retry::Safe)
            .json(&SignRequest::from(item))?;
        versioned_signature(self.run(c).await?)
    }

    /// Verifies a signature or MAC.
    pub async fn verify(&self, item: &VerifyItem) -> Result<bool> {
        let c = Call::new(Method::POST, "/v1/crypto/verify".into(), Retry::Safe)
            .json(&VerifyRequest::from(item))?;
        Ok(self.run::<Verified>(c).await?.valid)
    }

    /// Encrypts; aes-gcm returns IV ‖ ciphertext ‖ tag. After the key is rotated, decrypting
    /// needs the key version too: use [`encrypt_versioned`](Self::encrypt_versioned).
    pub async fn encrypt(&self, item: &EncryptItem) -> Result<Vec<u8>> {
        Ok(self.encrypt_versioned(item).await?.bytes)
    }

    /// Encrypts; returns the ciphertext with its key version.
    pub async fn encrypt_versioned(&self, item: &EncryptItem) -> Result<Versioned> {
        let c = Call::new(Method::POST, "/v1/crypto/encrypt".into(), Retry::Safe)
            .json(&EncryptRequest::from(item))?;
        versioned_ciphertext(self.run(c).await?)
    }

    /// Decrypts.
    pub async fn decrypt(&self, item: &DecryptItem) -> Result<Vec<u8>> {
        let c = Call::new(Method::POST, "/v1/crypto/decrypt".into(), Retry::Safe)
            .json(&DecryptRequest::from(item))?;
        let r: Plaintext = self.run(c).await?;
        dec_secret("plaintext", &r.plaintext)
    }

    /// Computes an HMAC (`hmac-sha256/384/512`).
    pub async fn hmac(&self, item: &SignItem) -> Result<Vec<u8>> {
        Ok(self.hmac_versioned(item).await?.bytes)
    }

    /// Computes an HMAC; returns it with its key version.
    pub async fn hmac_versioned(&self, item: &SignItem) -> Result<Versioned> {
        let c = Call::new(Method::POST, "/v1/crypto/hmac".into(), Retry::Safe)
            .json(&SignRequest::from(item))?;
        versioned_signature(self.run(c).await?)
    }

    /// `length` random bytes (1 to 65536) from the HSM's DRBG.
    pub async fn random(&self, length: usize) -> Result<Vec<u8>> {
        let c = Call::new(Method::POST, "/v1/crypto/random".into(), Retry::Safe)
            .json(&RandomRequest { length })?;
        let r: RandomBytes = self.run(c).await?;
        dec_secret("bytes", &r.bytes)
    }

    /// The caller's TLS session-ticket keys for the previous, current and next periods of
    /// `rotation_s` seconds, made on the cluster when missing, each AES-256 value encrypted
    /// with RSAES-OAEP-SHA256 to `recipient_spki_der` (an RSA key of 3072 bits or more, X.509
    /// SubjectPublicKeyInfo DER), the key's name as the OAEP label. What a remote-mode proxy
    /// calls; safe to repeat.
    pub async fn ticket_keys(
        &self,
        rotation_s: u64,
        recipient_spki_der: &[u8],
    ) -> Result<keyward_api::TicketKeys> {
        let c = Call::new(Method::POST, "/v1/tls/ticket-keys".into(), Retry::Safe).json(
            &keyward_api::TicketKeysRequest {
                rotation_s,
                recipient_public_key: keyward_api::Base64::encode(recipient_spki_der),
            },
        )?;
        self.run(c).await
    }

    async fn batch<W: Serialize, R: DeserializeOwned, T>(
        &self,
        path: &str,
        items: Vec<W>,
        f: impl Fn(R) -> Result<T>,
    ) -> Result<Vec<Result<T, ItemError>>> {
        let c = Call::new(Method::POST, path.into(), Retry::Safe).json(&Batch { items })?;
        let r: BatchResults<R> = self.run(c).await?;
        r.results
            .into_iter()
            .map(|i| match (i.ok, i.error) {
                (Some(v), _) => f(v).map(Ok),
                (None, Some(e)) => Ok(Err(e)),
                (None, None) => Err(Error::Decode("batch item without ok or error".into())),
            })
            .collect()
    }

    /// Signs 1 to 1000 items; each has its own result, in order.
    pub async fn sign_batch(&self, items: &[SignItem]) -> Result<Vec<Result<Vec<u8>, ItemError>>> {
        let w = items.iter().map(SignRequest::from).collect();
        self.batch("/v1/crypto/sign/batch", w, |r: Signature| {
            dec("signature", &r.signature)
        })
        .await
    }

    /// Verifies 1 to 1000 items.
    pub async fn verify_batch(&self, items: &[VerifyItem]) -> Result<Vec<Result<bool, ItemError>>> {
        let w = items.iter().map(VerifyRequest::from).collect();
        self.batch("/v1/crypto/verify/batch", w, |r: Verified| Ok(r.valid))
            .await
    }

    /// Encrypts 1 to 1000 items.
    pub async fn encrypt_batch(
        &self,
        items: &[EncryptItem],
    ) -> Result<Vec<Result<Vec<u8>, ItemError>>> {
        let w = items.iter().map(EncryptRequest::from).collect();
        self.batch("/v1/crypto/encrypt/batch", w, |r: Ciphertext| {
            dec("ciphertext", &r.ciphertext)
        })
        .await
    }

    /// Decrypts 1 to 1000 items.
    pub async fn decrypt_batch(
        &self,
        items: &[DecryptItem],
    ) -> Result<Vec<Result<Vec<u8>, ItemError>>> {
        let w = items.iter().map(DecryptRequest::from).collect();
        self.batch("/v1/crypto/decrypt/batch", w, |r: Plaintext| {
            dec_secret("plaintext", &r.plaintext)
        })
        .await
    }

    // ---- audit ----

    /// Audit entries from sequence number `from` (from 1), at most `limit` (1 to 1000).
    /// The audit log is per node: this reads the node that answers.
    pub async fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let path = format!(
            "/v1/audit{}",
            query(&AuditQuery {
                from: Some(from),
                limit: Some(limit),
            })?
        );
        self.run(Call::new(Method::GET, path, Retry::Safe)).await
    }

    /// Checks the audit hash chain of the node that answers (admin).
    pub async fn audit_verify(&self) -> Result<AuditReport> {
        self.run(Call::new(
            Method::POST,
            "/v1/audit/verify".into(),
            Retry::Safe,
        ))
        .await
    }
}

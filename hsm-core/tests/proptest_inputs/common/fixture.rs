//! The fixture: one HSM holding a key of every spec, its sessions, and the checks that a
//! refused call changed nothing.

use super::*;

/// A key that protects data: signs, verifies, encrypts, decrypts, derives.
pub(crate) fn usage_data(label: &str) -> KeyTemplate {
    use AttributeName as A;
    // Extractable, as every key was by default before keys became non-extractable by default.
    [
        A::Sign,
        A::Verify,
        A::Encrypt,
        A::Decrypt,
        A::Derive,
        A::Extractable,
    ]
    .into_iter()
    .fold(KeyTemplate::labelled(label), |t, a| t.with(a, true))
}

/// A key that protects keys: signs, verifies, wraps, unwraps, derives.
pub(crate) fn usage_kek(label: &str) -> KeyTemplate {
    use AttributeName as A;
    [
        A::Sign,
        A::Verify,
        A::Wrap,
        A::Unwrap,
        A::Derive,
        A::Extractable,
    ]
    .into_iter()
    .fold(KeyTemplate::labelled(label), |t, a| t.with(a, true))
}

pub(crate) fn usage_public(label: &str) -> KeyTemplate {
    KeyTemplate::labelled(label)
        .with(AttributeName::Verify, true)
        .with(AttributeName::Encrypt, true)
}

pub(crate) fn usage_public_kek(label: &str) -> KeyTemplate {
    KeyTemplate::labelled(label)
        .with(AttributeName::Verify, true)
        .with(AttributeName::Wrap, true)
}

pub(crate) type Snap = (KeyPage, KeyPage, Option<KeyPage>);

pub(crate) struct Fx {
    /// The HSM in its temporary folder.
    pub(crate) hsm: TestHsm,
    pub(crate) me: Session,
    pub(crate) alice: Session,
    pub(crate) admin: Session,
    /// Every key made at setup.
    pub(crate) keys: Vec<KeyHandle>,
    /// (spec, private, public) for every asymmetric spec: data keys.
    pub(crate) pairs: Vec<(KeySpec, KeyHandle, KeyHandle)>,
    /// (spec, private, public) RSA key-encryption pairs (the public half imported alone).
    pub(crate) kek_pairs: Vec<(KeySpec, KeyHandle, KeyHandle)>,
    /// Secret data keys, one per secret spec, and AES key-encryption keys.
    pub(crate) secrets: Vec<(KeySpec, KeyHandle)>,
    pub(crate) keks: Vec<(KeySpec, KeyHandle)>,
    /// AES-256 keys whose values the test knows (ECDH-derived): one for data, one for keys.
    pub(crate) known: KeyHandle,
    pub(crate) known_value: [u8; 32],
    pub(crate) known_kek: KeyHandle,
    pub(crate) known_kek_value: [u8; 32],
    pub(crate) next: AtomicU64,
}

/// Derives an AES-256 key by ECDH with the HSM's P-256 key `base`; returns it and its value,
/// computed here with aws-lc-rs.
pub(crate) fn derive_known(
    hsm: &Hsm,
    me: &Session,
    base: KeyHandle,
    info: &[u8],
    template: &KeyTemplate,
) -> (KeyInfo, [u8; 32]) {
    let hsm_spki = hsm.public_key_spki(me, base).unwrap();
    let eph = agreement::PrivateKey::generate(&agreement::ECDH_P256).unwrap();
    let eph_pub = eph.compute_public_key().unwrap();
    let params = EcdhParams {
        peer_public: eph_pub.as_ref(),
        salt: SALT,
        info,
    };
    let key = hsm
        .derive_key(me, base, &params, KeySpec::Aes256, template)
        .unwrap();
    let z = ecdh(&eph, &agreement::ECDH_P256, &hsm_spki).unwrap();
    let value: [u8; 32] = hkdf_sha256(&z, SALT, info, 32).unwrap().try_into().unwrap();
    assert_eq!(
        key.attributes.check_value,
        kcv_secret(KeySpec::Aes256, &value),
        "derive_key: the HSM's ECDH+HKDF result differs from aws-lc-rs's"
    );
    (key, value)
}

/// The proxy's service session, an admin and crypto-user alice, on a fresh HSM.
fn sessions() -> (TestHsm, Session, Session, Session) {
    let hsm = TestHsm::new();
    let me = hsm.service();
    hsm.bootstrap_admin("admin", &Password::from(ADMIN_PW))
        .unwrap();
    let admin = hsm.login_as("admin", &Password::from(ADMIN_PW));
    hsm.create_user(&admin, "alice", Role::CryptoUser, &Password::from(ALICE_PW))
        .unwrap();
    let alice = hsm.login_as("alice", &Password::from(ALICE_PW));
    (hsm, me, admin, alice)
}

/// A data pair of every EC and EdDSA spec.
fn generate_pairs(hsm: &Hsm, me: &Session) -> Vec<(KeySpec, KeyHandle, KeyHandle)> {
    use KeySpec as S;
    let mut pairs = Vec::new();
    for spec in [S::EcP256, S::EcP384, S::EcP521, S::Ed25519] {
        let (p, u) = hsm
            .generate_key_pair(
                me,
                spec,
                &usage_data(spec.as_str()),
                &usage_public(spec.as_str()),
            )
            .unwrap();
        pairs.push((spec, p.handle, u.handle));
    }
    pairs
}

/// (data keys, key-encryption keys): a data key of every secret spec, a key-encryption key of
/// every AES one.
type Secrets = (Vec<(KeySpec, KeyHandle)>, Vec<(KeySpec, KeyHandle)>);

fn generate_secrets(hsm: &Hsm, me: &Session) -> Secrets {
    use KeySpec as S;
    let mut secrets = Vec::new();
    let mut keks = Vec::new();
    for spec in [
        S::Aes128,
        S::Aes192,
        S::Aes256,
        S::GenericSecret { bytes: 1 },
        S::GenericSecret { bytes: 32 },
        S::GenericSecret {
            bytes: GENERIC_SECRET_MAX_BYTES,
        },
    ] {
        let k = hsm
            .generate_secret_key(me, spec, &usage_data(&spec.name()))
            .unwrap();
        secrets.push((spec, k.handle));
        if spec.key_type() == "aes" {
            let label = format!("{}-kek", spec.name());
            let k = hsm
                .generate_secret_key(me, spec, &usage_kek(&label))
                .unwrap();
            keks.push((spec, k.handle));
        }
    }
    (secrets, keks)
}

/// RSA keys enter by unwrap under the known key-encryption key. Each RSA key serves twice, as
/// a data pair (added to `pairs`) and as a key-encryption pair (returned; labels differ), to
/// keep the RSA key generation to one per size.
fn import_rsa(
    hsm: &Hsm,
    me: &Session,
    (known_kek, known_kek_value): (KeyHandle, &[u8; 32]),
    pairs: &mut Vec<(KeySpec, KeyHandle, KeyHandle)>,
) -> Vec<(KeySpec, KeyHandle, KeyHandle)> {
    let mut kek_pairs = Vec::new();
    for (spec, pkcs8) in rsa_keys() {
        let wrapped = aes_kw(known_kek_value, pkcs8, true);
        for kek in [false, true] {
            let label = if kek {
                format!("{}-kek", spec.as_str())
            } else {
                spec.as_str().to_owned()
            };
            let template = if kek {
                usage_kek(&label)
            } else {
                usage_data(&label)
            };
            let p = hsm
                .unwrap_key(
                    me,
                    known_kek,
                    WM::AesKwp,
                    &wrapped,
                    UnwrapTarget::Private,
                    &template,
                )
                .unwrap();
            assert_eq!(p.spec, *spec);
            let spki = hsm.public_key_spki(me, p.handle).unwrap();
            let public = if kek {
                usage_public_kek(&label)
            } else {
                usage_public(&label)
            };
            let u = hsm.import_public_key(me, &spki, &public).unwrap();
            assert_eq!(u.spec, *spec);
            if kek {
                kek_pairs.push((*spec, p.handle, u.handle));
            } else {
                pairs.push((*spec, p.handle, u.handle));
            }
        }
    }
    kek_pairs
}

/// Keys that refuse things, a trusted key, a session object, and alice's own keys.
fn generate_special_keys(hsm: &Hsm, me: &Session, admin: &Session, alice: &Session) {
    use AttributeName as A;
    use KeySpec as S;
    hsm.generate_secret_key(
        me,
        S::Aes256,
        &KeyTemplate::labelled("locked-aes")
            .with(A::Sign, false)
            .with(A::Verify, false)
            .with(A::Extractable, false)
            .with(A::Destroyable, false)
            .with(A::Modifiable, false),
    )
    .unwrap();
    hsm.generate_secret_key(
        me,
        S::Aes128,
        &usage_kek("wwt-aes").with(A::WrapWithTrusted, true),
    )
    .unwrap();
    let trusted = hsm
        .generate_secret_key(me, S::Aes256, &usage_kek("trusted-aes"))
        .unwrap();
    hsm.set_attribute(
        admin,
        trusted.handle,
        A::Trusted,
        AttributeValue::Bool(true),
    )
    .unwrap();
    hsm.generate_key_pair(
        me,
        S::EcP256,
        &KeyTemplate::labelled("locked-ec").with(A::Extractable, false),
        &KeyTemplate::labelled("locked-ec"),
    )
    .unwrap();
    hsm.generate_secret_key(
        me,
        S::Aes256,
        &usage_data("session-aes").with(A::Token, false),
    )
    .unwrap();
    hsm.generate_key_pair(
        alice,
        S::EcP256,
        &usage_data("alice-ec"),
        &usage_public("alice-ec"),
    )
    .unwrap();
    hsm.generate_secret_key(alice, S::Aes256, &usage_data("alice-aes"))
        .unwrap();
}

impl Fx {
    pub(crate) fn new() -> Fx {
        let (hsm, me, admin, alice) = sessions();
        let mut pairs = generate_pairs(&hsm, &me);
        let (secrets, keks) = generate_secrets(&hsm, &me);

        // Keys whose values the test knows: ECDH with the HSM's P-256 key, then HKDF-SHA256.
        let p256 = pairs[0].1;
        let (known, known_value) =
            derive_known(&hsm, &me, p256, b"known", &usage_data("known-aes"));
        let (known_kek, known_kek_value) =
            derive_known(&hsm, &me, p256, b"kek", &usage_kek("known-kek"));
        let kek_pairs = import_rsa(&hsm, &me, (known_kek.handle, &known_kek_value), &mut pairs);
        generate_special_keys(&hsm, &me, &admin, &alice);

        let mut fx = Fx {
            hsm,
            me,
            alice,
            admin,
            keys: Vec::new(),
            pairs,
            kek_pairs,
            secrets,
            keks,
            known: known.handle,
            known_value,
            known_kek: known_kek.handle,
            known_kek_value,
            next: AtomicU64::new(0),
        };
        fx.keys = fx.all_keys().iter().map(|k| k.handle).collect();
        fx
    }

    pub(crate) fn session(&self, i: usize) -> &Session {
        match i {
            0 => &self.me,
            1 => &self.alice,
            _ => &self.admin,
        }
    }

    pub(crate) fn handle(&self, p: &Pick) -> KeyHandle {
        match p {
            Pick::Key(i) => self.keys[*i % self.keys.len()],
            Pick::Raw(h) => KeyHandle(*h),
        }
    }

    /// The truth about a key: an admin sees every token key; a session object is seen by
    /// its own session only.
    pub(crate) fn info(&self, h: KeyHandle) -> Option<K> {
        if let Ok(info) = self.hsm.key_info(&self.admin, h) {
            return Some(K { info, scope: None });
        }
        [&self.me, &self.alice].into_iter().find_map(|s| {
            let info = self.hsm.key_info(s, h).ok()?;
            (!info.attributes.token).then(|| K {
                info,
                scope: Some(s.id()),
            })
        })
    }

    /// Every key: the token keys (as an admin sees them) and the session objects of the
    /// fixture's sessions.
    pub(crate) fn all_keys(&self) -> Vec<K> {
        let all = KeyFilter::default();
        let mut keys: Vec<K> = self
            .hsm
            .list_keys(&self.admin, &all, None, MAX_PAGE_SIZE)
            .unwrap()
            .keys
            .into_iter()
            .map(|info| K { info, scope: None })
            .collect();
        for s in [&self.me, &self.alice] {
            if let Ok(page) = self.hsm.list_keys(s, &all, None, MAX_PAGE_SIZE) {
                keys.extend(
                    page.keys
                        .into_iter()
                        .filter(|k| !k.attributes.token)
                        .map(|info| K {
                            info,
                            scope: Some(s.id()),
                        }),
                );
            }
        }
        keys.sort_by_key(|k| k.handle);
        keys
    }

    pub(crate) fn snapshot(&self) -> Snap {
        let all = KeyFilter::default();
        (
            self.hsm.list_keys(&self.me, &all, None, 1000).unwrap(),
            self.hsm
                .list_keys(&self.admin, &all, None, MAX_PAGE_SIZE)
                .unwrap(),
            self.hsm.list_keys(&self.alice, &all, None, 1000).ok(),
        )
    }

    pub(crate) fn unchanged(&self, what: &str, before: &Snap) -> TestCaseResult {
        let after = self.snapshot();
        if after != *before {
            let changed: Vec<String> = after
                .1
                .keys
                .iter()
                .filter(|k| !before.1.keys.contains(k))
                .map(|k| format!("{} {:?}", k.handle, k.attributes.label))
                .chain(
                    before
                        .1
                        .keys
                        .iter()
                        .filter(|k| !after.1.keys.contains(k))
                        .map(|k| format!("-{} {:?}", k.handle, k.attributes.label)),
                )
                .collect();
            return Err(TestCaseError::fail(format!(
                "{what} changed keys: {changed:?}"
            )));
        }
        Ok(())
    }

    /// Checks the result, and that a refused call changed nothing.
    pub(crate) fn outcome<T>(
        &self,
        what: &str,
        before: &Snap,
        got: &R<T>,
        w: Want,
    ) -> TestCaseResult {
        check(what, got, w)?;
        if got.is_err() {
            self.unchanged(what, before)?;
        }
        Ok(())
    }

    pub(crate) fn label(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn label_for(&self, choice: &LabelChoice, class: KeyClass) -> String {
        match choice {
            LabelChoice::Fresh => self.label("new"),
            LabelChoice::Taken => match class {
                KeyClass::Secret => "aes-256".into(),
                _ => "ec-p256".into(),
            },
            LabelChoice::Text(t) => t.clone(),
        }
    }

    /// Whether `s` may give a new key of `class` this label: reserved prefixes are for the
    /// service user only; labels are unique per owner and class.
    pub(crate) fn label_free(
        &self,
        s: &Session,
        label: &str,
        class: KeyClass,
    ) -> Result<(), &'static str> {
        let folded = label.trim_start().to_ascii_lowercase();
        if RESERVED_LABEL_PREFIXES
            .iter()
            .any(|p| folded.starts_with(p))
            && s.user() != PROXY_USER
        {
            return Err("permission_denied");
        }
        if self
            .all_keys()
            .iter()
            .any(|k| k.class == class && k.owner == s.user() && k.attributes.label == label)
        {
            return Err("label_exists");
        }
        Ok(())
    }

    pub(crate) fn pair(&self, spec: KeySpec) -> Option<(KeyHandle, KeyHandle)> {
        self.pairs
            .iter()
            .find(|(s, _, _)| *s == spec)
            .map(|&(_, p, u)| (p, u))
    }

    pub(crate) fn pick_of(&self, h: KeyHandle) -> Pick {
        Pick::Key(self.keys.iter().position(|k| *k == h).unwrap())
    }

    /// The fixture's keys that the proxy user owns (and may use).
    pub(crate) fn mine(&self) -> Vec<K> {
        self.all_keys()
            .into_iter()
            .filter(|k| k.owner == PROXY_USER && self.keys.contains(&k.handle))
            .collect()
    }

    pub(crate) fn kek_pair(&self, spec: KeySpec) -> Option<(KeyHandle, KeyHandle)> {
        self.kek_pairs
            .iter()
            .find(|(s, _, _)| *s == spec)
            .map(|&(_, p, u)| (p, u))
    }

    /// The store reopens (with the master key) to the same token keys.
    pub(crate) fn check_reopen(&self) {
        let hsm =
            self.hsm.store.open().unwrap_or_else(|e| {
                panic!("the store does not reopen: {} ({e})", e.code().as_str())
            });
        let (admin, _) = hsm
            .login("admin", &Password::from(ADMIN_PW), Duration::from_secs(60))
            .unwrap();
        let tokens = KeyFilter {
            attributes: vec![(AttributeName::Token, true)],
            ..KeyFilter::default()
        };
        let reopened = hsm.list_keys(&admin, &tokens, None, MAX_PAGE_SIZE).unwrap();
        let live = self
            .hsm
            .list_keys(&self.admin, &tokens, None, MAX_PAGE_SIZE)
            .unwrap();
        assert_eq!(reopened, live, "the reopened store holds different keys");
    }
}

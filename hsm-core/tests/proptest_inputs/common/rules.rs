//! The rules, as documented: the oracle that predicts each call's outcome.

use super::*;

pub(crate) fn active_as(s: &Session, role: Role) -> Result<(), &'static str> {
    if !s.is_active() {
        Err("session_invalid")
    } else if s.role() != role {
        Err("permission_denied")
    } else {
        Ok(())
    }
}

pub(crate) fn may_use(s: &Session, i: &KeyInfo) -> bool {
    i.owner == s.user() || i.shared_with.iter().any(|u| u == s.user())
}

/// A key as the test knows it: its description, and for a session object (`token` false) the
/// session it belongs to (only that session sees it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct K {
    pub(crate) info: KeyInfo,
    pub(crate) scope: Option<u64>,
}

impl std::ops::Deref for K {
    type Target = KeyInfo;
    fn deref(&self) -> &KeyInfo {
        &self.info
    }
}

pub(crate) fn in_scope(s: &Session, k: &K) -> bool {
    k.scope.is_none_or(|id| id == s.id())
}

pub(crate) fn visible(s: &Session, k: &K) -> bool {
    in_scope(s, k) && (s.role() == Role::Admin || may_use(s, k))
}

/// A key the session may use (owner or shared with it; crypto-users only). Any other key is
/// "not found", exactly like a missing handle.
pub(crate) fn usable<'a>(s: &Session, info: Option<&'a K>) -> Result<&'a KeyInfo, &'static str> {
    active_as(s, Role::CryptoUser)?;
    info.filter(|k| in_scope(s, k) && may_use(s, k))
        .map(|k| &k.info)
        .ok_or("key_not_found")
}

/// A key the session owns (a shared user sees it but gets "permission denied").
pub(crate) fn owned<'a>(s: &Session, info: Option<&'a K>) -> Result<&'a KeyInfo, &'static str> {
    let i = usable(s, info)?;
    if i.owner != s.user() {
        return Err("permission_denied");
    }
    Ok(i)
}

pub(crate) fn need(attribute: bool) -> Result<(), &'static str> {
    if attribute {
        Ok(())
    } else {
        Err("attribute_violation")
    }
}

pub(crate) fn invalid_if(bad: bool) -> Result<(), &'static str> {
    if bad {
        Err("invalid_input")
    } else {
        Ok(())
    }
}

pub(crate) fn is_rsa(spec: KeySpec) -> bool {
    spec.key_type() == "rsa"
}

pub(crate) fn is_rsa_sign(m: SM) -> bool {
    matches!(
        m,
        SM::RsaPkcs1Sha256
            | SM::RsaPkcs1Sha384
            | SM::RsaPkcs1Sha512
            | SM::RsaPssSha256
            | SM::RsaPssSha384
            | SM::RsaPssSha512
    )
}

/// Which sign mechanisms a private (or secret) key of `spec` offers.
pub(crate) fn sign_fits(spec: KeySpec, m: SM) -> bool {
    use KeySpec as S;
    match spec {
        S::EcP256 => m == SM::EcdsaSha256,
        S::EcP384 => m == SM::EcdsaSha384,
        S::EcP521 => matches!(m, SM::EcdsaSha256 | SM::EcdsaSha384 | SM::EcdsaSha512),
        S::Rsa2048 | S::Rsa3072 | S::Rsa4096 => is_rsa_sign(m),
        S::Ed25519 => m == SM::Ed25519,
        _ => m.is_hmac(),
    }
}

/// Which (mechanism, encoding) pairs verify with a key of `spec` (mechanism.rs table).
pub(crate) fn verify_fits(spec: KeySpec, m: SM, e: SignatureEncoding) -> bool {
    use KeySpec as S;
    use SignatureEncoding as E;
    match spec {
        S::EcP256 => matches!((m, e), (SM::EcdsaSha256, _) | (SM::EcdsaSha384, E::Der)),
        S::EcP384 => matches!((m, e), (SM::EcdsaSha256, E::Der) | (SM::EcdsaSha384, _)),
        S::EcP521 => matches!(m, SM::EcdsaSha256 | SM::EcdsaSha384 | SM::EcdsaSha512),
        S::Rsa2048 | S::Rsa3072 | S::Rsa4096 => is_rsa_sign(m),
        S::Ed25519 => m == SM::Ed25519,
        _ => m.is_hmac(),
    }
}

pub(crate) fn digest_ok(m: SM, input: &Input) -> Result<(), &'static str> {
    if let Input::Digest(d) = input {
        invalid_if(!m.accepts_digest() || m.digest().map(|a| a.output_len()) != Some(d.len()))?;
    }
    Ok(())
}

pub(crate) fn expect_sign(s: &Session, info: Option<&K>, m: SM, input: &Input) -> Want {
    want(|| {
        let i = usable(s, info)?;
        need(i.attributes.sign)?;
        if i.class == KeyClass::Public || !sign_fits(i.spec, m) {
            return Err("mechanism_invalid");
        }
        digest_ok(m, input)?;
        Ok(Want::Ok)
    })
}

pub(crate) fn expect_verify(
    s: &Session,
    info: Option<&K>,
    m: SM,
    e: SignatureEncoding,
    input: &Input,
) -> Want {
    want(|| {
        let i = usable(s, info)?;
        need(i.attributes.verify)?;
        if !verify_fits(i.spec, m, e) {
            return Err("mechanism_invalid");
        }
        digest_ok(m, input)?;
        Ok(Want::Ok)
    })
}

pub(crate) fn encrypt_fits(i: &KeyInfo, m: EM, decrypt: bool) -> bool {
    match m {
        EM::AesGcm | EM::AesCbcPad => i.spec.key_type() == "aes",
        _ => is_rsa(i.spec) && (!decrypt || i.class == KeyClass::Private),
    }
}

pub(crate) fn expect_encrypt(s: &Session, info: Option<&K>, m: EM, len: usize, aad: usize) -> Want {
    want(|| {
        let i = usable(s, info)?;
        need(i.attributes.encrypt)?;
        if !encrypt_fits(i, m, false) {
            return Err("mechanism_invalid");
        }
        invalid_if(m != EM::AesGcm && aad > 0)?;
        invalid_if(is_rsa(i.spec) && len > oaep_max(i.spec, m))?;
        Ok(Want::Ok)
    })
}

/// Decrypting bytes that were not made by encrypt: at best `invalid_input`. aes-cbc-pad has
/// no integrity, so random bytes with valid padding decrypt.
pub(crate) fn expect_decrypt_random(
    s: &Session,
    info: Option<&K>,
    m: EM,
    len: usize,
    aad: usize,
) -> Want {
    want(|| {
        let i = usable(s, info)?;
        need(i.attributes.decrypt)?;
        if !encrypt_fits(i, m, true) {
            return Err("mechanism_invalid");
        }
        invalid_if(m != EM::AesGcm && aad > 0)?;
        Ok(match m {
            EM::AesGcm => Want::Err("invalid_input"),
            EM::AesCbcPad if len >= 32 && (len - 16).is_multiple_of(16) => {
                Want::OkOr("invalid_input")
            }
            EM::AesCbcPad => Want::Err("invalid_input"),
            _ => Want::Err("invalid_input"),
        })
    })
}

pub(crate) fn wrap_fits(i: &KeyInfo, m: WM, unwrap: bool) -> bool {
    match m {
        WM::AesKw | WM::AesKwp => matches!(i.spec, KeySpec::Aes128 | KeySpec::Aes256),
        WM::AesGcm => i.spec.key_type() == "aes",
        WM::RsaOaep | WM::RsaAes => is_rsa(i.spec) && (!unwrap || i.class == KeyClass::Private),
        _ => false,
    }
}

pub(crate) fn expect_wrap(s: &Session, w: Option<&K>, m: WM, t: Option<&K>) -> Want {
    want(|| {
        let w = usable(s, w)?;
        let t = owned(s, t)?;
        need(w.attributes.wrap)?;
        need(t.attributes.extractable)?;
        if t.attributes.wrap_with_trusted {
            need(w.attributes.trusted)?;
        }
        if !wrap_fits(w, m, false) {
            return Err("mechanism_invalid");
        }
        invalid_if(t.class == KeyClass::Public)?;
        match (m, t.spec.secret_len()) {
            (WM::AesKw, Some(l)) => invalid_if(l < 16 || l % 8 != 0)?,
            (WM::RsaOaep, Some(l)) => invalid_if(l > oaep_max(w.spec, EM::RsaOaepSha256))?,
            // The PKCS#8 length of a private key is not known here.
            (WM::AesKw | WM::RsaOaep, None) => return Ok(Want::OkOr("invalid_input")),
            _ => {}
        }
        Ok(Want::Ok)
    })
}

/// Policy part of unwrap; what follows is the unwrap itself.
pub(crate) fn expect_unwrap_policy(s: &Session, u: Option<&K>, m: WM) -> Result<(), &'static str> {
    let u = usable(s, u)?;
    need(u.attributes.unwrap)?;
    if !wrap_fits(u, m, true) {
        return Err("mechanism_invalid");
    }
    Ok(())
}

/// A secret spec the HSM documents: AES, or a generic secret of 1 to 800 bytes.
pub(crate) fn secret_spec_valid(spec: KeySpec) -> bool {
    match spec {
        KeySpec::GenericSecret { bytes } => (1..=GENERIC_SECRET_MAX_BYTES).contains(&bytes),
        other => other.is_secret(),
    }
}

/// 1 to 127 bytes; no control, bidirectional or invisible format characters.
pub(crate) fn label_ok(l: &str) -> Result<(), &'static str> {
    let deceptive = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    };
    invalid_if(l.is_empty() || l.len() > 127 || l.chars().any(deceptive))
}

/// Key-usage separation: a key (with its linked half) protects data or keys, not both.
pub(crate) fn separated(a: &Attributes, linked: Option<&Attributes>) -> Result<(), &'static str> {
    let data = |a: &Attributes| a.encrypt || a.decrypt;
    let keys = |a: &Attributes| a.wrap || a.unwrap;
    let d = data(a) || linked.is_some_and(data);
    let k = keys(a) || linked.is_some_and(keys);
    invalid_if(d && k)
}

pub(crate) fn id_ok(id: &str) -> Result<(), &'static str> {
    invalid_if(
        id.len() > 128
            || !id.len().is_multiple_of(2)
            || !id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
    )
}

pub(crate) fn set_bool(a: &mut Attributes, n: AttributeName, v: bool) {
    use AttributeName as A;
    match n {
        A::Sign => a.sign = v,
        A::Verify => a.verify = v,
        A::Encrypt => a.encrypt = v,
        A::Decrypt => a.decrypt = v,
        A::Wrap => a.wrap = v,
        A::Unwrap => a.unwrap = v,
        A::Derive => a.derive = v,
        A::Extractable => a.extractable = v,
        A::Sensitive => a.sensitive = v,
        A::Token => a.token = v,
        A::Trusted => a.trusted = v,
        A::WrapWithTrusted => a.wrap_with_trusted = v,
        A::Modifiable => a.modifiable = v,
        A::Destroyable => a.destroyable = v,
        A::Local => a.local = v,
        A::NeverExtractable => a.never_extractable = v,
        A::AlwaysSensitive => a.always_sensitive = v,
        A::Label | A::Id | A::CheckValue => {}
    }
}

/// The attributes a template gives a new object of `class`, as documented.
pub(crate) fn build(t: &KeyTemplate, class: KeyClass) -> Result<Attributes, &'static str> {
    label_ok(&t.label)?;
    let mut a = Attributes::defaults(&t.label, class);
    for (n, v) in &t.attributes {
        // Read-only attributes, and `trusted` (an admin sets it on an existing key).
        invalid_if(n.is_read_only() || *n == AttributeName::Trusted)?;
        match (n, v) {
            (AttributeName::Label, AttributeValue::Text(x)) => {
                label_ok(x)?;
                a.label = x.clone();
            }
            (AttributeName::Id, AttributeValue::Text(x)) => {
                id_ok(x)?;
                a.id = x.clone();
            }
            (n, AttributeValue::Bool(b)) if a.get_bool(*n).is_some() => set_bool(&mut a, *n, *b),
            _ => return Err("invalid_input"),
        }
    }
    if class == KeyClass::Public {
        a.sensitive = false;
        a.extractable = true;
    }
    a.never_extractable = !a.extractable;
    a.always_sensitive = a.sensitive;
    Ok(a)
}

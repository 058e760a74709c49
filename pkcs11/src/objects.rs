//! Keyward keys as PKCS#11 objects: attributes read (`C_GetAttributeValue`), templates
//! parsed (`C_GenerateKey*`, `C_UnwrapKey`, `C_FindObjectsInit`, `C_SetAttributeValue`).
//!
//! Boolean attributes map one to one onto the HSM's (`CKA_SIGN` ↔ `sign`, …,
//! `CKA_WRAP_WITH_TRUSTED` ↔ `wrap_with_trusted`); `CKA_LABEL` ↔ `label`; `CKA_ID` ↔ `id`
//! (the API's lower-case hex). Public parts come from the key's SubjectPublicKeyInfo
//! (RFC 5280 §4.1.2.7): `CKA_EC_PARAMS` (the named curve's OID, DER), `CKA_EC_POINT` (the
//! point in a DER OCTET STRING), `CKA_MODULUS` and `CKA_PUBLIC_EXPONENT` (big-endian),
//! `CKA_PUBLIC_KEY_INFO` (the DER itself). `CKA_VALUE` of a secret or private key is always
//! `CKR_ATTRIBUTE_SENSITIVE`: the HSM releases key bytes only wrapped.

use std::collections::BTreeMap;

use cryptoki_sys::*;
use der::Encode;
use keyward_client::{Key, KeyTemplate};

use crate::error::Rv;
use crate::module::Cached;

/// The boolean attributes and the HSM's names for them.
pub(crate) const BOOLS: &[(CK_ATTRIBUTE_TYPE, &str)] = &[
    (CKA_SIGN, "sign"),
    (CKA_VERIFY, "verify"),
    (CKA_ENCRYPT, "encrypt"),
    (CKA_DECRYPT, "decrypt"),
    (CKA_WRAP, "wrap"),
    (CKA_UNWRAP, "unwrap"),
    (CKA_DERIVE, "derive"),
    (CKA_EXTRACTABLE, "extractable"),
    (CKA_SENSITIVE, "sensitive"),
    (CKA_TOKEN, "token"),
    (CKA_TRUSTED, "trusted"),
    (CKA_WRAP_WITH_TRUSTED, "wrap_with_trusted"),
    (CKA_MODIFIABLE, "modifiable"),
    (CKA_DESTROYABLE, "destroyable"),
];

/// Set by the HSM only.
const READ_ONLY: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_LOCAL,
    CKA_NEVER_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_KEY_GEN_MECHANISM,
    CKA_CHECK_VALUE,
    CKA_PUBLIC_KEY_INFO,
];

/// A parsed template.
#[derive(Debug, Default)]
pub(crate) struct Template {
    pub(crate) class: Option<CK_OBJECT_CLASS>,
    pub(crate) key_type: Option<CK_KEY_TYPE>,
    pub(crate) label: Option<String>,
    pub(crate) id: Option<Vec<u8>>,
    pub(crate) bools: BTreeMap<&'static str, bool>,
    pub(crate) private: Option<bool>,
    pub(crate) value_len: Option<CK_ULONG>,
    pub(crate) ec_params: Option<Vec<u8>>,
    pub(crate) modulus_bits: Option<CK_ULONG>,
    pub(crate) public_exponent: Option<Vec<u8>>,
}

fn as_bool(v: &[u8]) -> Rv<bool> {
    match v {
        [b] => Ok(*b != 0),
        _ => Err(CKR_ATTRIBUTE_VALUE_INVALID),
    }
}

fn as_ulong(v: &[u8]) -> Rv<CK_ULONG> {
    let bytes: [u8; std::mem::size_of::<CK_ULONG>()] =
        v.try_into().map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?;
    Ok(CK_ULONG::from_ne_bytes(bytes))
}

fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

impl Template {
    /// Reads `(type, value)` pairs; an attribute the module does not know is
    /// `CKR_ATTRIBUTE_TYPE_INVALID`, one only the HSM sets is `CKR_ATTRIBUTE_READ_ONLY`.
    pub(crate) fn parse(attrs: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Rv<Template> {
        let mut t = Template::default();
        for (ty, v) in attrs {
            if let Some((_, name)) = BOOLS.iter().find(|(b, _)| b == ty) {
                t.bools.insert(name, as_bool(v)?);
                continue;
            }
            match *ty {
                CKA_CLASS => t.class = Some(as_ulong(v)?),
                CKA_KEY_TYPE => t.key_type = Some(as_ulong(v)?),
                CKA_LABEL => {
                    t.label = Some(
                        String::from_utf8(v.clone()).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?,
                    )
                }
                CKA_ID => t.id = Some(v.clone()),
                CKA_PRIVATE => t.private = Some(as_bool(v)?),
                CKA_VALUE_LEN => t.value_len = Some(as_ulong(v)?),
                CKA_EC_PARAMS => t.ec_params = Some(v.clone()),
                CKA_MODULUS_BITS => t.modulus_bits = Some(as_ulong(v)?),
                CKA_PUBLIC_EXPONENT => t.public_exponent = Some(v.clone()),
                ty if READ_ONLY.contains(&ty) => return Err(CKR_ATTRIBUTE_READ_ONLY),
                _ => return Err(CKR_ATTRIBUTE_TYPE_INVALID),
            }
        }
        Ok(t)
    }

    /// The HSM template for a new key of class `class`: its label (generated when the
    /// template has none: the HSM requires one), id and boolean attributes, with PKCS#11's
    /// defaults where the HSM's differ:
    /// - `CKA_TOKEN` absent: false (PKCS#11 v2.40 §4.4), a session object;
    /// - no usage attribute at all: `usage`, the usual ones of the key type, as SoftHSM and
    ///   the JDK's defaults expect (the HSM's own default for an asymmetric key is none).
    ///
    /// `CKA_PRIVATE` false is accepted and has no effect: every Keyward object needs a login
    /// (`CKA_PRIVATE` reads true), as with YubiHSM's and CloudHSM's modules.
    pub(crate) fn key_template(
        &self,
        class: CK_OBJECT_CLASS,
        default_label: &str,
        usage: &[&'static str],
    ) -> Rv<KeyTemplate> {
        if let Some(c) = self.class {
            if c != class {
                return Err(CKR_TEMPLATE_INCONSISTENT);
            }
        }
        // An empty CKA_LABEL is PKCS#11's default (python-pkcs11 always sends one): as absent.
        let label = match self.label.as_deref() {
            Some(l) if !l.is_empty() => l.to_owned(),
            _ => default_label.to_owned(),
        };
        let mut k = KeyTemplate::new(label);
        if let Some(id) = &self.id {
            if !id.is_empty() {
                k = k.id(hex::encode(id));
            }
        }
        for (name, value) in &self.bools {
            k = k.with(*name, *value);
        }
        if !self.bools.contains_key("token") {
            k = k.with("token", false);
        }
        const USAGE: [&str; 7] = [
            "sign", "verify", "encrypt", "decrypt", "wrap", "unwrap", "derive",
        ];
        if !USAGE.iter().any(|u| self.bools.contains_key(u)) {
            for u in usage {
                k = k.with(*u, true);
            }
        }
        Ok(k)
    }
}

/// `CKO_*` of a key.
pub(crate) fn class_of(key: &Key) -> CK_OBJECT_CLASS {
    match key.class.as_str() {
        "secret" => CKO_SECRET_KEY,
        "private" => CKO_PRIVATE_KEY,
        _ => CKO_PUBLIC_KEY,
    }
}

/// The key's type as the API names it (`aes`, `generic-secret`, `rsa`, `ec`, `ed25519`).
pub(crate) fn type_name(key: &Key) -> &'static str {
    let spec = key.spec.as_str();
    match spec {
        s if s.starts_with("aes") => "aes",
        "generic-secret" => "generic-secret",
        s if s.starts_with("rsa") => "rsa",
        s if s.starts_with("ec-") => "ec",
        _ => "ed25519",
    }
}

/// `CKK_*` of a key.
pub(crate) fn key_type_of(key: &Key) -> CK_KEY_TYPE {
    match type_name(key) {
        "aes" => CKK_AES,
        "generic-secret" => CKK_GENERIC_SECRET,
        "rsa" => CKK_RSA,
        "ec" => CKK_EC,
        _ => CKK_EC_EDWARDS,
    }
}

/// The API's key type name for a `CKK_*`.
pub(crate) fn type_name_of_ckk(ckk: CK_KEY_TYPE) -> Option<&'static str> {
    Some(match ckk {
        CKK_AES => "aes",
        CKK_GENERIC_SECRET => "generic-secret",
        CKK_RSA => "rsa",
        CKK_EC => "ec",
        CKK_EC_EDWARDS => "ed25519",
        _ => return None,
    })
}

/// The length in bytes of a secret key's value.
pub(crate) fn secret_len(key: &Key) -> Option<CK_ULONG> {
    let name = key.spec.name();
    Some(match name.as_str() {
        "aes-128" => 16,
        "aes-192" => 24,
        "aes-256" => 32,
        n => n.strip_prefix("generic-secret-")?.parse().ok()?,
    })
}

/// The length of a signature the key makes (ECDSA as `r‖s`), or of an RSA block.
pub(crate) fn signature_len(key: &Key, hmac_len: Option<usize>) -> usize {
    match key.spec.name().as_str() {
        "ec-p256" => 64,
        "ec-p384" => 96,
        "ec-p521" => 132,
        "rsa-2048" => 256,
        "rsa-3072" => 384,
        "rsa-4096" => 512,
        "ed25519" => 64,
        _ => hmac_len.unwrap_or(64),
    }
}

/// What `C_GetAttributeValue` finds for one attribute.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    Value(Vec<u8>),
    Sensitive,
    Invalid,
}

/// One attribute of a cached key (with its SPKI for the public parts of asymmetric keys).
pub(crate) fn read(c: &Cached, ty: CK_ATTRIBUTE_TYPE) -> Read {
    let key = &c.key;
    let class = class_of(key);
    let a = &key.attributes;
    if let Some((_, name)) = BOOLS.iter().find(|(b, _)| *b == ty) {
        let v = match *name {
            "sign" => a.sign,
            "verify" => a.verify,
            "encrypt" => a.encrypt,
            "decrypt" => a.decrypt,
            "wrap" => a.wrap,
            "unwrap" => a.unwrap,
            "derive" => a.derive,
            "extractable" => a.extractable,
            "sensitive" => a.sensitive,
            "token" => a.token,
            "trusted" => a.trusted,
            "wrap_with_trusted" => a.wrap_with_trusted,
            "modifiable" => a.modifiable,
            _ => a.destroyable,
        };
        return Read::Value(vec![u8::from(v)]);
    }
    let bool_value = |v: bool| Read::Value(vec![u8::from(v)]);
    match ty {
        CKA_CLASS => Read::Value(ulong(class)),
        CKA_KEY_TYPE => Read::Value(ulong(key_type_of(key))),
        CKA_LABEL => Read::Value(a.label.as_bytes().to_vec()),
        CKA_ID => Read::Value(hex::decode(&a.id).unwrap_or_default()),
        CKA_PRIVATE => bool_value(class != CKO_PUBLIC_KEY),
        CKA_LOCAL => bool_value(a.local),
        CKA_NEVER_EXTRACTABLE => bool_value(a.never_extractable),
        CKA_ALWAYS_SENSITIVE => bool_value(a.always_sensitive),
        CKA_COPYABLE | CKA_ALWAYS_AUTHENTICATE | CKA_SIGN_RECOVER | CKA_VERIFY_RECOVER => {
            bool_value(false)
        }
        CKA_START_DATE | CKA_END_DATE | CKA_SUBJECT => Read::Value(Vec::new()),
        CKA_KEY_GEN_MECHANISM => Read::Value(ulong(if a.local {
            match key_type_of(key) {
                CKK_AES => CKM_AES_KEY_GEN,
                CKK_GENERIC_SECRET => CKM_GENERIC_SECRET_KEY_GEN,
                CKK_RSA => CKM_RSA_PKCS_KEY_PAIR_GEN,
                CKK_EC => CKM_EC_KEY_PAIR_GEN,
                _ => CKM_EC_EDWARDS_KEY_PAIR_GEN,
            }
        } else {
            CK_UNAVAILABLE_INFORMATION
        })),
        CKA_VALUE_LEN if class == CKO_SECRET_KEY => match secret_len(key) {
            Some(n) => Read::Value(ulong(n)),
            None => Read::Invalid,
        },
        CKA_CHECK_VALUE if class == CKO_SECRET_KEY => {
            Read::Value(hex::decode(&a.check_value).unwrap_or_default())
        }
        CKA_VALUE if class != CKO_PUBLIC_KEY => Read::Sensitive,
        CKA_PRIVATE_EXPONENT | CKA_PRIME_1 | CKA_PRIME_2 | CKA_EXPONENT_1 | CKA_EXPONENT_2
        | CKA_COEFFICIENT
            if class == CKO_PRIVATE_KEY && key_type_of(key) == CKK_RSA =>
        {
            Read::Sensitive
        }
        _ => match c.spki.as_deref() {
            Some(spki) if class != CKO_SECRET_KEY => public_part(spki, key_type_of(key), ty),
            _ => Read::Invalid,
        },
    }
}

/// Whether `ty` is read from the public key (then the caller fetches the SPKI first).
pub(crate) fn needs_spki(ty: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        ty,
        CKA_EC_PARAMS
            | CKA_EC_POINT
            | CKA_MODULUS
            | CKA_MODULUS_BITS
            | CKA_PUBLIC_EXPONENT
            | CKA_PUBLIC_KEY_INFO
            | CKA_VALUE
    )
}

fn public_part(spki_der: &[u8], ckk: CK_KEY_TYPE, ty: CK_ATTRIBUTE_TYPE) -> Read {
    let Ok(spki) = spki::SubjectPublicKeyInfoRef::try_from(spki_der) else {
        return Read::Invalid;
    };
    let point = spki.subject_public_key.raw_bytes();
    let value = match (ckk, ty) {
        (_, CKA_PUBLIC_KEY_INFO) => Some(spki_der.to_vec()),
        (CKK_EC, CKA_EC_PARAMS) => spki.algorithm.parameters.and_then(|p| p.to_der().ok()),
        (CKK_EC_EDWARDS, CKA_EC_PARAMS) => spki.algorithm.oid.to_der().ok(),
        (CKK_EC | CKK_EC_EDWARDS, CKA_EC_POINT) => der::asn1::OctetStringRef::new(point)
            .ok()
            .and_then(|o| o.to_der().ok()),
        (CKK_RSA, CKA_MODULUS | CKA_PUBLIC_EXPONENT | CKA_MODULUS_BITS) => {
            let Ok(rsa) = pkcs1::RsaPublicKey::try_from(point) else {
                return Read::Invalid;
            };
            match ty {
                CKA_MODULUS => Some(rsa.modulus.as_bytes().to_vec()),
                CKA_PUBLIC_EXPONENT => Some(rsa.public_exponent.as_bytes().to_vec()),
                _ => Some(ulong(rsa.modulus.as_bytes().len() as CK_ULONG * 8)),
            }
        }
        _ => None,
    };
    value.map_or(Read::Invalid, Read::Value)
}

/// Whether a key matches a find template (every attribute given must be equal).
pub(crate) fn matches(c: &Cached, wanted: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> bool {
    wanted
        .iter()
        .all(|(ty, v)| matches!(read(c, *ty), Read::Value(ref have) if have == v))
}

/// The HSM's key spec for a new pair: from `CKA_EC_PARAMS` (EC and Edwards curves) or
/// `CKA_MODULUS_BITS` and `CKA_PUBLIC_EXPONENT` (RSA; the HSM uses 65537).
pub(crate) fn pair_spec(mechanism: CK_MECHANISM_TYPE, public: &Template) -> Rv<&'static str> {
    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    const P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
    const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";
    // OpenSC's (GnuPG's) OID for Ed25519, 1.3.6.1.4.1.11591.15.1.
    const ED25519_GNU: &[u8] = &[
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01,
    ];
    match mechanism {
        CKM_EC_KEY_PAIR_GEN => match public.ec_params.as_deref() {
            Some(P256) => Ok("ec-p256"),
            Some(P384) => Ok("ec-p384"),
            Some(P521) => Ok("ec-p521"),
            Some(_) => Err(CKR_CURVE_NOT_SUPPORTED),
            None => Err(CKR_TEMPLATE_INCOMPLETE),
        },
        CKM_EC_EDWARDS_KEY_PAIR_GEN => match public.ec_params.as_deref() {
            Some(ED25519 | ED25519_NAME | ED25519_GNU) => Ok("ed25519"),
            Some(_) => Err(CKR_CURVE_NOT_SUPPORTED),
            None => Err(CKR_TEMPLATE_INCOMPLETE),
        },
        CKM_RSA_PKCS_KEY_PAIR_GEN => {
            if let Some(e) = &public.public_exponent {
                let e: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
                if e != [0x01, 0x00, 0x01] {
                    return Err(CKR_ATTRIBUTE_VALUE_INVALID);
                }
            }
            match public.modulus_bits {
                Some(2048) => Ok("rsa-2048"),
                Some(3072) => Ok("rsa-3072"),
                Some(4096) => Ok("rsa-4096"),
                Some(_) => Err(CKR_KEY_SIZE_RANGE),
                None => Err(CKR_TEMPLATE_INCOMPLETE),
            }
        }
        _ => Err(CKR_MECHANISM_INVALID),
    }
}

/// The HSM's spec for a new secret key: AES from `CKA_VALUE_LEN` 16, 24 or 32; a generic
/// secret of `CKA_VALUE_LEN` bytes.
pub(crate) fn secret_spec(key_type: &str, value_len: Option<CK_ULONG>) -> Rv<String> {
    match (key_type, value_len) {
        ("aes", Some(16)) => Ok("aes-128".into()),
        ("aes", Some(24)) => Ok("aes-192".into()),
        ("aes", Some(32)) => Ok("aes-256".into()),
        ("generic-secret", Some(n)) if (1..=800).contains(&n) => Ok(format!("generic-secret-{n}")),
        (_, None) => Err(CKR_TEMPLATE_INCOMPLETE),
        ("aes" | "generic-secret", Some(_)) => Err(CKR_KEY_SIZE_RANGE),
        _ => Err(CKR_TEMPLATE_INCONSISTENT),
    }
}

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;

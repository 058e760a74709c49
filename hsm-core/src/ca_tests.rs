//! The CA register: who may create, issue into, revoke from and publish for a CA; records
//! that are tampered with, deleted or rolled back are refused; everything is audited.

use keyward_keystore::{Backend, Write};

use crate::tests::TestHsm;
use crate::*;

fn ca_key(t: &TestHsm, owner: &Session, label: &str, extractable: bool) -> KeyHandle {
    let private = KeyTemplate::labelled(label)
        .with(AttributeName::Sign, true)
        .with(AttributeName::Extractable, extractable);
    let public = KeyTemplate::labelled(label).with(AttributeName::Verify, true);
    t.generate_key_pair(owner, KeySpec::EcP256, &private, &public)
        .unwrap()
        .0
        .handle
}

fn record(name: &str, key: KeyHandle, owner: &str) -> CaRecord {
    CaRecord {
        name: name.into(),
        key,
        owner: owner.into(),
        parent: None,
        certificate: vec![0x30, 0x00],
        chain: Vec::new(),
        settings: CaSettings {
            allowed_dns: vec![".example.test".into()],
            allow_ip: false,
            max_validity_days: 397,
            crl_period_s: 86_400,
            path_len: Some(1),
            permitted_dns: Vec::new(),
            crl_urls: Vec::new(),
            ocsp_urls: Vec::new(),
        },
        crl_number: 0,
        crl: None,
        crl_next_update_unix_s: 0,
        revoked: Vec::new(),
        created_unix_ms: 1,
    }
}

fn cert(ca: &str, serial: &str) -> CertRecord {
    CertRecord {
        ca: ca.into(),
        serial: serial.into(),
        profile: "tls-server".into(),
        subject: "CN=www.example.test".into(),
        dns: vec!["www.example.test".into()],
        ips: Vec::new(),
        not_before_unix_s: 1,
        not_after_unix_s: u64::MAX / 2,
        certificate: vec![0x30, 0x00],
        issued_by: "alice".into(),
        issued_unix_ms: 1,
        revocation: None,
    }
}

#[test]
fn the_owner_creates_issues_revokes_and_publishes_others_cannot() {
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let bob = t.crypto_user(&admin, "bob");
    let key = ca_key(&t, &alice, "ca-root", false);

    // Bob cannot register a CA over Alice's key; an extractable key is refused.
    assert_eq!(
        t.create_ca(&bob, &record("root", key, "bob"))
            .unwrap_err()
            .code(),
        "key_not_found"
    );
    let loose = ca_key(&t, &alice, "loose", true);
    let e = t
        .create_ca(&alice, &record("loose", loose, "alice"))
        .unwrap_err();
    assert!(e.to_string().contains("extractable"), "{e}");
    let e = t
        .create_ca(&alice, &record("Bad Name", key, "alice"))
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");

    t.create_ca(&alice, &record("root", key, "alice")).unwrap();
    assert_eq!(
        t.create_ca(&alice, &record("root", key, "alice"))
            .unwrap_err()
            .code(),
        "ca_exists"
    );
    assert_eq!(t.ca("root").unwrap().settings.path_len, Some(1));
    assert_eq!(t.cas().unwrap().len(), 1);
    assert_eq!(t.ca("other").unwrap_err().code(), "ca_not_found");

    t.record_issued(&alice, &cert("root", "01ab")).unwrap();
    let e = t.record_issued(&alice, &cert("root", "01ab")).unwrap_err();
    assert!(e.to_string().contains("already issued"), "{e}");
    assert!(t.record_issued(&bob, &cert("root", "02ab")).is_err());
    assert!(t.issued_certificates(&bob, "root").is_err());
    assert_eq!(t.issued_certificates(&alice, "root").unwrap().len(), 1);

    assert!(t.revoke_certificate(&bob, "root", "01ab", 1).is_err());
    assert!(
        t.revoke_certificate(&alice, "root", "01ab", 7).is_err(),
        "7 is not a reason"
    );
    let r = t.revoke_certificate(&alice, "root", "01ab", 1).unwrap();
    assert_eq!(r.reason, 1);
    assert!(
        t.revoke_certificate(&alice, "root", "01ab", 1).is_err(),
        "already revoked"
    );
    assert_eq!(t.ca("root").unwrap().revoked.len(), 1);
    assert!(t
        .issued_certificate("root", "01ab")
        .unwrap()
        .revocation
        .is_some());
    assert_eq!(
        t.issued_certificate("root", "09ff").unwrap_err().code(),
        "certificate_not_found"
    );

    assert!(
        t.publish_crl(&alice, "root", 2, vec![1], 10).is_err(),
        "not the next number"
    );
    t.publish_crl(&alice, "root", 1, vec![1], 10).unwrap();
    assert_eq!(t.ca("root").unwrap().crl_number, 1);
    assert!(t.publish_crl(&bob, "root", 2, vec![2], 20).is_err());
    // The node's own session for the CA signs CRLs as its owner.
    let service = t.ca_service_session("root").unwrap();
    assert_eq!(service.user(), "alice");
    t.publish_crl(&service, "root", 2, vec![2], 20).unwrap();

    let events: Vec<String> = t
        .audit_entries(&admin, 1, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.outcome == "ok")
        .map(|e| e.event)
        .collect();
    for e in ["ca.create", "ca.issue", "ca.revoke", "ca.crl"] {
        assert!(events.iter().any(|x| x == e), "{e}: {events:?}");
    }
}

#[test]
fn a_rolled_back_ca_record_is_refused_and_a_certificate_record_cannot_undo_a_revocation() {
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let key = ca_key(&t, &alice, "ca-root", false);
    t.create_ca(&alice, &record("root", key, "alice")).unwrap();
    t.record_issued(&alice, &cert("root", "01ab")).unwrap();
    t.record_issued(&alice, &cert("root", "02ab")).unwrap();
    let before = t.store.backend().get("ca", "root").unwrap().unwrap();
    t.revoke_certificate(&alice, "root", "01ab", 1).unwrap();
    assert_eq!(t.issued_certificates(&alice, "root").unwrap().len(), 2);

    // A certificate record copied over another id does not open.
    let rec = t.store.backend().get("cert", "root:02ab").unwrap().unwrap();
    let moved = keyward_keystore::Record {
        id: "root:03ab".into(),
        ..rec
    };
    t.store
        .backend()
        .write_batch(&[Write::Insert(moved)])
        .unwrap();
    assert_eq!(
        t.issued_certificate("root", "03ab").unwrap_err().code(),
        "record_tampered"
    );
    // A deleted certificate record: unknown, and its revocation is still the CA's.
    let rec = t.store.backend().get("cert", "root:01ab").unwrap().unwrap();
    t.store
        .backend()
        .write_batch(&[Write::Delete(
            "cert".into(),
            "root:01ab".into(),
            rec.version,
        )])
        .unwrap();
    assert_eq!(
        t.issued_certificate("root", "01ab").unwrap_err().code(),
        "certificate_not_found"
    );
    assert_eq!(t.ca("root").unwrap().revoked[0].serial, "01ab");

    // The CA record put back as it was before the revocation: refused now and at the next open.
    let now = t.store.backend().get("ca", "root").unwrap().unwrap();
    t.store
        .backend()
        .write_batch(&[
            Write::Delete("ca".into(), "root".into(), now.version),
            Write::Insert(before),
        ])
        .unwrap();
    assert_eq!(t.ca("root").unwrap_err().code(), "store_rolled_back");
    let (store, hsm) = t.into_parts();
    drop(hsm);
    let e = store.open().unwrap_err();
    assert!(e.to_string().contains("ca/root"), "{e}");

    // A deleted CA record.
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let key = ca_key(&t, &alice, "ca-root", false);
    t.create_ca(&alice, &record("root", key, "alice")).unwrap();
    let rec = t.store.backend().get("ca", "root").unwrap().unwrap();
    t.store
        .backend()
        .write_batch(&[Write::Delete("ca".into(), "root".into(), rec.version)])
        .unwrap();
    assert_eq!(t.ca("root").unwrap_err().code(), "record_tampered");
}

#[test]
fn settings_written_before_the_revocation_urls_still_read() {
    let old = r#"{"allowed_dns":[],"allow_ip":false,"max_validity_days":397,"crl_period_s":86400,"path_len":null,"permitted_dns":[]}"#;
    let s: CaSettings = serde_json::from_str(old).unwrap();
    assert!(s.crl_urls.is_empty() && s.ocsp_urls.is_empty());
}

#[test]
fn a_cas_key_is_bound_to_it_and_kept_while_the_ca_exists() {
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let bob = t.crypto_user(&admin, "bob");
    let key = ca_key(&t, &alice, "ca-root", false);
    let other = ca_key(&t, &alice, "not-a-ca", false);
    let sign = |s: &Session, k: KeyHandle| {
        t.sign(
            s,
            k,
            SignMechanism::EcdsaSha256,
            SignInput::Message(b"tbsCertificate of my choosing"),
            SignatureEncoding::Der,
        )
    };
    sign(&alice, key).unwrap();
    t.share_key(&alice, key, "bob").unwrap();
    t.create_ca(&alice, &record("root", key, "alice")).unwrap();

    let info = t.key_info(&alice, key).unwrap();
    assert_eq!(info.issuing_ca.as_deref(), Some("root"));
    assert!(!info.attributes.destroyable && !info.attributes.modifiable);
    // Raw signing is refused to the owner and to users it is shared with; the CA's own
    // signatures go on.
    for s in [&alice, &bob] {
        let e = sign(s, key).unwrap_err();
        assert_eq!(e.code(), "permission_denied", "{e}");
    }
    t.signer(&alice, key)
        .unwrap()
        .sign(SignMechanism::EcdsaSha256, b"a CRL the CA made")
        .unwrap();
    sign(&alice, other).unwrap();
    // Kept: the owner's destroy meets destroyable=false, an admin's the CA binding; nothing
    // may change, so `sign` cannot be cleared.
    assert_eq!(
        t.destroy_key(&alice, key).unwrap_err().code(),
        "attribute_violation"
    );
    let e = t.destroy_key_as_admin(&admin, key).unwrap_err();
    assert_eq!(e.code(), "permission_denied");
    assert!(e.to_string().contains("issuing CA"), "{e}");
    let e = t
        .set_attribute(
            &alice,
            key,
            AttributeName::Sign,
            AttributeValue::Bool(false),
        )
        .unwrap_err();
    assert_eq!(e.code(), "attribute_violation");
    // The binding is in the key's record: a reopened HSM has it.
    let (store, hsm) = t.into_parts();
    drop(hsm);
    let reopened = store.open().unwrap();
    let (a, _) = reopened
        .login(
            "alice",
            &crate::test_util::password_of("alice"),
            crate::test_util::SESSION_TTL,
        )
        .unwrap();
    assert_eq!(
        reopened.key_info(&a, key).unwrap().issuing_ca.as_deref(),
        Some("root")
    );
    reopened.destroy_key(&a, other).unwrap();
}

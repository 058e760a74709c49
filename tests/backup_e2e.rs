//! Backups end to end with the real binary: a store of 1,000 keys, 10 users and an audit
//! chain backed up to a directory and to a real S3-compatible server (moto, started here),
//! restored into a fresh SQLite store and a fresh PostgreSQL database (started here), every
//! key signing as before; damaged archives and other seals refused; the schedule.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keyward_hsm::{
    AttributeName, Hsm, KeySpec, KeyTemplate, MasterKey, Password, Role, SignInput, SignMechanism,
    SignatureEncoding,
};
use support::moto::Moto;
use support::*;

const HOUR: Duration = Duration::from_secs(3600);
const KEYS: usize = 1000;
const USERS: usize = 10;

/// `keyward ARGS` with `env`.
fn kw(env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    Command::new(keyward_bin())
        .args(args)
        .env_remove("KEYWARD_DATA_DIR")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A data directory with 1,000 Ed25519 keys of one user, 10 users and their audit entries;
/// returns each key's signature of `hello`.
fn populated(data: &Path) -> BTreeMap<u64, Vec<u8>> {
    init_hsm(data, "admin-password");
    let hsm = open_hsm(data);
    let (admin, _) = hsm
        .login("admin", &Password::from("admin-password"), HOUR)
        .unwrap();
    for i in 0..USERS {
        hsm.create_user(
            &admin,
            &format!("user{i}"),
            Role::CryptoUser,
            &Password::new(format!("password-{i}")),
        )
        .unwrap();
    }
    let (user, _) = hsm
        .login("user0", &Password::from("password-0"), HOUR)
        .unwrap();
    let mut sigs = BTreeMap::new();
    for i in 0..KEYS {
        let (private, _) = hsm
            .generate_key_pair(
                &user,
                KeySpec::Ed25519,
                &KeyTemplate::labelled(&format!("k{i}"))
                    .with(AttributeName::Sign, true)
                    .with(AttributeName::Extractable, false),
                &KeyTemplate::labelled(&format!("k{i}")).with(AttributeName::Verify, true),
            )
            .unwrap();
        sigs.insert(private.handle.0, sign(&hsm, &user, private.handle.0));
    }
    sigs
}

fn sign(hsm: &Hsm, user: &keyward_hsm::Session, handle: u64) -> Vec<u8> {
    hsm.sign(
        user,
        keyward_hsm::KeyHandle(handle),
        SignMechanism::Ed25519,
        SignInput::Message(b"hello"),
        SignatureEncoding::Der,
    )
    .unwrap()
}

/// Every key signs as before, every user logs in, the audit chain verifies and ends with
/// the restore.
fn check_restored(hsm: &Hsm, sigs: &BTreeMap<u64, Vec<u8>>) {
    for i in 0..USERS {
        hsm.login(
            &format!("user{i}"),
            &Password::new(format!("password-{i}")),
            HOUR,
        )
        .unwrap();
    }
    let (user, _) = hsm
        .login("user0", &Password::from("password-0"), HOUR)
        .unwrap();
    for (handle, sig) in sigs {
        assert_eq!(&sign(hsm, &user, *handle), sig, "key {handle}");
    }
    let (admin, _) = hsm
        .login("admin", &Password::from("admin-password"), HOUR)
        .unwrap();
    let report = hsm.verify_audit(&admin).unwrap();
    assert!(report.intact, "{report:?}");
    let events: Vec<String> = hsm
        .audit_entries(&admin, 1, 100_000)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(
        events.iter().any(|e| e == "store.restore"),
        "{:?}",
        &events[events.len().saturating_sub(5)..]
    );
}

fn archive_names(dest: &str, env: &[(&str, String)]) -> Vec<String> {
    let out = ok(&kw(
        env,
        &["backup", "list", "--destination", dest, "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_thousand_keys_back_up_to_a_directory_and_s3_and_restore_into_sqlite_and_postgres() {
    let site = Site::new();
    let data = site.data();
    let sigs = populated(&data);
    let key_file = data.join("master.key");
    let dir = site.dir.join("backups").display().to_string();
    let moto = Moto::start("keyward-backups");
    let s3 = moto.env();
    let d = data.display().to_string();

    // To a directory and to S3.
    ok(&kw(
        &[],
        &["backup", "create", "--data-dir", &d, "--destination", &dir],
    ));
    ok(&kw(
        &s3,
        &[
            "backup",
            "create",
            "--data-dir",
            &d,
            "--destination",
            "s3://keyward-backups/nightly",
        ],
    ));
    let local = archive_names(&dir, &[]);
    let remote = archive_names("s3://keyward-backups/nightly", &s3);
    assert_eq!((local.len(), remote.len()), (1, 1));
    let listed = ok(&kw(&[], &["backup", "list", "--destination", &dir]));
    assert!(
        listed.contains(&local[0]) && listed.contains("key-file"),
        "{listed}"
    );
    let verified = ok(&kw(
        &s3,
        &[
            "backup",
            "verify",
            &remote[0],
            "--destination",
            "s3://keyward-backups/nightly",
            "--data-dir",
            &d,
        ],
    ));
    assert!(
        verified.contains("valid") && verified.contains(&format!("{} keys", 2 * KEYS + 2)),
        "{verified}"
    );

    // One byte changed anywhere: verify and restore fail loudly, nothing is restored.
    let archive = std::fs::read(Path::new(&dir).join(&local[0])).unwrap();
    for at in [0, 9, 40, archive.len() / 2, archive.len() - 1] {
        let mut bad = archive.clone();
        bad[at] ^= 0x20;
        let name = format!("keyward-20000101T000000Z-byte{at}.kwbackup");
        std::fs::write(Path::new(&dir).join(&name), &bad).unwrap();
        let e = err(&kw(
            &[],
            &[
                "backup",
                "verify",
                &name,
                "--destination",
                &dir,
                "--data-dir",
                &d,
            ],
        ));
        assert!(
            e.contains("backup") || e.contains("archive"),
            "byte {at}: {e}"
        );
        let target = site.dir.join(format!("tampered-{at}"));
        let t = target.display().to_string();
        let e = err(&kw(
            &[],
            &[
                "backup",
                "restore",
                &name,
                "--destination",
                &dir,
                "--data-dir",
                &t,
                "--seal-key-file",
                key_file.to_str().unwrap(),
            ],
        ));
        assert!(!e.is_empty());
        assert!(
            !target.join("keyward.sqlite3").exists(),
            "byte {at}: a store was written"
        );
        std::fs::remove_file(Path::new(&dir).join(&name)).unwrap();
    }

    // Another seal cannot restore it.
    let other = site.dir.join("other");
    init_hsm(&other, "admin-password");
    let e = err(&kw(
        &[],
        &[
            "backup",
            "restore",
            &local[0],
            "--destination",
            &dir,
            "--data-dir",
            site.dir.join("wrong-seal").to_str().unwrap(),
            "--seal-key-file",
            other.join("master.key").to_str().unwrap(),
        ],
    ));
    assert!(e.contains("not the one this backup was taken under"), "{e}");

    // Into a fresh SQLite store, from S3.
    let fresh = site.dir.join("fresh");
    let out = ok(&kw(
        &s3,
        &[
            "backup",
            "restore",
            &remote[0],
            "--destination",
            "s3://keyward-backups/nightly",
            "--data-dir",
            fresh.to_str().unwrap(),
            "--seal-key-file",
            key_file.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("restored"), "{out}");
    // Not twice into the same store without --force.
    let e = err(&kw(
        &[],
        &[
            "backup",
            "restore",
            &local[0],
            "--destination",
            &dir,
            "--data-dir",
            fresh.to_str().unwrap(),
            "--seal-key-file",
            key_file.to_str().unwrap(),
        ],
    ));
    assert!(e.contains("--force"), "{e}");
    let master = MasterKey::from_bytes(&std::fs::read(&key_file).unwrap()).unwrap();
    let restored = Hsm::open(
        Box::new(keyward_keystore::SqliteBackend::open(&fresh.join("keyward.sqlite3")).unwrap()),
        &master,
    )
    .unwrap();
    check_restored(&restored, &sigs);
    drop(restored);

    // Into a fresh PostgreSQL database, from the directory.
    let pg = keyward_keystore::test_util::TestPostgres::shared();
    let url = pg.url(&pg.new_database());
    let node = site.dir.join("pg-node");
    ok(&kw(
        &[],
        &[
            "backup",
            "restore",
            &local[0],
            "--destination",
            &dir,
            "--data-dir",
            node.to_str().unwrap(),
            "--store",
            &url,
            "--seal-key-file",
            key_file.to_str().unwrap(),
        ],
    ));
    let restored = Hsm::open(
        Box::new(
            keyward_keystore::PostgresBackend::open(&keyward_keystore::PostgresOptions::new(url))
                .unwrap(),
        ),
        &master,
    )
    .unwrap();
    check_restored(&restored, &sigs);
}

#[test]
fn the_schedule_backs_up_at_the_interval_and_keeps_the_newest() {
    let site = Site::new();
    let data = site.data();
    init_hsm(&data, "admin-password");
    let dir = site.dir.join("scheduled");
    // Archives the schedule must leave alone: one taken by hand of this store, and one of
    // another store.
    let d = data.display().to_string();
    ok(&kw(
        &[],
        &[
            "backup",
            "create",
            "--data-dir",
            &d,
            "--destination",
            dir.to_str().unwrap(),
        ],
    ));
    let other = site.dir.join("other");
    init_hsm(&other, "admin-password");
    ok(&kw(
        &[],
        &[
            "backup",
            "create",
            "--data-dir",
            other.to_str().unwrap(),
            "--destination",
            dir.to_str().unwrap(),
        ],
    ));
    let foreign = archive_names(dir.to_str().unwrap(), &[]);
    assert_eq!(foreign.len(), 2);
    let (mut node, _addr) = start_hsm_serve(
        &data,
        &[
            "--backup-destination",
            dir.to_str().unwrap(),
            "--backup-interval-s",
            "1",
            "--backup-retention",
            "2",
        ],
    );
    wait_for_count(&node.stderr, "scheduled backup written", 4);
    node.terminate();
    // Its own scheduled archives pruned to the newest two after each backup (three if it
    // stopped between writing the last one and pruning); the others kept.
    let names = archive_names(dir.to_str().unwrap(), &[]);
    for f in &foreign {
        assert!(names.contains(f), "{f} was pruned: {names:?}");
    }
    let names: Vec<String> = names.into_iter().filter(|n| !foreign.contains(n)).collect();
    assert!((2..=3).contains(&names.len()), "{names:?}");
    let written = node
        .stderr
        .all()
        .iter()
        .filter(|l| l.contains("scheduled backup written"))
        .count();
    assert!(written >= 4);
    let newest = names.last().unwrap();
    ok(&kw(
        &[],
        &[
            "backup",
            "verify",
            newest,
            "--destination",
            dir.to_str().unwrap(),
            "--data-dir",
            &d,
        ],
    ));
}

#[test]
fn two_nodes_of_a_cluster_take_each_scheduled_backup_once() {
    let pg = keyward_keystore::test_util::TestPostgres::shared();
    let url = pg.url(&pg.new_database());
    let site = Site::new();
    let (a, b) = (site.dir.join("a"), site.dir.join("b"));
    let pw = site.dir.join("pw");
    std::fs::write(&pw, "admin-password\n").unwrap();
    ok(&kw(
        &[],
        &[
            "init",
            "--data-dir",
            a.to_str().unwrap(),
            "--store",
            &url,
            "--admin-password-file",
            pw.to_str().unwrap(),
        ],
    ));
    std::fs::create_dir(&b).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::copy(a.join("master.key"), b.join("master.key")).unwrap();
    std::fs::copy(a.join("api-ca.pem"), b.join("api-ca.pem")).unwrap();
    let dir = site.dir.join("scheduled");
    let args = [
        "--store",
        &url,
        "--backup-destination",
        dir.to_str().unwrap(),
        "--backup-interval-s",
        "1",
        "--backup-retention",
        "100",
    ];
    let (mut na, _) = start_hsm_serve(&a, &args);
    let (mut nb, _) = start_hsm_serve(&b, &args);
    eventually(DEADLINE, "6 scheduled backups", || {
        let count = |n: &Running| {
            n.stderr
                .all()
                .iter()
                .filter(|l| l.contains("scheduled backup written"))
                .count()
        };
        count(&na) + count(&nb) >= 6
    });
    na.terminate();
    nb.terminate();
    // Each period (a second) taken by one node only; every backup written is there.
    let mut periods: Vec<String> = [&na, &nb]
        .iter()
        .flat_map(|n| n.stderr.all())
        .filter(|l| l.contains("scheduled backup written"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("period="))
                .map(str::to_owned)
        })
        .collect();
    let written = periods.len();
    periods.sort();
    periods.dedup();
    assert_eq!(
        periods.len(),
        written,
        "two nodes took a backup in one period"
    );
    let names = archive_names(dir.to_str().unwrap(), &[]);
    // (A node stopped between writing an archive and logging it leaves one more.)
    assert!(
        (written..=written + 2).contains(&names.len()),
        "{written} {names:?}"
    );
}

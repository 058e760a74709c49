//! users: login, create_user, change_password, delete_user.

use crate::common::*;

#[test]
fn login_with_any_name_and_password_fails_and_changes_no_key() {
    let fx = Fx::new();
    let name = prop_oneof![
        3 => "[A-Za-z0-9._-]{0,70}",
        1 => "\\PC{0,20}",
        1 => select(vec![PROXY_USER.to_string(), "nobody".into(), "Alice".into()]),
    ]
    .prop_filter("not a real user", |n| n != "alice" && n != "admin");
    let ttl = prop_oneof![
        4 => (0u64..3600).prop_map(Duration::from_secs),
        1 => Just(MAX_SESSION_TTL),
        1 => (MAX_SESSION_TTL.as_secs() + 1..=u64::MAX).prop_map(Duration::from_secs),
    ];
    run(24, (name, "\\PC{0,300}", ttl), |(name, password, ttl)| {
        let users = fx.hsm.list_users(&fx.admin).unwrap();
        let before = fx.snapshot();
        let got = fx.hsm.login(&name, &Password::new(password), ttl);
        let w = if ttl > MAX_SESSION_TTL {
            Want::Err("invalid_input")
        } else {
            Want::Err("authentication_failed")
        };
        check("login", &got.map(|_| ()), w)?;
        fx.unchanged("login", &before)?;
        prop_assert_eq!(fx.hsm.list_users(&fx.admin).unwrap(), users);
        Ok(())
    });
    // Tokens: a random one names no session.
    run(16, "\\PC{0,80}", |t| {
        let got = fx.hsm.session(&SessionToken::from_string(t));
        check("session", &got, Want::Err("session_invalid"))
    });
}

#[derive(Clone, Debug)]
enum UserOp {
    Create(String, bool, String),
    ChangePassword(String, String),
    Delete(String),
}

/// Random user operations; valid requests (for the admin) half the time: new users, carol's
/// password, deletions of users made here.
fn user_op() -> impl Strategy<Value = UserOp> {
    let name = prop_oneof![
        3 => "[a-z]{1,8}",
        2 => "[A-Za-z0-9._-]{0,70}",
        1 => "\\PC{0,10}",
        2 => select(vec!["alice".to_string(), PROXY_USER.into(), "carol".into(), "admin".into()]),
    ];
    let password = prop_oneof![
        2 => "\\PC{0,12}",
        2 => "[a-z]{8,20}",
        1 => "\\PC{250,260}",
    ];
    let valid_name = "[a-z][a-z0-9]{2,8}";
    let valid_password = "[a-z]{8,20}";
    prop_oneof![
        2 => (name.clone(), any::<bool>(), password.clone())
            .prop_map(|(n, admin, p)| UserOp::Create(n, admin, p)),
        2 => (name.clone().prop_filter("keep the admin's password", |n| n != "admin"), password)
            .prop_map(|(n, p)| UserOp::ChangePassword(n, p)),
        1 => name.prop_map(UserOp::Delete),
        2 => (valid_name, any::<bool>(), valid_password)
            .prop_map(|(n, admin, p)| UserOp::Create(n, admin, p)),
        1 => valid_password.prop_map(|p| UserOp::ChangePassword("carol".into(), p)),
        1 => valid_name.prop_map(UserOp::Delete),
    ]
}

/// A user name: starts with a letter or digit, at most 64 bytes of `[A-Za-z0-9._-]`.
fn name_ok(n: &str) -> Result<(), &'static str> {
    invalid_if(
        !n.starts_with(|c: char| c.is_ascii_alphanumeric())
            || n.len() > 64
            || !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
    )
}

/// A password: 8 to 256 characters.
fn pw_ok(p: &str) -> Result<(), &'static str> {
    invalid_if(!(8..=256).contains(&p.chars().count()))
}

#[test]
fn user_management_with_any_input() {
    let fx = Fx::new();
    fx.hsm
        .create_user(
            &fx.admin,
            "carol",
            Role::CryptoUser,
            &Password::from("carol-password"),
        )
        .unwrap();
    let op = user_op();
    let sessions = prop_oneof![1 => Just(0usize), 1 => Just(1usize), 4 => Just(2usize)];
    run(32, (sessions, op), |(s, op)| {
        let s = fx.session(s);
        let users: Vec<String> = fx
            .hsm
            .list_users(&fx.admin)
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        let exists = |n: &str| users.iter().any(|u| u == n);
        let before = fx.snapshot();
        match op {
            UserOp::Create(n, admin, p) => {
                let role = if admin { Role::Admin } else { Role::CryptoUser };
                let w = want(|| {
                    active_as(s, Role::Admin)?;
                    name_ok(&n)?;
                    pw_ok(&p)?;
                    // Names are unique whatever their case.
                    if users.iter().any(|u| u.eq_ignore_ascii_case(&n)) {
                        return Err("user_exists");
                    }
                    Ok(Want::Ok)
                });
                let got = fx.hsm.create_user(s, &n, role, &Password::new(p.clone()));
                check("create_user", &got, w)?;
                if let Ok(u) = got {
                    prop_assert_eq!(&u.name, &n);
                    prop_assert_eq!(u.role, role);
                    prop_assert!(!u.locked && !u.service);
                    prop_assert!(fx.hsm.list_users(&fx.admin).unwrap().contains(&u));
                }
            }
            UserOp::ChangePassword(n, p) => {
                let w = want(|| {
                    invalid_if(false)?;
                    if !s.is_active() {
                        return Err("session_invalid");
                    }
                    if s.role() != Role::Admin && s.user() != n {
                        return Err("permission_denied");
                    }
                    pw_ok(&p)?;
                    if !exists(&n) {
                        return Err("user_not_found");
                    }
                    invalid_if(n == PROXY_USER)?;
                    Ok(Want::Ok)
                });
                let got = fx.hsm.change_password(s, &n, &Password::new(p.clone()));
                check("change_password", &got, w)?;
                if got.is_ok() {
                    let r = fx.hsm.login(&n, &Password::new(p), Duration::from_secs(5));
                    prop_assert!(r.is_ok(), "login with the new password: {:?}", r.err());
                }
            }
            UserOp::Delete(n) => {
                let w = want(|| {
                    active_as(s, Role::Admin)?;
                    invalid_if(n == s.user())?;
                    if !exists(&n) {
                        return Err("user_not_found");
                    }
                    invalid_if(n == PROXY_USER)?;
                    invalid_if(fx.all_keys().iter().any(|k| k.owner == n))?;
                    Ok(Want::Ok)
                });
                let got = fx.hsm.delete_user(s, &n);
                check("delete_user", &got, w)?;
                if got.is_ok() {
                    prop_assert!(!fx
                        .hsm
                        .list_users(&fx.admin)
                        .unwrap()
                        .iter()
                        .any(|u| u.name == n));
                }
            }
        }
        // User management never changes a key. (A password change ends the user's other
        // sessions by design, so alice's view may be gone; when it is there it is unchanged.)
        let after = fx.snapshot();
        prop_assert_eq!(
            &after.0,
            &before.0,
            "user management changed the proxy's keys"
        );
        prop_assert_eq!(&after.1, &before.1, "user management changed keys");
        if after.2.is_some() {
            prop_assert_eq!(&after.2, &before.2, "user management changed alice's keys");
        }
        Ok(())
    });
    fx.check_reopen();
}

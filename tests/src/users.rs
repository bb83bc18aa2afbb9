//! Users, roles and API tokens for tests, made through the access service
//! as the console.

use platform_core::Platform;
use platform_core::access::NewUser;
use platform_core::context::Context;

/// The password of every user these helpers make.
pub const PASSWORD: &str = "correct horse battery staple";

/// A user named and addressed `email`, with [`PASSWORD`]; answers its id.
pub async fn user(platform: &Platform, email: &str) -> i64 {
    platform
        .access()
        .create_user(
            &Context::console(),
            NewUser {
                email: email.into(),
                name: email.into(),
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap()
        .id
}

/// Creates role `name` with `permissions`.
pub async fn role(platform: &Platform, name: &str, permissions: &[&str]) {
    let console = Context::console();
    let access = platform.access();
    access.create_role(&console, name).await.unwrap();
    let perms: Vec<String> = permissions.iter().map(|s| (*s).to_owned()).collect();
    access
        .set_role_permissions(&console, name, &perms)
        .await
        .unwrap();
}

/// Assigns `role` to user `id`.
pub async fn assign(platform: &Platform, id: i64, role: &str) {
    platform
        .access()
        .assign_role(&Context::console(), id, role)
        .await
        .unwrap();
}

/// A user (see [`user`]) with `role` (name and permissions), if any: the
/// role is created first unless it is `super_admin`, which always exists.
pub async fn with_role(platform: &Platform, email: &str, role: Option<(&str, &[&str])>) -> i64 {
    let id = user(platform, email).await;
    if let Some((name, permissions)) = role {
        if name != "super_admin" {
            self::role(platform, name, permissions).await;
        }
        assign(platform, id, name).await;
    }
    id
}

/// An API token of user `id` with `abilities` (every ability when empty).
pub async fn token(platform: &Platform, id: i64, abilities: &[&str]) -> String {
    let abilities: Vec<String> = abilities.iter().map(|s| (*s).to_owned()).collect();
    platform
        .access()
        .create_token(&Context::console(), id, "test", &abilities, None)
        .await
        .unwrap()
        .plain_text
}

/// A user (see [`user`]) with the existing `role` assigned, if any, and an
/// API token with `abilities` (every ability when empty); answers its id
/// and the token.
pub async fn with_token(
    platform: &Platform,
    email: &str,
    role: Option<&str>,
    abilities: &[&str],
) -> (i64, String) {
    let id = user(platform, email).await;
    if let Some(role) = role {
        assign(platform, id, role).await;
    }
    (id, token(platform, id, abilities).await)
}

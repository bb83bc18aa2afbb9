//! Prints the token of a signed-in panel session (authenticated, two-factor
//! passed) for the load scripts: `Cookie: platform_session=<token>`.
//!
//! `panel_session [email]` (default `panel-bench@example.com`) over the
//! database of `PLATFORM_DATABASE_URL` with the key of `PLATFORM_APP_KEY`,
//! as the demo reads them. The user is created with the role
//! `super_admin` on first use and gets two-factor authentication set up
//! (through the core API, as the sign-in pages would); every run starts a
//! fresh session and prints its token alone on stdout.
//!
//! Only the framework's tables are touched, so the platform is opened with
//! an empty registry (the demo's migrations have already run).

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use platform_core::Platform;
use platform_core::access::NewUser;
use platform_core::context::{Actor, Context};
use platform_core::permission::SUPER_ADMIN;
use platform_core::resource::Registry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let email = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "panel-bench@example.com".to_owned());
    let platform = Platform::builder()
        .registry(Registry::builder().build()?)
        .background_tasks(false)
        .max_connections(2)
        .build()
        .await
        .context("opening the bench database (PLATFORM_DATABASE_URL)")?;
    let access = platform.access();
    let console = Context::console();
    let user = match access.find_user_by_email(&email).await? {
        Some(u) => u,
        None => {
            let u = access
                .create_user(
                    &console,
                    NewUser {
                        email: email.clone(),
                        name: "Panel Bench".to_owned(),
                        password: platform_core::crypto::random_token(24),
                    },
                )
                .await?;
            access.assign_role(&console, u.id, SUPER_ADMIN).await?;
            u
        }
    };
    let principal = access
        .principal(user.id)
        .await?
        .ok_or_else(|| anyhow!("{email} is disabled"))?;
    let ctx = Context::new(Actor::User(Arc::new(principal)));
    let two_factor = platform.auth().two_factor();
    if !two_factor.is_enabled(user.id).await? {
        let setup = two_factor.begin_setup(&ctx, user.id).await?;
        let code = platform_core::auth::current_code(&setup.secret_base32)?;
        two_factor.confirm_setup(&ctx, user.id, &code).await?;
    }
    let sessions = platform.auth().sessions();
    let (_, mut session) = sessions.start(None, Some("panel-bench")).await?;
    let token = sessions.login(&ctx, &mut session, user.id).await?;
    if !session.two_factor_passed() {
        return Err(anyhow!(
            "the session did not pass two-factor authentication"
        ));
    }
    println!("{token}");
    platform.shutdown().await;
    Ok(())
}

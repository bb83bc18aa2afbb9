//! [`Platform`]: the database, the registry and every service, built once.

mod builder;
mod migrations;
mod state;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::access::Access;
use crate::access_log::AccessLog;
use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::backplane::Backplane;
use crate::cache::Cache;
use crate::capability::{HealthCheck, PermissionDecl, Services, Setup, Stop, TaskKind};
use crate::context::Context;
use crate::crypto::Crypto;
use crate::db::Db;
use crate::error::Result;
use crate::event::EventBus;
use crate::mail::Mailer;
use crate::notification::Notifications;
use crate::repo::{Records, Repo};
use crate::resource::{Registry, Resource};

pub use builder::{PlatformBuilder, redact_url};
pub use migrations::FRAMEWORK_MIGRATIONS;
pub(crate) use state::in_state_dir;
pub use state::{DEFAULT_DATABASE_URL, STATE_DIR, ensure_state_dir};

/// Development or production rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    /// Generates a missing app key (stored in a key file), verbose errors.
    #[default]
    Development,
    /// Requires an explicit app key.
    Production,
}

struct Inner {
    db: Db,
    registry: Registry,
    crypto: Arc<Crypto>,
    cache: Cache,
    backplane: Arc<dyn Backplane>,
    events: EventBus,
    outbox: crate::outbox::Outbox,
    access: Access,
    audit: AuditLog,
    access_log: AccessLog,
    auth: Auth,
    mailer: Arc<dyn Mailer>,
    notifications: Notifications,
    environment: Environment,
    config: crate::config::Config,
    setup: Setup,
    services: Services,
    stop: tokio::sync::watch::Sender<bool>,
    workers_started: std::sync::atomic::AtomicBool,
    shutdown_grace: Duration,
    tasks: Mutex<Vec<(String, tokio::task::JoinHandle<()>)>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.get_mut() {
            for (_, t) in tasks.drain(..) {
                t.abort();
            }
        }
    }
}

/// The platform: database, registry, access control, audit trail, cache and
/// events. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Platform")
            .field("backend", &self.inner.db.backend())
            .field("resources", &self.inner.registry.len())
            .field("environment", &self.inner.environment)
            .finish()
    }
}

impl Platform {
    /// A builder with safe defaults (SQLite file `.platform/platform.db`,
    /// development rules, every `#[derive(Resource)]` type registered).
    pub fn builder() -> PlatformBuilder {
        PlatformBuilder::default()
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }
    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }
    /// Encryption and signing.
    pub fn crypto(&self) -> &Arc<Crypto> {
        &self.inner.crypto
    }
    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }
    /// The backplane between nodes.
    pub fn backplane(&self) -> &Arc<dyn Backplane> {
        &self.inner.backplane
    }
    /// The outbox: durable subscriptions to committed changes.
    pub fn outbox(&self) -> &crate::outbox::Outbox {
        &self.inner.outbox
    }
    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }
    /// Users, roles, permissions, tokens.
    pub fn access(&self) -> &Access {
        &self.inner.access
    }
    /// The access log of panel and API requests.
    pub fn access_log(&self) -> &AccessLog {
        &self.inner.access_log
    }
    /// The audit trail.
    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }
    /// Sessions, sign-in, two-factor authentication, password reset.
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }
    /// The mailer (default: [`LogMailer`](crate::mail::LogMailer), which only logs).
    pub fn mailer(&self) -> &Arc<dyn Mailer> {
        &self.inner.mailer
    }
    /// Database notifications and user preferences.
    pub fn notifications(&self) -> &Notifications {
        &self.inner.notifications
    }
    /// The environment.
    pub fn environment(&self) -> Environment {
        self.inner.environment
    }
    /// The settings resolved at build time (public URL, cookies, the
    /// panel's allowlist...).
    pub fn config(&self) -> &crate::config::Config {
        &self.inner.config
    }

    /// The records of `R`, acted on by `ctx`.
    ///
    /// # Panics
    /// When `R` is not in this platform's registry (a programming error:
    /// register it, or build the registry from inventory).
    pub fn repo<R: Resource>(&self, ctx: &Context) -> Repo<R> {
        let entry = self
            .inner
            .registry
            .of::<R>()
            .unwrap_or_else(|| {
                panic!(
                    "resource `{}` is not registered",
                    std::any::type_name::<R>()
                )
            })
            .clone();
        Repo::new(Records::new(self.clone(), entry, ctx.clone()))
    }

    /// The records of the resource with this plural (URL) name or singular
    /// name, acted on by `ctx`.
    pub fn records(&self, name: &str, ctx: &Context) -> Option<Records> {
        let reg = &self.inner.registry;
        let entry = reg.by_plural(name).or_else(|| reg.by_name(name))?;
        Some(Records::new(self.clone(), entry.clone(), ctx.clone()))
    }

    /// A service a capability made (`platform.get::<Jobs>()`), or `None`
    /// when no capability added one of type `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.inner.services.get::<T>()
    }

    /// Every contribution of type `T` the capabilities made (routes, panel
    /// pages, commands: the types are defined by the layer that reads them).
    pub fn contributions<T: Send + Sync + 'static>(&self) -> Vec<Arc<T>> {
        self.inner.setup.contributions::<T>()
    }

    /// Whether a capability called `name` was added.
    pub fn has_capability(&self, name: &str) -> bool {
        self.inner.setup.names.contains(&name)
    }

    /// The names of the capabilities added, in order.
    pub fn capability_names(&self) -> &[&'static str] {
        &self.inner.setup.names
    }

    /// The permissions capabilities declared (not tied to a resource).
    pub fn capability_permissions(&self) -> &[PermissionDecl] {
        &self.inner.setup.permissions
    }

    /// The health checks capabilities declared (the database check is
    /// always run by `/health` on top of these).
    pub fn health_checks(&self) -> &[Arc<dyn HealthCheck>] {
        &self.inner.setup.health
    }

    /// Creates the permissions of every resource, of the access screens
    /// and of every capability that are missing; returns how many.
    pub async fn sync_permissions(&self) -> Result<usize> {
        let extra: Vec<String> = self
            .inner
            .setup
            .permissions
            .iter()
            .map(|p| p.name.clone())
            .collect();
        self.inner
            .access
            .sync_permissions_with(&self.inner.registry, &extra)
            .await
    }

    /// A stop signal for a task of the host's own: it fires when
    /// [`Platform::shutdown`] begins.
    pub fn stop_signal(&self) -> Stop {
        Stop::new(self.inner.stop.subscribe())
    }

    /// Starts the capabilities' [`TaskKind::Worker`] tasks (queue
    /// workers), once; `serve` and `queue:work` call it. Returns how many
    /// it started (0 the second time).
    pub fn start_workers(&self) -> usize {
        use std::sync::atomic::Ordering;
        if self.inner.workers_started.swap(true, Ordering::SeqCst) {
            return 0;
        }
        self.spawn_tasks(TaskKind::Worker)
    }

    fn spawn_tasks(&self, kind: TaskKind) -> usize {
        let mut started = Vec::new();
        for t in self.inner.setup.tasks.iter().filter(|t| t.kind == kind) {
            let fut = (t.run)(self.clone(), self.stop_signal());
            started.push((t.name.clone(), tokio::spawn(fut)));
        }
        let n = started.len();
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.extend(started);
        }
        n
    }

    /// Stops the background tasks (each gets the stop signal and up to the
    /// grace period to finish, see
    /// [`PlatformBuilder::shutdown_grace`]), writes the queued access log,
    /// seals pending audit entries and closes the database pool.
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let tasks: Vec<(String, tokio::task::JoinHandle<()>)> = match self.inner.tasks.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        let deadline = tokio::time::Instant::now() + self.inner.shutdown_grace;
        for (name, mut handle) in tasks {
            if tokio::time::timeout_at(deadline, &mut handle)
                .await
                .is_err()
            {
                tracing::warn!(task = %name, "a background task did not stop in time; aborted");
                handle.abort();
            }
        }
        self.inner.access_log.stop().await;
        if let Err(e) = self.inner.audit.seal().await {
            tracing::warn!(error = %e, "could not seal the audit trail at shutdown");
        }
        // Closing waits for every connection to come back; a connection
        // stuck in a driver must not keep the process from exiting (seen
        // once on MariaDB: `close` waited forever with every connection
        // idle on the server). Dropping the pool closes the sockets anyway.
        if tokio::time::timeout(std::time::Duration::from_secs(5), self.inner.db.close())
            .await
            .is_err()
        {
            tracing::warn!("the database pool did not close within 5 s; leaving it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::AppKey;

    #[tokio::test]
    async fn production_needs_a_key() {
        let err = Platform::builder()
            .ignore_env()
            .database_url("sqlite::memory:")
            .environment(Environment::Production)
            .registry(Registry::default())
            .build()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("PLATFORM_APP_KEY"), "{err}");
    }

    #[tokio::test]
    async fn builds_on_memory_sqlite() {
        let p = Platform::builder()
            .ignore_env()
            .database_url("sqlite::memory:")
            .app_key(AppKey::generate())
            .registry(Registry::default())
            .build()
            .await
            .unwrap();
        let perms = p.access().permissions().await.unwrap();
        assert!(perms.contains(&"view_pii".to_owned()));
        assert!(perms.contains(&"update_role".to_owned()));
        assert_eq!(
            p.access().roles().await.unwrap(),
            vec!["super_admin".to_owned()]
        );
        assert!(p.audit().verify().await.unwrap().is_ok());
    }
}

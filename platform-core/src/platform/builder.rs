//! [`PlatformBuilder`]: configuration (code, then `PLATFORM_*` variables),
//! key resolution and [`PlatformBuilder::build`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::access::Access;
use crate::access_log::AccessLog;
use crate::audit::AuditLog;
use crate::auth::{Auth, AuthConfig};
use crate::backplane::{Backplane, LocalBackplane};
use crate::cache::{Cache, CacheStore, MemoryStore};
use crate::capability::{Capability, Services, Setup, TaskKind};
use crate::crypto::{AppKey, Crypto};
use crate::db::{Db, DbOptions, MigrationSet};
use crate::error::{Error, Result};
use crate::event::EventBus;
use crate::mail::{LogMailer, Mailer};
use crate::notification::Notifications;
use crate::resource::Registry;

use super::migrations::FRAMEWORK_MIGRATIONS;
use super::state::{
    DEFAULT_DATABASE_URL, LEGACY_DATABASE_FILE, LEGACY_DB_NOTICE, LEGACY_KEY_NOTICE, STATE_DIR,
    notice_once, write_key_file,
};
use super::{Environment, Inner, Platform};

/// Builds a [`Platform`]. Environment variables override what is set in
/// code (unless [`PlatformBuilder::ignore_env`]): `PLATFORM_DATABASE_URL`,
/// `PLATFORM_APP_KEY`, `PLATFORM_PREVIOUS_KEYS`, `PLATFORM_ENV`,
/// `PLATFORM_KEY_FILE`, `PLATFORM_DB_MAX_CONNECTIONS`.
#[derive(Clone)]
pub struct PlatformBuilder {
    database_url: Option<String>,
    app_key: Option<AppKey>,
    previous_keys: Vec<AppKey>,
    environment: Option<Environment>,
    key_file: Option<PathBuf>,
    registry: Option<Registry>,
    migrations: Vec<MigrationSet>,
    migrate: bool,
    check_schema: bool,
    background: bool,
    access_log: bool,
    cache_store: Option<Arc<dyn CacheStore>>,
    backplane: Option<Arc<dyn Backplane>>,
    session_store: Option<Arc<dyn crate::auth::SessionStore>>,
    mailer: Option<Arc<dyn Mailer>>,
    auth_config: AuthConfig,
    db_options: DbOptions,
    use_env: bool,
    setup: Setup,
    shutdown_grace: Duration,
    config: crate::config::Config,
    outbox_retry_after: Duration,
}

impl fmt::Debug for PlatformBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformBuilder")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("environment", &self.environment)
            .field("capabilities", &self.setup.names)
            .finish_non_exhaustive()
    }
}

impl Default for PlatformBuilder {
    fn default() -> Self {
        Self {
            database_url: None,
            app_key: None,
            previous_keys: Vec::new(),
            environment: None,
            key_file: None,
            registry: None,
            migrations: Vec::new(),
            migrate: true,
            check_schema: true,
            background: true,
            access_log: true,
            cache_store: None,
            backplane: None,
            session_store: None,
            mailer: None,
            auth_config: AuthConfig::default(),
            db_options: DbOptions::default(),
            use_env: true,
            setup: Setup::default(),
            shutdown_grace: Duration::from_secs(10),
            config: crate::config::Config::default(),
            outbox_retry_after: Duration::from_secs(30),
        }
    }
}

/// A URL with its password replaced by `***`, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl PlatformBuilder {
    /// Adds a capability (jobs, notifications, ...): its `setup` runs now
    /// and declares what it contributes (see [`crate::capability`]).
    pub fn with(mut self, capability: impl Capability) -> Self {
        self.setup.add(&capability);
        self
    }
    /// Every contribution of type `T` the capabilities added so far made
    /// (the command line reads its commands here, before building).
    pub fn contributions<T: Send + Sync + 'static>(&self) -> Vec<Arc<T>> {
        self.setup.contributions::<T>()
    }
    /// The capabilities added so far.
    pub fn capability_names(&self) -> &[&'static str] {
        &self.setup.names
    }
    /// The settings of [`Platform::config`] before the environment's
    /// overrides (`PLATFORM_URL`, `PLATFORM_ADDR`, `PLATFORM_ADMIN_ALLOW`,
    /// `PLATFORM_TRUST_FORWARDED`, `PLATFORM_SECURE_COOKIES`).
    pub fn config(mut self, config: crate::config::Config) -> Self {
        self.config = config;
        self
    }
    /// How long after its commit an outbox event that was not delivered
    /// (its process died, or a subscriber failed) is taken over by a sweep
    /// (default 30 s; see [`crate::outbox`]).
    pub fn outbox_retry_after(mut self, after: Duration) -> Self {
        self.outbox_retry_after = after;
        self
    }
    /// How long [`Platform::shutdown`] waits for background tasks to stop
    /// before aborting them (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
    /// The database URL (`sqlite://...`, `postgres://...`, `mysql://...`).
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }
    /// The application key.
    pub fn app_key(mut self, key: AppKey) -> Self {
        self.app_key = Some(key);
        self
    }
    /// Earlier application keys, still accepted for decryption after a rotation.
    pub fn previous_keys(mut self, keys: Vec<AppKey>) -> Self {
        self.previous_keys = keys;
        self
    }
    /// Development or production rules.
    pub fn environment(mut self, env: Environment) -> Self {
        self.environment = Some(env);
        self
    }
    /// Where a generated development key is stored (default
    /// `.platform/platform.key` in the working directory; a key file of
    /// the layout before the state folder, `platform.key` next to an SQLite
    /// database file or in the working directory, is still read when that
    /// one does not exist).
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }
    /// Uses this registry instead of every `#[derive(Resource)]` type.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }
    /// Adds the host's migrations (from `embed_migrations!`).
    pub fn migrations(mut self, set: MigrationSet) -> Self {
        self.migrations.push(set);
        self
    }
    /// The back ends the host's migrations are written for (empty: all
    /// three, or no host migrations).
    pub fn host_dialects(&self) -> Vec<crate::db::Backend> {
        let mut out: Vec<crate::db::Backend> = Vec::new();
        for set in &self.migrations {
            for b in set.backends {
                if !out.contains(b) {
                    out.push(*b);
                }
            }
        }
        out
    }
    /// Whether `build` runs migrations (default: yes).
    pub fn migrate(mut self, on: bool) -> Self {
        self.migrate = on;
        self
    }
    /// Whether `build` refuses to start on schema drift (default: yes).
    pub fn check_schema(mut self, on: bool) -> Self {
        self.check_schema = on;
        self
    }
    /// Whether `build` starts background tasks (audit sealing, permission
    /// cache polling). Default: yes. Commands that exit at once turn it off.
    pub fn background_tasks(mut self, on: bool) -> Self {
        self.background = on;
        self
    }
    /// Whether panel and API requests are written to the access log
    /// (default: yes; `PLATFORM_ACCESS_LOG=0` turns it off).
    pub fn access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }
    /// The cache store (default: in-process moka, 64 MiB).
    pub fn cache_store(mut self, store: Arc<dyn CacheStore>) -> Self {
        self.cache_store = Some(store);
        self
    }
    /// The backplane between the nodes of a deployment (default: this
    /// process only). A shared one (Redis) carries permission changes, so
    /// that the 1-second poll of the database is not needed.
    pub fn backplane(mut self, backplane: Arc<dyn Backplane>) -> Self {
        self.backplane = Some(backplane);
        self
    }
    /// Where sessions live (default: the table `platform_sessions` of the
    /// main database). A shared store (Redis, `platform-adapters` feature
    /// `session-redis`) keeps sign-ins off the database; the audit entries
    /// of sign-in and sign-out stay in it.
    pub fn session_store(mut self, store: Arc<dyn crate::auth::SessionStore>) -> Self {
        self.session_store = Some(store);
        self
    }
    /// The mailer (default: [`LogMailer`], which delivers nothing).
    pub fn mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }
    /// Authentication settings (default: [`AuthConfig::default`]).
    pub fn auth_config(mut self, config: AuthConfig) -> Self {
        self.auth_config = config;
        self
    }
    /// The connection pool's maximum size.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.db_options.max_connections = n;
        self
    }
    /// How long to wait for a free connection before answering 503.
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.db_options.acquire_timeout = d;
        self
    }
    /// Ignores `PLATFORM_*` environment variables (tests, embedding).
    pub fn ignore_env(mut self) -> Self {
        self.use_env = false;
        self
    }

    fn env(&self, name: &str) -> Option<String> {
        if !self.use_env {
            return None;
        }
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }

    /// The database URL this builder will use. Without one configured,
    /// [`DEFAULT_DATABASE_URL`]; but when `platform.db` of the layout before
    /// the state folder exists and `.platform/platform.db` does not, that
    /// file stays in use (nothing is moved) and a line on standard error
    /// says how to move it.
    pub fn resolved_database_url(&self) -> String {
        if let Some(url) = self
            .env("PLATFORM_DATABASE_URL")
            .or_else(|| self.database_url.clone())
        {
            return url;
        }
        let new = Path::new(STATE_DIR).join("platform.db");
        if !new.exists() && Path::new(LEGACY_DATABASE_FILE).is_file() {
            notice_once(
                &LEGACY_DB_NOTICE,
                format!(
                    "notice: using ./{LEGACY_DATABASE_FILE}; new applications keep it in {STATE_DIR}/, \
                     which git ignores. To move it, stop the server and run: \
                     mkdir -p {STATE_DIR} && mv {LEGACY_DATABASE_FILE}* {STATE_DIR}/ \
                     (and `mv platform.key {STATE_DIR}/` if you have one)"
                ),
            );
            return format!("sqlite://{LEGACY_DATABASE_FILE}?mode=rwc");
        }
        DEFAULT_DATABASE_URL.to_owned()
    }

    /// The registry this builder will use (the explicit one, or every
    /// `#[derive(Resource)]` type).
    pub fn resolved_registry(&self) -> Result<Registry> {
        match &self.registry {
            Some(r) => Ok(r.clone()),
            None => Registry::from_inventory().map_err(|e| Error::Configuration(e.to_string())),
        }
    }

    /// The framework's, the capabilities' and the host's migration sets,
    /// in the order they run.
    pub fn migration_sets(&self) -> Vec<MigrationSet> {
        std::iter::once(FRAMEWORK_MIGRATIONS)
            .chain(self.setup.migrations.iter().copied())
            .chain(self.migrations.iter().copied())
            .collect()
    }

    /// The environment this builder will use.
    pub fn resolved_environment(&self) -> Result<Environment> {
        match self.env("PLATFORM_ENV").as_deref() {
            None => Ok(self.environment.unwrap_or_default()),
            Some("production" | "prod") => Ok(Environment::Production),
            Some("development" | "dev" | "local" | "test") => Ok(Environment::Development),
            Some(other) => Err(Error::Configuration(format!(
                "PLATFORM_ENV must be `production` or `development`, not `{other}`"
            ))),
        }
    }

    /// The configured key file, if any.
    fn configured_key_file(&self) -> Option<PathBuf> {
        self.env("PLATFORM_KEY_FILE")
            .map(PathBuf::from)
            .or_else(|| self.key_file.clone())
    }

    /// Where the layout before the state folder kept a generated key:
    /// next to an SQLite file, else in the working directory.
    fn legacy_key_file_path(url: &str) -> PathBuf {
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let path = rest.split('?').next().unwrap_or_default();
            if !path.is_empty() && !path.contains(":memory:") {
                let p = PathBuf::from(path);
                if let Some(parent) = p.parent() {
                    return parent.join("platform.key");
                }
            }
        }
        PathBuf::from("platform.key")
    }

    fn resolve_keys(&self, env: Environment, url: &str) -> Result<(AppKey, Vec<AppKey>)> {
        let mut previous = self.previous_keys.clone();
        if let Some(list) = self.env("PLATFORM_PREVIOUS_KEYS") {
            for k in list.split(',').filter(|s| !s.trim().is_empty()) {
                previous.push(AppKey::parse(k)?);
            }
        }
        if let Some(k) = self.env("PLATFORM_APP_KEY") {
            return Ok((AppKey::parse(&k)?, previous));
        }
        if let Some(k) = &self.app_key {
            return Ok((k.clone(), previous));
        }
        if env == Environment::Production {
            return Err(Error::Configuration(
                "PLATFORM_APP_KEY is required in production (generate one with `key:generate`)"
                    .into(),
            ));
        }
        let path = match self.configured_key_file() {
            Some(p) => p,
            None => {
                let new = Path::new(STATE_DIR).join("platform.key");
                let old = Self::legacy_key_file_path(url);
                if !new.exists() && old.is_file() {
                    // The key of existing data: read where it is, never
                    // replaced by a new one.
                    notice_once(
                        &LEGACY_KEY_NOTICE,
                        format!(
                            "notice: reading the app key from {}; new applications keep it in {STATE_DIR}/, \
                             which git ignores. To move it: mkdir -p {STATE_DIR} && mv {} {STATE_DIR}/",
                            old.display(),
                            old.display()
                        ),
                    );
                    old
                } else {
                    new
                }
            }
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((AppKey::parse(&text)?, previous)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = AppKey::generate();
                write_key_file(&path, &key)?;
                tracing::warn!(path = %path.display(), "generated a development app key");
                Ok((key, previous))
            }
            Err(e) => Err(Error::Configuration(format!(
                "cannot read the app key file {}: {e}",
                path.display()
            ))),
        }
    }

    fn resolved_db_options(&self) -> Result<DbOptions> {
        let mut o = self.db_options.clone();
        if let Some(n) = self.env("PLATFORM_DB_MAX_CONNECTIONS") {
            o.max_connections = n.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::Configuration(format!(
                    "PLATFORM_DB_MAX_CONNECTIONS must be a positive number, not `{n}`"
                ))
            })?;
        }
        Ok(o)
    }

    /// Connects, migrates (framework tables, then the host's), checks the
    /// schema against the registry, creates the generated permissions and
    /// starts the background tasks.
    pub async fn build(self) -> Result<Platform> {
        if let Some(name) = self.setup.duplicate() {
            return Err(Error::Configuration(format!(
                "the capability `{name}` was added twice"
            )));
        }
        let environment = self.resolved_environment()?;
        let url = self.resolved_database_url();
        let (key, previous) = self.resolve_keys(environment, &url)?;
        let registry = self.resolved_registry()?;
        let db = Db::connect_with(&url, self.resolved_db_options()?).await?;
        if self.migrate {
            for set in self.migration_sets() {
                set.run(&db).await?;
            }
        }
        if self.check_schema {
            crate::schema::check(&db, &registry).await?;
        }
        let crypto = Arc::new(Crypto::new(&key, &previous));
        let outbox = crate::outbox::Outbox::new(self.outbox_retry_after);
        let db = db
            .with_audit_key(crypto.clone())
            .with_outbox(outbox.clone());
        let store = self
            .cache_store
            .clone()
            .unwrap_or_else(|| Arc::new(MemoryStore::default()));
        let access = Access::new(db.clone());
        let audit = AuditLog::new(db.clone(), crypto.clone());
        let access_log_on =
            self.access_log && self.env("PLATFORM_ACCESS_LOG").as_deref() != Some("0");
        let access_log = AccessLog::new(db.clone(), access_log_on);
        let auth = Auth::with_session_store(
            db.clone(),
            access.clone(),
            crypto.clone(),
            self.auth_config.clone(),
            self.session_store.clone(),
        );
        let mailer = self.mailer.clone().unwrap_or_else(|| Arc::new(LogMailer));
        let cache = Cache::new(store, "platform:");
        let notifications = Notifications::new(db.clone(), cache.clone());
        let (stop, _) = tokio::sync::watch::channel(false);
        let config = crate::config::Config::resolve(
            &self.config,
            environment == Environment::Production,
            |name| self.env(name),
        );
        let mut setup = self.setup.clone();
        builtin_tasks(&mut setup);
        let platform = Platform {
            inner: Arc::new(Inner {
                db,
                registry,
                crypto,
                cache,
                backplane: self
                    .backplane
                    .clone()
                    .unwrap_or_else(|| Arc::new(LocalBackplane::default())),
                events: EventBus::default(),
                outbox,
                access,
                access_log,
                audit,
                auth,
                mailer,
                notifications,
                environment,
                config,
                setup,
                services: Services::default(),
                stop,
                workers_started: std::sync::atomic::AtomicBool::new(false),
                shutdown_grace: self.shutdown_grace,
                tasks: Mutex::new(Vec::new()),
            }),
        };
        let platform = platform.with_services().await?;
        if platform.backplane().is_shared() {
            // Several nodes: permission changes and throttles go through
            // the backplane and the shared store.
            platform
                .access()
                .use_backplane(platform.backplane().clone());
            platform
                .auth()
                .throttle()
                .share(platform.cache().store().clone());
        }
        if self.migrate {
            platform.sync_permissions().await?;
        }
        platform.access().poll_changes().await?;
        for hook in &platform.inner.setup.start {
            hook(platform.clone()).await?;
        }
        if self.background && tokio::runtime::Handle::try_current().is_ok() {
            platform.spawn_tasks(TaskKind::Service);
        }
        Ok(platform)
    }
}

impl Platform {
    /// Makes the capabilities' services, in the order they were declared
    /// (a factory may `get` the services declared before its own).
    async fn with_services(self) -> Result<Platform> {
        let mut platform = self;
        let decls = platform.inner.setup.services.clone();
        for decl in decls {
            let service = (decl.init)(platform.clone()).await.map_err(|e| {
                Error::Configuration(format!("cannot start the service {}: {e}", decl.type_name))
            })?;
            // Only this function holds the platform now (the factory's
            // clone is gone), so the services can be added in place.
            let inner = Arc::get_mut(&mut platform.inner).ok_or_else(|| {
                Error::Configuration(format!(
                    "the service {} kept the platform it was built from; hold what it needs instead",
                    decl.type_name
                ))
            })?;
            inner.services.insert(decl.type_id, service);
        }
        tracing::debug!(services = platform.inner.services.len(), "services ready");
        Ok(platform)
    }
}

/// How often the outbox is swept for events nobody delivered.
const OUTBOX_SWEEP: Duration = Duration::from_secs(1);

/// The platform's own background tasks, declared like a capability's:
/// the audit sealer, the access log writer and the poller of permission
/// changes made by other processes.
fn builtin_tasks(setup: &mut Setup) {
    setup.task("audit sealer", TaskKind::Service, |p, stop| {
        p.audit().clone().run_sealer(Duration::from_secs(1), stop)
    });
    setup.task("access log writer", TaskKind::Service, |p, mut stop| {
        let log = p.access_log().clone();
        async move {
            let writer = log.clone().run_writer();
            let stopper = async move {
                stop.stopped().await;
                log.stop().await;
            };
            tokio::join!(writer, stopper);
        }
    });
    setup.task("outbox dispatcher", TaskKind::Service, |p, stop| {
        p.outbox()
            .clone()
            .run_dispatcher(p.db().clone(), OUTBOX_SWEEP, stop)
    });
    setup.task("permission changes", TaskKind::Service, |p, stop| {
        let access = p.access().clone();
        let backplane = p.backplane().clone();
        async move {
            if backplane.is_shared() {
                access.run_listener(backplane, stop).await;
            } else {
                access.run_poller(Duration::from_secs(1), stop).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:secret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
        assert_eq!(redact_url("mysql://root@h/x"), "mysql://root@h/x");
    }
}

//! Capabilities: what a host adds to the builder, and the one seam through
//! which each contributes.
//!
//! ```
//! use platform_core::capability::{Capability, Setup, TaskKind};
//!
//! /// Counts to three in the background, then stops.
//! struct Counter;
//!
//! impl Capability for Counter {
//!     fn name(&self) -> &'static str {
//!         "counter"
//!     }
//!     fn setup(&self, setup: &mut Setup) {
//!         setup.permission("view_counter", "See the counter");
//!         setup.task("counter", TaskKind::Service, |_platform, mut stop| async move {
//!             for _ in 0..3 {
//!                 if stop.wait_for(std::time::Duration::from_millis(10)).await {
//!                     return;
//!                 }
//!             }
//!         });
//!     }
//! }
//!
//! # async fn run() -> platform_core::Result<()> {
//! let platform = platform_core::Platform::builder().with(Counter).build().await?;
//! assert!(platform.has_capability("counter"));
//! platform.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! A capability contributes, each part optional (see [`Setup`]):
//!
//! | what | how | used by |
//! |---|---|---|
//! | its tables | [`Setup::migrations`] | `build` (migrates), `migrate`, `migrate --check` |
//! | permissions not tied to a resource | [`Setup::permission`] | permission sync, the role editor, the permission matrix |
//! | typed services | [`Setup::service`] | [`Platform::get`] |
//! | background tasks | [`Setup::task`] | `build` ([`TaskKind::Service`]), `serve` / `queue:work` ([`TaskKind::Worker`]); stopped by [`Platform::shutdown`] |
//! | health checks | [`Setup::health_check`] | `/health` |
//! | listeners on the event bus | [`Setup::on_start`] | after build |
//! | anything a layer above core reads (routes, panel pages, commands) | [`Setup::contribute`] | [`Platform::contributions`], [`PlatformBuilder::contributions`](crate::platform::PlatformBuilder::contributions) |
//! | the OpenAPI description of its API routes | [`Setup::api_doc`] ([`ApiDoc`]) | `/api/openapi.json`, `/api/docs` |
//!
//! `setup` runs once, when the capability is added to the builder: it only
//! declares. Work that needs the database happens in the service factories,
//! start hooks and tasks, which run during and after `build`. A capability
//! that is not added costs nothing: no tables, no routes, no tasks.

mod api_doc;

pub use api_doc::{ApiDoc, ResourceDoc};

use std::any::{Any, TypeId};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::db::MigrationSet;
use crate::error::Result;
use crate::platform::Platform;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Something a host adds to [`PlatformBuilder::with`](crate::platform::PlatformBuilder::with):
/// jobs, notifications, import/export, media, webhooks...
pub trait Capability: Send + Sync + 'static {
    /// A short, unique name (`jobs`, `notifications`): adding two
    /// capabilities of one name is a configuration error.
    fn name(&self) -> &'static str;
    /// Declares what the capability contributes.
    fn setup(&self, setup: &mut Setup);
}

/// When a background task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskKind {
    /// Whenever the platform runs background tasks (every long-running
    /// process: `serve`, `queue:work`, a host's own loop): the audit
    /// sealer, the access log writer.
    Service,
    /// Only where work is processed: `serve` (unless told not to) and
    /// `queue:work`, started by [`Platform::start_workers`].
    Worker,
}

/// Tells a task that the platform is shutting down. A task should finish
/// or hand back what it holds, then return; [`Platform::shutdown`] waits
/// for it (up to its grace period), then aborts it.
#[derive(Debug, Clone)]
pub struct Stop {
    rx: tokio::sync::watch::Receiver<bool>,
}

impl Stop {
    pub(crate) fn new(rx: tokio::sync::watch::Receiver<bool>) -> Self {
        Self { rx }
    }
    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        *self.rx.borrow()
    }
    /// Resolves when shutdown begins (at once if it has).
    pub async fn stopped(&mut self) {
        // An error means the platform is gone: stop as well.
        let _ = self.rx.wait_for(|s| *s).await;
    }
    /// Sleeps for `d`, or less when shutdown begins; returns whether it has.
    pub async fn wait_for(&mut self, d: Duration) -> bool {
        tokio::select! {
            () = self.stopped() => true,
            () = tokio::time::sleep(d) => self.is_stopping(),
        }
    }
}

/// A health check's outcome: `Ok`, or what is wrong (no secrets: it is
/// shown on `/health`).
pub type HealthResult = std::result::Result<(), String>;

/// One check on `/health` (the database, a Redis server, a queue's
/// backlog...).
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// Its name on `/health` (`database`, `redis`, `queue:default`).
    fn name(&self) -> &str;
    /// Runs the check. `/health` gives it 3 seconds.
    async fn check(&self, platform: &Platform) -> HealthResult;
}

pub(crate) type ServiceInit =
    Arc<dyn Fn(Platform) -> BoxFuture<Result<Arc<dyn Any + Send + Sync>>> + Send + Sync>;
pub(crate) type TaskFn = Arc<dyn Fn(Platform, Stop) -> BoxFuture<()> + Send + Sync>;
pub(crate) type StartHook = Arc<dyn Fn(Platform) -> BoxFuture<Result<()>> + Send + Sync>;

#[derive(Clone)]
pub(crate) struct ServiceDecl {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
    pub(crate) init: ServiceInit,
}

/// A background task a capability declared.
#[derive(Clone)]
pub(crate) struct TaskDecl {
    pub(crate) name: String,
    pub(crate) kind: TaskKind,
    pub(crate) run: TaskFn,
}

/// A permission a capability declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionDecl {
    /// The permission (`view_jobs`).
    pub name: String,
    /// What it allows, for the role editor (`See the queue dashboard`).
    pub label: String,
    /// The capability that declared it.
    pub capability: &'static str,
}

/// What capabilities declared; the builder keeps one and adds to it.
#[derive(Clone, Default)]
pub struct Setup {
    current: &'static str,
    pub(crate) names: Vec<&'static str>,
    pub(crate) migrations: Vec<MigrationSet>,
    pub(crate) permissions: Vec<PermissionDecl>,
    pub(crate) services: Vec<ServiceDecl>,
    pub(crate) tasks: Vec<TaskDecl>,
    pub(crate) health: Vec<Arc<dyn HealthCheck>>,
    pub(crate) start: Vec<StartHook>,
    pub(crate) contributions: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

impl fmt::Debug for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setup")
            .field("capabilities", &self.names)
            .field("migrations", &self.migrations.len())
            .field("permissions", &self.permissions)
            .field(
                "services",
                &self
                    .services
                    .iter()
                    .map(|s| s.type_name)
                    .collect::<Vec<_>>(),
            )
            .field(
                "tasks",
                &self.tasks.iter().map(|t| &t.name).collect::<Vec<_>>(),
            )
            .field(
                "health_checks",
                &self.health.iter().map(|h| h.name()).collect::<Vec<_>>(),
            )
            .field("contributions", &self.contributions.len())
            .finish()
    }
}

impl Setup {
    /// Runs `capability`'s `setup` into this one.
    pub(crate) fn add(&mut self, capability: &dyn Capability) {
        self.current = capability.name();
        self.names.push(capability.name());
        capability.setup(self);
        self.current = "";
    }

    /// Names a capability added twice, if one was.
    pub(crate) fn duplicate(&self) -> Option<&'static str> {
        let mut seen = std::collections::HashSet::new();
        self.names.iter().copied().find(|n| !seen.insert(*n))
    }

    /// The capability's tables: a set of migrations (from
    /// [`embed_migrations!`](crate::embed_migrations) or written out),
    /// run after the framework's and before the host's. Its `name` keys
    /// the bookkeeping and must be unique.
    pub fn migrations(&mut self, set: MigrationSet) -> &mut Self {
        self.migrations.push(set);
        self
    }

    /// A permission that is not tied to a resource (`view_jobs`), created
    /// by permission sync and shown in the role editor with `label`.
    pub fn permission(&mut self, name: impl Into<String>, label: impl Into<String>) -> &mut Self {
        self.permissions.push(PermissionDecl {
            name: name.into(),
            label: label.into(),
            capability: self.current,
        });
        self
    }

    /// A typed service, made once during `build` by `init` (which may use
    /// the database) and found with [`Platform::get::<T>()`](Platform::get).
    /// A service should hold what it needs (the [`Db`](crate::db::Db), a
    /// client), not the `Platform` itself, which would keep it alive.
    pub fn service<T, F, Fut>(&mut self, init: F) -> &mut Self
    where
        T: Send + Sync + 'static,
        F: Fn(Platform) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let init = Arc::new(init);
        self.services.push(ServiceDecl {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            init: Arc::new(move |p| {
                let fut = init(p);
                Box::pin(
                    async move { fut.await.map(|s| Arc::new(s) as Arc<dyn Any + Send + Sync>) },
                )
            }),
        });
        self
    }

    /// A background task called `name`. `run` gets the platform and a
    /// [`Stop`] signal; it should return soon after the signal (finishing
    /// or handing back its work).
    pub fn task<F, Fut>(&mut self, name: impl Into<String>, kind: TaskKind, run: F) -> &mut Self
    where
        F: Fn(Platform, Stop) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push(TaskDecl {
            name: name.into(),
            kind,
            run: Arc::new(move |p, s| Box::pin(run(p, s))),
        });
        self
    }

    /// A check on `/health`.
    pub fn health_check(&mut self, check: impl HealthCheck) -> &mut Self {
        self.health.push(Arc::new(check));
        self
    }

    /// Runs `hook` at the end of `build`, after migrations, services and
    /// permission sync, before any task starts (subscribe listeners, seed
    /// rows). An error fails the build.
    pub fn on_start<F, Fut>(&mut self, hook: F) -> &mut Self
    where
        F: Fn(Platform) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.start.push(Arc::new(move |p| Box::pin(hook(p))));
        self
    }

    /// Something a layer above core reads: routes, panel pages, dashboard
    /// widgets, commands (`platform-admin` defines those types and reads
    /// them with [`Platform::contributions`]).
    pub fn contribute<T: Send + Sync + 'static>(&mut self, item: T) -> &mut Self {
        self.contributions.push((TypeId::of::<T>(), Arc::new(item)));
        self
    }

    /// The OpenAPI description of the capability's API routes: the API's
    /// document (`/api/openapi.json`) lists them only when the capability
    /// is added. The same as `contribute(doc)`.
    pub fn api_doc(&mut self, doc: ApiDoc) -> &mut Self {
        self.contribute(doc)
    }

    /// Every contribution of type `T`, in the order they were made.
    pub fn contributions<T: Send + Sync + 'static>(&self) -> Vec<Arc<T>> {
        self.contributions
            .iter()
            .filter(|(id, _)| *id == TypeId::of::<T>())
            .filter_map(|(_, item)| item.clone().downcast::<T>().ok())
            .collect()
    }

    /// The capabilities added, in order.
    pub fn capability_names(&self) -> &[&'static str] {
        &self.names
    }

    /// The permissions capabilities declared.
    pub fn permissions(&self) -> &[PermissionDecl] {
        &self.permissions
    }
}

/// The services made during `build`, by type.
#[derive(Default)]
pub(crate) struct Services {
    map: std::collections::HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Services {
    pub(crate) fn insert(&mut self, id: TypeId, service: Arc<dyn Any + Send + Sync>) {
        self.map.insert(id, service);
    }
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.map
            .get(&TypeId::of::<T>())
            .and_then(|s| s.clone().downcast::<T>().ok())
    }
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

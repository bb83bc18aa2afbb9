//! What capabilities contribute to the web and command-line layers: routes,
//! API routes and commands (panel pages and dashboard widgets are
//! [`PanelPage`] and
//! [`Widget`]). A capability hands them to
//! [`Setup::contribute`](platform_core::capability::Setup::contribute), or
//! through [`SetupExt`]; [`app_router`](crate::app_router) and
//! [`Cli`](crate::cli::Cli) pick them up.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use platform_core::Platform;
use platform_core::capability::Setup;
use platform_core::platform::PlatformBuilder;

use crate::panel::{PanelPage, Widget};

/// Routes served at the root, next to `/api`, `/admin` and `/health`.
#[derive(Debug, Clone)]
pub struct Routes(axum::Router<Platform>);

impl Routes {
    /// `router`'s routes (it must not have a fallback).
    pub fn new(router: axum::Router<Platform>) -> Self {
        Self(router)
    }
    /// The router.
    pub fn router(&self) -> &axum::Router<Platform> {
        &self.0
    }
}

/// Routes served under the panel's base path (`/admin/...`), with the
/// panel's layers, where the panel's session cookie (scoped to that path)
/// reaches them: the broadcasting capability's channel authorisation for
/// the panel's live updates, say. [`app_router`](crate::app_router) merges
/// them; a host that mounts `panel_router_with` itself merges them too.
#[derive(Debug, Clone)]
pub struct PanelRoutes(axum::Router<Platform>);

impl PanelRoutes {
    /// `router`'s routes (it must not have a fallback).
    pub fn new(router: axum::Router<Platform>) -> Self {
        Self(router)
    }
    /// The router.
    pub fn router(&self) -> &axum::Router<Platform> {
        &self.0
    }
}

/// What a capability's API route requires of the caller, as declared with
/// [`ApiRoutes::requires`], [`ApiRoutes::public`] or (the default)
/// [`ApiRoutes::get`] and its siblings alone. The permission matrix
/// (`platform_admin::matrix`) requests every declared route as every role
/// and checks the answer against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAccess {
    /// Anyone, with or without a token.
    Public,
    /// Any caller with a valid token (the default of a declared route).
    Authenticated,
    /// A caller whose token's user holds this permission.
    Permission(&'static str),
}

impl std::fmt::Display for RouteAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Public => f.write_str("public"),
            Self::Authenticated => f.write_str("signed in"),
            Self::Permission(p) => f.write_str(p),
        }
    }
}

/// One declared route of an [`ApiRoutes`]: method, path (relative to
/// `/api`, with `{param}` segments as in axum) and what it requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    method: axum::http::Method,
    path: &'static str,
    access: RouteAccess,
}

impl ApiRoute {
    /// The method.
    pub fn method(&self) -> &axum::http::Method {
        &self.method
    }
    /// The path, relative to `/api` (`/jobs/stats`).
    pub fn path(&self) -> &'static str {
        self.path
    }
    /// What it requires.
    pub fn access(&self) -> RouteAccess {
        self.access
    }
}

/// A route an [`ApiRoutes`] serves for every resource it applies to
/// (`GET /{resource}/export`), declared with [`ApiRoutes::each_resource`]:
/// the permission matrix requests it for each such resource the API
/// serves, and expects the resource's permissions for its abilities.
#[derive(Debug, Clone)]
pub struct ResourceApiRoute {
    method: axum::http::Method,
    path: &'static str,
    abilities: &'static [platform_core::permission::Ability],
    applies: fn(&platform_core::resource::ResourceMeta) -> bool,
}

impl ResourceApiRoute {
    /// The method.
    pub fn method(&self) -> &axum::http::Method {
        &self.method
    }
    /// The path, relative to `/api`, with a `{resource}` segment for the
    /// resource's plural name (`/{resource}/export`).
    pub fn path(&self) -> &'static str {
        self.path
    }
    /// The path for `plural` (`/invoices/export`).
    pub fn path_for(&self, plural: &str) -> String {
        self.path.replace("{resource}", plural)
    }
    /// The abilities whose permissions it requires, all of them
    /// (`view_any_<resource>` and `export_<resource>`).
    pub fn abilities(&self) -> &'static [platform_core::permission::Ability] {
        self.abilities
    }
    /// Whether the route serves `meta` (an export route serves only
    /// exportable resources).
    pub fn applies_to(&self, meta: &platform_core::resource::ResourceMeta) -> bool {
        (self.applies)(meta)
    }
}

/// Routes served under `/api`, behind the API's layers (access log,
/// security headers). Handlers authenticate with
/// [`ApiContext`](crate::api::ApiContext) like the API's own.
///
/// Declare each route with what it requires, so that the permission
/// matrix checks it for every role (an undeclared route is served but not
/// checked):
///
/// ```
/// use axum::routing::get;
/// use platform_admin::capability::{ApiRoutes, RouteAccess};
///
/// async fn stats() -> &'static str { "{}" }
/// async fn version() -> &'static str { "1" }
///
/// let routes = ApiRoutes::new(
///     axum::Router::new()
///         .route("/queue/stats", get(stats))
///         .route("/queue/version", get(version)),
/// )
/// .get("/queue/stats")
/// .requires("view_queue")
/// .get("/queue/version")
/// .public();
/// assert_eq!(routes.declared()[0].access(), RouteAccess::Permission("view_queue"));
/// assert_eq!(routes.declared()[1].access(), RouteAccess::Public);
/// ```
///
/// The handler must check the same thing itself
/// (`api.context().authorize("view_queue")?`): the declaration is what the
/// matrix expects, not a guard.
#[derive(Debug, Clone)]
pub struct ApiRoutes {
    router: axum::Router<Platform>,
    declared: Vec<ApiRoute>,
    per_resource: Vec<ResourceApiRoute>,
}

impl ApiRoutes {
    /// `router`'s routes, paths relative to `/api` (no fallback).
    pub fn new(router: axum::Router<Platform>) -> Self {
        Self {
            router,
            declared: Vec::new(),
            per_resource: Vec::new(),
        }
    }
    /// The router.
    pub fn router(&self) -> &axum::Router<Platform> {
        &self.router
    }
    /// The declared routes.
    pub fn declared(&self) -> &[ApiRoute] {
        &self.declared
    }
    /// The routes declared for every resource.
    pub fn resource_routes(&self) -> &[ResourceApiRoute] {
        &self.per_resource
    }
    /// Declares the route `method path`, served for every resource for
    /// which `applies` holds (`path` has a `{resource}` segment, the
    /// plural name), requiring the resource's permissions for every one of
    /// `abilities`:
    ///
    /// ```
    /// use axum::http::Method;
    /// use platform_admin::capability::ApiRoutes;
    /// use platform_core::permission::Ability;
    ///
    /// let routes = ApiRoutes::new(axum::Router::new()).each_resource(
    ///     Method::GET,
    ///     "/{resource}/export",
    ///     &[Ability::ViewAny, Ability::Export],
    ///     |meta| meta.exportable(),
    /// );
    /// assert_eq!(routes.resource_routes()[0].path_for("invoices"), "/invoices/export");
    /// ```
    pub fn each_resource(
        mut self,
        method: axum::http::Method,
        path: &'static str,
        abilities: &'static [platform_core::permission::Ability],
        applies: fn(&platform_core::resource::ResourceMeta) -> bool,
    ) -> Self {
        self.per_resource.push(ResourceApiRoute {
            method,
            path,
            abilities,
            applies,
        });
        self
    }
    /// Declares the route `method path` of the router; it requires a
    /// signed-in caller until [`ApiRoutes::requires`] or
    /// [`ApiRoutes::public`] says otherwise.
    pub fn route(mut self, method: axum::http::Method, path: &'static str) -> Self {
        self.declared.push(ApiRoute {
            method,
            path,
            access: RouteAccess::Authenticated,
        });
        self
    }
    /// Declares `GET path` (see [`ApiRoutes::route`]).
    pub fn get(self, path: &'static str) -> Self {
        self.route(axum::http::Method::GET, path)
    }
    /// Declares `POST path` (see [`ApiRoutes::route`]).
    pub fn post(self, path: &'static str) -> Self {
        self.route(axum::http::Method::POST, path)
    }
    /// Declares `PUT path` (see [`ApiRoutes::route`]).
    pub fn put(self, path: &'static str) -> Self {
        self.route(axum::http::Method::PUT, path)
    }
    /// Declares `PATCH path` (see [`ApiRoutes::route`]).
    pub fn patch(self, path: &'static str) -> Self {
        self.route(axum::http::Method::PATCH, path)
    }
    /// Declares `DELETE path` (see [`ApiRoutes::route`]).
    pub fn delete(self, path: &'static str) -> Self {
        self.route(axum::http::Method::DELETE, path)
    }
    /// The route declared last requires `permission`.
    ///
    /// # Panics
    ///
    /// When no route is declared yet (a mistake in the capability's code,
    /// found the first time it is set up).
    pub fn requires(self, permission: &'static str) -> Self {
        self.access(RouteAccess::Permission(permission), "requires")
    }
    /// The route declared last is open to anyone.
    ///
    /// # Panics
    ///
    /// When no route is declared yet.
    pub fn public(self) -> Self {
        self.access(RouteAccess::Public, "public")
    }
    fn access(mut self, access: RouteAccess, what: &str) -> Self {
        match self.declared.last_mut() {
            Some(r) => r.access = access,
            None => panic!(
                "ApiRoutes::{what} applies to the route declared last, and none is: \
                 declare it first (`.get(\"/path\").{what}(..)`)"
            ),
        }
        self
    }
}

/// What a command's runner returns.
pub type CommandFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

type Runner = Arc<dyn Fn(PlatformBuilder, clap::ArgMatches) -> CommandFuture + Send + Sync>;

/// A subcommand of the host's command line (`queue:work`, `queue:failed`).
#[derive(Clone)]
pub struct Command {
    command: clap::Command,
    run: Runner,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("name", &self.command.get_name())
            .finish_non_exhaustive()
    }
}

impl Command {
    /// The subcommand `command` (its name is what the user types), run by
    /// `run` with the builder (build the platform from it: a short command
    /// turns background tasks off) and the parsed arguments.
    pub fn new<F, Fut>(command: clap::Command, run: F) -> Self
    where
        F: Fn(PlatformBuilder, clap::ArgMatches) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self {
            command,
            run: Arc::new(move |b, m| Box::pin(run(b, m))),
        }
    }
    /// The command's name.
    pub fn name(&self) -> &str {
        self.command.get_name()
    }
    /// The clap definition.
    pub fn definition(&self) -> &clap::Command {
        &self.command
    }
    /// Runs it.
    pub fn run(&self, builder: PlatformBuilder, matches: clap::ArgMatches) -> CommandFuture {
        (self.run)(builder, matches)
    }
}

/// The admin layer's contributions as methods of
/// [`Setup`].
pub trait SetupExt {
    /// Routes at the root.
    fn routes(&mut self, router: axum::Router<Platform>) -> &mut Self;
    /// Routes under the panel's base path.
    fn panel_routes(&mut self, router: axum::Router<Platform>) -> &mut Self;
    /// Routes under `/api`, none declared (see [`SetupExt::api`]).
    fn api_routes(&mut self, router: axum::Router<Platform>) -> &mut Self;
    /// Routes under `/api` with their declarations.
    fn api(&mut self, routes: ApiRoutes) -> &mut Self;
    /// A panel page.
    fn panel_page(&mut self, page: PanelPage) -> &mut Self;
    /// A dashboard widget.
    fn widget(&mut self, widget: Widget) -> &mut Self;
    /// A command.
    fn command(&mut self, command: Command) -> &mut Self;
}

impl SetupExt for Setup {
    fn routes(&mut self, router: axum::Router<Platform>) -> &mut Self {
        self.contribute(Routes::new(router))
    }
    fn panel_routes(&mut self, router: axum::Router<Platform>) -> &mut Self {
        self.contribute(PanelRoutes::new(router))
    }
    fn api_routes(&mut self, router: axum::Router<Platform>) -> &mut Self {
        self.contribute(ApiRoutes::new(router))
    }
    fn api(&mut self, routes: ApiRoutes) -> &mut Self {
        self.contribute(routes)
    }
    fn panel_page(&mut self, page: PanelPage) -> &mut Self {
        self.contribute(page)
    }
    fn widget(&mut self, widget: Widget) -> &mut Self {
        self.contribute(widget)
    }
    fn command(&mut self, command: Command) -> &mut Self {
        self.contribute(command)
    }
}

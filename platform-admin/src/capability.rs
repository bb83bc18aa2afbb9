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

/// Routes served under `/api`, behind the API's layers (access log,
/// security headers). Handlers authenticate with
/// [`ApiContext`](crate::api::ApiContext) like the API's own.
#[derive(Debug, Clone)]
pub struct ApiRoutes(axum::Router<Platform>);

impl ApiRoutes {
    /// `router`'s routes, paths relative to `/api` (no fallback).
    pub fn new(router: axum::Router<Platform>) -> Self {
        Self(router)
    }
    /// The router.
    pub fn router(&self) -> &axum::Router<Platform> {
        &self.0
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
    /// Routes under `/api`.
    fn api_routes(&mut self, router: axum::Router<Platform>) -> &mut Self;
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
    fn api_routes(&mut self, router: axum::Router<Platform>) -> &mut Self {
        self.contribute(ApiRoutes::new(router))
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

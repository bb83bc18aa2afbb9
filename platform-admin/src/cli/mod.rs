//! The command line every host binary gets (artisan): `serve`, `migrate`,
//! `user:create`, `user:password`, `token:create`, `role:create`, `role:grant`,
//! `role:revoke`, `role:list`, `permissions:sync`, `permissions:matrix`,
//! `audit:verify`, `audit:prune`, `make:migration`, `key:generate`.
//!
//! ```no_run
//! use platform_core::Platform;
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     platform_admin::cli::Cli::new(Platform::builder()).run().await
//! }
//! ```
//!
//! Every command exits non-zero on failure, so scripts and cron can rely on
//! the exit code; `--help` on each command describes it. The commands that
//! change users, roles, grants and tokens are all or nothing: each checks
//! its input (unknown roles and permissions are named) and writes in one
//! transaction, so a failing command leaves nothing behind; their changes
//! are audited as the console's. `make:migration` writes its three scripts
//! into a hidden directory renamed into place.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use chrono::Utc;
use clap::{Parser, Subcommand};
use platform_core::Platform;
use platform_core::context::Context;
use platform_core::crypto::AppKey;
use platform_core::platform::{PlatformBuilder, redact_url};
use platform_core::resource::Registry;

mod make_migration;

pub use make_migration::{Made, MakeMigration, make_migration, make_migration_with};
use make_migration::{pairs, parents_first};

type Hook =
    Arc<dyn Fn(Platform) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync>;
type RouterHook = Arc<dyn Fn(axum::Router<Platform>) -> axum::Router<Platform> + Send + Sync>;

/// The command line of a host application.
#[derive(Clone)]
pub struct Cli {
    builder: PlatformBuilder,
    on_serve: Vec<Hook>,
    routes: Vec<RouterHook>,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("builder", &self.builder)
            .field("serve_hooks", &self.on_serve.len())
            .finish()
    }
}

#[derive(Debug, Parser)]
#[command(about = "A Platform application", version, propagate_version = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the JSON API (and the panel) over HTTP. The default command.
    Serve {
        /// The address to listen on.
        #[arg(long, env = "PLATFORM_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Do not run the capabilities' workers (queue workers) in this
        /// process: run them with `queue:work` instead.
        #[arg(long)]
        no_workers: bool,
    },
    /// Apply pending migrations (the framework's, then the application's).
    Migrate {
        /// Only list what is pending.
        #[arg(long)]
        status: bool,
        /// Change nothing; exit non-zero when a migration is pending, the
        /// schema drifts from the resources, or a resource changed since its
        /// last migration (`make:migration` would write one). For CI.
        #[arg(long, conflicts_with = "status")]
        check: bool,
        /// The migrations directory (read by `--check`).
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
    },
    /// Create a user.
    #[command(name = "user:create")]
    UserCreate {
        /// E-mail address.
        #[arg(long)]
        email: String,
        /// Password (at least 8 characters); generated and printed when omitted.
        #[arg(long, env = "PLATFORM_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Display name (default: the part of the e-mail before `@`).
        #[arg(long)]
        name: Option<String>,
        /// Roles to give (repeatable), e.g. `super_admin`.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Set a user's password (generated and printed when none is given; a
    /// generated one must be changed at the next panel sign-in). Ends the
    /// user's sessions; audited as the console's, all or nothing.
    #[command(name = "user:password")]
    UserPassword {
        /// The user's e-mail address.
        #[arg(long)]
        email: String,
        /// The new password (at least 8 characters); generated and printed when omitted.
        #[arg(long, env = "PLATFORM_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Create an API token; prints the token alone on stdout (shown once).
    #[command(name = "token:create")]
    TokenCreate {
        /// The owner's e-mail address.
        #[arg(long)]
        email: String,
        /// A name for the token.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Comma-separated permissions the token may use (default: all of the owner's).
        #[arg(long, value_delimiter = ',')]
        abilities: Vec<String>,
        /// Lifetime such as `30d`, `12h`, `90m` (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Create a role, with the permissions given (all in one transaction).
    #[command(name = "role:create")]
    RoleCreate {
        /// The role's name.
        name: String,
        /// A permission to grant (repeatable, or comma-separated).
        #[arg(long = "permission", value_delimiter = ',')]
        permissions: Vec<String>,
    },
    /// Grant permissions to a role (all or none).
    #[command(name = "role:grant")]
    RoleGrant {
        /// The role's name.
        name: String,
        /// The permissions to grant (or comma-separated).
        #[arg(required = true, value_delimiter = ',')]
        permissions: Vec<String>,
    },
    /// Revoke permissions from a role (all or none).
    #[command(name = "role:revoke")]
    RoleRevoke {
        /// The role's name.
        name: String,
        /// The permissions to revoke (or comma-separated).
        #[arg(required = true, value_delimiter = ',')]
        permissions: Vec<String>,
    },
    /// List the roles with their permissions.
    #[command(name = "role:list")]
    RoleList,
    /// Create the generated permissions of every resource (and `super_admin`).
    #[command(name = "permissions:sync")]
    PermissionsSync,
    /// Request every API and panel route of every resource as every role
    /// (and anonymously) on a scratch SQLite database migrated with the
    /// application's migrations (never the application's own data), print
    /// the matrix, and exit non-zero when an answer differs from the
    /// declared permissions.
    #[command(name = "permissions:matrix")]
    PermissionsMatrix,
    /// Check the audit trail's hash chain; exits non-zero and names the first
    /// broken entry when it was tampered with.
    #[command(name = "audit:verify")]
    AuditVerify,
    /// Delete audit entries older than a duration, keeping the rest verifiable.
    #[command(name = "audit:prune")]
    AuditPrune {
        /// Age such as `365d`.
        #[arg(long)]
        older_than: String,
    },
    /// Write the migration a resource needs: the first one creates its
    /// table; later ones change it as the resource changed (fields added,
    /// removed, renamed, retyped; `unique`, `sortable`, `filter`, `search`),
    /// for SQLite, PostgreSQL and MySQL, keeping the rows.
    #[command(name = "make:migration")]
    MakeMigration {
        /// The resource's name (`invoice`) or plural (`invoices`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        resource: Option<String>,
        /// Every resource whose migrations lag behind it.
        #[arg(long)]
        all: bool,
        /// A renamed field, `OLD=NEW` (repeatable); asked on a terminal.
        #[arg(long = "rename", value_name = "OLD=NEW")]
        renames: Vec<String>,
        /// Fields that are gone were removed, not renamed: do not ask.
        #[arg(long)]
        no_rename: bool,
        /// A value for the existing rows of a new required field, or of one
        /// that becomes required, `FIELD=VALUE` (repeatable).
        #[arg(long = "default", value_name = "FIELD=VALUE")]
        defaults: Vec<String>,
        /// The migrations directory.
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
    },
    /// Print a new application key for `PLATFORM_APP_KEY`.
    #[command(name = "key:generate")]
    KeyGenerate,
    /// Run the health checks; exits non-zero when one fails.
    Health,
}

/// Parses `30d`, `12h`, `90m`, `45s`.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("`{text}` is not a duration like 30d, 12h, 90m"))?;
    let secs = match unit {
        "d" => n.checked_mul(86_400),
        "h" => n.checked_mul(3_600),
        "m" => n.checked_mul(60),
        "s" => Some(n),
        _ => None,
    }
    .ok_or_else(|| anyhow!("`{text}` is not a duration like 30d, 12h, 90m"))?;
    if secs == 0 {
        bail!("a duration must be positive");
    }
    Ok(Duration::from_secs(secs))
}

impl Cli {
    /// The command line over a platform built by `builder`.
    pub fn new(builder: PlatformBuilder) -> Self {
        Self {
            builder,
            on_serve: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Runs `hook` after the platform is built and before `serve` listens
    /// (seed data, start workers).
    pub fn on_serve<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Platform) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.on_serve.push(Arc::new(move |p| Box::pin(hook(p))));
        self
    }

    /// Adds the host's own routes to what `serve` serves.
    pub fn routes<F>(mut self, f: F) -> Self
    where
        F: Fn(axum::Router<Platform>) -> axum::Router<Platform> + Send + Sync + 'static,
    {
        self.routes.push(Arc::new(f));
        self
    }

    /// Parses the process's arguments and runs the command.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_from(std::env::args_os()).await
    }

    /// Parses `args` (the first is the program name) and runs the command.
    pub async fn run_from<I, T>(self, args: I) -> anyhow::Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        // The capabilities' commands join the built-in ones.
        let extra = self.builder.contributions::<crate::capability::Command>();
        let mut command = Args::command();
        for c in &extra {
            command = command.subcommand(c.definition().clone());
        }
        let matches = command.get_matches_from(args);
        if let Some((name, sub)) = matches.subcommand()
            && let Some(c) = extra.iter().find(|c| c.name() == name)
        {
            init_tracing();
            return c
                .run(self.builder.clone(), sub.clone())
                .await
                .map_err(without_repetition);
        }
        let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        init_tracing();
        self.run_command(args).await.map_err(without_repetition)
    }

    async fn run_command(self, args: Args) -> anyhow::Result<()> {
        let command = args.command.unwrap_or(Command::Serve {
            addr: std::env::var("PLATFORM_ADDR")
                .ok()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            no_workers: false,
        });
        match command {
            Command::Serve { addr, no_workers } => self.serve(addr, !no_workers).await,
            Command::Migrate { status, check, dir } => {
                if check {
                    self.migrate_check(&dir).await
                } else {
                    self.migrate(status).await
                }
            }
            Command::UserCreate {
                email,
                password,
                name,
                roles,
            } => self.user_create(email, password, name, roles).await,
            Command::UserPassword { email, password } => self.user_password(email, password).await,
            Command::TokenCreate {
                email,
                name,
                abilities,
                expires_in,
            } => self.token_create(email, name, abilities, expires_in).await,
            Command::RoleCreate { name, permissions } => self.role_create(name, permissions).await,
            Command::RoleGrant { name, permissions } => {
                self.role_change(name, permissions, true).await
            }
            Command::RoleRevoke { name, permissions } => {
                self.role_change(name, permissions, false).await
            }
            Command::RoleList => self.role_list().await,
            Command::PermissionsSync => {
                let p = self.quiet().await?;
                let n = p.sync_permissions().await?;
                println!(
                    "{n} new permissions; {} in all",
                    p.access().permissions().await?.len()
                );
                p.shutdown().await;
                Ok(())
            }
            Command::PermissionsMatrix => self.permissions_matrix().await,
            Command::AuditVerify => self.audit_verify().await,
            Command::AuditPrune { older_than } => {
                let age = parse_duration(&older_than)?;
                let p = self.quiet().await?;
                let cutoff = Utc::now() - chrono::Duration::from_std(age)?;
                let n = p.audit().prune(cutoff).await?;
                println!("pruned {n} audit entries older than {cutoff}");
                p.shutdown().await;
                Ok(())
            }
            Command::MakeMigration {
                resource,
                all,
                renames,
                no_rename,
                defaults,
                dir,
            } => {
                let registry = self.builder.resolved_registry()?;
                let options = MakeMigration {
                    renames: pairs("--rename", &renames)?,
                    defaults: pairs("--default", &defaults)?.into_iter().collect(),
                    no_rename,
                    ask: std::io::IsTerminal::is_terminal(&std::io::stdin()),
                    dialects: self.builder.host_dialects(),
                    baseline: self.baseline(&registry, &dir).await?,
                };
                let names: Vec<String> = match resource {
                    Some(r) => vec![r],
                    None => parents_first(&registry),
                };
                let mut wrote = 0;
                let recorded = platform_core::schema::RecordedStates::read(&dir)?;
                if all {
                    for (from, to) in &options.renames {
                        let known = recorded
                            .tables
                            .values()
                            .map(|(_, s)| s)
                            .chain(options.baseline.values())
                            .any(|s| s.column(from).is_some());
                        if !known {
                            bail!(
                                "--rename {from}={to}: no table's last migration has a column `{from}`"
                            );
                        }
                    }
                }
                for name in &names {
                    let mut options = options.clone();
                    if all {
                        // Each rename belongs to the table that has the old column.
                        let table = registry
                            .by_name(name)
                            .map(|e| e.meta().table())
                            .unwrap_or_default();
                        let before = recorded
                            .state(table)
                            .or_else(|| options.baseline.get(table))
                            .cloned();
                        options.renames.retain(|(from, _)| {
                            before.as_ref().is_some_and(|b| b.column(from).is_some())
                        });
                    }
                    match make_migration_with(&registry, name, &dir, &options)? {
                        Made::UpToDate(table) => {
                            if !all {
                                println!("`{table}` is up to date: nothing to write");
                            }
                        }
                        Made::Created(path) => {
                            wrote += 1;
                            println!("wrote {}", path.display());
                        }
                        Made::Altered(path, changes) => {
                            wrote += 1;
                            println!("wrote {}", path.display());
                            for c in changes {
                                println!("  {c}");
                            }
                        }
                    }
                }
                if all && wrote == 0 {
                    println!("every resource is up to date: nothing to write");
                }
                Ok(())
            }
            Command::KeyGenerate => {
                println!("{}", AppKey::generate().to_config_string());
                Ok(())
            }
            Command::Health => self.health().await,
        }
    }

    /// The tables whose migrations under `dir` record no state (written by
    /// hand, or before states were recorded), read from the database.
    async fn baseline(
        &self,
        registry: &Registry,
        dir: &Path,
    ) -> anyhow::Result<std::collections::BTreeMap<String, platform_core::schema::TableState>> {
        let recorded = platform_core::schema::RecordedStates::read(dir)?;
        let mut out = std::collections::BTreeMap::new();
        if recorded.unrecorded.is_empty() {
            return Ok(out);
        }
        let url = self.builder.resolved_database_url();
        let db = platform_core::db::Db::connect(&url).await?;
        for entry in registry.entries() {
            let meta = entry.meta();
            if recorded.unrecorded.iter().any(|t| t == meta.table())
                && let Some(state) = platform_core::schema::live_state(&db, meta).await?
            {
                out.insert(meta.table().to_owned(), state);
            }
        }
        db.close().await;
        Ok(out)
    }

    /// `migrate --check`: pending migrations, schema drift, and resources
    /// that changed since their last migration; changes nothing.
    async fn migrate_check(self, dir: &Path) -> anyhow::Result<()> {
        let url = self.builder.resolved_database_url();
        let db = platform_core::db::Db::connect(&url).await?;
        let mut problems = Vec::new();
        for set in self.builder.migration_sets() {
            let pending = set.pending_quietly(&db).await?;
            if !pending.is_empty() {
                problems.push(format!(
                    "`{}`: {} migration(s) pending: {pending:?} (run `migrate`)",
                    set.name,
                    pending.len()
                ));
            }
        }
        let registry = self.builder.resolved_registry()?;
        if problems.is_empty() {
            problems.extend(platform_core::schema::drift(&db, &registry).await?);
        }
        db.close().await;
        let recorded = platform_core::schema::RecordedStates::read(dir)?;
        for entry in registry.entries() {
            let meta = entry.meta();
            let Some(state) = recorded.state(meta.table()) else {
                continue;
            };
            let now = platform_core::schema::TableState::of(meta);
            if *state != now {
                problems.push(format!(
                    "resource `{}` changed since its last migration: run `make:migration {}`",
                    meta.name(),
                    meta.name()
                ));
            }
        }
        if problems.is_empty() {
            println!("migrations applied, schema in step with the resources");
            Ok(())
        } else {
            bail!("{}", problems.join("\n"))
        }
    }

    /// A platform for a short command: no background tasks.
    async fn quiet(&self) -> anyhow::Result<Platform> {
        Ok(self.builder.clone().background_tasks(false).build().await?)
    }

    async fn serve(self, addr: SocketAddr, workers: bool) -> anyhow::Result<()> {
        let url = self.builder.resolved_database_url();
        let platform = self.builder.clone().build().await?;
        tracing::info!(database = %redact_url(&url), "platform ready");
        if workers {
            let n = platform.start_workers();
            if n > 0 {
                tracing::info!(workers = n, "workers started in this process");
            }
        }
        for hook in &self.on_serve {
            hook(platform.clone()).await?;
        }
        let mut router = crate::app_router(&platform)?;
        for r in &self.routes {
            router = r(router);
        }
        let app = router.with_state(platform.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        println!(
            "Platform is serving http://{addr}/ (API at /api, its reference at /api/docs, OpenAPI at /api/openapi.json)"
        );
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await?;
        platform.shutdown().await;
        Ok(())
    }

    async fn migrate(self, status: bool) -> anyhow::Result<()> {
        let url = self.builder.resolved_database_url();
        let db = platform_core::db::Db::connect(&url).await?;
        for set in self.builder.migration_sets() {
            if status {
                let pending = set.pending(&db).await?;
                println!("{}: {} pending {:?}", set.name, pending.len(), pending);
            } else {
                let n = set.run(&db).await?;
                println!("{}: applied {n} migration(s)", set.name);
            }
        }
        if !status {
            let registry = self.builder.resolved_registry()?;
            let drift = platform_core::schema::drift(&db, &registry).await?;
            for d in &drift {
                eprintln!("warning: {d}");
            }
        }
        db.close().await;
        Ok(())
    }

    async fn user_create(
        self,
        email: String,
        password: Option<String>,
        name: Option<String>,
        roles: Vec<String>,
    ) -> anyhow::Result<()> {
        let p = self.quiet().await?;
        let generated = password.is_none();
        let password = password.unwrap_or_else(|| platform_core::crypto::random_token(15));
        let name = name.unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
        // One transaction for the user and its roles: an unknown role
        // leaves no user behind. A generated password is to be changed at
        // the first sign-in.
        let created = p
            .access()
            .create_user_with(
                &Context::console(),
                platform_core::access::NewUser {
                    email,
                    name,
                    password: password.clone(),
                },
                platform_core::access::NewUserOptions {
                    roles,
                    password_change_required: generated,
                },
            )
            .await;
        let user = match created {
            Ok(u) => u,
            Err(e) => {
                p.shutdown().await;
                return Err(e.into());
            }
        };
        println!("created user {} ({})", user.id, user.email);
        if generated {
            println!("password: {password}");
            println!("(generated: to be changed at the first sign-in to the panel)");
        }
        p.shutdown().await;
        Ok(())
    }

    /// `user:password`: one transaction (the hash, the forced change, the
    /// end of the user's sessions, the audit entry); an unknown e-mail or a
    /// refused password changes nothing.
    async fn user_password(self, email: String, password: Option<String>) -> anyhow::Result<()> {
        let p = self.quiet().await?;
        let result = async {
            let user = p
                .access()
                .find_user_by_email(&email)
                .await?
                .ok_or_else(|| anyhow!("no user with e-mail {email} (nothing was changed)"))?;
            let generated = password.is_none();
            let password = password.unwrap_or_else(|| platform_core::crypto::random_token(15));
            let ended = p
                .auth()
                .set_user_password(&Context::console(), user.id, &password, generated)
                .await?;
            println!(
                "set the password of {} ({ended} session(s) signed out)",
                user.email
            );
            if generated {
                println!("password: {password}");
                println!("(generated: to be changed at the next sign-in to the panel)");
            }
            anyhow::Ok(())
        }
        .await;
        p.shutdown().await;
        result
    }

    async fn token_create(
        self,
        email: String,
        name: String,
        abilities: Vec<String>,
        expires_in: Option<String>,
    ) -> anyhow::Result<()> {
        let expires_at = match expires_in {
            Some(t) => Some(Utc::now() + chrono::Duration::from_std(parse_duration(&t)?)?),
            None => None,
        };
        let p = self.quiet().await?;
        let user = p
            .access()
            .find_user_by_email(&email)
            .await?
            .ok_or_else(|| anyhow!("no user with e-mail {email}"))?;
        let token = p
            .access()
            .create_token(&Context::console(), user.id, &name, &abilities, expires_at)
            .await?;
        println!("{}", token.plain_text);
        p.shutdown().await;
        Ok(())
    }

    async fn role_create(self, name: String, permissions: Vec<String>) -> anyhow::Result<()> {
        let p = self.quiet().await?;
        let result = async {
            let permissions = clean_names(permissions);
            check_permissions(&p, &permissions).await?;
            p.access()
                .create_role_with_permissions(&Context::console(), &name, &permissions)
                .await?;
            println!(
                "created role {name}{}",
                if permissions.is_empty() {
                    String::new()
                } else {
                    format!(" with {}", permissions.join(", "))
                }
            );
            anyhow::Ok(())
        }
        .await;
        p.shutdown().await;
        result
    }

    /// `role:grant` (`grant`) and `role:revoke`: one transaction for all
    /// the names, none written when one is unknown.
    async fn role_change(
        self,
        name: String,
        permissions: Vec<String>,
        grant: bool,
    ) -> anyhow::Result<()> {
        let p = self.quiet().await?;
        let result = async {
            let permissions = clean_names(permissions);
            if permissions.is_empty() {
                bail!("name at least one permission");
            }
            let roles = p.access().roles().await?;
            if !roles.contains(&name) {
                bail!("no role `{name}`; roles: {}", roles.join(", "));
            }
            check_permissions(&p, &permissions).await?;
            let before = p.access().role_permissions(&name).await?;
            let (changed, unchanged): (Vec<&String>, Vec<&String>) = permissions
                .iter()
                .partition(|n| before.contains(n) != grant);
            let after: Vec<String> = if grant {
                before
                    .iter()
                    .chain(changed.iter().copied())
                    .cloned()
                    .collect()
            } else {
                before
                    .iter()
                    .filter(|n| !changed.contains(n))
                    .cloned()
                    .collect()
            };
            let list = |v: &[&String]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
            if !changed.is_empty() {
                p.access()
                    .set_role_permissions(&Context::console(), &name, &after)
                    .await?;
                println!(
                    "{} {} {name}: {}",
                    if grant { "granted" } else { "revoked" },
                    if grant { "to" } else { "from" },
                    list(&changed)
                );
            }
            if !unchanged.is_empty() {
                println!(
                    "{name} {} {}",
                    if grant { "already had" } else { "did not have" },
                    list(&unchanged)
                );
            }
            anyhow::Ok(())
        }
        .await;
        p.shutdown().await;
        result
    }

    async fn role_list(self) -> anyhow::Result<()> {
        let p = self.quiet().await?;
        let result = async {
            let roles = p.access().roles().await?;
            if roles.is_empty() {
                println!("no roles (run permissions:sync to create super_admin)");
            }
            for role in roles {
                let perms = p.access().role_permissions(&role).await?;
                let text = if role == platform_core::permission::SUPER_ADMIN {
                    "every permission".to_owned()
                } else if perms.is_empty() {
                    "(no permissions)".to_owned()
                } else {
                    perms.join(", ")
                };
                println!("{role}: {text}");
            }
            anyhow::Ok(())
        }
        .await;
        p.shutdown().await;
        result
    }

    async fn permissions_matrix(self) -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!(
            "platform-matrix-{}-{}",
            std::process::id(),
            platform_core::crypto::hex(&{
                let mut b = [0u8; 6];
                platform_core::crypto::random_bytes(&mut b);
                b
            })
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let result = async {
            // The environment is ignored: PLATFORM_DATABASE_URL must never
            // point the matrix at real data.
            let platform = self
                .builder
                .clone()
                .ignore_env()
                .database_url(format!(
                    "sqlite://{}?mode=rwc",
                    dir.join("matrix.db").display()
                ))
                .app_key(AppKey::generate())
                .migrate(true)
                .check_schema(true)
                .background_tasks(false)
                .access_log(false)
                .build()
                .await?;
            let mut router = crate::app_router(&platform)?;
            for r in &self.routes {
                router = r(router);
            }
            let report = crate::matrix::PermissionMatrix::new(&platform)
                .router(router)
                .run()
                .await;
            platform.shutdown().await;
            anyhow::Ok(report?)
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        let report = result?;
        print!("{report}");
        if report.is_ok() {
            Ok(())
        } else {
            Err(anyhow!(
                "{} of {} requests differ from the declared permissions",
                report.mismatches().len(),
                report.rows.len()
            ))
        }
    }

    async fn health(self) -> anyhow::Result<()> {
        let url = self.builder.resolved_database_url();
        let started = std::time::Instant::now();
        let check = async {
            let db = platform_core::db::Db::connect_with(
                &url,
                platform_core::db::DbOptions {
                    max_connections: 1,
                    acquire_timeout: Duration::from_secs(3),
                },
            )
            .await?;
            db.ping().await?;
            db.close().await;
            Ok::<_, platform_core::Error>(())
        };
        let result = tokio::time::timeout(Duration::from_secs(5), check).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(Ok(())) => {
                println!("database: ok ({ms:.1} ms)");
                Ok(())
            }
            Ok(Err(e)) => Err(anyhow!("database: FAIL ({e})")),
            Err(_) => Err(anyhow!("database: FAIL (no answer within 5 s)")),
        }
    }

    async fn audit_verify(self) -> anyhow::Result<()> {
        let p = self.quiet().await?;
        let report = p.audit().verify().await?;
        p.shutdown().await;
        if report.broken.is_none() && !report.rejected.is_empty() {
            let ids: Vec<String> = report.rejected.iter().map(i64::to_string).collect();
            return Err(anyhow!(
                "audit trail has FORGED rows: {} row(s) without a valid MAC were inserted around the platform and not sealed (ids {}); the {} sealed entries verify",
                report.rejected.len(),
                ids.join(", "),
                report.checked
            ));
        }
        match report.broken {
            None => {
                println!(
                    "audit trail intact: {} entries verified{}",
                    report.checked,
                    if report.unsealed > 0 {
                        format!(", {} not yet sealed", report.unsealed)
                    } else {
                        String::new()
                    }
                );
                Ok(())
            }
            Some(b) => {
                let id = b.id.map_or_else(|| "-".to_owned(), |i| i.to_string());
                Err(anyhow!(
                    "audit trail BROKEN at entry seq {} (id {id}): {} ({} entries verified before it)",
                    b.seq,
                    b.reason,
                    report.checked
                ))
            }
        }
    }
}

/// The error alone when its message already says what its causes say
/// (`database is unavailable: <reason>`, caused by `<reason>`), so that
/// the "Caused by" list printed on exit does not repeat it.
fn without_repetition(e: anyhow::Error) -> anyhow::Error {
    let top = e.to_string();
    if e.chain().skip(1).all(|c| top.contains(&c.to_string())) {
        anyhow!(top)
    } else {
        e
    }
}

/// Trimmed, sorted names without duplicates or empty ones.
fn clean_names(names: Vec<String>) -> Vec<String> {
    let mut names: Vec<String> = names
        .into_iter()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Fails, naming every one, when a name is not a permission.
async fn check_permissions(p: &Platform, names: &[String]) -> anyhow::Result<()> {
    let known = p.access().permissions().await?;
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !known.contains(n))
        .map(String::as_str)
        .collect();
    match unknown.len() {
        0 => Ok(()),
        1 => bail!(
            "`{}` is not a permission (nothing was changed; permissions:sync creates the generated ones)",
            unknown[0]
        ),
        _ => bail!(
            "not permissions: {} (nothing was changed; permissions:sync creates the generated ones)",
            unknown
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Whether log lines may carry ANSI colours: only on a terminal, and not
/// when `NO_COLOR` is set (to anything but the empty string,
/// <https://no-color.org>).
fn log_colours(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let colours = log_colours(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5_400));
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(log_colours(true, None));
        assert!(log_colours(true, Some(OsStr::new(""))));
        assert!(!log_colours(true, Some(OsStr::new("1"))));
        assert!(!log_colours(false, None));
        assert!(!log_colours(false, Some(OsStr::new("1"))));
    }

    #[test]
    fn every_command_has_help() {
        use clap::CommandFactory;
        let cmd = Args::command();
        cmd.clone().debug_assert();
        let names: Vec<&str> = cmd.get_subcommands().map(clap::Command::get_name).collect();
        for n in [
            "serve",
            "migrate",
            "user:create",
            "token:create",
            "user:password",
            "role:create",
            "role:grant",
            "role:revoke",
            "role:list",
            "permissions:sync",
            "permissions:matrix",
            "audit:verify",
            "make:migration",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        assert!(cmd.get_subcommands().all(|c| c.get_about().is_some()));
    }
}

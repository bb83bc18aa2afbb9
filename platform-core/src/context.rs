//! Who acts, from where: the [`Context`] every `Repo` call carries.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::permission::SUPER_ADMIN;

/// The permissions a user holds, resolved from roles and direct grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    super_admin: bool,
    roles: Vec<String>,
    permissions: HashSet<String>,
}

impl Grants {
    /// Grants from role names and permission names.
    pub fn new(roles: Vec<String>, permissions: impl IntoIterator<Item = String>) -> Self {
        Self {
            super_admin: roles.iter().any(|r| r == SUPER_ADMIN),
            roles,
            permissions: permissions.into_iter().collect(),
        }
    }
    /// Every permission (the `super_admin` role).
    pub fn all() -> Self {
        Self::new(vec![SUPER_ADMIN.to_owned()], [])
    }
    /// Whether `permission` is granted.
    pub fn has(&self, permission: &str) -> bool {
        self.super_admin || self.permissions.contains(permission)
    }
    /// Whether the user has the `super_admin` role.
    pub fn is_super_admin(&self) -> bool {
        self.super_admin
    }
    /// The role names.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }
    /// The permission names (not including what `super_admin` implies).
    pub fn permissions(&self) -> impl Iterator<Item = &str> {
        self.permissions.iter().map(String::as_str)
    }
}

/// A signed-in user as the platform sees them.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user's id.
    pub user_id: i64,
    /// The user's e-mail address.
    pub email: String,
    /// What the user may do.
    pub grants: Arc<Grants>,
}

/// What an API token may do, on top of its user's permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenScope {
    /// The token's id.
    pub token_id: i64,
    /// Abilities: permission names, or `*` for all of the user's.
    pub abilities: Vec<String>,
}

impl TokenScope {
    /// Whether the token's abilities include `permission`.
    pub fn allows(&self, permission: &str) -> bool {
        self.abilities.iter().any(|a| a == "*" || a == permission)
    }
}

/// Who performs an operation.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Actor {
    /// Nobody signed in: denied everything that needs a permission.
    #[default]
    Anonymous,
    /// A user with a session.
    User(Arc<Principal>),
    /// A user through an API token.
    Token(Arc<Principal>, Arc<TokenScope>),
    /// A background job (trusted code).
    Job(String),
    /// The command line (trusted: whoever runs it owns the database).
    Console,
    /// The platform itself (seeding, maintenance).
    System,
}

impl Actor {
    /// The audit trail's actor type: `user`, `token`, `job`, `console`,
    /// `system` or `anonymous`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::User(_) => "user",
            Self::Token(..) => "token",
            Self::Job(_) => "job",
            Self::Console => "console",
            Self::System => "system",
        }
    }
    /// The user behind the actor.
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Self::User(p) | Self::Token(p, _) => Some(p.user_id),
            _ => None,
        }
    }
    /// A human label (e-mail, job name).
    pub fn label(&self) -> Option<String> {
        match self {
            Self::User(p) => Some(p.email.clone()),
            Self::Token(p, t) => Some(format!("{} (token {})", p.email, t.token_id)),
            Self::Job(name) => Some(name.clone()),
            _ => None,
        }
    }
    /// Whether `permission` is granted. Jobs, the console and the system are
    /// trusted; anonymous actors are not.
    pub fn can(&self, permission: &str) -> bool {
        match self {
            Self::Anonymous => false,
            Self::User(p) => p.grants.has(permission),
            Self::Token(p, t) => t.allows(permission) && p.grants.has(permission),
            Self::Job(_) | Self::Console | Self::System => true,
        }
    }
    /// `Ok` when `permission` is granted; `Unauthenticated` for anonymous
    /// actors, `PermissionDenied` otherwise.
    pub fn authorize(&self, permission: &str) -> Result<()> {
        if self.can(permission) {
            Ok(())
        } else if matches!(self, Self::Anonymous) {
            Err(Error::Unauthenticated)
        } else {
            Err(Error::PermissionDenied {
                ability: permission.to_owned(),
            })
        }
    }
}

/// The circumstances of an operation: who, from where, under which request.
#[derive(Debug, Clone, Default)]
pub struct Context {
    actor: Actor,
    ip: Option<IpAddr>,
    user_agent: Option<String>,
    url: Option<String>,
    request_id: Option<String>,
    tags: Vec<String>,
}

impl Context {
    /// A context for `actor`.
    pub fn new(actor: Actor) -> Self {
        Self {
            actor,
            ..Self::default()
        }
    }
    /// The command line.
    pub fn console() -> Self {
        Self::new(Actor::Console)
    }
    /// The platform itself.
    pub fn system() -> Self {
        Self::new(Actor::System)
    }
    /// A background job called `name`.
    pub fn job(name: impl Into<String>) -> Self {
        Self::new(Actor::Job(name.into()))
    }
    /// Sets the client address.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }
    /// Sets the user agent (truncated to 512 characters).
    pub fn with_user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(truncate(ua.into(), 512));
        self
    }
    /// Sets the URL (truncated to 2000 characters), with the values of
    /// searches, cursors and secret- or personal-looking parameters masked
    /// ([`crate::access_log::mask_path`]): the URL is stored with every
    /// audit entry.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        let url = crate::access_log::mask_path(&url.into(), &Default::default());
        self.url = Some(truncate(url, 2000));
        self
    }
    /// Sets the request id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(truncate(id.into(), 64));
        self
    }
    /// Adds an audit tag.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(truncate(tag.into(), 64));
        self
    }
    /// The actor.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
    /// The client address.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }
    /// The user agent.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }
    /// The URL.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
    /// The request id.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
    /// The audit tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    /// Shorthand for `self.actor().authorize(permission)`.
    pub fn authorize(&self, permission: &str) -> Result<()> {
        self.actor.authorize(permission)
    }
    /// Shorthand for `self.actor().can(permission)`.
    pub fn can(&self, permission: &str) -> bool {
        self.actor.can(permission)
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.chars().count() > max {
        s = s.chars().take(max).collect();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(perms: &[&str], roles: &[&str]) -> Arc<Principal> {
        Arc::new(Principal {
            user_id: 1,
            email: "a@example.com".into(),
            grants: Arc::new(Grants::new(
                roles.iter().map(|s| (*s).to_owned()).collect(),
                perms.iter().map(|s| (*s).to_owned()),
            )),
        })
    }

    #[test]
    fn actors() {
        assert!(matches!(
            Actor::Anonymous.authorize("view_any_invoice"),
            Err(Error::Unauthenticated)
        ));
        let u = Actor::User(user(&["view_any_invoice"], &[]));
        assert!(u.can("view_any_invoice"));
        assert!(matches!(
            u.authorize("delete_invoice"),
            Err(Error::PermissionDenied { .. })
        ));
        assert!(Actor::User(user(&[], &["super_admin"])).can("anything"));
        let t = Actor::Token(
            user(&["view_any_invoice", "create_invoice"], &[]),
            Arc::new(TokenScope {
                token_id: 3,
                abilities: vec!["view_any_invoice".into()],
            }),
        );
        assert!(t.can("view_any_invoice"));
        assert!(!t.can("create_invoice"), "the token's abilities limit it");
        let t2 = Actor::Token(
            user(&[], &[]),
            Arc::new(TokenScope {
                token_id: 3,
                abilities: vec!["*".into()],
            }),
        );
        assert!(!t2.can("view_any_invoice"), "and so do the user's grants");
        assert!(Actor::Console.can("force_delete_invoice"));
    }

    #[test]
    fn urls_keep_no_searches_or_secrets() {
        let c = Context::system()
            .with_url("/admin/customers?search=ada%40example.com&sort=name&token=abc");
        let url = c.url().unwrap();
        assert!(!url.contains("ada") && !url.contains("abc"), "{url}");
        assert!(url.contains("sort=name"), "{url}");
    }

    #[test]
    fn long_headers_are_truncated() {
        let c = Context::system().with_user_agent("x".repeat(10_000));
        assert_eq!(c.user_agent().unwrap().len(), 512);
    }
}

//! Grant lookups and their cache: per-user grants and principals, and the
//! counter every process polls so a grant change reaches all of them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::context::{Grants, Principal};
use crate::db::Tx;
use crate::error::Result;
use crate::value::FieldType;

use super::{Access, CachedGrants, User, text};
use crate::backplane::{Backplane, BackplaneMessage};

/// The backplane channel of permission changes.
const ACCESS_CHANNEL: &str = "access";

impl Access {
    pub(crate) fn invalidate_local(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) async fn bump_db_version(&self, tx: &mut Tx) -> Result<()> {
        tx.execute(crate::db::Sql::literal(
            tx.backend(),
            "UPDATE platform_meta SET value = value + 1 WHERE name = 'access_version'",
        ))
        .await?;
        // Other nodes look at the version as soon as it is committed.
        if let Some(bp) = self.backplane.get().cloned() {
            tx.on_commit(move || {
                tokio::spawn(async move {
                    if let Err(e) = bp.publish(ACCESS_CHANNEL, b"changed").await {
                        tracing::warn!(error = %e, "could not tell the other nodes about a permission change");
                    }
                });
            });
        }
        Ok(())
    }

    /// Announces this node's permission changes on `backplane`, and
    /// (with [`Access::run_listener`]) hears the others': then the
    /// 1-second poll is not needed.
    pub fn use_backplane(&self, backplane: Arc<dyn Backplane>) {
        let _ = self.backplane.set(backplane);
    }

    /// Checks the shared counter ([`Access::poll_changes`]) whenever a node
    /// announces a permission change on `backplane`, and after the
    /// backplane reconnects, until `stop`.
    pub async fn run_listener(
        self,
        backplane: Arc<dyn Backplane>,
        mut stop: crate::capability::Stop,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        let mut rx = backplane.subscribe();
        loop {
            let msg = tokio::select! {
                () = stop.stopped() => return,
                m = rx.recv() => m,
            };
            let check = match msg {
                Ok(BackplaneMessage::Message { channel, .. }) => channel == ACCESS_CHANNEL,
                Ok(BackplaneMessage::Reconnected) | Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            };
            if check && let Err(e) = self.poll_changes().await {
                tracing::warn!(error = %e, "could not read the permission version after a change");
            }
        }
    }

    /// Reads the shared grant counter and drops cached grants if another
    /// process changed any. The platform calls this every second.
    pub async fn poll_changes(&self) -> Result<()> {
        let v = self
            .db
            .fetch_i64(crate::db::Sql::literal(
                self.db.backend(),
                "SELECT value FROM platform_meta WHERE name = 'access_version'",
            ))
            .await?
            .unwrap_or(0);
        let v = u64::try_from(v).unwrap_or(0);
        if self.seen_db_version.swap(v, Ordering::SeqCst) != v {
            self.invalidate_local();
        }
        Ok(())
    }

    /// Polls [`Access::poll_changes`] every `interval` until stopped.
    pub async fn run_poller(self, interval: Duration, mut stop: crate::capability::Stop) {
        loop {
            if stop.wait_for(interval).await {
                return;
            }
            if let Err(e) = self.poll_changes().await {
                tracing::debug!(error = %e, "access poll failed");
            }
        }
    }

    /// Commits (or, on error, rolls back) a grant change and drops the
    /// cached grants of this process.
    pub(super) async fn commit_change(&self, tx: Tx, result: Result<()>) -> Result<()> {
        tx.finish(result).await?;
        self.invalidate_local();
        Ok(())
    }

    /// A user's grants, from the cache when it is current.
    pub async fn grants(&self, user_id: i64) -> Result<Arc<Grants>> {
        let v = self.version.load(Ordering::Acquire);
        if let Some(c) = self.grants.get(&user_id)
            && c.version == v
        {
            return Ok(c.grants.clone());
        }
        let grants = Arc::new(self.load_grants(user_id).await?);
        self.grants.insert(
            user_id,
            Arc::new(CachedGrants {
                version: v,
                grants: grants.clone(),
            }),
        );
        Ok(grants)
    }

    /// The cached grants of a user, without touching the database (`None`
    /// when not cached or stale). This is the hot path of every request.
    pub fn cached_grants(&self, user_id: i64) -> Option<Arc<Grants>> {
        let v = self.version.load(Ordering::Acquire);
        self.grants
            .get(&user_id)
            .filter(|c| c.version == v)
            .map(|c| c.grants.clone())
    }

    pub(super) async fn load_grants(&self, user_id: i64) -> Result<Grants> {
        let mut r = self.db.sql();
        r.push("SELECT r.name FROM platform_roles r JOIN platform_user_roles ur ON ur.role_id = r.id WHERE ur.user_id = ")
            .bind_i64(user_id);
        let roles: Vec<String> = self
            .db
            .fetch_all(r, &[FieldType::Text])
            .await?
            .iter()
            .map(|r| text(&r[0]))
            .collect();
        let mut p = self.db.sql();
        p.push("SELECT p.name FROM platform_permissions p JOIN platform_role_permissions rp ON rp.permission_id = p.id JOIN platform_user_roles ur ON ur.role_id = rp.role_id WHERE ur.user_id = ")
            .bind_i64(user_id)
            .push(" UNION SELECT p.name FROM platform_permissions p JOIN platform_user_permissions up ON up.permission_id = p.id WHERE up.user_id = ")
            .bind_i64(user_id);
        let perms = self
            .db
            .fetch_all(p, &[FieldType::Text])
            .await?
            .iter()
            .map(|r| text(&r[0]))
            .collect::<Vec<_>>();
        Ok(Grants::new(roles, perms))
    }

    /// The principal (user plus grants) of a user id, if the account exists
    /// and is enabled.
    pub async fn principal(&self, user_id: i64) -> Result<Option<Principal>> {
        match self.user(user_id).await? {
            Some(u) => self.principal_of(&u).await,
            None => Ok(None),
        }
    }

    /// The principal of a user already read ([`Access::principal`] without
    /// reading the user again); `None` when the account is disabled.
    pub async fn principal_of(&self, user: &User) -> Result<Option<Principal>> {
        if user.disabled_at.is_some() {
            return Ok(None);
        }
        Ok(Some(Principal {
            user_id: user.id,
            email: user.email.clone(),
            grants: self.grants(user.id).await?,
        }))
    }
}

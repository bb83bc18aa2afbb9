//! Roles and permissions: the permission catalogue, roles, and what is
//! granted to whom.

use chrono::Utc;

use crate::audit::AuditValues;
use crate::context::Context;
use crate::db::{Tx, detached, dialect};
use crate::error::{Error, FieldErrors, Result};
use crate::permission::{
    Ability, GLOBAL_PERMISSIONS, ResourcePermissions, SUPER_ADMIN, permission_name,
};
use crate::resource::Registry;
use crate::value::{FieldType, Value};

use super::{ACCESS_RESOURCES, Access, actor_is_super, audit, text};

impl Access {
    /// Creates the permission rows for every resource in `registry`, the
    /// framework's own (users, roles) and the global ones, and the
    /// `super_admin` role. Returns how many permissions were new.
    pub async fn sync_permissions(&self, registry: &Registry) -> Result<usize> {
        self.sync_permissions_with(registry, &[]).await
    }

    /// [`Access::sync_permissions`], plus the permissions in `extra` (the
    /// capabilities' own, like `view_jobs`).
    pub async fn sync_permissions_with(
        &self,
        registry: &Registry,
        extra: &[String],
    ) -> Result<usize> {
        let mut names: Vec<String> = registry.permission_names();
        names.extend(extra.iter().cloned());
        for r in ACCESS_RESOURCES {
            names.extend(
                ResourcePermissions::for_resource(r)
                    .all()
                    .map(str::to_owned),
            );
        }
        names.extend(GLOBAL_PERMISSIONS.iter().map(|s| (*s).to_owned()));
        let existing: std::collections::HashSet<String> =
            self.permissions().await?.into_iter().collect();
        let missing: Vec<&String> = names.iter().filter(|n| !existing.contains(*n)).collect();
        let mut tx = self.db.begin().await?;
        let result: Result<()> = async {
            let now = Value::DateTime(Utc::now());
            for chunk in missing.chunks(200) {
                let mut q = tx.sql();
                dialect::push_insert_ignore_into(&mut q);
                q.push("platform_permissions (name, created_at) VALUES ");
                q.join(chunk, ", ", |q, n| {
                    q.push("(")
                        .bind_str(n.as_str())
                        .push(", ")
                        .bind(now.clone(), FieldType::DateTime)
                        .push(")");
                });
                dialect::push_ignore_conflicts(&mut q, &[]);
                tx.execute(q).await?;
            }
            let mut r = tx.sql();
            dialect::push_insert_ignore_into(&mut r);
            r.push("platform_roles (name, created_at) VALUES (")
                .bind_str(SUPER_ADMIN)
                .push(", ")
                .bind(now, FieldType::DateTime)
                .push(")");
            dialect::push_ignore_conflicts(&mut r, &[]);
            tx.execute(r).await?;
            self.bump_db_version(&mut tx).await
        }
        .await;
        self.commit_change(tx, result).await?;
        Ok(missing.len())
    }

    /// Every permission name, sorted.
    pub async fn permissions(&self) -> Result<Vec<String>> {
        let q = crate::db::Sql::literal(
            self.db.backend(),
            "SELECT name FROM platform_permissions ORDER BY name",
        );
        Ok(self
            .db
            .fetch_all(q, &[FieldType::Text])
            .await?
            .iter()
            .map(|r| text(&r[0]))
            .collect())
    }

    /// Every role name, sorted.
    pub async fn roles(&self) -> Result<Vec<String>> {
        let q = crate::db::Sql::literal(
            self.db.backend(),
            "SELECT name FROM platform_roles ORDER BY name",
        );
        Ok(self
            .db
            .fetch_all(q, &[FieldType::Text])
            .await?
            .iter()
            .map(|r| text(&r[0]))
            .collect())
    }

    /// Creates a role. Needs `create_role`.
    pub async fn create_role(&self, ctx: &Context, name: &str) -> Result<i64> {
        self.create_role_with_permissions(ctx, name, &[]).await
    }

    /// Creates a role with `permissions` (every name must exist), in one
    /// transaction: when a name is unknown or taken, nothing is written.
    /// Needs `create_role`, and `update_role` when `permissions` is not
    /// empty.
    pub async fn create_role_with_permissions(
        &self,
        ctx: &Context,
        name: &str,
        permissions: &[String],
    ) -> Result<i64> {
        let (this, ctx, name, permissions) = (
            self.clone(),
            ctx.clone(),
            name.to_owned(),
            permissions.to_vec(),
        );
        detached(async move {
            this.create_role_with_permissions_inner(&ctx, &name, &permissions)
                .await
        })
        .await
    }

    async fn create_role_with_permissions_inner(
        &self,
        ctx: &Context,
        name: &str,
        permissions: &[String],
    ) -> Result<i64> {
        ctx.authorize(&permission_name(Ability::Create, "role"))?;
        if !permissions.is_empty() {
            ctx.authorize(&permission_name(Ability::Update, "role"))?;
        }
        let name = name.trim();
        if name.is_empty() || name.len() > 191 {
            return Err(Error::invalid(
                "name",
                "invalid",
                "must be 1 to 191 characters",
            ));
        }
        let mut permissions = permissions.to_vec();
        permissions.sort();
        permissions.dedup();
        let mut tx = self.db.begin().await?;
        let result: Result<i64> = async {
            let pids = permission_ids(&mut tx, &permissions).await?;
            let mut q = tx.sql();
            q.push("INSERT INTO platform_roles (name, created_at) VALUES (")
                .bind_str(name)
                .push(", ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(")");
            dialect::push_returning(&mut q, "id");
            let id = tx.insert_returning_id(q).await.map_err(|e| match e {
                Error::Conflict { .. } => {
                    Error::invalid("name", "unique", "has already been taken")
                }
                e => e,
            })?;
            for chunk in pids.chunks(200) {
                let mut q = tx.sql();
                q.push("INSERT INTO platform_role_permissions (role_id, permission_id) VALUES ");
                q.join(chunk, ", ", |q, pid| {
                    q.push("(").bind_i64(id).push(", ").bind_i64(*pid).push(")");
                });
                tx.execute(q).await?;
            }
            let mut v = AuditValues::new();
            v.insert("name".into(), name.into());
            if !permissions.is_empty() {
                v.insert("permissions".into(), serde_json::json!(permissions));
            }
            audit(&mut tx, ctx, "created", "role", id, None, Some(v)).await?;
            Ok(id)
        }
        .await;
        let id = tx.finish(result).await?;
        self.invalidate_local();
        Ok(id)
    }

    /// Deletes a role (and its grants). Needs `delete_role`. The
    /// `super_admin` role cannot be deleted.
    pub async fn delete_role(&self, ctx: &Context, name: &str) -> Result<()> {
        let (this, ctx, name) = (self.clone(), ctx.clone(), name.to_owned());
        detached(async move { this.delete_role_inner(&ctx, &name).await }).await
    }

    async fn delete_role_inner(&self, ctx: &Context, name: &str) -> Result<()> {
        ctx.authorize(&permission_name(Ability::Delete, "role"))?;
        if name == SUPER_ADMIN {
            return Err(Error::invalid(
                "name",
                "invalid",
                "the super_admin role cannot be deleted",
            ));
        }
        let mut tx = self.db.begin().await?;
        let result: Result<()> = async {
            let role_id = role_id(&mut tx, name).await?;
            let mut q = tx.sql();
            q.push("DELETE FROM platform_roles WHERE id = ")
                .bind_i64(role_id);
            tx.execute(q).await?;
            let mut v = AuditValues::new();
            v.insert("name".into(), name.into());
            audit(&mut tx, ctx, "deleted", "role", role_id, Some(v), None).await?;
            self.bump_db_version(&mut tx).await?;
            Ok(())
        }
        .await;
        self.commit_change(tx, result).await
    }

    /// The permissions of a role.
    pub async fn role_permissions(&self, role: &str) -> Result<Vec<String>> {
        let mut q = self.db.sql();
        q.push("SELECT p.name FROM platform_permissions p JOIN platform_role_permissions rp ON rp.permission_id = p.id JOIN platform_roles r ON r.id = rp.role_id WHERE r.name = ")
            .bind_str(role)
            .push(" ORDER BY p.name");
        Ok(self
            .db
            .fetch_all(q, &[FieldType::Text])
            .await?
            .iter()
            .map(|r| text(&r[0]))
            .collect())
    }

    /// Replaces a role's permissions with `permissions` (every name must
    /// exist). Needs `update_role`.
    pub async fn set_role_permissions(
        &self,
        ctx: &Context,
        role: &str,
        permissions: &[String],
    ) -> Result<()> {
        let (this, ctx) = (self.clone(), ctx.clone());
        let (role, permissions) = (role.to_owned(), permissions.to_vec());
        detached(async move {
            this.set_role_permissions_inner(&ctx, &role, &permissions)
                .await
        })
        .await
    }

    async fn set_role_permissions_inner(
        &self,
        ctx: &Context,
        role: &str,
        permissions: &[String],
    ) -> Result<()> {
        ctx.authorize(&permission_name(Ability::Update, "role"))?;
        let before = self.role_permissions(role).await?;
        let mut tx = self.db.begin().await?;
        let result: Result<()> = async {
            let rid = role_id(&mut tx, role).await?;
            let ids = permission_ids(&mut tx, permissions).await?;
            let mut del = tx.sql();
            del.push("DELETE FROM platform_role_permissions WHERE role_id = ")
                .bind_i64(rid);
            tx.execute(del).await?;
            for chunk in ids.chunks(200) {
                let mut q = tx.sql();
                q.push("INSERT INTO platform_role_permissions (role_id, permission_id) VALUES ");
                q.join(chunk, ", ", |q, pid| {
                    q.push("(")
                        .bind_i64(rid)
                        .push(", ")
                        .bind_i64(*pid)
                        .push(")");
                });
                tx.execute(q).await?;
            }
            let mut old = AuditValues::new();
            old.insert("permissions".into(), serde_json::json!(before));
            let mut new = AuditValues::new();
            let mut sorted = permissions.to_vec();
            sorted.sort();
            sorted.dedup();
            new.insert("permissions".into(), serde_json::json!(sorted));
            audit(&mut tx, ctx, "updated", "role", rid, Some(old), Some(new)).await?;
            self.bump_db_version(&mut tx).await?;
            Ok(())
        }
        .await;
        self.commit_change(tx, result).await
    }

    /// Grants one permission to a role. Needs `update_role`.
    pub async fn grant_role_permission(
        &self,
        ctx: &Context,
        role: &str,
        permission: &str,
    ) -> Result<()> {
        let mut perms = self.role_permissions(role).await?;
        if !perms.iter().any(|p| p == permission) {
            perms.push(permission.to_owned());
        }
        self.set_role_permissions(ctx, role, &perms).await
    }

    /// Revokes one permission from a role. Needs `update_role`.
    pub async fn revoke_role_permission(
        &self,
        ctx: &Context,
        role: &str,
        permission: &str,
    ) -> Result<()> {
        let perms: Vec<String> = self
            .role_permissions(role)
            .await?
            .into_iter()
            .filter(|p| p != permission)
            .collect();
        self.set_role_permissions(ctx, role, &perms).await
    }

    /// Gives a user a role. Needs `update_user`.
    pub async fn assign_role(&self, ctx: &Context, user_id: i64, role: &str) -> Result<()> {
        self.change_membership(ctx, user_id, "role", role, true)
            .await
    }

    /// Takes a role from a user. Needs `update_user`.
    pub async fn remove_role(&self, ctx: &Context, user_id: i64, role: &str) -> Result<()> {
        self.change_membership(ctx, user_id, "role", role, false)
            .await
    }

    /// Grants a permission to a user directly. Needs `update_user`.
    pub async fn grant_user_permission(
        &self,
        ctx: &Context,
        user_id: i64,
        permission: &str,
    ) -> Result<()> {
        self.change_membership(ctx, user_id, "permission", permission, true)
            .await
    }

    /// Revokes a directly granted permission. Needs `update_user`.
    pub async fn revoke_user_permission(
        &self,
        ctx: &Context,
        user_id: i64,
        permission: &str,
    ) -> Result<()> {
        self.change_membership(ctx, user_id, "permission", permission, false)
            .await
    }

    async fn change_membership(
        &self,
        ctx: &Context,
        user_id: i64,
        kind: &'static str,
        name: &str,
        add: bool,
    ) -> Result<()> {
        let (this, ctx, name) = (self.clone(), ctx.clone(), name.to_owned());
        detached(async move {
            this.change_membership_inner(&ctx, user_id, kind, &name, add)
                .await
        })
        .await
    }

    async fn change_membership_inner(
        &self,
        ctx: &Context,
        user_id: i64,
        kind: &'static str,
        name: &str,
        add: bool,
    ) -> Result<()> {
        ctx.authorize(&permission_name(Ability::Update, "user"))?;
        if kind == "role" && name == SUPER_ADMIN && !actor_is_super(ctx) {
            // Only a super admin makes (or unmakes) another one.
            return Err(Error::PermissionDenied {
                ability: SUPER_ADMIN.to_owned(),
            });
        }
        let mut tx = self.db.begin().await?;
        let result: Result<()> = async {
            let target = if kind == "role" {
                role_id(&mut tx, name).await?
            } else {
                permission_ids(&mut tx, &[name.to_owned()]).await?[0]
            };
            let (table, col) = if kind == "role" {
                ("platform_user_roles", "role_id")
            } else {
                ("platform_user_permissions", "permission_id")
            };
            let mut q = tx.sql();
            if add {
                dialect::push_insert_ignore_into(&mut q);
                q.ident(table)
                    .push(" (user_id, ")
                    .ident(col)
                    .push(") VALUES (")
                    .bind_i64(user_id)
                    .push(", ")
                    .bind_i64(target)
                    .push(")");
                dialect::push_ignore_conflicts(&mut q, &[]);
            } else {
                q.push("DELETE FROM ")
                    .ident(table)
                    .push(" WHERE user_id = ")
                    .bind_i64(user_id)
                    .push(" AND ")
                    .ident(col)
                    .push(" = ")
                    .bind_i64(target);
            }
            let changed = tx.execute(q).await.map_err(|e| match e {
                Error::Conflict { .. } => Error::NotFound {
                    resource: "user",
                    id: user_id.to_string(),
                },
                e => e,
            })?;
            if changed > 0 {
                let mut v = AuditValues::new();
                v.insert(kind.into(), name.into());
                let event = match (kind, add) {
                    ("role", true) => "role_assigned",
                    ("role", false) => "role_removed",
                    (_, true) => "permission_granted",
                    (_, false) => "permission_revoked",
                };
                let (old, new) = if add {
                    (None, Some(v))
                } else {
                    (Some(v), None)
                };
                audit(&mut tx, ctx, event, "user", user_id, old, new).await?;
                self.bump_db_version(&mut tx).await?;
            }
            Ok(())
        }
        .await;
        self.commit_change(tx, result).await
    }
}

pub(super) async fn role_id(tx: &mut Tx, name: &str) -> Result<i64> {
    let mut q = tx.sql();
    q.push("SELECT id FROM platform_roles WHERE name = ")
        .bind_str(name);
    tx.fetch_i64(q).await?.ok_or_else(|| Error::NotFound {
        resource: "role",
        id: name.to_owned(),
    })
}

async fn permission_ids(tx: &mut Tx, names: &[String]) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(names.len());
    let mut unknown = FieldErrors::default();
    let mut wanted: Vec<&String> = names.iter().collect();
    wanted.sort();
    wanted.dedup();
    for chunk in wanted.chunks(500) {
        let mut q = tx.sql();
        q.push("SELECT id, name FROM platform_permissions WHERE name");
        q.in_list(chunk, |q, n| {
            q.bind_str(n.as_str());
        });
        let rows = tx.fetch_all(q, &[FieldType::I64, FieldType::Text]).await?;
        for n in chunk {
            match rows.iter().find(|r| r[1].as_str() == Some(n.as_str())) {
                Some(r) => ids.push(r[0].as_i64().unwrap_or_default()),
                None => unknown.add(
                    "permissions",
                    "invalid",
                    format!("`{n}` is not a permission"),
                ),
            }
        }
    }
    unknown.into_result()?;
    Ok(ids)
}

//! User accounts: creation, lookup, credentials and passwords.

use chrono::Utc;

use crate::audit::AuditValues;
use crate::context::Context;
use crate::db::{detached, dialect};
use crate::error::{Error, FieldErrors, Result};
use crate::permission::{Ability, SUPER_ADMIN, permission_name};
use crate::value::{FieldType, Value};

use super::roles::role_id;
use super::{
    Access, DUMMY_HASH, MAX_PASSWORD_LEN, NewUser, NewUserOptions, USER_COLUMNS, USER_TYPES, User,
    actor_is_super, audit, hash_password, normalize_email, text, user_from_row, validate_email,
    validate_password, verify_password,
};

impl Access {
    /// Creates a user. Needs `create_user`.
    pub async fn create_user(&self, ctx: &Context, input: NewUser) -> Result<User> {
        self.create_user_with_roles(ctx, input, &[]).await
    }

    /// Creates a user and gives it `roles`, all in one transaction: when
    /// anything fails (an unknown role, a taken e-mail), nothing is written.
    /// Needs `create_user`, and `update_user` when `roles` is not empty;
    /// only a super admin (or the console) gives `super_admin`.
    pub async fn create_user_with_roles(
        &self,
        ctx: &Context,
        input: NewUser,
        roles: &[String],
    ) -> Result<User> {
        let options = NewUserOptions {
            roles: roles.to_vec(),
            password_change_required: false,
        };
        self.create_user_with(ctx, input, options).await
    }

    /// As [`Access::create_user_with_roles`], with the roles and the
    /// forced password change of `options`, all in one transaction.
    pub async fn create_user_with(
        &self,
        ctx: &Context,
        input: NewUser,
        options: NewUserOptions,
    ) -> Result<User> {
        let (this, ctx) = (self.clone(), ctx.clone());
        detached(async move {
            this.create_user_with_roles_inner(
                &ctx,
                input,
                &options.roles,
                options.password_change_required,
            )
            .await
        })
        .await
    }

    async fn create_user_with_roles_inner(
        &self,
        ctx: &Context,
        input: NewUser,
        roles: &[String],
        change_required: bool,
    ) -> Result<User> {
        ctx.authorize(&permission_name(Ability::Create, "user"))?;
        let mut roles: Vec<String> = roles.iter().map(|r| r.trim().to_owned()).collect();
        roles.sort();
        roles.dedup();
        if !roles.is_empty() {
            ctx.authorize(&permission_name(Ability::Update, "user"))?;
        }
        if roles.iter().any(|r| r == SUPER_ADMIN) && !actor_is_super(ctx) {
            return Err(Error::PermissionDenied {
                ability: SUPER_ADMIN.to_owned(),
            });
        }
        let email = normalize_email(&input.email);
        let name = input.name.trim().to_owned();
        let mut errors = FieldErrors::default();
        validate_email(&email, &mut errors);
        validate_password(&input.password, &mut errors);
        if name.is_empty() {
            errors.add("name", "required", "is required");
        } else if name.chars().count() > 255 {
            errors.add("name", "too_long", "must be at most 255 characters");
        }
        if self.find_user_by_email(&email).await?.is_some() {
            errors.add("email", "unique", "has already been taken");
        }
        if !roles.is_empty() {
            let known = self.roles().await?;
            for r in roles.iter().filter(|r| !known.contains(r)) {
                errors.add("roles", "invalid", format!("`{r}` is not a role"));
            }
        }
        errors.into_result()?;
        let hash = hash_password(&input.password)?;
        let now = Value::DateTime(Utc::now());
        let mut tx = self.db.begin().await?;
        let result: Result<i64> = async {
            let mut q = tx.sql();
            q.push("INSERT INTO platform_users (email, name, password_hash, password_change_required, created_at, updated_at) VALUES (")
                .bind_str(email.clone())
                .push(", ")
                .bind_str(name.clone())
                .push(", ")
                .bind_str(hash)
                .push(", ")
                .bind(Value::Bool(change_required), FieldType::Bool)
                .push(", ")
                .bind(now.clone(), FieldType::DateTime)
                .push(", ")
                .bind(now, FieldType::DateTime)
                .push(")");
            dialect::push_returning(&mut q, "id");
            let id = tx.insert_returning_id(q).await.map_err(|e| match e {
                Error::Conflict { .. } => {
                    Error::invalid("email", "unique", "has already been taken")
                }
                e => e,
            })?;
            let mut new = AuditValues::new();
            new.insert("email".into(), email.into());
            new.insert("name".into(), name.into());
            if change_required {
                new.insert("password_change_required".into(), true.into());
            }
            audit(&mut tx, ctx, "created", "user", id, None, Some(new)).await?;
            for role in &roles {
                // Read again inside the transaction: a role deleted since
                // the check above fails the whole creation.
                let rid = role_id(&mut tx, role).await.map_err(|_| {
                    Error::invalid("roles", "invalid", format!("`{role}` is not a role"))
                })?;
                let mut m = tx.sql();
                m.push("INSERT INTO platform_user_roles (user_id, role_id) VALUES (")
                    .bind_i64(id)
                    .push(", ")
                    .bind_i64(rid)
                    .push(")");
                tx.execute(m).await?;
                let mut v = AuditValues::new();
                v.insert("role".into(), role.as_str().into());
                audit(&mut tx, ctx, "role_assigned", "user", id, None, Some(v)).await?;
            }
            if !roles.is_empty() {
                self.bump_db_version(&mut tx).await?;
            }
            Ok(id)
        }
        .await;
        let id = tx.finish(result).await?;
        if !roles.is_empty() {
            self.invalidate_local();
        }
        self.user(id).await?.ok_or_else(|| Error::NotFound {
            resource: "user",
            id: id.to_string(),
        })
    }

    /// A user by id.
    pub async fn user(&self, id: i64) -> Result<Option<User>> {
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(USER_COLUMNS)
            .push(" FROM platform_users WHERE id = ")
            .bind_i64(id);
        Ok(self
            .db
            .fetch_optional(q, &USER_TYPES)
            .await?
            .map(|r| user_from_row(&r)))
    }

    /// A user by e-mail address (case-insensitive).
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(USER_COLUMNS)
            .push(" FROM platform_users WHERE email = ")
            .bind_str(normalize_email(email));
        Ok(self
            .db
            .fetch_optional(q, &USER_TYPES)
            .await?
            .map(|r| user_from_row(&r)))
    }

    /// Every user, by id.
    pub async fn users(&self) -> Result<Vec<User>> {
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(USER_COLUMNS)
            .push(" FROM platform_users ORDER BY id");
        Ok(self
            .db
            .fetch_all(q, &USER_TYPES)
            .await?
            .iter()
            .map(|r| user_from_row(r))
            .collect())
    }

    /// The user with this e-mail and password, if both match and the account
    /// is enabled. Takes as long for an unknown e-mail as for a wrong
    /// password.
    pub async fn check_credentials(&self, email: &str, password: &str) -> Result<Option<User>> {
        let mut q = self.db.sql();
        q.push("SELECT id, password_hash, disabled_at FROM platform_users WHERE email = ")
            .bind_str(normalize_email(email));
        let row = self
            .db
            .fetch_optional(q, &[FieldType::I64, FieldType::Text, FieldType::DateTime])
            .await?;
        let pw = password.to_owned();
        let (hash, id, disabled) = match &row {
            Some(r) => (text(&r[1]), r[0].as_i64(), !r[2].is_null()),
            None => (DUMMY_HASH.clone(), None, false),
        };
        let ok = tokio::task::spawn_blocking(move || {
            pw.chars().count() <= MAX_PASSWORD_LEN && verify_password(&pw, &hash)
        })
        .await
        .unwrap_or(false);
        match (ok, id, disabled) {
            (true, Some(id), false) => self.user(id).await,
            _ => Ok(None),
        }
    }

    /// Sets a user's password. Needs `update_user`, or to be that user (whose
    /// own choice also clears [`User::password_change_required`]).
    pub async fn set_password(&self, ctx: &Context, user_id: i64, password: &str) -> Result<()> {
        let (this, ctx, password) = (self.clone(), ctx.clone(), password.to_owned());
        detached(async move { this.set_password_inner(&ctx, user_id, &password).await }).await
    }

    async fn set_password_inner(&self, ctx: &Context, user_id: i64, password: &str) -> Result<()> {
        if ctx.actor().user_id() != Some(user_id) {
            ctx.authorize(&permission_name(Ability::Update, "user"))?;
        }
        let mut errors = FieldErrors::default();
        validate_password(password, &mut errors);
        errors.into_result()?;
        let hash = hash_password(password)?;
        let own = ctx.actor().user_id() == Some(user_id);
        let mut tx = self.db.begin().await?;
        let result: Result<()> = async {
            let mut q = tx.sql();
            q.push("UPDATE platform_users SET password_hash = ")
                .bind_str(hash);
            if own {
                q.push(", password_change_required = ")
                    .bind(Value::Bool(false), FieldType::Bool);
            }
            q.push(", updated_at = ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(user_id);
            if tx.execute(q).await? == 0 {
                return Err(Error::NotFound {
                    resource: "user",
                    id: user_id.to_string(),
                });
            }
            let mut v = AuditValues::new();
            v.insert("password".into(), crate::audit::REDACTED.into());
            audit(
                &mut tx,
                ctx,
                "password_changed",
                "user",
                user_id,
                None,
                Some(v),
            )
            .await?;
            Ok(())
        }
        .await;
        self.commit_change(tx, result).await
    }
}

//! API tokens: created once in plain text, stored hashed, checked on
//! every request.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::audit::AuditValues;
use crate::context::{Actor, Context, Principal, TokenScope};
use crate::crypto::{random_token, sha256_hex};
use crate::db::{detached, dialect};
use crate::error::{Error, FieldErrors, Result};
use crate::permission::{Ability, permission_name};
use crate::value::{FieldType, Value};

use super::{
    Access, CachedToken, LAST_USED_EVERY, NewToken, TOKEN_PREFIX, TokenInfo, TokenRow, audit, text,
    time,
};

impl Access {
    /// Creates a token for `user_id`. A user may create their own tokens;
    /// creating one for someone else needs `update_user`. Abilities must be
    /// `*` (all of the owner's permissions, whatever they are when the
    /// token is used) or existing permission names that the owner holds
    /// now: a token never names an ability its owner lacks (a validation
    /// error on `abilities`, code `not_held`, naming them).
    pub async fn create_token(
        &self,
        ctx: &Context,
        user_id: i64,
        name: &str,
        abilities: &[String],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<NewToken> {
        let (this, ctx) = (self.clone(), ctx.clone());
        let (name, abilities) = (name.to_owned(), abilities.to_vec());
        detached(async move {
            this.create_token_inner(&ctx, user_id, &name, &abilities, expires_at)
                .await
        })
        .await
    }

    async fn create_token_inner(
        &self,
        ctx: &Context,
        user_id: i64,
        name: &str,
        abilities: &[String],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<NewToken> {
        if ctx.actor().user_id() != Some(user_id) {
            ctx.authorize(&permission_name(Ability::Update, "user"))?;
        }
        let mut errors = FieldErrors::default();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 255 {
            errors.add("name", "invalid", "must be 1 to 255 characters");
        }
        if expires_at.is_some_and(|t| t <= Utc::now()) {
            errors.add("expires_at", "invalid", "must be in the future");
        }
        let known: std::collections::HashSet<String> =
            self.permissions().await?.into_iter().collect();
        let abilities: Vec<String> = if abilities.is_empty() {
            vec!["*".into()]
        } else {
            abilities.iter().map(|a| a.trim().to_owned()).collect()
        };
        for a in &abilities {
            if a != "*" && !known.contains(a) {
                errors.add("abilities", "invalid", format!("`{a}` is not a permission"));
            }
        }
        if self.user(user_id).await?.is_none() {
            return Err(Error::NotFound {
                resource: "user",
                id: user_id.to_string(),
            });
        }
        let owner = self.load_grants(user_id).await?;
        let mut lacking: Vec<&str> = abilities
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "*" && known.contains(*a) && !owner.has(a))
            .collect();
        lacking.sort_unstable();
        lacking.dedup();
        if !lacking.is_empty() {
            errors.add(
                "abilities",
                "not_held",
                format!(
                    "the token's owner does not have {}: a token cannot do more than its owner",
                    lacking
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        errors.into_result()?;
        let plain = format!("{TOKEN_PREFIX}{}", random_token(30));
        let hash = sha256_hex(plain.as_bytes());
        let now = Utc::now();
        let mut tx = self.db.begin().await?;
        let mut q = tx.sql();
        q.push("INSERT INTO platform_api_tokens (user_id, name, token_hash, abilities, expires_at, created_at) VALUES (")
            .bind_i64(user_id)
            .push(", ")
            .bind_str(name)
            .push(", ")
            .bind_str(hash)
            .push(", ")
            .bind_str(serde_json::to_string(&abilities).unwrap_or_default())
            .push(", ")
            .bind(expires_at.map_or(Value::Null, Value::DateTime), FieldType::DateTime)
            .push(", ")
            .bind(Value::DateTime(now), FieldType::DateTime)
            .push(")");
        dialect::push_returning(&mut q, "id");
        let id = tx.insert_returning_id(q).await?;
        let mut v = AuditValues::new();
        v.insert(
            "token".into(),
            serde_json::json!({ "id": id, "name": name, "abilities": abilities }),
        );
        audit(
            &mut tx,
            ctx,
            "token_created",
            "user",
            user_id,
            None,
            Some(v),
        )
        .await?;
        tx.commit().await?;
        Ok(NewToken {
            info: TokenInfo {
                id,
                user_id,
                name: name.to_owned(),
                abilities,
                expires_at,
                last_used_at: None,
                revoked_at: None,
                created_at: crate::db::truncate_micros(now),
            },
            plain_text: plain,
        })
    }

    /// A user's tokens, newest first.
    pub async fn tokens(&self, user_id: i64) -> Result<Vec<TokenInfo>> {
        let mut q = self.db.sql();
        q.push(TOKEN_SELECT)
            .push(" WHERE t.user_id = ")
            .bind_i64(user_id)
            .push(" ORDER BY t.id DESC");
        Ok(self
            .db
            .fetch_all(q, &TOKEN_TYPES)
            .await?
            .iter()
            .map(|r| token_from_row(r).info)
            .collect())
    }

    /// Revokes a token. Its owner may; anyone else needs `update_user`.
    pub async fn revoke_token(&self, ctx: &Context, token_id: i64) -> Result<()> {
        let (this, ctx) = (self.clone(), ctx.clone());
        detached(async move { this.revoke_token_inner(&ctx, token_id).await }).await
    }

    async fn revoke_token_inner(&self, ctx: &Context, token_id: i64) -> Result<()> {
        let mut q = self.db.sql();
        q.push(TOKEN_SELECT)
            .push(" WHERE t.id = ")
            .bind_i64(token_id);
        let row = self
            .db
            .fetch_optional(q, &TOKEN_TYPES)
            .await?
            .map(|r| token_from_row(&r))
            .ok_or_else(|| Error::NotFound {
                resource: "token",
                id: token_id.to_string(),
            })?;
        if ctx.actor().user_id() != Some(row.info.user_id) {
            ctx.authorize(&permission_name(Ability::Update, "user"))?;
        }
        let mut tx = self.db.begin().await?;
        let result: Result<()> = async {
            let mut u = tx.sql();
            u.push("UPDATE platform_api_tokens SET revoked_at = ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(token_id)
                .push(" AND revoked_at IS NULL");
            tx.execute(u).await?;
            let mut v = AuditValues::new();
            v.insert(
                "token".into(),
                serde_json::json!({ "id": token_id, "name": row.info.name }),
            );
            audit(
                &mut tx,
                ctx,
                "token_revoked",
                "user",
                row.info.user_id,
                Some(v),
                None,
            )
            .await?;
            self.bump_db_version(&mut tx).await?;
            Ok(())
        }
        .await;
        self.commit_change(tx, result).await
    }

    /// The actor a bearer token stands for. Unknown, malformed, expired and
    /// revoked tokens, and tokens of disabled users, are all
    /// [`Error::Unauthenticated`], with no hint which.
    pub async fn authenticate_token(&self, plain: &str) -> Result<Actor> {
        if !plain.starts_with(TOKEN_PREFIX) || plain.len() > 200 {
            return Err(Error::Unauthenticated);
        }
        let hash = sha256_hex(plain.as_bytes());
        let v = self.version.load(Ordering::Acquire);
        let cached = self
            .tokens
            .get(&hash)
            .filter(|c| c.version == v && c.fetched.elapsed() < Duration::from_secs(60));
        let row = match cached {
            Some(c) => c.row.clone(),
            None => {
                let mut q = self.db.sql();
                q.push(TOKEN_SELECT)
                    .push(" WHERE t.token_hash = ")
                    .bind_str(hash.clone());
                let row = self
                    .db
                    .fetch_optional(q, &TOKEN_TYPES)
                    .await?
                    .map(|r| token_from_row(&r));
                self.tokens.insert(
                    hash,
                    Arc::new(CachedToken {
                        version: v,
                        fetched: Instant::now(),
                        row: row.clone(),
                    }),
                );
                row
            }
        };
        let Some(row) = row else {
            return Err(Error::Unauthenticated);
        };
        let now = Utc::now();
        if row.disabled
            || row.info.revoked_at.is_some()
            || row.info.expires_at.is_some_and(|e| e <= now)
        {
            return Err(Error::Unauthenticated);
        }
        self.touch_token(row.info.id);
        let grants = self.grants(row.info.user_id).await?;
        Ok(Actor::Token(
            Arc::new(Principal {
                user_id: row.info.user_id,
                email: row.email,
                grants,
            }),
            Arc::new(TokenScope {
                token_id: row.info.id,
                abilities: row.info.abilities,
            }),
        ))
    }

    /// Records a token's use, at most once a minute per token and process,
    /// off the request's path.
    fn touch_token(&self, id: i64) {
        {
            let Ok(mut map) = self.last_used.lock() else {
                return;
            };
            if map.get(&id).is_some_and(|t| t.elapsed() < LAST_USED_EVERY) {
                return;
            }
            map.insert(id, Instant::now());
        }
        let db = self.db.clone();
        tokio::spawn(async move {
            let mut q = db.sql();
            q.push("UPDATE platform_api_tokens SET last_used_at = ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(id);
            if let Err(e) = db.execute(q).await {
                tracing::debug!(error = %e, "could not record token use");
            }
        });
    }
}

const TOKEN_SELECT: &str = "SELECT t.id, t.user_id, t.name, t.abilities, t.expires_at, t.last_used_at, t.revoked_at, t.created_at, u.email, u.disabled_at FROM platform_api_tokens t JOIN platform_users u ON u.id = t.user_id";
const TOKEN_TYPES: [FieldType; 10] = [
    FieldType::I64,
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::DateTime,
    FieldType::DateTime,
    FieldType::DateTime,
    FieldType::DateTime,
    FieldType::Text,
    FieldType::DateTime,
];

fn token_from_row(r: &[Value]) -> TokenRow {
    TokenRow {
        info: TokenInfo {
            id: r[0].as_i64().unwrap_or_default(),
            user_id: r[1].as_i64().unwrap_or_default(),
            name: text(&r[2]),
            abilities: serde_json::from_str(r[3].as_str().unwrap_or("[]")).unwrap_or_default(),
            expires_at: time(&r[4]),
            last_used_at: time(&r[5]),
            revoked_at: time(&r[6]),
            created_at: time(&r[7]).unwrap_or_default(),
        },
        email: text(&r[8]),
        disabled: !r[9].is_null(),
    }
}

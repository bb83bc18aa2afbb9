//! The `platform_media` table: its migrations and the statements on it
//! (fixed SQL text with bound values; nothing differs between back ends
//! here but the DDL, which the migrations hold per dialect).

use chrono::{DateTime, Utc};
use platform_core::db::{Db, MigrationSet, Tx};
use platform_core::error::Result;
use platform_core::value::{FieldType, Value};
use uuid::Uuid;

use crate::MediaItem;

/// The media library's table, on SQLite, PostgreSQL and MySQL/MariaDB.
pub const MIGRATIONS: MigrationSet = platform_core::embed_migrations!("migrations");

const COLUMNS: &str = "id, resource, record_id, collection, file_name, mime, size, disk, path, position, conversions, custom_properties, created_at";

const TYPES: &[FieldType] = &[
    FieldType::Uuid,
    FieldType::String,
    FieldType::String,
    FieldType::String,
    FieldType::String,
    FieldType::String,
    FieldType::I64,
    FieldType::String,
    FieldType::String,
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::DateTime,
];

fn item_of(row: Vec<Value>) -> MediaItem {
    let s = |i: usize| {
        row.get(i)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let n = |i: usize| row.get(i).and_then(Value::as_i64).unwrap_or_default();
    let json = |i: usize| {
        row.get(i)
            .and_then(Value::as_str)
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_else(|| serde_json::json!({}))
    };
    MediaItem {
        id: match row.first() {
            Some(Value::Uuid(u)) => *u,
            _ => Uuid::nil(),
        },
        resource: s(1),
        record_id: s(2),
        collection: s(3),
        file_name: s(4),
        mime: s(5),
        size: u64::try_from(n(6)).unwrap_or(0),
        disk: s(7),
        path: s(8),
        position: n(9),
        conversions: json(10),
        custom_properties: json(11),
        created_at: match row.get(12) {
            Some(Value::DateTime(t)) => *t,
            _ => DateTime::<Utc>::UNIX_EPOCH,
        },
    }
}

/// Inserts `item`.
pub(crate) async fn insert(tx: &mut Tx, item: &MediaItem) -> Result<()> {
    let mut q = tx.sql();
    q.push("INSERT INTO platform_media (")
        .push(COLUMNS)
        .push(") VALUES (")
        .bind(Value::Uuid(item.id), FieldType::Uuid)
        .push(", ")
        .bind_str(item.resource.clone())
        .push(", ")
        .bind_str(item.record_id.clone())
        .push(", ")
        .bind_str(item.collection.clone())
        .push(", ")
        .bind_str(item.file_name.clone())
        .push(", ")
        .bind_str(item.mime.clone())
        .push(", ")
        .bind_i64(i64::try_from(item.size).unwrap_or(i64::MAX))
        .push(", ")
        .bind_str(item.disk.clone())
        .push(", ")
        .bind_str(item.path.clone())
        .push(", ")
        .bind_i64(item.position)
        .push(", ")
        .bind_str(item.conversions.to_string())
        .push(", ")
        .bind_str(item.custom_properties.to_string())
        .push(", ")
        .bind(Value::DateTime(item.created_at), FieldType::DateTime)
        .push(")");
    tx.execute(q).await?;
    Ok(())
}

/// The files of a record (of one collection, or all), by collection and
/// position.
pub(crate) async fn of_record(
    db: &Db,
    resource: &str,
    record_id: &str,
    collection: Option<&str>,
) -> Result<Vec<MediaItem>> {
    let mut q = db.sql();
    q.push("SELECT ")
        .push(COLUMNS)
        .push(" FROM platform_media WHERE resource = ")
        .bind_str(resource)
        .push(" AND record_id = ")
        .bind_str(record_id);
    if let Some(c) = collection {
        q.push(" AND collection = ").bind_str(c);
    }
    q.push(" ORDER BY collection, position, created_at");
    Ok(db
        .fetch_all(q, TYPES)
        .await?
        .into_iter()
        .map(item_of)
        .collect())
}

/// One file by id.
pub(crate) async fn one(db: &Db, id: Uuid) -> Result<Option<MediaItem>> {
    let mut q = db.sql();
    q.push("SELECT ")
        .push(COLUMNS)
        .push(" FROM platform_media WHERE id = ")
        .bind(Value::Uuid(id), FieldType::Uuid);
    Ok(db.fetch_optional(q, TYPES).await?.map(item_of))
}

/// Up to `limit` files with ids after `after`, by id (the sweep's pages).
pub(crate) async fn page(db: &Db, after: Option<Uuid>, limit: i64) -> Result<Vec<MediaItem>> {
    let mut q = db.sql();
    q.push("SELECT ").push(COLUMNS).push(" FROM platform_media");
    if let Some(a) = after {
        q.push(" WHERE id > ").bind(Value::Uuid(a), FieldType::Uuid);
    }
    q.push(" ORDER BY id LIMIT ").int(limit);
    Ok(db
        .fetch_all(q, TYPES)
        .await?
        .into_iter()
        .map(item_of)
        .collect())
}

/// The next position in a record's collection.
pub(crate) async fn next_position(
    tx: &mut Tx,
    resource: &str,
    record_id: &str,
    collection: &str,
) -> Result<i64> {
    let mut q = tx.sql();
    q.push("SELECT COALESCE(MAX(position), 0) FROM platform_media WHERE resource = ")
        .bind_str(resource)
        .push(" AND record_id = ")
        .bind_str(record_id)
        .push(" AND collection = ")
        .bind_str(collection);
    Ok(tx.fetch_i64(q).await?.unwrap_or(0) + 1)
}

/// Deletes the row `id`; whether there was one.
pub(crate) async fn delete(tx: &mut Tx, id: Uuid) -> Result<bool> {
    let mut q = tx.sql();
    q.push("DELETE FROM platform_media WHERE id = ")
        .bind(Value::Uuid(id), FieldType::Uuid);
    Ok(tx.execute(q).await? > 0)
}

/// Sets the position of `id` (within its record and collection).
pub(crate) async fn set_position(
    tx: &mut Tx,
    id: Uuid,
    resource: &str,
    record_id: &str,
    position: i64,
) -> Result<u64> {
    let mut q = tx.sql();
    q.push("UPDATE platform_media SET position = ")
        .bind_i64(position)
        .push(" WHERE id = ")
        .bind(Value::Uuid(id), FieldType::Uuid)
        .push(" AND resource = ")
        .bind_str(resource)
        .push(" AND record_id = ")
        .bind_str(record_id);
    tx.execute(q).await
}

/// Records the conversions done (a JSON object by conversion name).
pub(crate) async fn set_conversions(db: &Db, id: Uuid, done: &serde_json::Value) -> Result<()> {
    let mut q = db.sql();
    q.push("UPDATE platform_media SET conversions = ")
        .bind_str(done.to_string())
        .push(" WHERE id = ")
        .bind(Value::Uuid(id), FieldType::Uuid);
    db.execute(q).await?;
    Ok(())
}

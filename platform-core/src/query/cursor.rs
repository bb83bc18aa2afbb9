//! The opaque keyset cursor (`page[after]`): the sort field, direction,
//! sort value and key of the last row, as URL-safe base64 JSON.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::FieldErrors;
use crate::resource::ResourceMeta;
use crate::value::Value;

use super::Direction;
use super::plan::SortPlan;

#[derive(serde::Serialize, serde::Deserialize)]
struct CursorBody {
    s: String,
    d: u8,
    v: serde_json::Value,
    id: serde_json::Value,
}

/// Encodes the cursor after a row.
pub(crate) fn encode_cursor(plan: &SortPlan, sort_value: &Value, pk: &Value) -> String {
    let body = CursorBody {
        s: plan.field.name().to_owned(),
        d: u8::from(plan.direction == Direction::Desc),
        v: sort_value.to_json(),
        id: pk.to_json(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default())
}

pub(super) fn decode_cursor(
    meta: &ResourceMeta,
    sort: &SortPlan,
    cursor: &str,
    errors: &mut FieldErrors,
) -> Option<(Value, Value)> {
    let bad = |errors: &mut FieldErrors, why: &str| {
        errors.add("page[after]", "invalid", why.to_owned());
        None
    };
    if cursor.len() > 1024 {
        return bad(errors, "is not a valid cursor");
    }
    let Some(body) = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| serde_json::from_slice::<CursorBody>(&b).ok())
    else {
        return bad(errors, "is not a valid cursor");
    };
    let dir = if body.d == 1 {
        Direction::Desc
    } else {
        Direction::Asc
    };
    if body.s != sort.field.name() || dir != sort.direction {
        return bad(errors, "was made for another sort order");
    }
    let pk = meta.primary_key();
    let Ok(id) = Value::from_json(pk.ty(), &body.id) else {
        return bad(errors, "is not a valid cursor");
    };
    if id.is_null() {
        return bad(errors, "is not a valid cursor");
    }
    let Ok(v) = Value::from_json(sort.field.ty(), &body.v) else {
        return bad(errors, "is not a valid cursor");
    };
    Some((v, id))
}

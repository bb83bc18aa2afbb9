//! The list page's query string: the API's parameters (`search`, `sort`,
//! `filter[f]`, `filter[f][gte]`, `page[size]`, `page[after]`, `trashed`)
//! plus the panel's own keyset trail (`page[trail]`, `page[n]`) for the
//! "previous" link. Money filters are amounts and time filters are
//! `datetime-local` values; both are converted before the core reads them.

use platform_core::error::FieldErrors;
use platform_core::query::ListQuery;
use platform_core::resource::ResourceMeta;
use platform_core::value::FieldType;

use super::format;

/// How many earlier cursors a list link remembers for "previous".
pub(crate) const MAX_TRAIL: usize = 10;

/// The list parameters of one request.
#[derive(Debug, Clone)]
pub(crate) struct ListParams {
    /// The non-empty parameters except paging, as the user typed them.
    pub(crate) base: Vec<(String, String)>,
    /// The cursor of this page.
    pub(crate) after: Option<String>,
    /// The cursors of the earlier pages after the first (the first page
    /// has none), oldest first.
    pub(crate) trail: Vec<String>,
    /// The page's number, from 1.
    pub(crate) page_no: u32,
    /// The query, or why it is invalid.
    pub(crate) query: Result<ListQuery, FieldErrors>,
}

impl ListParams {
    /// The value of parameter `key` as typed.
    pub(crate) fn value(&self, key: &str) -> &str {
        self.base
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The base parameters without `drop`, plus `set`.
    pub(crate) fn pairs_with<'a>(
        &'a self,
        drop: &'a [&str],
        set: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.base
            .iter()
            .filter(move |(k, _)| !drop.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(set.iter().copied())
    }
}

/// The field a `filter[...]` key names.
fn filter_field(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("filter[")?;
    rest.split_once(']').map(|(f, _)| f)
}

/// Reads the list parameters for `meta` from the query string's pairs.
pub(crate) fn parse(meta: &'static ResourceMeta, pairs: Vec<(String, String)>) -> ListParams {
    let mut base = Vec::new();
    let mut after = None;
    let mut trail = Vec::new();
    let mut page_no = 1;
    let mut errors = FieldErrors::default();
    for (k, v) in pairs {
        if k.contains('\0') || v.contains('\0') {
            errors.add(k, "invalid", "must not contain NUL characters");
            continue;
        }
        match k.as_str() {
            "page[after]" if !v.is_empty() => after = Some(v),
            "page[trail]" => {
                trail = v
                    .split('.')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect();
                if trail.len() > MAX_TRAIL {
                    trail.drain(..trail.len() - MAX_TRAIL);
                }
            }
            "page[n]" => page_no = v.parse::<u32>().unwrap_or(1).clamp(1, 1_000_000),
            _ if v.trim().is_empty() => {}
            _ => base.push((k, v)),
        }
    }
    let mut core: Vec<(String, String)> = Vec::with_capacity(base.len() + 1);
    for (k, v) in &base {
        let converted = match filter_field(k).and_then(|f| meta.field(f)) {
            Some(f) if f.is_money() && matches!(f.ty(), FieldType::I32 | FieldType::I64) => {
                match platform_core::money::parse(v) {
                    Some(c) => c.to_string(),
                    None => {
                        errors.add(k.clone(), "type", "must be an amount");
                        continue;
                    }
                }
            }
            Some(f) if f.ty() == FieldType::DateTime => match format::parse_time(v) {
                Some(t) => t.to_rfc3339(),
                None => {
                    errors.add(k.clone(), "type", "must be a date and time");
                    continue;
                }
            },
            _ => v.clone(),
        };
        core.push((k.clone(), converted));
    }
    if let Some(a) = &after {
        core.push(("page[after]".to_owned(), a.clone()));
    }
    let query = match ListQuery::from_params(core.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        Ok(q) if errors.is_empty() => Ok(q.with_count()),
        Ok(_) => Err(errors),
        Err(e) => {
            for f in e.iter() {
                errors.add(f.field.clone(), f.code, f.message.clone());
            }
            Err(errors)
        }
    };
    ListParams {
        base,
        after,
        trail,
        page_no,
        query,
    }
}

/// Reads a list query string (as the bulk form posts it): filters and
/// search only; paging is ignored.
pub(crate) fn parse_query_string(
    meta: &'static ResourceMeta,
    qs: &str,
) -> Result<ListQuery, FieldErrors> {
    let Some(pairs) = super::form::parse_urlencoded(qs.as_bytes()) else {
        let mut e = FieldErrors::default();
        e.add("query", "invalid", "is malformed");
        return Err(e);
    };
    let pairs = pairs
        .into_iter()
        .filter(|(k, _)| !k.starts_with("page["))
        .collect();
    let mut q = parse(meta, pairs).query?;
    q.count = false;
    Ok(q)
}

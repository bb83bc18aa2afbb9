//! Which column feeds which field: headings matched to field names and
//! labels (ignoring case, spaces, `_` and `-`), with manual overrides.

use platform_core::resource::{FieldMeta, ResourceMeta};

use super::ImportError;

/// Whether `f` can be written by an import ([`FieldMeta::importable`]:
/// not `#[resource(import = false)]`, not the primary key, a managed
/// timestamp, hidden or read-only).
pub fn importable(f: &FieldMeta) -> bool {
    f.importable() && !f.is_primary_key()
}

/// A heading or name reduced for matching: lower case, letters and
/// digits only.
pub fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The columns of a file mapped to fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The file's headings.
    pub headings: Vec<String>,
    /// For each column, the field it feeds (`None`: ignored).
    pub fields: Vec<Option<&'static str>>,
}

impl Mapping {
    /// The headings nothing maps, for the report.
    pub fn ignored(&self) -> Vec<String> {
        self.headings
            .iter()
            .zip(&self.fields)
            .filter(|(h, f)| f.is_none() && !h.is_empty())
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// The importable fields that must have a value on create and that no
    /// column feeds (the rows will fail unless something else fills them,
    /// a policy say).
    pub fn missing_required(&self, meta: &ResourceMeta) -> Vec<&'static str> {
        meta.field_list()
            .iter()
            .filter(|f| importable(f) && !f.is_nullable())
            .map(FieldMeta::name)
            .filter(|n| !self.fields.contains(&Some(n)))
            .collect()
    }

    /// As JSON pairs `{heading, field}` (for the panel and the API).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.headings
                .iter()
                .zip(&self.fields)
                .map(|(h, f)| serde_json::json!({ "heading": h, "field": f }))
                .collect(),
        )
    }
}

/// Maps `headings` to the fields of `meta`: each heading to the importable
/// field whose name or label it matches, then `overrides` (`heading` →
/// `field`, or `heading` → empty or `-` to ignore the column). Refuses an
/// override naming an unknown column or field, and two columns feeding one
/// field.
pub fn map_headings(
    meta: &'static ResourceMeta,
    headings: &[String],
    overrides: &[(String, String)],
) -> Result<Mapping, ImportError> {
    let mut fields: Vec<Option<&'static str>> = headings
        .iter()
        .map(|h| {
            let h = normalize(h);
            if h.is_empty() {
                return None;
            }
            meta.field_list()
                .iter()
                .filter(|f| importable(f))
                .find(|f| normalize(f.name()) == h || normalize(f.label_text()) == h)
                .map(FieldMeta::name)
        })
        .collect();
    for (column, field) in overrides {
        let col = headings
            .iter()
            .position(|h| h == column)
            .or_else(|| {
                let c = normalize(column);
                headings.iter().position(|h| normalize(h) == c)
            })
            .ok_or_else(|| {
                ImportError::Mapping(format!(
                    "the mapping names a column `{column}` the file does not have"
                ))
            })?;
        let field = field.trim();
        if field.is_empty() || field == "-" {
            fields[col] = None;
            continue;
        }
        let f = meta
            .field_list()
            .iter()
            .find(|f| f.name() == field || normalize(f.label_text()) == normalize(field))
            .ok_or_else(|| {
                ImportError::Mapping(format!(
                    "the mapping names a field `{field}` that {} do not have",
                    meta.plural_label()
                ))
            })?;
        if !importable(f) {
            return Err(ImportError::Mapping(format!(
                "the field `{}` cannot be imported",
                f.name()
            )));
        }
        fields[col] = Some(f.name());
    }
    for (i, f) in fields.iter().enumerate() {
        if let Some(f) = f
            && let Some(j) = fields[i + 1..].iter().position(|g| g == &Some(*f))
        {
            return Err(ImportError::Mapping(format!(
                "the columns `{}` and `{}` both feed the field `{f}`: map one of them elsewhere or to nothing",
                headings[i],
                headings[i + 1 + j]
            )));
        }
    }
    Ok(Mapping {
        headings: headings.to_vec(),
        fields,
    })
}

/// Reads `col=field` pairs (the CLI's `--map`, the API's `map` parameter).
pub fn parse_overrides<'a>(
    pairs: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(String, String)>, ImportError> {
    pairs
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(c, f)| (c.trim().to_owned(), f.trim().to_owned()))
                .ok_or_else(|| {
                    ImportError::Mapping(format!("`{p}` is not a mapping: write `column=field`"))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize("  Amount (cents) "), "amountcents");
        assert_eq!(normalize("issued_on"), "issuedon");
        assert_eq!(normalize("Issued On"), "issuedon");
    }

    #[test]
    fn overrides_parse() {
        let o = parse_overrides(["Betrag=amount_cents", " x = "]).unwrap();
        assert_eq!(o[0], ("Betrag".to_owned(), "amount_cents".to_owned()));
        assert_eq!(o[1].1, "");
        assert!(parse_overrides(["nope"]).is_err());
    }
}

//! The matrix's answers: one row per request, and the report over them.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

/// Which router a route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    /// The JSON API.
    Api,
    /// The admin panel.
    Panel,
}

impl fmt::Display for Surface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Api => "api",
            Self::Panel => "panel",
        })
    }
}

/// What the declared permissions say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The permissions are held and the policy admits the record.
    Allowed,
    /// A permission is missing (or the policy's scope refuses the request
    /// as a whole): `401`, `403` or a redirect to sign in.
    Denied,
    /// The permissions are held but the policy hides the record: `404`.
    Hidden,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Hidden => "hidden (404)",
        })
    }
}

/// What the routers answered, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actual {
    /// `2xx`, or a redirect anywhere but to sign in (or the action took
    /// place whatever the answer said).
    Allowed,
    /// `401`, `403` or a redirect to sign in; for a listing, an answer
    /// without the sample record.
    Denied,
    /// `404`.
    NotFound,
    /// Any other answer (`400`, `409`, `422`, `5xx`, ...).
    Failed,
}

impl fmt::Display for Actual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::NotFound => "not found",
            Self::Failed => "failed",
        })
    }
}

/// What a row's route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// A resource's API or panel route.
    Resource,
    /// A capability's panel page or one of its actions
    /// ([`PanelPage`](crate::panel::PanelPage)).
    Page,
    /// A declared route of a capability's
    /// [`ApiRoutes`](crate::capability::ApiRoutes).
    ApiRoute,
}

/// One request of the matrix: a route of a resource, requested as a role.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MatrixRow {
    /// What the route belongs to.
    pub kind: RowKind,
    /// The resource's plural name; for a capability's panel page its slug,
    /// for a capability's API route its path's first segment.
    pub resource: &'static str,
    /// The router.
    pub surface: Surface,
    /// The route, as a template (`GET /api/invoices/{id}`); routes on a
    /// record outside the role's policy scope end in `[other's record]`.
    pub route: String,
    /// The role the request was made as, `(no role)` or `(anonymous)`.
    pub role: String,
    /// The permissions the route requires (`view_any_invoice + export_invoice`).
    pub requires: String,
    /// What the declared permissions say.
    pub expected: Expected,
    /// What the routers did.
    pub actual: Actual,
    /// The HTTP status of the answer.
    pub status: u16,
    /// Why the outcome is not what the status alone says, if it is not.
    pub note: Option<String>,
    pub(super) order: (usize, usize, usize),
}

impl MatrixRow {
    /// Whether the answer is the one the declared permissions call for.
    pub fn is_ok(&self) -> bool {
        matches!(
            (self.expected, self.actual),
            (Expected::Allowed, Actual::Allowed)
                | (Expected::Denied, Actual::Denied)
                | (Expected::Hidden, Actual::NotFound)
        )
    }
}

/// The outcome of a [`PermissionMatrix`](super::PermissionMatrix) run: one row per request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MatrixReport {
    /// Every request, by resource, route and role.
    pub rows: Vec<MatrixRow>,
    /// The roles requests were made as, in column order (the last two are
    /// `(no role)` and `(anonymous)`).
    pub roles: Vec<String>,
    /// How long the run took (setup included).
    pub elapsed: Duration,
}

impl MatrixReport {
    /// The requests whose answer differs from the declared permissions.
    pub fn mismatches(&self) -> Vec<&MatrixRow> {
        self.rows.iter().filter(|r| !r.is_ok()).collect()
    }

    /// Whether every answer matches the declared permissions.
    pub fn is_ok(&self) -> bool {
        self.rows.iter().all(MatrixRow::is_ok)
    }

    /// The number of resources exercised.
    pub fn resources(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.kind == RowKind::Resource)
            .map(|r| r.resource)
            .collect::<HashSet<_>>()
            .len()
    }

    /// The number of distinct routes (per resource) exercised.
    pub fn routes(&self) -> usize {
        self.rows
            .iter()
            .map(|r| (r.resource, r.route.as_str()))
            .collect::<HashSet<_>>()
            .len()
    }

    /// The number of distinct routes of capabilities (panel pages, their
    /// actions, declared API routes) exercised.
    pub fn capability_routes(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.kind != RowKind::Resource)
            .map(|r| (r.resource, r.route.as_str()))
            .collect::<HashSet<_>>()
            .len()
    }

    /// One line: resources, routes, roles, requests, mismatches and time.
    pub fn summary(&self) -> String {
        let capability = match self.capability_routes() {
            0 => String::new(),
            n => format!(" ({n} of capabilities)"),
        };
        format!(
            "permission matrix: {} resources, {} routes{capability}, {} roles (with anonymous), {} requests, {} mismatches, {:.1} s",
            self.resources(),
            self.routes(),
            self.roles.len(),
            self.rows.len(),
            self.mismatches().len(),
            self.elapsed.as_secs_f64()
        )
    }

    /// The summary and a table of the mismatches (empty table when there is
    /// none).
    pub fn mismatch_table(&self) -> String {
        let mut out = self.summary();
        out.push('\n');
        let mismatches = self.mismatches();
        if mismatches.is_empty() {
            return out;
        }
        let mut table = vec![[
            "RESOURCE".to_owned(),
            "ROUTE".to_owned(),
            "ROLE".to_owned(),
            "REQUIRES".to_owned(),
            "EXPECTED".to_owned(),
            "ACTUAL".to_owned(),
            "STATUS".to_owned(),
            "NOTE".to_owned(),
        ]];
        for r in mismatches {
            table.push([
                r.resource.to_owned(),
                r.route.clone(),
                r.role.clone(),
                r.requires.clone(),
                r.expected.to_string(),
                r.actual.to_string(),
                r.status.to_string(),
                r.note.clone().unwrap_or_default(),
            ]);
        }
        out.push_str("\nMISMATCHES\n");
        write_table(&mut out, &table);
        out
    }
}

/// Pads the columns of `rows` and appends them to `out`, one line each.
fn write_table<const N: usize>(out: &mut String, rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// The roles that were allowed, shortened after a few.
fn allowed_for(rows: &[&MatrixRow]) -> String {
    let names: Vec<&str> = rows
        .iter()
        .filter(|r| r.actual == Actual::Allowed)
        .map(|r| r.role.as_str())
        .collect();
    match names.len() {
        0 => "-".to_owned(),
        n if n <= 3 => names.join(", "),
        n => format!("{} and {} more", names[..3].join(", "), n - 3),
    }
}

/// The summary, one line per route (who was allowed, whether every role
/// got the right answer), then the mismatches.
impl fmt::Display for MatrixReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut groups: Vec<(&str, &str, Vec<&MatrixRow>)> = Vec::new();
        for r in &self.rows {
            match groups.last_mut() {
                Some((res, route, rows)) if *res == r.resource && *route == r.route => rows.push(r),
                _ => groups.push((r.resource, r.route.as_str(), vec![r])),
            }
        }
        let mut table = vec![[
            "RESOURCE".to_owned(),
            "ROUTE".to_owned(),
            "REQUIRES".to_owned(),
            "ALLOWED FOR".to_owned(),
            "RESULT".to_owned(),
        ]];
        for (resource, route, rows) in &groups {
            let bad = rows.iter().filter(|r| !r.is_ok()).count();
            table.push([
                (*resource).to_owned(),
                (*route).to_owned(),
                rows.first().map(|r| r.requires.clone()).unwrap_or_default(),
                allowed_for(rows),
                if bad == 0 {
                    format!("ok ({})", rows.len())
                } else {
                    format!("MISMATCH ({bad} of {})", rows.len())
                },
            ]);
        }
        let mut out = String::new();
        write_table(&mut out, &table);
        out.push('\n');
        out.push_str(&self.mismatch_table());
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_match_expectations() {
        let row = |expected, actual| MatrixRow {
            kind: RowKind::Resource,
            resource: "invoices",
            surface: Surface::Api,
            route: "GET /api/invoices".into(),
            role: "x".into(),
            requires: String::new(),
            expected,
            actual,
            status: 200,
            note: None,
            order: (0, 0, 0),
        };
        assert!(row(Expected::Allowed, Actual::Allowed).is_ok());
        assert!(row(Expected::Denied, Actual::Denied).is_ok());
        assert!(row(Expected::Hidden, Actual::NotFound).is_ok());
        assert!(!row(Expected::Denied, Actual::Allowed).is_ok());
        assert!(!row(Expected::Allowed, Actual::NotFound).is_ok());
        assert!(!row(Expected::Hidden, Actual::Allowed).is_ok());
        assert!(!row(Expected::Allowed, Actual::Failed).is_ok());
    }
}

//! The panel page `imports`: the batches with their status, counts and
//! timing (a running batch's progress), and a rollback action on each.

use platform_admin::capability::SetupExt;
use platform_admin::panel::page::{ActionFuture, PageAction, PageContext, PageFuture, PanelPage};
use platform_core::capability::Setup;

use super::Imports;

const TEMPLATE: &str = r#"
<section id="imports">
{% if data.batches %}
<table class="table">
  <thead><tr><th>#</th><th>Resource</th><th>File</th><th>By</th><th>Status</th><th>Progress</th><th>Created</th><th>Updated</th><th>Failed</th><th></th></tr></thead>
  <tbody>
  {% for b in data.batches %}
  <tr id="import-{{ b.id }}">
    <td>{{ b.id }}</td><td>{{ b.resource }}</td><td>{{ b.file_name or "" }}</td>
    <td>{{ b.actor_label or b.actor_type }}</td>
    <td class="status">{{ b.status }}{% if b.dry_run %} (dry run){% endif %}</td>
    <td>{{ b.counts.processed }}{% if b.total_rows %} / {{ b.total_rows }}{% endif %}</td>
    <td>{{ b.counts.created }}</td><td>{{ b.counts.updated }}</td><td>{{ b.counts.failed }}</td>
    <td>
    {% if b.status == "done" or b.status == "failed" %}
      <form method="post" action="{{ page.href }}/actions/rollback/{{ b.id }}">
        <input type="hidden" name="_csrf" value="{{ csrf }}">
        <label><input type="checkbox" name="force" value="1"> even if changed since</label>
        <button type="submit">Roll back</button>
      </form>
    {% endif %}
    </td>
  </tr>
  {% if b.error %}<tr><td></td><td colspan="9" class="error">{{ b.error }}</td></tr>{% endif %}
  {% endfor %}
  </tbody>
</table>
{% else %}
<p>No imports yet. Import with <code>POST /api/&lt;resource&gt;/import</code> or the command <code>import &lt;resource&gt; FILE</code>.</p>
{% endif %}
</section>
"#;

fn data(cx: &PageContext) -> PageFuture<'_> {
    Box::pin(async move {
        let Some(imports) = cx.platform.get::<Imports>() else {
            return Ok(serde_json::json!({ "batches": [] }));
        };
        let batches = imports.batches(&cx.platform, &cx.auth.ctx, 100).await?;
        Ok(serde_json::json!({ "batches": batches }))
    })
}

fn rollback(cx: &PageContext) -> ActionFuture<'_> {
    Box::pin(async move {
        let id: i64 = cx.rest.parse().map_err(|_| platform_core::Error::NotFound {
            resource: "import",
            id: cx.rest.chars().take(64).collect(),
        })?;
        let imports = cx.platform.get::<Imports>().ok_or_else(|| {
            platform_core::Error::Configuration("the exchange capability is not added".to_owned())
        })?;
        let force = cx.param("force").is_some_and(|v| v == "1");
        let r = imports.rollback(&cx.platform, &cx.auth.ctx, id, force).await?;
        Ok(format!(
            "Import {id} rolled back: {} removed, {} restored.",
            r.deleted, r.reverted
        ))
    })
}

pub(crate) fn pages(setup: &mut Setup) {
    setup.panel_page(
        PanelPage::new("imports", "Imports", TEMPLATE, data)
            .nav_group("System")
            .action(PageAction::new("rollback", rollback)),
    );
}

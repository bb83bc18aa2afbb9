//! The panel: a gallery of the record's files with an upload form per
//! collection, "Move up" / "Move down" and remove buttons, on the record's
//! view page and under its edit form (a [`RecordSection`]; plain forms, no
//! JavaScript).

use platform_admin::panel::section::{RecordSection, SectionContext, SectionForm, escape};
use platform_core::capability::Setup;
use platform_core::error::Error;
use platform_core::permission::Ability;
use uuid::Uuid;

use crate::api::{MULTIPART_OVERHEAD, attach_field};
use crate::library::MediaLibrary;
use crate::{MediaItem, RecordRef};

/// Adds the gallery section.
pub(crate) fn contribute(setup: &mut Setup, largest: u64) {
    let limit = usize::try_from(largest.saturating_add(MULTIPART_OVERHEAD)).unwrap_or(usize::MAX);
    setup.contribute(
        RecordSection::new("media", |cx| Box::pin(render(cx)))
            .on_post(|cx, form| Box::pin(handle(cx, form)))
            .on_edit()
            .body_limit(limit),
    );
}

fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// A signed URL as a path on this site (the panel may be reached under
/// another host name than the configured public address).
fn local(url: &str, public: &str) -> String {
    url.strip_prefix(public.trim_end_matches('/'))
        .unwrap_or(url)
        .to_owned()
}

async fn render(cx: SectionContext) -> platform_core::Result<Option<String>> {
    let Some(lib) = cx.platform.get::<MediaLibrary>() else {
        return Ok(None);
    };
    let collections = lib.collections_of(cx.resource);
    if collections.is_empty() {
        return Ok(None);
    }
    let record = RecordRef::new(cx.resource, &cx.record_id);
    let items = match lib.list(&cx.platform, &cx.context, &record, None).await {
        Ok(items) => items,
        Err(Error::PermissionDenied { .. } | Error::Unauthenticated) => return Ok(None),
        Err(e) => return Err(e),
    };
    let can_update = cx
        .platform
        .records(cx.resource, &cx.context)
        .is_some_and(|r| cx.context.can(r.entry().permission(Ability::Update)));
    let public = cx.platform.config().public_url.clone();
    let action = if cx.editing {
        format!("{}?from=edit", cx.action)
    } else {
        cx.action.clone()
    };
    let csrf = format!(
        "<input type=\"hidden\" name=\"_csrf\" value=\"{}\">",
        escape(&cx.csrf)
    );
    let mut html = String::from("<section class=\"card media\"><h2>Files</h2>");
    for c in collections {
        html.push_str(&format!("<h3>{}</h3>", escape(c.name())));
        let mine: Vec<&MediaItem> = items.iter().filter(|m| m.collection == c.name()).collect();
        if mine.is_empty() {
            html.push_str("<p class=\"muted\">No files.</p>");
        } else {
            html.push_str("<ul class=\"gallery\">");
            let last = mine.len() - 1;
            for (i, m) in mine.into_iter().enumerate() {
                let url = lib
                    .url(m, None)
                    .map(|u| local(&u, &public))
                    .unwrap_or_default();
                html.push_str("<li>");
                match lib.url(m, Some("thumb")) {
                    Ok(thumb) => html.push_str(&format!(
                        "<a href=\"{}\"><img src=\"{}\" alt=\"{}\" loading=\"lazy\"></a>",
                        escape(&url),
                        escape(&local(&thumb, &public)),
                        escape(&m.file_name)
                    )),
                    Err(_) => html.push_str(&format!(
                        "<a href=\"{}\">{}</a>",
                        escape(&url),
                        escape(&m.file_name)
                    )),
                }
                html.push_str(&format!(
                    " <span class=\"muted\">{} · {} · {}</span>",
                    escape(&m.file_name),
                    escape(&m.mime),
                    human_size(m.size)
                ));
                if can_update {
                    // Reordering: a plain form per move (no JavaScript).
                    for (dir, label, shown) in
                        [("up", "Move up", i > 0), ("down", "Move down", i < last)]
                    {
                        if shown {
                            html.push_str(&format!(
                                "<form method=\"post\" action=\"{}\" enctype=\"multipart/form-data\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"op\" value=\"move\"><input type=\"hidden\" name=\"media\" value=\"{}\"><input type=\"hidden\" name=\"direction\" value=\"{dir}\"><button type=\"submit\" class=\"link\" aria-label=\"{label} {}\">{label}</button></form>",
                                escape(&action),
                                m.id,
                                escape(&m.file_name)
                            ));
                        }
                    }
                    html.push_str(&format!(
                        "<form method=\"post\" action=\"{}\" enctype=\"multipart/form-data\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"op\" value=\"delete\"><input type=\"hidden\" name=\"media\" value=\"{}\"><button type=\"submit\" class=\"link danger\">Remove</button></form>",
                        escape(&action),
                        m.id
                    ));
                }
                html.push_str("</li>");
            }
            html.push_str("</ul>");
        }
        if can_update {
            let accept = c.spec().accepted().join(",");
            html.push_str(&format!(
                "<form method=\"post\" action=\"{}\" enctype=\"multipart/form-data\">{csrf}<input type=\"hidden\" name=\"op\" value=\"upload\"><input type=\"hidden\" name=\"collection\" value=\"{}\"><label>Add a file <input type=\"file\" name=\"file\" required{}></label> <span class=\"muted\">at most {}</span> <button type=\"submit\">Upload</button></form>",
                escape(&action),
                escape(c.name()),
                if accept.is_empty() {
                    String::new()
                } else {
                    format!(" accept=\"{}\"", escape(&accept))
                },
                human_size(c.spec().max_bytes())
            ));
        }
    }
    html.push_str("</section>");
    Ok(Some(html))
}

async fn handle(cx: SectionContext, form: SectionForm) -> platform_core::Result<String> {
    let lib = cx
        .platform
        .get::<MediaLibrary>()
        .ok_or_else(|| Error::Configuration("the media library is not added".into()))?;
    let record = RecordRef::new(cx.resource, &cx.record_id);
    let mut form = form.0;
    let (mut op, mut collection, mut media, mut direction) =
        (String::new(), String::new(), String::new(), String::new());
    let bad = |e: axum::extract::multipart::MultipartError| {
        Error::invalid("file", "multipart", e.body_text())
    };
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name().unwrap_or_default() {
            "file" if op == "upload" => {
                let item =
                    attach_field(&lib, &cx.platform, &cx.context, &record, &collection, field)
                        .await?;
                return Ok(format!("Uploaded {}.", item.file_name));
            }
            "op" => op = field.text().await.map_err(bad)?,
            "collection" => collection = field.text().await.map_err(bad)?,
            "media" => media = field.text().await.map_err(bad)?,
            "direction" => direction = field.text().await.map_err(bad)?,
            _ => {}
        }
    }
    match op.as_str() {
        "delete" => {
            let item = own_item(&lib, &cx, &media).await?;
            lib.delete(&cx.platform, &cx.context, item.id).await?;
            Ok(format!("Removed {}.", item.file_name))
        }
        "move" => {
            let item = own_item(&lib, &cx, &media).await?;
            let mut order: Vec<Uuid> = lib
                .list(
                    &cx.platform,
                    &cx.context,
                    &record,
                    Some(item.collection.as_str()),
                )
                .await?
                .into_iter()
                .map(|m| m.id)
                .collect();
            let at = order
                .iter()
                .position(|id| *id == item.id)
                .ok_or_else(|| Error::NotFound {
                    resource: "media",
                    id: item.id.to_string(),
                })?;
            let to = match direction.as_str() {
                "up" => at.checked_sub(1),
                "down" => Some(at + 1).filter(|&t| t < order.len()),
                _ => {
                    return Err(Error::invalid(
                        "direction",
                        "invalid",
                        "move a file up or down",
                    ));
                }
            };
            let Some(to) = to else {
                return Ok(format!("{} stays where it is.", item.file_name));
            };
            order.swap(at, to);
            lib.reorder(&cx.platform, &cx.context, &order).await?;
            Ok(format!(
                "Moved {} {direction} (now {} of {}).",
                item.file_name,
                to + 1,
                order.len()
            ))
        }
        _ => Err(Error::invalid(
            "file",
            "required",
            "choose a file to upload",
        )),
    }
}

/// The file `media` (an id as sent), if it belongs to this record.
async fn own_item(
    lib: &MediaLibrary,
    cx: &SectionContext,
    media: &str,
) -> platform_core::Result<MediaItem> {
    let not_found = || Error::NotFound {
        resource: "media",
        id: media.chars().take(64).collect(),
    };
    let id = Uuid::parse_str(media).map_err(|_| not_found())?;
    let item = lib.row(id).await?;
    if item.resource
        != lib
            .collections_of(cx.resource)
            .first()
            .map_or("", |c| c.resource())
        || item.record_id != cx.record_id
    {
        return Err(not_found());
    }
    Ok(item)
}

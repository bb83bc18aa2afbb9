//! The media library over HTTP on every configured database: the API's
//! upload, listing, reorder and delete with their permissions, the routes
//! in the permission matrix, and the panel's gallery and forms (no
//! JavaScript, CSRF checked first).

mod media_common;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use media_common::*;
use platform_core::Platform;
use platform_core::context::Context;
use platform_media::RecordRef;
use platform_tests::{all_backends, users};
use tower::ServiceExt;

/// A multipart body with one file part.
fn multipart(name: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----platform-media-test-boundary".to_owned();
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: image/gif\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn user(p: &Platform, email: &str, role: Option<(&str, &[&str])>) -> String {
    let id = users::with_role(p, email, role).await;
    users::token(p, id, &[]).await
}

async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<(String, Vec<u8>)>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some((ct, b)) => req
            .header(header::CONTENT_TYPE, ct)
            .header(header::CONTENT_LENGTH, b.len())
            .body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn the_api_uploads_lists_reorders_deletes_and_checks_permissions() {
    for db in all_backends().await {
        let dir = temp_dir();
        let p = platform(&db, &dir).await;
        let b = db.backend.name();
        let app = platform_admin::app_router(&p)
            .unwrap()
            .with_state(p.clone());
        let admin = user(&p, "admin@example.com", Some(("super_admin", &[]))).await;
        let viewer = user(
            &p,
            "viewer@example.com",
            Some(("product_viewer", &["view_any_product", "view_product"])),
        )
        .await;
        let editor = user(
            &p,
            "editor@example.com",
            Some(("product_editor", &["update_product"])),
        )
        .await;
        let nobody = user(&p, "nobody@example.com", None).await;
        let id = product(&p, "A-1").await;
        let upload = format!("/api/products/{id}/media/images");
        // Upload as the admin: 201, sniffed type, conversions listed with URLs.
        let (s, body) = send(
            &app,
            Method::POST,
            &upload,
            Some(&admin),
            Some(multipart("a.gif", &png(640, 480))),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}: {body}");
        assert_eq!(body["data"]["mime"], "image/png", "{b}");
        assert_eq!(body["data"]["file_name"], "a.png", "{b}");
        assert_eq!(
            body["data"]["conversions"]["thumb"]["width"], 200,
            "{b}: {body}"
        );
        let first = body["data"]["id"].as_str().unwrap().to_owned();
        // An editor with `update_product` only may attach (no `view`).
        let (s, body) = send(
            &app,
            Method::POST,
            &upload,
            Some(&editor),
            Some(multipart("b.png", &png(20, 20))),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}: {body}");
        let second = body["data"]["id"].as_str().unwrap().to_owned();
        // Refused: a viewer, a user without permissions, nobody.
        for (who, token, want) in [
            ("viewer", Some(viewer.as_str()), StatusCode::FORBIDDEN),
            ("nobody", Some(nobody.as_str()), StatusCode::FORBIDDEN),
            ("anonymous", None, StatusCode::UNAUTHORIZED),
        ] {
            let (s, _) = send(
                &app,
                Method::POST,
                &upload,
                token,
                Some(multipart("c.png", &png(8, 8))),
            )
            .await;
            assert_eq!(s, want, "{b}: {who} uploads");
        }
        // Listing: the viewer may, with signed URLs that serve the files.
        let (s, body) = send(
            &app,
            Method::GET,
            &format!("/api/products/{id}/media"),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}: {body}");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{b}");
        let url = data[0]["conversions"]["thumb"]["url"].as_str().unwrap();
        let (s, bytes) = get(&app, url).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(image::load_from_memory(&bytes).unwrap().width(), 200);
        for token in [Some(editor.as_str()), Some(nobody.as_str())] {
            let (s, _) = send(
                &app,
                Method::GET,
                &format!("/api/products/{id}/media"),
                token,
                None,
            )
            .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        }
        let (s, _) = send(
            &app,
            Method::GET,
            &format!("/api/products/{id}/media"),
            None,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        // Wrong type and oversize over HTTP.
        let (s, body) = send(
            &app,
            Method::POST,
            &upload,
            Some(&admin),
            Some(multipart("x.png", b"<?php system($_GET['c']); ?>")),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {body}");
        let (s, _) = send(
            &app,
            Method::POST,
            &format!("/api/products/{id}/media/manual"),
            Some(&admin),
            Some(multipart("m.txt", &vec![b'a'; 200 << 10])),
        )
        .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
        let (s, _) = send(
            &app,
            Method::POST,
            &format!("/api/products/{id}/media/nope"),
            Some(&admin),
            Some(multipart("m.txt", b"x")),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
        // Reorder, then delete.
        let reorder = |ids: Vec<&str>| {
            (
                String::from("application/json"),
                serde_json::to_vec(&serde_json::json!({ "ids": ids })).unwrap(),
            )
        };
        let (s, _) = send(
            &app,
            Method::POST,
            "/api/media/reorder",
            Some(&viewer),
            Some(reorder(vec![&second, &first])),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, _) = send(
            &app,
            Method::POST,
            "/api/media/reorder",
            None,
            Some(reorder(vec![&second, &first])),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        let (s, _) = send(
            &app,
            Method::POST,
            "/api/media/reorder",
            Some(&editor),
            Some(reorder(vec![&second, &first])),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        let (_, body) = send(
            &app,
            Method::GET,
            &format!("/api/products/{id}/media?collection=images"),
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(body["data"][0]["id"], second.as_str(), "{b}");
        let (s, _) = send(
            &app,
            Method::DELETE,
            &format!("/api/media/{first}"),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, _) = send(
            &app,
            Method::DELETE,
            &format!("/api/media/{first}"),
            None,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        let (s, _) = send(
            &app,
            Method::DELETE,
            &format!("/api/media/{first}"),
            Some(&editor),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        let (s, _) = send(
            &app,
            Method::DELETE,
            &format!("/api/media/{first}"),
            Some(&editor),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
        let (s, _) = send(
            &app,
            Method::DELETE,
            "/api/media/not-a-uuid",
            Some(&editor),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
        p.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn the_media_routes_are_in_the_permission_matrix_on_every_backend() {
    for db in all_backends().await {
        let dir = temp_dir();
        let p = platform(&db, &dir).await;
        let b = db.backend.name();
        let report = platform_admin::matrix::PermissionMatrix::new(&p)
            .run()
            .await
            .unwrap_or_else(|e| panic!("{b}: {e}"));
        assert!(report.is_ok(), "{b}:\n{}", report.mismatch_table());
        // Upload and list for products, delete and reorder.
        assert_eq!(report.capability_routes(), 4, "{b}");
        p.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

const CSRF: &str = "media-test-csrf";

/// A section form: `_csrf` first, then `fields`, then the file if any.
fn section_form(
    csrf: &str,
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
) -> (String, Vec<u8>) {
    let boundary = "----media-panel-boundary";
    let mut body = Vec::new();
    let mut all = vec![("_csrf", csrf)];
    all.extend_from_slice(fields);
    for (k, v) in all {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, content)) = file {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn panel_send(
    app: &Router,
    user: i64,
    method: Method,
    uri: &str,
    body: Option<(String, Vec<u8>)>,
) -> (StatusCode, String, Option<String>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-test-user", user.to_string());
    let req = match body {
        Some((ct, b)) => req.header(header::CONTENT_TYPE, ct).body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let location = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8_lossy(&bytes).into_owned(),
        location,
    )
}

#[tokio::test]
async fn the_panel_shows_a_gallery_and_uploads_and_removes_without_javascript() {
    for db in all_backends().await {
        let dir = temp_dir();
        let p = platform(&db, &dir).await;
        let b = db.backend.name();
        let lib = lib(&p);
        let app = platform_tests::panel::signed_in_by_header(
            Router::new().nest("/admin", platform_admin::panel_router()),
            &p,
            CSRF,
        );
        let admin = users::with_role(&p, "admin@example.com", Some(("super_admin", &[]))).await;
        let viewer = users::with_role(
            &p,
            "viewer@example.com",
            Some(("product_viewer", &["view_any_product", "view_product"])),
        )
        .await;
        let id = product(&p, "PANEL-1").await;
        let page = format!("/admin/products/{id}");
        let action = format!("{page}/sections/media");
        // The view page: an empty gallery and an upload form per collection.
        let (s, html, _) = panel_send(&app, admin, Method::GET, &page, None).await;
        assert_eq!(s, StatusCode::OK, "{b}: {html}");
        assert!(
            html.contains(&format!(
                "action=\"{action}\" enctype=\"multipart/form-data\""
            )),
            "{b}: {html}"
        );
        assert!(
            html.contains("accept=\"image/png,image/jpeg,image/webp\""),
            "{b}"
        );
        // Upload, without JavaScript: a redirect back with a message.
        let form = section_form(
            CSRF,
            &[("op", "upload"), ("collection", "images")],
            Some(("<b>shot<b>.png", &png(400, 200))),
        );
        let (s, body, location) = panel_send(&app, admin, Method::POST, &action, Some(form)).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{b}: {body}");
        assert_eq!(location.as_deref(), Some(page.as_str()), "{b}");
        let items = lib
            .list(
                &p,
                &Context::system(),
                &RecordRef::new("products", id),
                None,
            )
            .await
            .unwrap();
        assert_eq!(items.len(), 1, "{b}");
        assert_eq!(items[0].file_name, "_b_shot_b_.png", "{b}");
        // The gallery shows the thumbnail through a signed, relative URL.
        let (_, html, _) = panel_send(&app, admin, Method::GET, &page, None).await;
        assert!(
            html.contains("<img src=\"/files/public/media/product/"),
            "{b}: {html}"
        );
        assert!(html.contains("thumb.png?expires="), "{b}");
        assert!(!html.contains("<b>shot"), "{b}: unescaped name");
        // The edit page has it too, and posts come back to it.
        let (_, html, _) =
            panel_send(&app, admin, Method::GET, &format!("{page}/edit"), None).await;
        assert!(
            html.contains(&format!("action=\"{action}?from=edit\"")),
            "{b}"
        );
        // A wrong or missing CSRF token: refused, nothing stored.
        for csrf in ["forged", ""] {
            let form = section_form(
                csrf,
                &[("op", "upload"), ("collection", "images")],
                Some(("x.png", &png(8, 8))),
            );
            let (s, _, _) = panel_send(&app, admin, Method::POST, &action, Some(form)).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{b}: csrf {csrf:?}");
        }
        // A viewer sees the gallery without forms, and may not post.
        let (s, html, _) = panel_send(&app, viewer, Method::GET, &page, None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert!(
            html.contains("_b_shot_b_.png") && !html.contains("enctype=\"multipart/form-data\""),
            "{b}"
        );
        let form = section_form(
            CSRF,
            &[("op", "upload"), ("collection", "images")],
            Some(("v.png", &png(8, 8))),
        );
        let (s, _, _) = panel_send(&app, viewer, Method::POST, &action, Some(form)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        // A wrong type comes back as a message on the page.
        let form = section_form(
            CSRF,
            &[("op", "upload"), ("collection", "images")],
            Some(("evil.png", b"<script>alert(1)</script>")),
        );
        let (s, _, _) = panel_send(&app, admin, Method::POST, &action, Some(form)).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{b}");
        assert_eq!(
            lib.list(
                &p,
                &Context::system(),
                &RecordRef::new("products", id),
                None
            )
            .await
            .unwrap()
            .len(),
            1,
            "{b}"
        );
        // Remove.
        let media = items[0].id.to_string();
        let form = section_form(CSRF, &[("op", "delete"), ("media", &media)], None);
        let (s, _, _) = panel_send(&app, viewer, Method::POST, &action, Some(form.clone())).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, _, _) = panel_send(&app, admin, Method::POST, &action, Some(form)).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{b}");
        assert!(
            lib.list(
                &p,
                &Context::system(),
                &RecordRef::new("products", id),
                None
            )
            .await
            .unwrap()
            .is_empty(),
            "{b}"
        );
        assert!(!dir.join(&items[0].path).exists(), "{b}");
        p.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn the_panel_reorders_files_without_javascript() {
    for db in all_backends().await {
        let dir = temp_dir();
        let p = platform(&db, &dir).await;
        let b = db.backend.name();
        let lib = lib(&p);
        let app = platform_tests::panel::signed_in_by_header(
            Router::new().nest("/admin", platform_admin::panel_router()),
            &p,
            CSRF,
        );
        let admin = users::with_role(&p, "admin@example.com", Some(("super_admin", &[]))).await;
        let viewer = users::with_role(
            &p,
            "viewer@example.com",
            Some(("product_viewer", &["view_any_product", "view_product"])),
        )
        .await;
        let id = product(&p, "ORDER-1").await;
        let other = product(&p, "ORDER-2").await;
        let page = format!("/admin/products/{id}");
        let action = format!("{page}/sections/media");
        for name in ["a.png", "b.png", "c.png"] {
            let form = section_form(
                CSRF,
                &[("op", "upload"), ("collection", "images")],
                Some((name, &png(8, 8))),
            );
            let (s, body, _) = panel_send(&app, admin, Method::POST, &action, Some(form)).await;
            assert_eq!(s, StatusCode::SEE_OTHER, "{b}: {body}");
        }
        let names = || async {
            lib.list(
                &p,
                &Context::system(),
                &RecordRef::new("products", id),
                None,
            )
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.file_name, m.id.to_string()))
            .collect::<Vec<_>>()
        };
        let items = names().await;
        let order = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(order(&items), ["a.png", "b.png", "c.png"], "{b}");
        // The gallery offers the moves that make sense: none up for the
        // first, none down for the last.
        let (_, html, _) = panel_send(&app, admin, Method::GET, &page, None).await;
        assert!(!html.contains("aria-label=\"Move up a.png\""), "{b}");
        assert!(html.contains("aria-label=\"Move down a.png\""), "{b}");
        assert!(html.contains("aria-label=\"Move up c.png\""), "{b}");
        assert!(!html.contains("aria-label=\"Move down c.png\""), "{b}");
        let mv = |media: &str, dir: &str| {
            section_form(
                CSRF,
                &[("op", "move"), ("media", media), ("direction", dir)],
                None,
            )
        };
        // c up: a, c, b.
        let (s, _, location) = panel_send(
            &app,
            admin,
            Method::POST,
            &action,
            Some(mv(items[2].1.as_str(), "up")),
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{b}");
        assert_eq!(location.as_deref(), Some(page.as_str()), "{b}");
        assert_eq!(order(&names().await), ["a.png", "c.png", "b.png"], "{b}");
        // a down: c, a, b; a down again: c, b, a; then down at the end: kept.
        for _ in 0..3 {
            let (s, _, _) = panel_send(
                &app,
                admin,
                Method::POST,
                &action,
                Some(mv(items[0].1.as_str(), "down")),
            )
            .await;
            assert_eq!(s, StatusCode::SEE_OTHER, "{b}");
        }
        assert_eq!(order(&names().await), ["c.png", "b.png", "a.png"], "{b}");
        // Refused: a viewer (403), a bad direction (a message), a file
        // through another record's page (404), a forged token (403); the
        // order stays.
        let (s, _, _) = panel_send(
            &app,
            viewer,
            Method::POST,
            &action,
            Some(mv(items[1].1.as_str(), "up")),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, _, _) = panel_send(
            &app,
            admin,
            Method::POST,
            &action,
            Some(mv(items[1].1.as_str(), "sideways")),
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{b}");
        let foreign = format!("/admin/products/{other}/sections/media");
        let (s, _, _) = panel_send(
            &app,
            admin,
            Method::POST,
            &foreign,
            Some(mv(items[1].1.as_str(), "up")),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}: not a file of that record");
        let forged = section_form(
            "forged",
            &[
                ("op", "move"),
                ("media", items[1].1.as_str()),
                ("direction", "up"),
            ],
            None,
        );
        let (s, _, _) = panel_send(&app, admin, Method::POST, &action, Some(forged)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert_eq!(order(&names().await), ["c.png", "b.png", "a.png"], "{b}");
        p.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

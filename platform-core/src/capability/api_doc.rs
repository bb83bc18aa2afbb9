//! [`ApiDoc`]: how a capability's API routes appear in the API's OpenAPI
//! document (`/api/openapi.json`, rendered at `/api/docs`).

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::resource::ResourceMeta;

/// Makes the path items of one resource (see [`ApiDoc::each_resource`]).
type PerResource = Arc<dyn Fn(&ResourceDoc<'_>) -> Vec<(String, Value)> + Send + Sync>;

/// The OpenAPI 3.0 description of a capability's API routes, contributed
/// with [`Setup::api_doc`](super::Setup::api_doc) next to the routes
/// themselves. The API's document (`platform_admin::api::openapi`) adds
/// every contributed `ApiDoc` to its own paths, schemas and tags, so a
/// capability's routes are described exactly when the capability is added.
///
/// Paths are relative to the API's mount point (`/jobs/stats`, not
/// `/api/jobs/stats`), with `{param}` segments as in axum. Operations are
/// plain OpenAPI 3.0.3 operation objects; they may refer to the document's
/// shared components: the error responses (`#/components/responses/`
/// `BadRequest`, `Unauthorized`, `Forbidden`, `NotFound`, `Conflict`,
/// `PayloadTooLarge`, `UnsupportedMediaType`, `ValidationFailed`,
/// `InternalError`, `Unavailable`, `UriTooLong`; [`ApiDoc::responses`]
/// writes them), the `ApiError` schema and the `X-Request-Id` header, and
/// to the schemas the capability adds with [`ApiDoc::schema`].
///
/// ```
/// use platform_core::capability::{ApiDoc, Capability, Setup};
/// use serde_json::json;
///
/// struct Queue;
///
/// impl Capability for Queue {
///     fn name(&self) -> &'static str {
///         "queue"
///     }
///     fn setup(&self, setup: &mut Setup) {
///         // ... the routes themselves (`platform_admin::capability::ApiRoutes`)
///         setup.api_doc(
///             ApiDoc::new()
///                 .tag("queue", "The job queue")
///                 .schema("QueueSize", json!({ "type": "integer", "minimum": 0 }))
///                 .get("/queue/size", json!({
///                     "operationId": "queue_size",
///                     "summary": "Jobs waiting",
///                     "tags": ["queue"],
///                     "responses": ApiDoc::responses(
///                         [("200", ApiDoc::json_response("The count.", ApiDoc::schema_ref("QueueSize")))],
///                         [401, 403],
///                     ),
///                 })),
///         );
///     }
/// }
///
/// let mut setup = Setup::default();
/// setup.api_doc(ApiDoc::new().get("/queue/size", json!({ "responses": {} })));
/// assert_eq!(setup.contributions::<ApiDoc>()[0].paths()[0].0, "/queue/size");
/// ```
///
/// Routes that exist for every resource the API serves
/// (`/{plural}/export`) are described with [`ApiDoc::each_resource`],
/// which is given each resource's metadata, its list's query parameters
/// and its schema's name.
#[derive(Clone, Default)]
pub struct ApiDoc {
    paths: Vec<(String, Value)>,
    per_resource: Vec<PerResource>,
    schemas: Vec<(String, Value)>,
    tags: Vec<(String, String)>,
}

impl fmt::Debug for ApiDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiDoc")
            .field(
                "paths",
                &self.paths.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .field("per_resource", &self.per_resource.len())
            .field(
                "schemas",
                &self.schemas.iter().map(|(s, _)| s).collect::<Vec<_>>(),
            )
            .field("tags", &self.tags)
            .finish()
    }
}

/// What [`ApiDoc::each_resource`] is given about one resource the API
/// serves.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ResourceDoc<'a> {
    /// The resource.
    pub meta: &'static ResourceMeta,
    /// The query parameters of its list (`search`, `sort`, `filter[...]`,
    /// `page[...]`, `trashed`, `count`, `include`), as OpenAPI parameter
    /// objects.
    pub list_parameters: &'a [Value],
    /// The name of its record schema in `#/components/schemas/`
    /// (`Invoice`).
    pub schema: &'a str,
}

impl<'a> ResourceDoc<'a> {
    /// What the document knows of `meta`.
    pub fn new(meta: &'static ResourceMeta, list_parameters: &'a [Value], schema: &'a str) -> Self {
        Self {
            meta,
            list_parameters,
            schema,
        }
    }
}

impl ApiDoc {
    /// Describes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the operation `method` of `path` (a `parameters` entry sets
    /// the path item's common parameters instead).
    fn add(mut self, path: &str, method: &str, operation: Value) -> Self {
        let i = match self.paths.iter().position(|(p, _)| p == path) {
            Some(i) => i,
            None => {
                self.paths.push((path.to_owned(), json!({})));
                self.paths.len() - 1
            }
        };
        if let Value::Object(m) = &mut self.paths[i].1 {
            m.insert(method.to_owned(), operation);
        }
        self
    }
    /// The path item's parameters, shared by its operations (the path's
    /// `{param}` segments).
    pub fn path_parameters(self, path: &str, parameters: Value) -> Self {
        self.add(path, "parameters", parameters)
    }
    /// Describes `GET path`.
    pub fn get(self, path: &str, operation: Value) -> Self {
        self.add(path, "get", operation)
    }
    /// Describes `POST path`.
    pub fn post(self, path: &str, operation: Value) -> Self {
        self.add(path, "post", operation)
    }
    /// Describes `PUT path`.
    pub fn put(self, path: &str, operation: Value) -> Self {
        self.add(path, "put", operation)
    }
    /// Describes `PATCH path`.
    pub fn patch(self, path: &str, operation: Value) -> Self {
        self.add(path, "patch", operation)
    }
    /// Describes `DELETE path`.
    pub fn delete(self, path: &str, operation: Value) -> Self {
        self.add(path, "delete", operation)
    }
    /// Path items made for every resource the API serves: `make` returns
    /// `(path, path item)` pairs for a resource (none to leave it out).
    pub fn each_resource<F>(mut self, make: F) -> Self
    where
        F: Fn(&ResourceDoc<'_>) -> Vec<(String, Value)> + Send + Sync + 'static,
    {
        self.per_resource.push(Arc::new(make));
        self
    }
    /// A schema in `#/components/schemas/` (a name the document already
    /// has is kept, not replaced: prefix the capability's names).
    pub fn schema(mut self, name: impl Into<String>, schema: Value) -> Self {
        self.schemas.push((name.into(), schema));
        self
    }
    /// A tag of the document, for the operations' `tags`.
    pub fn tag(mut self, name: impl Into<String>, description: impl Into<String>) -> Self {
        self.tags.push((name.into(), description.into()));
        self
    }

    /// The path items, by path, in the order they were first described.
    pub fn paths(&self) -> &[(String, Value)] {
        &self.paths
    }
    /// The path items of `resource` ([`ApiDoc::each_resource`]).
    pub fn resource_paths(&self, resource: &ResourceDoc<'_>) -> Vec<(String, Value)> {
        self.per_resource.iter().flat_map(|f| f(resource)).collect()
    }
    /// The schemas.
    pub fn schemas(&self) -> &[(String, Value)] {
        &self.schemas
    }
    /// The tags: name and description.
    pub fn tags(&self) -> &[(String, String)] {
        &self.tags
    }

    /// `{"$ref": "#/components/schemas/<name>"}`.
    pub fn schema_ref(name: &str) -> Value {
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }
    /// A response with a JSON body of `schema`, and the `X-Request-Id`
    /// header every answer carries.
    pub fn json_response(description: &str, schema: Value) -> Value {
        json!({
            "description": description,
            "headers": { "X-Request-Id": { "$ref": "#/components/headers/X-Request-Id" } },
            "content": { "application/json": { "schema": schema } },
        })
    }
    /// A response without a body (`204`, `202`).
    pub fn empty_response(description: &str) -> Value {
        json!({
            "description": description,
            "headers": { "X-Request-Id": { "$ref": "#/components/headers/X-Request-Id" } },
        })
    }
    /// An operation's `responses`: the `ok` ones as given, and the shared
    /// error responses of the `errors` status codes (`400`, `401`, `403`,
    /// `404`, `409`, `413`, `415`, `422`), plus the ones any API route can
    /// answer (`414`, `500`, `503`). A status without a shared response is
    /// left out.
    pub fn responses<const N: usize, const E: usize>(
        ok: [(&str, Value); N],
        errors: [u16; E],
    ) -> Value {
        let mut m = Map::new();
        for (status, response) in ok {
            m.insert(status.to_owned(), response);
        }
        for status in errors.into_iter().chain([414, 500, 503]) {
            let name = match status {
                400 => "BadRequest",
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "NotFound",
                409 => "Conflict",
                413 => "PayloadTooLarge",
                414 => "UriTooLong",
                415 => "UnsupportedMediaType",
                422 => "ValidationFailed",
                500 => "InternalError",
                503 => "Unavailable",
                _ => continue,
            };
            m.insert(
                status.to_string(),
                json!({ "$ref": format!("#/components/responses/{name}") }),
            );
        }
        Value::Object(m)
    }
}

//! The web UI: the page at `/` and its assets at `/ui/{file}`, every byte embedded at build
//! time (our ES modules and stylesheet from `renderer/ui/`, graphology's and sigma's browser
//! bundles from `renderer/ui/node_modules`, checked for by `build.rs`), so the page works with
//! no network beyond this port. Its content security policy keeps it so: a script that tried to
//! reach another origin would be refused by the browser.

use axum::{
    Router,
    extract::Path,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        asset!($name, $name, $content_type)
    };
    ($name:literal, $path:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $path)),
        }
    };
}

const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

const ASSETS: &[Asset] = &[
    asset!("app.js", JAVASCRIPT),
    asset!("graph.js", JAVASCRIPT),
    asset!("layout.js", JAVASCRIPT),
    asset!("shapes.js", JAVASCRIPT),
    asset!("details.js", JAVASCRIPT),
    asset!("table.js", JAVASCRIPT),
    asset!("search.js", JAVASCRIPT),
    asset!("sql.js", JAVASCRIPT),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!(
        "graphology.umd.min.js",
        "node_modules/graphology/dist/graphology.umd.min.js",
        JAVASCRIPT
    ),
    asset!(
        "sigma.min.js",
        "node_modules/sigma/dist/sigma.min.js",
        JAVASCRIPT
    ),
];

/// Same origin only: the API, its websocket, and these assets.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// `GET /` and `GET /ui/{file}`, for any state: the UI reads nothing but the API.
pub(super) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { serve(&INDEX) }))
        .route("/ui/{file}", get(asset))
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == file) {
        Some(asset) => serve(asset),
        None => (StatusCode::NOT_FOUND, format!("no asset {file:?}")).into_response(),
    }
}

fn serve(asset: &'static Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            // A new binary may bring new assets: the browser asks again rather than mix two builds.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        asset.body,
    )
        .into_response()
}

//! The web UI's files as a browser fetches them from the renderer: the page at `/`, and every
//! script and stylesheet it names, followed through the modules' imports, each embedded and
//! served with its content type, with a content security policy that keeps the page on this
//! origin; and behind the token, as the API is. (The page at work in a browser:
//! scope/tests/ui.rs.)

mod common;

use common::served::{request, serve};
use scope_testkit::python_json;

/// Fetches `/` and what it references, transitively (`src`/`href` of the page, `from "./x"`
/// of the modules), as a browser would; prints, per path, its status and headers.
const CRAWL: &str = r#"
import json, re, sys, urllib.error, urllib.request
base = sys.argv[1]
def get(path):
    try:
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()
seen, todo, answers = set(), ["/"], {}
while todo:
    path = todo.pop()
    if path in seen:
        continue
    seen.add(path)
    status, headers, body = get(path)
    answers[path] = {"status": status, "type": headers.get("content-type"),
                     "csp": headers.get("content-security-policy"), "nosniff": headers.get("x-content-type-options")}
    refs = re.findall(r'(?:src|href)="(/[^"]*)"', body) if path == "/" else []
    refs += ["/ui/" + name for name in re.findall(r'from "\./([^"]+)"', body)] if path.endswith(".js") else []
    todo += refs
print(json.dumps(answers))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_page_and_everything_it_loads_are_served_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), None).await;
    let answers = tokio::task::block_in_place(|| python_json(CRAWL, &[&served.base]));
    let answers = answers.as_object().unwrap();
    // The page, its stylesheet, the two npm bundles, the entry module and the modules it
    // imports: a module missing from the embedded table would be a 404 here.
    for path in [
        "/",
        "/ui/style.css",
        "/ui/graphology.umd.min.js",
        "/ui/sigma.min.js",
        "/ui/app.js",
        "/ui/graph.js",
        "/ui/layout.js",
        "/ui/shapes.js",
        "/ui/details.js",
        "/ui/table.js",
        "/ui/search.js",
    ] {
        assert!(
            answers.contains_key(path),
            "{path} not reached: {answers:?}"
        );
    }
    for (path, answer) in answers {
        assert_eq!(answer["status"], 200, "{path}: {answer}");
        let wanted = match path.rsplit_once('.').map(|(_, ext)| ext) {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            _ => "text/html; charset=utf-8",
        };
        assert_eq!(answer["type"], wanted, "{path}: {answer}");
        assert_eq!(answer["nosniff"], "nosniff", "{path}: {answer}");
        let csp = answer["csp"].as_str().unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
            "{path}: {answer}"
        );
    }

    let (status, body) = request("GET", &format!("{}/ui/missing.js", served.base), &[], None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = request("GET", &format!("{}/ui/", served.base), &[], None);
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_loopback_the_page_wants_the_token_too() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), Some("s3cret")).await;
    let page = format!("{}/", served.base);
    let (status, _) = request("GET", &page, &[], None);
    assert_eq!(status, 401);
    // A browser asks for it as basic auth, and sends it with every later request.
    let (status, body) = request(
        "GET",
        &page,
        &[("Authorization", "Basic OnMzY3JldA==")],
        None,
    );
    assert_eq!(status, 200);
    assert!(body.contains("/ui/app.js"), "{body}");
}

/// The UI modules' own tests (`renderer/ui/tests/*.test.mjs`: the layout, the search syntax),
/// in Node as the browser runs the modules.
#[test]
fn the_ui_modules_pass_their_own_tests() {
    if !scope_testkit::postgres::client_available("node", &["--version"], "node") {
        return;
    }
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/ui/tests/");
    let out = std::process::Command::new("node")
        .args(["--test", tests])
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A file that ran no test would pass too.
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("# pass ") && !report.contains("# pass 0\n"),
        "{report}"
    );
}

//! docker-compose.yml cannot drift from the code: every service built from this repo has its
//! command line run against our binaries with `--check-config`.

mod support;

use std::path::Path;

use serde_yaml::Value;

#[test]
fn every_scope_service_command_is_accepted_by_its_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let compose: Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("docker-compose.yml")).unwrap())
            .expect("docker-compose.yml is YAML");
    let services = compose["services"].as_mapping().expect("services");
    let mut checked = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        if service.get("build").is_none() {
            continue; // not ours (the Kafka broker)
        }
        let command: Vec<String> = service["command"]
            .as_sequence()
            .unwrap_or_else(|| panic!("service {name}: command must be a list"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        // The service's environment as compose passes it, with `${VAR...}` interpolations
        // (values the operator supplies) standing in as a placeholder.
        let environment: Vec<(String, String)> = service
            .get("environment")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .map(|(key, value)| {
                let value = value.as_str().unwrap_or_default();
                let value = if value.starts_with("${") {
                    "compose-test"
                } else {
                    value
                };
                (key.as_str().unwrap().to_owned(), value.to_owned())
            })
            .collect();
        support::assert_config_accepted(&command, &environment, &format!("service {name}"));
        checked.push(name.to_owned());
    }
    checked.sort();
    assert_eq!(checked, ["collector", "merger", "renderer"]);
}

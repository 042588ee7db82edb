//! deploy/kubernetes/ cannot drift from the code: every container's command line is run
//! against our binaries with `--check-config`, in the environment the manifests give it,
//! and the cluster collector's RBAC grants reads of exactly what its watchers read.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use serde_yaml::Value;

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("deploy/kubernetes")
}

/// Every object of every manifest, with the file it is in.
fn objects() -> Vec<(String, Value)> {
    let mut objects = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifests_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        // Documents are separated by `---` lines.
        let mut documents = vec![String::new()];
        for line in text.lines() {
            if line.trim_end() == "---" {
                documents.push(String::new());
            } else {
                let document = documents.last_mut().unwrap();
                document.push_str(line);
                document.push('\n');
            }
        }
        for document in documents {
            let object: Value = serde_yaml::from_str(&document)
                .unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
            objects.push((name.clone(), object));
        }
    }
    objects
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => panic!("expected a string, got {other:?}"),
        })
        .collect()
}

#[test]
fn kustomization_lists_every_manifest() {
    let kustomization: Value = serde_yaml::from_str(
        &std::fs::read_to_string(manifests_dir().join("kustomization.yaml")).unwrap(),
    )
    .unwrap();
    let listed: BTreeSet<String> = strings(&kustomization["resources"]).into_iter().collect();
    let files: BTreeSet<String> = objects()
        .into_iter()
        .map(|(file, _)| file)
        .filter(|file| file != "kustomization.yaml")
        .collect();
    assert_eq!(listed, files);
    assert_eq!(kustomization["namespace"].as_str(), Some("scope"));
}

#[test]
fn every_container_command_is_accepted_by_its_binary() {
    let objects = objects();
    let config_maps: BTreeMap<&str, &Value> = objects
        .iter()
        .filter(|(_, o)| kind(o) == "ConfigMap")
        .map(|(_, o)| (name(o), &o["data"]))
        .collect();
    let mut checked = Vec::new();
    for (file, workload) in &objects {
        if !matches!(kind(workload), "Deployment" | "DaemonSet") {
            continue;
        }
        let workload_name = name(workload);
        for container in workload["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{file}: {workload_name} has no containers"))
        {
            let mut command = strings(&container["command"]);
            command.extend(strings(&container["args"]));
            // The environment as the kubelet gives it: ConfigMap keys resolved (they must
            // exist), values from the pod or a secret the operator creates as placeholders.
            let environment: Vec<(String, String)> = container["env"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|var| {
                    let key = var["name"].as_str().unwrap().to_owned();
                    let from = &var["valueFrom"];
                    let value = if let Some(value) = var["value"].as_str() {
                        value.to_owned()
                    } else if let Some(reference) = from.get("configMapKeyRef") {
                        let map = reference["name"].as_str().unwrap();
                        let map_key = reference["key"].as_str().unwrap();
                        config_maps
                            .get(map)
                            .and_then(|data| data[map_key].as_str())
                            .unwrap_or_else(|| {
                                panic!(
                                    "{file}: {key} names {map}/{map_key}, which no manifest defines"
                                )
                            })
                            .to_owned()
                    } else if from.get("fieldRef").is_some() || from.get("secretKeyRef").is_some() {
                        "kubernetes-test".to_owned()
                    } else {
                        panic!("{file}: {key} has no value the test understands: {var:?}")
                    };
                    (key, value)
                })
                .collect();
            support::assert_config_accepted(
                &command,
                &environment,
                &format!("{file}: {workload_name}"),
            );
            checked.push(workload_name.to_owned());
        }
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "scope-cluster-collector",
            "scope-collector",
            "scope-merger",
            "scope-renderer"
        ]
    );
}

/// What the cluster collector's watchers list and watch (collector/src/kubernetes/watch.rs),
/// as (API group, resource).
const WATCHED: [(&str, &str); 10] = [
    ("", "pods"),
    ("", "services"),
    ("", "namespaces"),
    ("", "nodes"),
    ("apps", "replicasets"),
    ("apps", "deployments"),
    ("apps", "daemonsets"),
    ("apps", "statefulsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
];

#[test]
fn the_cluster_collector_may_only_read_what_it_watches() {
    let objects = objects();
    let find = |wanted_kind: &str, wanted_name: &str| {
        objects
            .iter()
            .map(|(_, o)| o)
            .find(|o| kind(o) == wanted_kind && name(o) == wanted_name)
            .unwrap_or_else(|| panic!("no {wanted_kind} {wanted_name}"))
    };
    let mut granted = BTreeSet::new();
    for (_, role) in objects.iter().filter(|(_, o)| kind(o).ends_with("Role")) {
        for rule in role["rules"].as_sequence().unwrap() {
            let verbs: BTreeSet<String> = strings(&rule["verbs"]).into_iter().collect();
            assert!(
                verbs
                    .iter()
                    .all(|v| ["get", "list", "watch"].contains(&v.as_str())),
                "{} grants {verbs:?}: only get, list and watch are needed",
                name(role)
            );
            assert!(
                verbs.contains("list") && verbs.contains("watch"),
                "{rule:?}"
            );
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    granted.insert((group.clone(), resource));
                }
            }
        }
    }
    let watched: BTreeSet<(String, String)> = WATCHED
        .iter()
        .map(|(g, r)| ((*g).to_owned(), (*r).to_owned()))
        .collect();
    assert_eq!(granted, watched);

    // The role is bound to the account the cluster collector runs as, and to nothing else.
    let binding = find("ClusterRoleBinding", "scope-cluster-collector");
    assert_eq!(
        binding["roleRef"]["name"].as_str(),
        Some("scope-cluster-collector")
    );
    let subjects = binding["subjects"].as_sequence().unwrap();
    assert_eq!(subjects.len(), 1);
    let deployment = find("Deployment", "scope-cluster-collector");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], subjects[0]["name"]);
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(1));
    let args = strings(&pod["containers"][0]["args"]);
    assert!(
        args.windows(2).any(|w| w == ["--role", "cluster"]),
        "{args:?}"
    );
    // No other workload can talk to the API server.
    for (_, workload) in objects
        .iter()
        .filter(|(_, o)| matches!(kind(o), "Deployment" | "DaemonSet"))
    {
        if name(workload) != "scope-cluster-collector" {
            let pod = &workload["spec"]["template"]["spec"];
            assert_eq!(
                pod["automountServiceAccountToken"].as_bool(),
                Some(false),
                "{}",
                name(workload)
            );
        }
    }
}

#[test]
fn the_node_collector_sees_its_host() {
    let objects = objects();
    let daemon_set = objects
        .iter()
        .map(|(_, o)| o)
        .find(|o| kind(o) == "DaemonSet")
        .unwrap();
    let pod = &daemon_set["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    let container = &pod["containers"][0];
    assert_eq!(
        container["securityContext"]["privileged"].as_bool(),
        Some(true)
    );
    let host_id = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some("SCOPE_HOST_ID"))
        .expect("SCOPE_HOST_ID is set");
    assert_eq!(
        host_id["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("spec.nodeName")
    );
    // Every host path is mounted read-only, and /proc where --proc-root says.
    let host_volumes: BTreeMap<&str, &str> = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?, v["hostPath"]["path"].as_str()?)))
        .collect();
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    for mount in mounts {
        let volume = mount["name"].as_str().unwrap();
        assert!(
            host_volumes.contains_key(volume),
            "{volume} is not a host path"
        );
        assert_eq!(
            mount["readOnly"].as_bool(),
            Some(true),
            "{volume} is writable"
        );
    }
    let args = strings(&container["args"]);
    let proc_root = &args[args.iter().position(|a| a == "--proc-root").unwrap() + 1];
    assert!(mounts.iter().any(|m| {
        m["mountPath"].as_str() == Some(proc_root.as_str())
            && host_volumes[m["name"].as_str().unwrap()] == "/proc"
    }));

    // The renderer's API and Postgres ports are served.
    let service = objects
        .iter()
        .map(|(_, o)| o)
        .find(|o| kind(o) == "Service" && name(o) == "scope-renderer")
        .unwrap();
    let ports: BTreeSet<u64> = service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, BTreeSet::from([4040, 5433]));
}

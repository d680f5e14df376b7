//! The Kubernetes manifests in `deploy/kubernetes/` (docs/operations.md#kubernetes):
//!
//! * the core objects (ConfigMap, Deployment, Service) validate with PyPI's
//!   `kubernetes-validate` in strict mode (unknown fields refused) against the oldest and
//!   the newest Kubernetes it knows, installed into `target/k8s-venv` on first use;
//! * the ServiceMonitor, a Prometheus Operator CRD that tool has no schema for, is checked
//!   here: its kind, its selector matching the Service, its endpoint naming the Service's
//!   port and scraping `/metrics` at the poll interval;
//! * the ConfigMap's `config.toml` is a valid tidemark configuration, and its listen port
//!   (the code's default, set nowhere in the manifests' config) is the port the container
//!   declares, the probes and the Service's target resolve to;
//! * the probe and scrape paths are what tidemark serves: its HTTP server, started here on
//!   that configuration, answers `/health` and `/metrics` with 200 and `/ready` with 503
//!   before any cycle (and an unknown path with 404);
//! * the pod runs as the image's user (docker/Dockerfile `USER`), non-root, with a
//!   read-only root filesystem, no privilege escalation and every capability dropped, and
//!   mounts the configuration where the image's entrypoint reads it.
//!
//! YAML is read through the venv's PyYAML (a dependency of kubernetes-validate) into JSON.

use tidemark_testkit as common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tidemark::config::{self, Config, ExporterConfig};

const VALIDATOR: &str = "kubernetes-validate==1.37.0";
/// The oldest and the newest Kubernetes versions kubernetes-validate 1.37.0 has schemas for.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];
/// The objects kubernetes-validate has schemas for.
const CORE: [&str; 3] = ["configmap.yaml", "deployment.yaml", "service.yaml"];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

fn python() -> PathBuf {
    common::venv::python("k8s-venv", &[VALIDATOR])
}

/// The one YAML document of `file` as JSON.
fn manifest(file: &str) -> Value {
    let path = dir().join(file);
    let out = Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(&path)
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    match <[Value; 1]>::try_from(docs) {
        Ok([doc]) => doc,
        Err(docs) => panic!("{file}: {} documents, expected one", docs.len()),
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

fn int_at(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("no integer at {pointer} in {v}"))
}

fn bool_at(v: &Value, pointer: &str) -> bool {
    v.pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or_else(|| panic!("no boolean at {pointer} in {v}"))
}

/// Whether every label of `selector` is in `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let (Some(selector), Some(labels)) = (selector.as_object(), labels.as_object()) else {
        return false;
    };
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The ConfigMap's config.toml, parsed by tidemark itself.
fn configuration() -> Config {
    let configmap = manifest("configmap.yaml");
    let text = str_at(&configmap, "/data/config.toml");
    config::parse(text, "configmap.yaml config.toml", &|_| None)
        .unwrap_or_else(|e| panic!("the ConfigMap's config.toml is not valid: {e}"))
}

/// The container's port number behind `port` (a number or a port name).
fn resolve(container: &Value, port: &Value) -> i64 {
    if let Some(n) = port.as_i64() {
        return n;
    }
    let name = port.as_str().expect("port is a number or a name");
    let ports = container["ports"].as_array().expect("container ports");
    let found = ports.iter().find(|p| p["name"] == name);
    int_at(
        found.unwrap_or_else(|| panic!("no container port named {name}")),
        "/containerPort",
    )
}

#[test]
fn core_objects_validate_strictly() {
    let python = python();
    for version in KUBERNETES_VERSIONS {
        let out = Command::new(&python)
            .args(["-m", "kubernetes_validate", "--strict", "-k", version])
            .args(CORE.iter().map(|f| dir().join(f)))
            .output()
            .expect("running kubernetes-validate");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "Kubernetes {version}:\n{text}");
        // A kind without a schema is only a warning: each file must have passed.
        assert!(!text.contains("WARN"), "Kubernetes {version}:\n{text}");
        for file in CORE {
            assert!(
                text.lines()
                    .any(|l| l.contains(file) && l.contains("passed")),
                "{file} not validated against {version}:\n{text}"
            );
        }
    }
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let kustomization = manifest("kustomization.yaml");
    let listed: BTreeSet<&str> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(dir())
        .expect("deploy/kubernetes")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    let present: BTreeSet<&str> = present.iter().map(String::as_str).collect();
    assert_eq!(listed, present);
}

#[test]
fn ports_and_probes_are_the_ones_tidemark_listens_on() {
    let config = configuration();
    let defaults = ExporterConfig::default();
    // The manifests' config leaves the listener at tidemark's defaults: all addresses (so
    // the kubelet and the Service reach it) and the code's default port.
    assert_eq!(config.exporter.http_host, "0.0.0.0");
    assert_eq!(config.exporter.http_port, defaults.http_port);
    let port = i64::from(config.exporter.http_port);

    let deployment = manifest("deployment.yaml");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let declared: Vec<i64> = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| int_at(p, "/containerPort"))
        .collect();
    assert_eq!(declared, [port]);
    let liveness = &container["livenessProbe"]["httpGet"];
    let readiness = &container["readinessProbe"]["httpGet"];
    assert_eq!(str_at(liveness, "/path"), "/health");
    assert_eq!(str_at(readiness, "/path"), "/ready");
    assert_eq!(resolve(container, &liveness["port"]), port);
    assert_eq!(resolve(container, &readiness["port"]), port);

    let service = manifest("service.yaml");
    let service_ports = service["spec"]["ports"].as_array().expect("service ports");
    assert_eq!(service_ports.len(), 1);
    assert_eq!(resolve(container, &service_ports[0]["targetPort"]), port);
    assert!(
        selects(
            &service["spec"]["selector"],
            &deployment["spec"]["template"]["metadata"]["labels"]
        ),
        "the Service does not select the Deployment's pods"
    );
    assert!(selects(
        &deployment["spec"]["selector"]["matchLabels"],
        &deployment["spec"]["template"]["metadata"]["labels"]
    ));
}

#[test]
fn the_service_monitor_scrapes_the_service() {
    let monitor = manifest("servicemonitor.yaml");
    let service = manifest("service.yaml");
    assert_eq!(str_at(&monitor, "/apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(str_at(&monitor, "/kind"), "ServiceMonitor");
    assert_eq!(
        str_at(&monitor, "/metadata/name"),
        str_at(&service, "/metadata/name")
    );
    let spec = monitor["spec"].as_object().expect("spec");
    let known: BTreeSet<&str> = ["selector", "endpoints", "namespaceSelector", "jobLabel"].into();
    for key in spec.keys() {
        assert!(known.contains(key.as_str()), "unexpected spec.{key}");
    }
    assert!(
        selects(
            &monitor["spec"]["selector"]["matchLabels"],
            &service["metadata"]["labels"]
        ),
        "the ServiceMonitor does not select the Service"
    );
    let endpoints = monitor["spec"]["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    let fields: BTreeSet<&str> = ["port", "path", "interval", "scrapeTimeout", "scheme"].into();
    for key in endpoint.as_object().expect("endpoint").keys() {
        assert!(
            fields.contains(key.as_str()),
            "unexpected endpoint field {key}"
        );
    }
    // The endpoint names a port of the Service (the operator matches by name).
    let port_names: Vec<&str> = service["spec"]["ports"]
        .as_array()
        .expect("service ports")
        .iter()
        .map(|p| str_at(p, "/name"))
        .collect();
    assert!(port_names.contains(&str_at(endpoint, "/port")));
    assert_eq!(str_at(endpoint, "/path"), "/metrics");
    // Scraped as often as tidemark reads Kafka, within a scrape timeout shorter than that.
    let interval = config::parse_duration(str_at(endpoint, "/interval")).expect("interval");
    let timeout = config::parse_duration(str_at(endpoint, "/scrapeTimeout")).expect("timeout");
    assert_eq!(interval, configuration().exporter.poll_interval);
    assert!(timeout < interval);
}

#[test]
fn the_pod_runs_unprivileged_as_the_images_user() {
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/Dockerfile"))
            .expect("docker/Dockerfile");
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the Dockerfile");
    let (uid, gid) = user.trim().split_once(':').expect("USER uid:gid");
    let entrypoint = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint).expect("exec-form ENTRYPOINT");
    let config_path = entrypoint
        .iter()
        .skip_while(|a| *a != "-c")
        .nth(1)
        .expect("-c FILE in the ENTRYPOINT");

    let deployment = manifest("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(int_at(pod, "/securityContext/runAsUser").to_string(), uid);
    assert_eq!(int_at(pod, "/securityContext/runAsGroup").to_string(), gid);
    assert!(bool_at(pod, "/securityContext/runAsNonRoot"));
    assert!(bool_at(container, "/securityContext/runAsNonRoot"));
    assert!(bool_at(
        container,
        "/securityContext/readOnlyRootFilesystem"
    ));
    assert!(!bool_at(
        container,
        "/securityContext/allowPrivilegeEscalation"
    ));
    assert!(!bool_at(container, "/securityContext/privileged"));
    let dropped = &container["securityContext"]["capabilities"]["drop"];
    assert_eq!(dropped, &serde_json::json!(["ALL"]));
    assert!(container["command"].is_null() && container["args"].is_null());
    for what in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            str_at(container, &format!("/resources/{what}/{resource}"));
        }
    }

    // The ConfigMap's config.toml is mounted at the path the entrypoint reads.
    let mount = &container["volumeMounts"][0];
    assert!(bool_at(mount, "/readOnly"));
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    assert_eq!(
        str_at(volume, "/configMap/name"),
        str_at(&manifest("configmap.yaml"), "/metadata/name")
    );
    let item = &volume["configMap"]["items"][0];
    assert_eq!(str_at(item, "/key"), "config.toml");
    let mounted = format!(
        "{}/{}",
        str_at(mount, "/mountPath").trim_end_matches('/'),
        str_at(item, "/path")
    );
    assert_eq!(&mounted, config_path);
}

/// `GET path` on a fresh connection: the status code.
fn status(address: SocketAddr, path: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: tidemark\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let head = String::from_utf8_lossy(&response);
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line for {path}: {head:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_probed_and_scraped_paths_are_served() {
    let config = configuration();
    let deployment = manifest("deployment.yaml");
    let monitor = manifest("servicemonitor.yaml");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let liveness = str_at(container, "/livenessProbe/httpGet/path").to_owned();
    let readiness = str_at(container, "/readinessProbe/httpGet/path").to_owned();
    let scraped = str_at(&monitor, "/spec/endpoints/0/path").to_owned();

    let clusters: Vec<(String, Vec<(String, String)>)> = config
        .clusters
        .iter()
        .map(|c| (c.name.clone(), c.labels.clone().into_iter().collect()))
        .collect();
    let state = tidemark::state::ExporterState::new(&clusters, config.exporter.granularity);
    // Port 0: the test must not depend on the configured port being free here.
    let (address, _stop) = common::exporter::serve_state(state).await;

    let got = tokio::task::spawn_blocking(move || {
        [
            status(address, &liveness),
            status(address, &scraped),
            // No cycle has run: served, and not ready yet.
            status(address, &readiness),
            status(address, "/no-such-path"),
        ]
    })
    .await
    .expect("requests");
    assert_eq!(got, [200, 200, 503, 404]);
}

//! The in-cluster deployment (`deploy/`), as `kubectl kustomize` renders it: least privilege
//! (get/list/watch on the watched kinds only) and pod hardening asserted on the rendered output,
//! so a later edit of the base or an overlay cannot quietly widen them; the shipped configs pass
//! `check-config`; the manifests validate against the Kubernetes schemas when
//! `kubernetes-validate` is available.

use serde::Deserialize;
use serde_yaml::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_accessdrift");
const DIRS: [&str; 2] = ["base", "overlays/example"];
const WATCHED: [&str; 5] = [
    "clusterrolebindings",
    "rolebindings",
    "clusterroles",
    "roles",
    "serviceaccounts",
];

fn deploy(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(dir)
}

/// `kubectl kustomize DIR`: (the YAML text, its documents).
fn render(dir: &str) -> (String, Vec<Value>) {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy(dir))
        .output()
        .unwrap_or_else(|e| {
            panic!("running `kubectl kustomize` ({e}): install kubectl (it bundles kustomize)")
        });
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/{dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect();
    (text, docs)
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let v = of_kind(docs, kind);
    assert_eq!(v.len(), 1, "exactly one {kind}");
    v[0]
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn rbac_is_read_only_on_the_watched_kinds_for_the_daemon_only() {
    for dir in DIRS {
        let (_, docs) = render(dir);
        for k in ["Role", "RoleBinding"] {
            assert!(of_kind(&docs, k).is_empty(), "{dir}: no {k} is needed");
        }
        let role = one(&docs, "ClusterRole");
        for rule in role["rules"].as_sequence().unwrap() {
            for verb in strs(&rule["verbs"]) {
                assert!(
                    matches!(verb, "get" | "list" | "watch"),
                    "{dir}: verb {verb} is more than read"
                );
            }
            for r in strs(&rule["resources"]) {
                assert!(WATCHED.contains(&r), "{dir}: {r} is not a watched kind");
            }
            for g in strs(&rule["apiGroups"]) {
                assert!(
                    matches!(g, "" | "rbac.authorization.k8s.io"),
                    "{dir}: group {g}"
                );
            }
            assert!(rule["resourceNames"].is_null() && rule["nonResourceURLs"].is_null());
        }
        let binding = one(&docs, "ClusterRoleBinding");
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
        let subjects = binding["subjects"].as_sequence().unwrap();
        assert_eq!(subjects.len(), 1, "{dir}");
        assert_eq!(subjects[0]["kind"], "ServiceAccount");
        assert_eq!(subjects[0]["name"], "accessdrift");
        assert_eq!(subjects[0]["namespace"], "accessdrift");
    }
}

#[test]
fn the_pod_is_hardened_single_writer_and_probed() {
    for dir in DIRS {
        let (text, docs) = render(dir);
        let d = one(&docs, "Deployment");
        assert_eq!(d["metadata"]["namespace"], "accessdrift");
        assert_eq!(d["spec"]["replicas"], 1, "{dir}: one store writer");
        assert_eq!(d["spec"]["strategy"]["type"], "Recreate", "{dir}");
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "accessdrift");
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"],
            "true"
        );
        for host in ["hostNetwork", "hostPID", "hostIPC"] {
            assert!(pod[host].is_null() || pod[host] == false, "{dir}: {host}");
        }
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true, "{dir}");
        assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault", "{dir}");
        let containers = pod["containers"].as_sequence().unwrap();
        assert_eq!(containers.len(), 1);
        let c = &containers[0];
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{dir}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{dir}");
        assert!(sc["privileged"].is_null() || sc["privileged"] == false);
        assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"], "{dir}");
        assert!(
            sc["capabilities"]["add"].is_null(),
            "{dir}: no capability added"
        );
        for kind in ["requests", "limits"] {
            for res in ["cpu", "memory"] {
                assert!(!c["resources"][kind][res].is_null(), "{dir}: {kind}.{res}");
            }
        }
        let port = c["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "http-metrics")
            .expect("a named metrics port");
        assert_eq!(port["containerPort"], 9464);
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http-metrics");
        // The database lives on the claim; the root filesystem stays read-only.
        let claim = pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
            .expect("a PVC volume");
        assert_eq!(
            one(&docs, "PersistentVolumeClaim")["metadata"]["name"],
            claim
        );
        // Secrets are referenced, never embedded.
        assert!(
            of_kind(&docs, "Secret").is_empty(),
            "{dir}: a Secret in the manifests"
        );
        for e in c["env"].as_sequence().unwrap() {
            let name = e["name"].as_str().unwrap();
            if ["PASSWORD", "SECRET", "CONNECTION", "KEY"]
                .iter()
                .any(|s| name.contains(s))
            {
                assert!(e["value"].is_null(), "{dir}: {name} has an inline value");
                assert!(!e["valueFrom"]["secretKeyRef"].is_null(), "{dir}: {name}");
            }
        }
        // Metrics are scraped from the port the daemon serves them on.
        let svc = one(&docs, "Service");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http-metrics");
        let sm = one(&docs, "ServiceMonitor");
        assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
        assert_eq!(
            sm["spec"]["endpoints"][0]["port"],
            svc["spec"]["ports"][0]["name"]
        );
        for (k, v) in sm["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
            assert_eq!(
                &svc["metadata"]["labels"][k], v,
                "{dir}: ServiceMonitor selects the Service"
            );
        }
        let np = one(&docs, "NetworkPolicy");
        assert_eq!(
            strs(&np["spec"]["policyTypes"]),
            ["Ingress", "Egress"],
            "{dir}"
        );
        assert!(!text.contains("privileged: true"));
        assert_eq!(
            one(&docs, "PrometheusRule")["metadata"]["namespace"],
            "accessdrift"
        );
    }
}

#[test]
fn the_shipped_configs_pass_check_config_and_the_overlay_sets_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    for d in DIRS {
        let (_, docs) = render(d);
        let cm = one(&docs, "ConfigMap");
        let toml = cm["data"]["accessdrift.toml"]
            .as_str()
            .expect("accessdrift.toml in the ConfigMap");
        let path = dir.path().join(format!("{}.toml", d.replace('/', "-")));
        std::fs::write(&path, toml).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .arg("check-config")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "deploy/{d}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let effective = String::from_utf8_lossy(&out.stdout);
        assert!(
            effective.contains("listen = \"0.0.0.0:9464\""),
            "{effective}"
        );
        assert!(
            effective.contains("path = \"/var/lib/accessdrift/accessdrift.db\""),
            "{effective}"
        );
        // The Deployment mounts the ConfigMap it renders.
        let dep = one(&docs, "Deployment");
        let vols = dep["spec"]["template"]["spec"]["volumes"]
            .as_sequence()
            .unwrap();
        assert!(
            vols.iter()
                .any(|v| v["configMap"]["name"] == cm["metadata"]["name"]),
            "{d}"
        );
    }
    let (_, docs) = render("overlays/example");
    let sa = one(&docs, "ServiceAccount");
    let client = sa["metadata"]["annotations"]["azure.workload.identity/client-id"]
        .as_str()
        .unwrap();
    assert_ne!(client, "00000000-0000-0000-0000-000000000000");
    let dep = one(&docs, "Deployment");
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    assert!(c["image"]
        .as_str()
        .unwrap()
        .starts_with("myregistry.azurecr.io/accessdrift:"));
    assert!(c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT"));
}

/// Schema validation with `kubernetes-validate` (PyPI): `.ci/run` installs it into a virtualenv
/// and sets `KUBERNETES_VALIDATE`; elsewhere it is used from PATH when present.
#[test]
fn rendered_manifests_validate_against_the_kubernetes_schemas() {
    let tool =
        std::env::var("KUBERNETES_VALIDATE").unwrap_or_else(|_| "kubernetes-validate".into());
    if Command::new(&tool).arg("--version").output().is_err() {
        eprintln!("kubernetes-validate not found ({tool}): schema validation not run here; .ci/run runs it");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for d in DIRS {
        let (_, docs) = render(d);
        // The Prometheus Operator kinds are CRDs: no built-in schema to check them against.
        let core: Vec<String> = docs
            .iter()
            .filter(|v| {
                !v["apiVersion"]
                    .as_str()
                    .unwrap()
                    .starts_with("monitoring.coreos.com/")
            })
            .map(|v| serde_yaml::to_string(v).unwrap())
            .collect();
        let path = dir.path().join(format!("{}.yaml", d.replace('/', "-")));
        std::fs::write(&path, core.join("---\n")).unwrap();
        let out = Command::new(&tool)
            .args(["--strict", "--quiet", "-k", "1.33.0"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "deploy/{d} does not validate:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `deploy/azure/*.bicep`: compiled with `bicep build` when a Bicep compiler is on PATH (not
/// on the development machines); always linted as text for what it must and must not grant.
#[test]
fn azure_bicep_streams_the_activity_log_and_grants_receive_only() {
    let dir = deploy("azure");
    let main = std::fs::read_to_string(dir.join("main.bicep")).unwrap();
    let hub = std::fs::read_to_string(dir.join("eventhub.bicep")).unwrap();
    let audit = std::fs::read_to_string(dir.join("aks-audit.bicep")).unwrap();
    for (name, text) in [
        ("main.bicep", &main),
        ("eventhub.bicep", &hub),
        ("aks-audit.bicep", &audit),
    ] {
        // Cheap syntax check: balanced braces, brackets, parentheses and quotes outside the
        // (whole-line) comments.
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let unescaped = code.replace("\\'", "");
        for (open, close) in [('{', '}'), ('[', ']'), ('(', ')')] {
            assert_eq!(
                unescaped.matches(open).count(),
                unescaped.matches(close).count(),
                "{name}: unbalanced {open}{close}"
            );
        }
        assert_eq!(
            unescaped.matches('\'').count() % 2,
            0,
            "{name}: unbalanced quotes"
        );
    }
    let types: Vec<&str> = [&main, &hub, &audit]
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(|l| l.trim_start().strip_prefix("resource "))
        .filter_map(|l| l.split('\'').nth(1))
        .map(|t| t.split('@').next().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Microsoft.Resources/resourceGroups",
            "Microsoft.Insights/diagnosticSettings",
            "Microsoft.Authorization/roleAssignments",
            "Microsoft.EventHub/namespaces",
            "Microsoft.EventHub/namespaces/eventhubs",
            "Microsoft.EventHub/namespaces/eventhubs/consumergroups",
            "Microsoft.EventHub/namespaces/authorizationRules",
            "Microsoft.ManagedIdentity/userAssignedIdentities",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
            "Microsoft.Authorization/roleAssignments",
            // The cluster's audit log: an existing cluster, its diagnostic setting.
            "Microsoft.ContainerService/managedClusters",
            "Microsoft.Insights/diagnosticSettings",
        ]
    );
    // The cluster's setting sends kube-audit-admin only (not kube-audit: every get and list),
    // to the hub the daemon reads, and main deploys it only when a cluster is named.
    assert!(audit.contains("category: 'kube-audit-admin'"));
    assert_eq!(audit.matches("category:").count(), 1);
    assert!(audit.contains("existing = {") && audit.contains("scope: cluster\n"));
    assert!(main.contains("module kubeAudit 'aks-audit.bicep' = if (!empty(clusterName))"));
    assert!(main.contains("hubName: hubName"));
    // Two role assignments: Azure Event Hubs Data Receiver scoped to the hub, and Reader on
    // the subscription (the inventory). No other role id: nothing that can write.
    assert!(hub.contains("var dataReceiverRoleId = 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'"));
    assert!(hub.contains("scope: hub\n"));
    assert!(main.contains("var readerRoleId = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'"));
    let guid_like = |t: &str| {
        t.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
            .filter(|w| w.len() == 36 && w.matches('-').count() == 4)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let mut ids = guid_like(&main);
    ids.extend(guid_like(&hub));
    ids.extend(guid_like(&audit));
    assert_eq!(
        ids,
        [
            "acdd72a7-3385-48ef-bd42-f606fba81ae7",
            "a638d3c7-ab3a-418d-83e6-5f17a39d4fde"
        ],
        "only Reader and the receiver role"
    );
    // The Administrative category only, to the hub the daemon reads.
    assert!(main.contains("category: 'Administrative'"));
    assert_eq!(main.matches("category:").count(), 1);
    // The federated credential trusts exactly the service account deploy/base creates.
    let (_, docs) = render("base");
    let sa = one(&docs, "ServiceAccount");
    assert!(main.contains(&format!(
        "param serviceAccountNamespace string = '{}'",
        sa["metadata"]["namespace"].as_str().unwrap()
    )));
    assert!(main.contains(&format!(
        "param serviceAccountName string = '{}'",
        sa["metadata"]["name"].as_str().unwrap()
    )));
    assert!(
        main.contains("'system:serviceaccount:${serviceAccountNamespace}:${serviceAccountName}'")
    );
    assert!(hub.contains("'api://AzureADTokenExchange'"));
    assert!(!main.contains("consumerGroupName string = '$Default'"));

    let compiler = ["bicep", "az"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok());
    match compiler {
        None => {
            eprintln!("no Bicep compiler (bicep, az) on PATH: deploy/azure linted as text only")
        }
        Some(c) => {
            let mut cmd = Command::new(c);
            if c == "az" {
                cmd.arg("bicep");
            }
            let out = cmd
                .arg("build")
                .arg("--stdout")
                .arg(dir.join("main.bicep"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

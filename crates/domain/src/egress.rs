//! Egress classification: where data can leave the organisation, from a rule table over the
//! destination's kind and endpoint host. The first matching rule decides, and its id is kept on
//! the path.
//!
//! | order | rule id | matches | class |
//! |---|---|---|---|
//! | 1 | `destination.egress` | the connector set the class explicitly | that class |
//! | 2 | `host.internal:<suffix>` | host ends with one of the tenant's internal suffixes (policy) | `internal` |
//! | 3 | `host.llm:<pattern>` | a model provider's API host | `llm_api` |
//! | 4 | `host.storage:<pattern>` | a cloud object storage host | `cloud_storage` |
//! | 5 | `host.saas:<pattern>` | Microsoft Graph, Azure Resource Manager, ServiceNow | `internal` |
//! | 6 | `kind:<kind>` | by kind: model deployments `llm_api`; storage `cloud_storage`; HTTP endpoints `external_http`; anything else `internal` | |

use crate::model::{Destination, DestinationKind, EgressClass};
use crate::policy::Policy;

/// Host patterns: `*.suffix` matches any subdomain, anything else matches exactly.
const HOST_RULES: &[(&str, &str, EgressClass)] = &[
    ("host.llm", "*.openai.azure.com", EgressClass::LlmApi),
    ("host.llm", "*.cognitiveservices.azure.com", EgressClass::LlmApi),
    ("host.llm", "*.services.ai.azure.com", EgressClass::LlmApi),
    ("host.llm", "api.openai.com", EgressClass::LlmApi),
    ("host.llm", "api.anthropic.com", EgressClass::LlmApi),
    ("host.llm", "generativelanguage.googleapis.com", EgressClass::LlmApi),
    ("host.llm", "bedrock-runtime.*", EgressClass::LlmApi),
    ("host.storage", "*.blob.core.windows.net", EgressClass::CloudStorage),
    ("host.storage", "*.dfs.core.windows.net", EgressClass::CloudStorage),
    ("host.storage", "*.file.core.windows.net", EgressClass::CloudStorage),
    ("host.storage", "*.s3.amazonaws.com", EgressClass::CloudStorage),
    ("host.storage", "storage.googleapis.com", EgressClass::CloudStorage),
    ("host.saas", "graph.microsoft.com", EgressClass::Internal),
    ("host.saas", "management.azure.com", EgressClass::Internal),
    ("host.saas", "*.service-now.com", EgressClass::Internal),
];

fn host_matches(host: &str, pattern: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if let Some(suffix) = pattern.strip_prefix("*.") {
        host.ends_with(&format!(".{suffix}"))
    } else if let Some(prefix) = pattern.strip_suffix(".*") {
        host.starts_with(&format!("{prefix}."))
    } else {
        host == pattern
    }
}

/// The egress class of a destination and the id of the rule that decided it.
pub fn classify(destination: &Destination, policy: &Policy) -> (EgressClass, String) {
    if let Some(egress) = destination.egress {
        return (egress, "destination.egress".to_string());
    }
    if let Some(host) = destination.host.as_deref() {
        for suffix in &policy.internal_host_suffixes {
            let suffix = suffix.trim_start_matches("*.").trim_start_matches('.').to_ascii_lowercase();
            if host_matches(host, &suffix) || host_matches(host, &format!("*.{suffix}")) {
                return (EgressClass::Internal, format!("host.internal:{suffix}"));
            }
        }
        for (rule, pattern, class) in HOST_RULES {
            if host_matches(host, pattern) {
                return (*class, format!("{rule}:{pattern}"));
            }
        }
    }
    let class = match destination.kind {
        DestinationKind::LlmDeployment => EgressClass::LlmApi,
        DestinationKind::StorageContainer | DestinationKind::StorageAccount => EgressClass::CloudStorage,
        DestinationKind::HttpEndpoint => EgressClass::ExternalHttp,
        DestinationKind::GraphApi
        | DestinationKind::ServicenowTable
        | DestinationKind::Database
        | DestinationKind::Queue
        | DestinationKind::Other => EgressClass::Internal,
    };
    (class, format!("kind:{}", kind_name(destination.kind)))
}

/// The snake_case name of a destination kind.
pub fn kind_name(kind: DestinationKind) -> &'static str {
    match kind {
        DestinationKind::StorageContainer => "storage_container",
        DestinationKind::StorageAccount => "storage_account",
        DestinationKind::GraphApi => "graph_api",
        DestinationKind::ServicenowTable => "servicenow_table",
        DestinationKind::LlmDeployment => "llm_deployment",
        DestinationKind::HttpEndpoint => "http_endpoint",
        DestinationKind::Database => "database",
        DestinationKind::Queue => "queue",
        DestinationKind::Other => "other",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn check(
        kind: DestinationKind,
        host: Option<&str>,
        explicit: Option<EgressClass>,
        internal: &[&str],
        want: (EgressClass, &str),
    ) {
        let destination = Destination {
            id: "d".into(),
            name: "d".into(),
            kind,
            service: None,
            host: host.map(str::to_string),
            domain: None,
            egress: explicit,
            tags: BTreeMap::new(),
            execution_logs: None,
            execution_log_source: None,
        };
        let policy =
            Policy { internal_host_suffixes: internal.iter().map(|s| s.to_string()).collect(), ..Policy::default() };
        let (class, rule) = classify(&destination, &policy);
        assert_eq!((class, rule.as_str()), want, "{kind:?} {host:?}");
    }

    #[test]
    fn each_rule_of_the_table() {
        use DestinationKind::*;
        use EgressClass::*;
        check(HttpEndpoint, Some("x.example"), Some(Internal), &[], (Internal, "destination.egress"));
        check(HttpEndpoint, Some("api.contoso.com"), None, &["contoso.com"], (Internal, "host.internal:contoso.com"));
        check(HttpEndpoint, Some("contoso.com"), None, &["*.contoso.com"], (Internal, "host.internal:contoso.com"));
        check(HttpEndpoint, Some("evilcontoso.com"), None, &["contoso.com"], (ExternalHttp, "kind:http_endpoint"));
        check(HttpEndpoint, Some("contoso-aoai.openai.azure.com"), None, &[], (LlmApi, "host.llm:*.openai.azure.com"));
        check(HttpEndpoint, Some("api.anthropic.com"), None, &[], (LlmApi, "host.llm:api.anthropic.com"));
        check(
            Other,
            Some("bedrock-runtime.eu-west-1.amazonaws.com"),
            None,
            &[],
            (LlmApi, "host.llm:bedrock-runtime.*"),
        );
        check(
            HttpEndpoint,
            Some("stdata.blob.core.windows.net"),
            None,
            &[],
            (CloudStorage, "host.storage:*.blob.core.windows.net"),
        );
        check(HttpEndpoint, Some("graph.microsoft.com"), None, &[], (Internal, "host.saas:graph.microsoft.com"));
        check(Other, Some("contoso.service-now.com"), None, &[], (Internal, "host.saas:*.service-now.com"));
        check(LlmDeployment, None, None, &[], (LlmApi, "kind:llm_deployment"));
        check(StorageContainer, None, None, &[], (CloudStorage, "kind:storage_container"));
        check(HttpEndpoint, Some("api.payroll-partner.example"), None, &[], (ExternalHttp, "kind:http_endpoint"));
        check(Database, None, None, &[], (Internal, "kind:database"));
    }
}

//! What a tenant's scopes can name, and names that select nothing: a typo in a tenant, a
//! project, a tag or a workload id is an error naming the closest existing ones, never an empty
//! answer.

use std::collections::BTreeMap;

use serde::Serialize;
use sv0_domain::scope::{Scope, Selector};
use sv0_domain::{InvalidInput, TenantId};
use sv0_log::EventLog;

use crate::error::ServiceError;
use crate::service::Queries;

/// What a tenant's scopes can select (`sv0 scopes`).
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct KnownScopes {
    /// `project:NAME` → how many workloads it selects.
    pub projects: BTreeMap<String, usize>,
    /// `tag:KEY=VALUE` → how many workloads it selects.
    pub tags: BTreeMap<String, usize>,
    /// Scopes with an approved baseline (canonical text) → the latest version.
    pub baselined: BTreeMap<String, u32>,
    /// Workload ids (`workload:ID` selects one).
    #[serde(skip)]
    pub workloads: Vec<String>,
}

impl<L: EventLog> Queries<L> {
    /// The tenant a query is about: the named one, which must have data here (a typo would
    /// answer nothing), else the only one the views know.
    pub fn known_tenant(&self, named: Option<&str>) -> Result<TenantId, ServiceError> {
        let tenant = self.tenant(named)?;
        let known: Vec<String> = self.views().tenants()?.iter().map(|t| t.as_str().to_string()).collect();
        if known.iter().any(|t| t == tenant.as_str()) {
            return Ok(tenant);
        }
        Err(ServiceError::Input(InvalidInput::new(format!(
            "tenant {tenant} has no data here (the tenants here: {}){}",
            if known.is_empty() { "none".to_string() } else { known.join(", ") },
            did_you_mean(tenant.as_str(), known.iter().map(String::as_str))
        ))))
    }

    /// Every project, tag and baselined scope of a tenant.
    pub fn known_scopes(&self, tenant: &TenantId) -> Result<KnownScopes, ServiceError> {
        let mut known = KnownScopes::default();
        for workload in self.views().workloads(tenant)? {
            if let Some(project) = &workload.project {
                *known.projects.entry(format!("project:{project}")).or_default() += 1;
            }
            for (key, value) in &workload.tags {
                *known.tags.entry(format!("tag:{key}={value}")).or_default() += 1;
            }
            known.workloads.push(format!("workload:{}", workload.id));
        }
        for head in self.views().baselines(tenant)? {
            known.baselined.insert(head.scope.canonical(), head.version);
        }
        Ok(known)
    }

    /// Parses a scope of `tenant` and checks that it names something: a baselined scope, or
    /// selectors that each select a workload. Otherwise the error names the selector that
    /// selects nothing and the closest existing ones.
    pub fn scope(&self, tenant: &TenantId, text: &str) -> Result<Scope, ServiceError> {
        let scope = Scope::parse(text)?;
        let known = self.known_scopes(tenant)?;
        if known.baselined.contains_key(&scope.canonical()) {
            return Ok(scope);
        }
        for selector in scope.selectors() {
            let (name, candidates): (String, Vec<&String>) = match selector {
                Selector::All => continue,
                Selector::Project(p) => (format!("project:{p}"), known.projects.keys().collect()),
                Selector::Tag(k, v) => (format!("tag:{k}={v}"), known.tags.keys().collect()),
                Selector::Workload(w) => (format!("workload:{w}"), known.workloads.iter().collect()),
            };
            if candidates.contains(&&name) {
                continue;
            }
            return Err(ServiceError::Input(InvalidInput::new(format!(
                "{name} selects no workload of tenant {tenant}{} (`sv0 scopes` lists the projects, tags and \
                 baselined scopes)",
                did_you_mean(&name, candidates.iter().map(|c| c.as_str()))
            ))));
        }
        Ok(scope)
    }
}

/// `. Did you mean X or Y?` for the (at most three) candidates closest to `name`, or nothing
/// when none is close: the same text in another case, or within a third of its length in
/// edits (at least two).
pub fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let lower = name.to_lowercase();
    let most = (name.chars().count() / 3).max(2);
    let mut close: Vec<(usize, &str)> = candidates
        .filter_map(|c| {
            let distance = if c.to_lowercase() == lower { 0 } else { strsim::levenshtein(&lower, &c.to_lowercase()) };
            (distance <= most).then_some((distance, c))
        })
        .collect();
    close.sort();
    close.truncate(3);
    match close.as_slice() {
        [] => String::new(),
        [(_, one)] => format!(". Did you mean {one}?"),
        many => {
            let names: Vec<&str> = many.iter().map(|(_, c)| *c).collect();
            format!(". Did you mean one of {}?", names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn the_closest_names_are_suggested() {
        let known = ["project:HR-Automation", "project:Finance-Ops", "project:Sales"];
        assert_eq!(did_you_mean("project:HR-Automaton", known.into_iter()), ". Did you mean project:HR-Automation?");
        assert_eq!(did_you_mean("project:hr-automation", known.into_iter()), ". Did you mean project:HR-Automation?");
        assert_eq!(did_you_mean("project:Marketing", known.into_iter()), "");
        assert_eq!(did_you_mean("fabrikm", ["fabrikam", "contoso"].into_iter()), ". Did you mean fabrikam?");
    }
}

//! National clouds: each has its own endpoints and its own token audiences, and a token of one
//! is not accepted by another. Token scopes come from here (or from configuration), never from
//! the base URLs a scan is pointed at, so that a proxy or a test server sees real audiences.
//!
//! Sources: Microsoft Graph national cloud deployments
//! (https://learn.microsoft.com/graph/deployments), the Azure SDKs' cloud configurations for
//! Resource Manager and Log Analytics (`LogsQueryAudience`), the Foundry REST reference
//! ("request a token for the https://ai.azure.com/.default scope").

use crate::ConnectorError;
use crate::source::Service;

/// A national cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Azure public cloud.
    Public,
    /// Azure US Government (GCC High, L4).
    UsGov,
    /// Azure US Government, Microsoft Graph for DoD (L5).
    UsGovDod,
    /// Azure China operated by 21Vianet.
    China,
}

impl Cloud {
    /// A cloud by its configuration name: `public`, `usgov`, `usgov-dod` or `china`.
    pub fn parse(name: &str) -> Result<Cloud, ConnectorError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "public" | "azurecloud" => Ok(Cloud::Public),
            "usgov" | "azureusgovernment" => Ok(Cloud::UsGov),
            "usgov-dod" | "dod" => Ok(Cloud::UsGovDod),
            "china" | "azurechinacloud" => Ok(Cloud::China),
            other => Err(ConnectorError::Setup(format!(
                "[connectors] cloud = {other:?}: name public, usgov, usgov-dod or china"
            ))),
        }
    }

    /// The Entra token authority.
    pub fn authority(&self) -> &'static str {
        match self {
            Cloud::Public => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// A service's base URL in this cloud (ServiceNow has none; Foundry's endpoints are read
    /// from Azure Resource Manager, one per project).
    pub fn base_url(&self, service: Service) -> Option<&'static str> {
        Some(match (self, service) {
            (Cloud::Public, Service::Graph) => "https://graph.microsoft.com",
            (Cloud::UsGov, Service::Graph) => "https://graph.microsoft.us",
            (Cloud::UsGovDod, Service::Graph) => "https://dod-graph.microsoft.us",
            (Cloud::China, Service::Graph) => "https://microsoftgraph.chinacloudapi.cn",
            (Cloud::Public, Service::Arm) => "https://management.azure.com",
            (Cloud::UsGov | Cloud::UsGovDod, Service::Arm) => "https://management.usgovcloudapi.net",
            (Cloud::China, Service::Arm) => "https://management.chinacloudapi.cn",
            (Cloud::Public, Service::LogAnalytics) => "https://api.loganalytics.io",
            (Cloud::UsGov | Cloud::UsGovDod, Service::LogAnalytics) => "https://api.loganalytics.us",
            (Cloud::China, Service::LogAnalytics) => "https://api.loganalytics.azure.cn",
            _ => return None,
        })
    }

    /// The token scope (`<audience>/.default`) of a service in this cloud.
    pub fn scope(&self, service: Service) -> Option<&'static str> {
        Some(match (self, service) {
            (Cloud::Public, Service::Graph) => "https://graph.microsoft.com/.default",
            (Cloud::UsGov, Service::Graph) => "https://graph.microsoft.us/.default",
            (Cloud::UsGovDod, Service::Graph) => "https://dod-graph.microsoft.us/.default",
            (Cloud::China, Service::Graph) => "https://microsoftgraph.chinacloudapi.cn/.default",
            (Cloud::Public, Service::Arm) => "https://management.azure.com/.default",
            (Cloud::UsGov | Cloud::UsGovDod, Service::Arm) => "https://management.usgovcloudapi.net/.default",
            (Cloud::China, Service::Arm) => "https://management.chinacloudapi.cn/.default",
            // The audience stays api.loganalytics.io even on the api.loganalytics.azure.com host.
            (Cloud::Public, Service::LogAnalytics) => "https://api.loganalytics.io/.default",
            (Cloud::UsGov | Cloud::UsGovDod, Service::LogAnalytics) => "https://api.loganalytics.us/.default",
            (Cloud::China, Service::LogAnalytics) => "https://api.loganalytics.azure.cn/.default",
            (Cloud::Public, Service::Foundry) => "https://ai.azure.com/.default",
            (Cloud::UsGov | Cloud::UsGovDod, Service::Foundry) => "https://ai.azure.us/.default",
            _ => return None,
        })
    }

    /// The host suffix of Foundry project endpoints: a token goes only to such a host (or to
    /// a configured Foundry base URL).
    pub fn foundry_suffix(&self) -> Option<&'static str> {
        match self {
            Cloud::Public => Some(".services.ai.azure.com"),
            Cloud::UsGov | Cloud::UsGovDod => Some(".services.ai.azure.us"),
            Cloud::China => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cloud_names_its_own_audiences() {
        assert_eq!(Cloud::parse("usgov").unwrap().scope(Service::Graph), Some("https://graph.microsoft.us/.default"));
        assert_eq!(Cloud::Public.scope(Service::LogAnalytics), Some("https://api.loganalytics.io/.default"));
        assert_eq!(Cloud::China.authority(), "https://login.chinacloudapi.cn");
        assert_eq!(Cloud::China.scope(Service::Foundry), None, "Foundry is not offered in Azure China");
        assert!(Cloud::parse("mars").is_err());
    }
}

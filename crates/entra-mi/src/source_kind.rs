//! The kinds of managed-identity source: a leaf that errors, detection and the sources share.

use std::fmt;

/// The managed-identity endpoints of the Azure hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceKind {
    /// Azure Instance Metadata Service (VMs, scale sets, AKS nodes).
    Imds,
    /// App Service, Azure Functions, Container Apps, Automation (api-version 2019-08-01).
    AppService,
    /// Azure Arc-enabled servers (the HIMDS agent).
    AzureArc,
    /// Service Fabric.
    ServiceFabric,
    /// `MSI_ENDPOINT` + `MSI_SECRET`: Azure Machine Learning and legacy App Service
    /// (api-version 2017-09-01).
    AzureMl,
    /// Azure Cloud Shell (`MSI_ENDPOINT` alone).
    CloudShell,
}

impl SourceKind {
    /// A short, stable name (`imds`, `app-service`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Imds => "imds",
            SourceKind::AppService => "app-service",
            SourceKind::AzureArc => "azure-arc",
            SourceKind::ServiceFabric => "service-fabric",
            SourceKind::AzureMl => "azure-ml",
            SourceKind::CloudShell => "cloud-shell",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Imds => "IMDS",
            SourceKind::AppService => "App Service",
            SourceKind::AzureArc => "Azure Arc",
            SourceKind::ServiceFabric => "Service Fabric",
            SourceKind::AzureMl => "Azure ML (MSI_ENDPOINT + MSI_SECRET)",
            SourceKind::CloudShell => "Cloud Shell",
        })
    }
}
